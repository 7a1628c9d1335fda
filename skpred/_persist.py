"""Saving and loading fitted estimators without pickle.

A file is one safetensors file (the format of Hugging Face's
``safetensors``: an 8-byte little-endian header length, a JSON header, then
the raw tensor bytes), written and read here with no dependency. The JSON
metadata holds the estimator's class (one of skpred's, from a fixed
registry: nothing is imported by name), its constructor parameters and its
fitted attributes; arrays, tensors, module weights (fixed U included) and
optimizer state are tensors. Torch modules are rebuilt from a description
of their layers (from a fixed set of layer types) and filled with
``load_state_dict(strict=True)``, so a file whose tensors do not fit its
description is rejected. Loading runs no code from the file.
"""

import json
import math
import os
import struct

import numpy as np
import torch
from torch import nn

__all__ = ["save", "load", "write_safetensors", "read_safetensors"]

FORMAT = "skpred"
VERSION = "1"
# A header larger than this is refused before it is read.
_MAX_HEADER = 64 * 1024 * 1024

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


# ------------------------------------------------------------ safetensors


def write_safetensors(path, tensors, metadata):
    """Write ``{name: tensor}`` and ``{str: str}`` metadata as safetensors."""
    header = {"__metadata__": dict(metadata)}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _NAMES:
            raise ValueError(f"Cannot save tensor {name!r} of dtype {t.dtype}.")
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
    os.replace(tmp, path)  # a crash never leaves a half-written file at path


def read_safetensors(path):
    """Read a safetensors file: ``(tensors, metadata)``; ValueError when it is
    not one (truncated, overlapping or out-of-range data, unknown dtypes)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path} is not a safetensors file: it is {len(raw)} bytes long.")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > min(_MAX_HEADER, len(raw) - 8):
        raise ValueError(f"{path} is not a valid safetensors file: its header length {n} "
                         f"exceeds the file.")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} has a corrupt safetensors header: {exc!r}.") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} has a corrupt safetensors header (not an object).")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: the safetensors metadata must map strings to strings.")
    data = memoryview(raw)[8 + n:]
    tensors, spans = {}, []
    for name, entry in header.items():
        if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has no known dtype.")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if (not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape)
                or not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)):
            raise ValueError(f"{path}: tensor {name!r} has a malformed shape or offsets.")
        dtype = _DTYPES[entry["dtype"]]
        begin, end = offsets
        size = math.prod(shape) * dtype.itemsize
        if not 0 <= begin <= end <= len(data) or end - begin != size:
            raise ValueError(f"{path}: the data of tensor {name!r} lies outside the file or "
                             f"does not match its shape {shape}.")
        spans.append((begin, end, name))
        buffer = bytearray(data[begin:end])
        flat = torch.frombuffer(buffer, dtype=torch.uint8) if size else torch.empty(0, dtype=torch.uint8)
        tensors[name] = flat.view(dtype).reshape(shape) if size else torch.empty(shape, dtype=dtype)
    spans.sort()
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            raise ValueError(f"{path}: the data of tensors {a!r} and {b!r} overlap.")
    return tensors, metadata


# ----------------------------------------------------------------- modules


def _layer_spec(m):
    from .nn import LowRankLinear, PredictedConv2d, PredictedConvNet, PredictedLinear, PredictedMLP
    from .nn._linear import SEPredictedLinear

    if isinstance(m, SEPredictedLinear):
        raise ValueError("SEPredictedLinear layers cannot be saved by skpred.save yet; use "
                         "torch.save(module.state_dict()).")
    if isinstance(m, LowRankLinear):
        return dict(type="LowRankLinear", in_features=m.in_features, out_features=m.out_features,
                    rank=m.n_atoms, n_columns=m.n_columns, bias=m.bias is not None, path=m.path)
    if isinstance(m, PredictedLinear):
        return dict(type="PredictedLinear", in_features=m.in_features,
                    out_features=m.out_features, n_columns=m.n_columns, n_atoms=m.n_atoms,
                    bias=m.bias is not None, path=m.path)
    if isinstance(m, PredictedConv2d):
        return dict(type="PredictedConv2d", in_channels=m.in_channels,
                    out_channels=m.out_channels, kernel_size=list(m.kernel_size),
                    n_columns=m.n_columns, n_atoms=m.n_atoms, stride=list(m.stride),
                    padding=m.padding if isinstance(m.padding, str) else list(m.padding),
                    dilation=list(m.dilation), bias=m.bias is not None, path=m.path)
    if type(m) is nn.Linear:
        return dict(type="Linear", in_features=m.in_features, out_features=m.out_features,
                    bias=m.bias is not None)
    if type(m) is nn.Conv2d and m.groups == 1:
        return dict(type="Conv2d", in_channels=m.in_channels, out_channels=m.out_channels,
                    kernel_size=list(m.kernel_size), stride=list(m.stride),
                    padding=m.padding if isinstance(m.padding, str) else list(m.padding),
                    dilation=list(m.dilation), bias=m.bias is not None)
    if isinstance(m, PredictedMLP):
        return dict(type="PredictedMLP", hidden=[_layer_spec(h) for h in m.hidden],
                    n_outputs=m.output.out_features, activation=m.activation)
    if isinstance(m, PredictedConvNet):
        return dict(type="PredictedConvNet", image_shape=list(m.image_shape),
                    convs=[_layer_spec(c) for c in m.convs], pools=[list(p) for p in m.pools],
                    dense=[_layer_spec(d) for d in m.dense], n_outputs=m.output.out_features,
                    activation=m.activation)
    raise ValueError(f"Cannot save a module of type {type(m).__name__}.")


def _spec_numel(spec):
    """The number of values the state_dict of a described module holds;
    ValueError for a description that is not one (checked before building)."""
    try:
        kind = spec["type"]
        bias = lambda n: n if spec.get("bias") else 0  # noqa: E731
        if kind == "Linear":
            return spec["in_features"] * spec["out_features"] + bias(spec["out_features"])
        if kind == "Conv2d":
            kh, kw = spec["kernel_size"]
            return spec["out_channels"] * spec["in_channels"] * kh * kw + bias(spec["out_channels"])
        if kind in ("PredictedLinear", "LowRankLinear"):
            atoms = spec["n_atoms"] if kind == "PredictedLinear" else spec["rank"]
            C, n_in, n_out = spec["n_columns"], spec["in_features"], spec["out_features"]
            return n_in * C * atoms + atoms * n_out + bias(n_out)
        if kind == "PredictedConv2d":
            kh, kw = spec["kernel_size"]
            C, a = spec["n_columns"], spec["n_atoms"]
            return (C * a * spec["in_channels"] * kh * kw + a * spec["out_channels"]
                    + bias(spec["out_channels"]))
        if kind == "PredictedMLP":
            hidden = [_spec_numel(h) for h in spec["hidden"]]
            last = spec["hidden"][-1]["out_features"]
            return sum(hidden) + last * spec["n_outputs"] + spec["n_outputs"]
        if kind == "PredictedConvNet":
            inner = [_spec_numel(m) for m in spec["convs"] + spec["dense"]]
            if spec["dense"]:
                last = spec["dense"][-1]["out_features"]
            else:
                rows, cols, channels = spec["image_shape"]
                for conv, (ph, pw) in zip(spec["convs"], spec["pools"]):
                    channels, rows, cols = conv["out_channels"], rows // ph, cols // pw
                last = channels * rows * cols
            return sum(inner) + last * spec["n_outputs"] + spec["n_outputs"]
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
        raise ValueError("Corrupt module description in the file.") from None
    raise ValueError(f"Unknown module type {spec.get('type')!r} in the file.")


def _pad(p):
    return p if isinstance(p, str) else tuple(p)


def _build_layer(spec, dtype):
    """A module of the described shape (weights to be loaded); ValueError on
    anything that is not one of the known layer descriptions."""
    from .nn import LowRankLinear, PredictedConv2d, PredictedConvNet, PredictedLinear, PredictedMLP

    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError("Corrupt module description in the file.")
    kind = spec["type"]
    try:
        if kind == "Linear":
            return nn.Linear(spec["in_features"], spec["out_features"], bias=spec["bias"],
                             dtype=dtype)
        if kind == "Conv2d":
            return nn.Conv2d(spec["in_channels"], spec["out_channels"],
                             tuple(spec["kernel_size"]), stride=tuple(spec["stride"]),
                             padding=_pad(spec["padding"]), dilation=tuple(spec["dilation"]),
                             bias=spec["bias"], dtype=dtype)
        if kind == "PredictedLinear":
            U = torch.zeros(spec["n_columns"], spec["in_features"], spec["n_atoms"])
            return PredictedLinear(spec["in_features"], spec["out_features"], U,
                                   bias=spec["bias"], path=spec["path"], dtype=dtype)
        if kind == "LowRankLinear":
            return LowRankLinear(spec["in_features"], spec["out_features"], spec["rank"],
                                 spec["n_columns"], bias=spec["bias"], path=spec["path"],
                                 dtype=dtype)
        if kind == "PredictedConv2d":
            kh, kw = spec["kernel_size"]
            U = torch.zeros(spec["n_columns"], spec["in_channels"] * kh * kw, spec["n_atoms"])
            return PredictedConv2d(spec["in_channels"], spec["out_channels"], (kh, kw), U,
                                   stride=tuple(spec["stride"]), padding=_pad(spec["padding"]),
                                   dilation=tuple(spec["dilation"]), bias=spec["bias"],
                                   path=spec["path"], dtype=dtype)
        if kind == "PredictedMLP":
            hidden = [_build_layer(h, dtype) for h in spec["hidden"]]
            return PredictedMLP(hidden, spec["n_outputs"], spec["activation"], dtype=dtype)
        if kind == "PredictedConvNet":
            return PredictedConvNet(
                tuple(spec["image_shape"]), [_build_layer(c, dtype) for c in spec["convs"]],
                [tuple(p) for p in spec["pools"]], [_build_layer(d, dtype) for d in spec["dense"]],
                spec["n_outputs"], spec["activation"], dtype=dtype)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"Corrupt {kind} description in the file: {exc!r}.") from None
    raise ValueError(f"Unknown module type {kind!r} in the file.")


# -------------------------------------------------------------- estimators


def _registry():
    from . import (ImageEncoder, KernelDictionary, PredictedConvNetClassifier,
                   PredictedMLPClassifier, PredictedMLPRegressor, PredictedRICA, ZCAWhitening)

    return {c.__name__: c for c in (ImageEncoder, KernelDictionary, PredictedConvNetClassifier,
                                    PredictedMLPClassifier, PredictedMLPRegressor,
                                    PredictedRICA, ZCAWhitening)}


class _Encoder:
    """Turns an estimator's state into JSON and named tensors."""

    def __init__(self):
        self.tensors = {}

    def _tensor(self, path, t):
        self.tensors[path] = t
        return path

    def __call__(self, v, path):
        from sklearn.base import BaseEstimator

        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return int(v)
        if isinstance(v, (float, np.floating)):
            v = float(v)
            return v if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, tuple):
            return {"__tuple__": [self(x, f"{path}.{i}") for i, x in enumerate(v)]}
        if isinstance(v, list):
            return [self(x, f"{path}.{i}") for i, x in enumerate(v)]
        if isinstance(v, dict):
            return {"__dict__": [[self(k, f"{path}.key{i}"), self(x, f"{path}.{i}")]
                                 for i, (k, x) in enumerate(v.items())]}
        if isinstance(v, np.ndarray):
            if v.dtype.kind in "biuf":
                return {"__array__": self._tensor(path, torch.from_numpy(np.ascontiguousarray(v))),
                        "dtype": v.dtype.str}
            if v.dtype.kind in "UO" and all(isinstance(x, (str, int)) for x in v.ravel()):
                return {"__strarray__": [x if isinstance(x, str) else int(x) for x in v.ravel()],
                        "shape": list(v.shape), "dtype": v.dtype.kind}
            raise ValueError(f"Cannot save the array {path} of dtype {v.dtype}.")
        if isinstance(v, torch.device):
            return {"__device__": str(v)}
        if isinstance(v, torch.Tensor):
            return {"__tensor__": self._tensor(path, v.detach().cpu())}
        if isinstance(v, torch.Generator):
            return {"__generator__": self._tensor(path, v.get_state())}
        if isinstance(v, nn.Module):
            spec = _layer_spec(v)
            for name, t in v.state_dict().items():
                self._tensor(f"{path}/{name}", t.detach().cpu())
            return {"__module__": spec, "prefix": path}
        if isinstance(v, BaseEstimator):
            if type(v).__name__ not in _registry() or type(v) is not _registry()[type(v).__name__]:
                raise ValueError(f"Cannot save {path}: {type(v).__name__} is not a skpred "
                                 f"estimator (use joblib for pipelines of other estimators).")
            return {"__estimator__": type(v).__name__,
                    "state": self(_state(v), f"{path}~")}
        if isinstance(v, np.random.RandomState):
            raise ValueError(f"Cannot save {path}: a RandomState instance. Set random_state to "
                             f"an int or None before saving.")
        raise ValueError(f"Cannot save {path} of type {type(v).__name__}.")


def _state(est):
    device = getattr(est, "device_", None)
    state = est.__getstate__() if hasattr(est, "__getstate__") else dict(est.__dict__)
    state = {k: v for k, v in state.items() if k != "_sklearn_version"}
    if device is not None:
        state["_saved_device"] = str(device)
    return state


class _Decoder:
    def __init__(self, tensors, device):
        self.tensors = tensors
        self.device = device
        self.used = set()

    def _take(self, path):
        if not isinstance(path, str) or path not in self.tensors:
            raise ValueError(f"The file lacks the tensor {path!r} its metadata refers to.")
        self.used.add(path)
        return self.tensors[path]

    def __call__(self, v):
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self(x) for x in v]
        if not isinstance(v, dict) or len(v) == 0:
            raise ValueError("Corrupt value in the file's metadata.")
        if "__float__" in v:
            if v["__float__"] not in ("nan", "inf", "-inf"):
                raise ValueError("Corrupt float in the file's metadata.")
            return float(v["__float__"])
        if "__tuple__" in v:
            return tuple(self(x) for x in v["__tuple__"])
        if "__dict__" in v:
            pairs = v["__dict__"]
            if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2
                                                      for p in pairs):
                raise ValueError("Corrupt mapping in the file's metadata.")
            return {self(k): self(x) for k, x in pairs}
        if "__array__" in v:
            array = self._take(v["__array__"]).numpy()
            try:
                dtype = np.dtype(v.get("dtype", array.dtype.str))
            except TypeError:
                raise ValueError("Corrupt array dtype in the file's metadata.") from None
            if dtype.kind not in "biuf":
                raise ValueError("Corrupt array dtype in the file's metadata.")
            return array.astype(dtype, copy=True)
        if "__strarray__" in v:
            kind = v.get("dtype")
            if kind not in ("U", "O"):
                raise ValueError("Corrupt array dtype in the file's metadata.")
            values = v["__strarray__"]
            if not all(isinstance(x, (str, int)) for x in values):
                raise ValueError("Corrupt array in the file's metadata.")
            return np.array(values, dtype=object if kind == "O" else None).reshape(v["shape"])
        if "__device__" in v:
            if not isinstance(v["__device__"], str):
                raise ValueError("Corrupt device in the file's metadata: not a string.")
            try:
                return torch.device(v["__device__"])
            except (RuntimeError, TypeError, ValueError):
                raise ValueError(
                    f"Corrupt device {v['__device__']!r} in the file's metadata.") from None
        if "__tensor__" in v:
            return self._take(v["__tensor__"]).clone()
        if "__generator__" in v:
            g = torch.Generator()
            try:
                g.set_state(self._take(v["__generator__"]).clone())
            except (RuntimeError, TypeError):
                raise ValueError("Corrupt random generator state in the file.") from None
            return g
        if "__module__" in v:
            prefix = v["prefix"]
            state = {k[len(prefix) + 1:]: t for k, t in self.tensors.items()
                     if k.startswith(prefix + "/")}
            floats = [t.dtype for t in state.values() if t.is_floating_point()]
            # Checked before anything is allocated: a description that asks
            # for more (or fewer) numbers than the file holds is refused.
            if _spec_numel(v["__module__"]) != sum(t.numel() for t in state.values()):
                raise ValueError("The weights in the file do not match its description of the "
                                 "network (their sizes differ).")
            module = _build_layer(v["__module__"], floats[0] if floats else None)
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"The weights in the file do not match its description of the "
                                 f"network: {exc}") from None
            self.used.update(f"{prefix}/{k}" for k in state)
            return module.to(self.device).eval()
        if "__estimator__" in v:
            return _restore(v["__estimator__"], self(v["state"]))
        raise ValueError("Corrupt value in the file's metadata.")


def _restore(name, state):
    registry = _registry()
    if name not in registry:
        raise ValueError(f"The file holds a {name!r}, which is not a skpred estimator.")
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError("Corrupt estimator state in the file.")
    cls = registry[name]
    est = cls.__new__(cls)
    state = dict(state)
    saved_device = state.pop("_saved_device", None)
    try:
        est.__setstate__(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"Corrupt {name} state in the file: {exc!r}.") from None
    modules = [getattr(est, n) for n in getattr(est, "_torch_modules", ()) if hasattr(est, n)]
    if saved_device is not None and modules and hasattr(est, "device_"):
        # where the modules were put (the device asked for, or the saved one)
        est.device_ = next(modules[0].parameters()).device
    # The constructor parameters must be valid ones ...
    params = {k: state[k] for k in est._get_param_names() if k in state}
    if set(params) != set(est._get_param_names()):
        raise ValueError(f"The file's {name} lacks parameters: "
                         f"{sorted(set(est._get_param_names()) - set(params))}.")
    try:
        est._validate_params()
    except Exception as exc:  # sklearn's InvalidParameterError is a ValueError
        raise ValueError(f"The file's parameters are invalid: {exc}") from None
    # ... and agree with the fitted network.
    check = getattr(est, "_check_loaded", None)
    if check is not None:
        check()
    return est


def save(est, path):
    """Write a fitted (or unfitted) skpred estimator to ``path`` (safetensors)."""
    encoder = _Encoder()
    state = encoder(_state(est), "state")
    metadata = {"format": FORMAT, "version": VERSION, "class": type(est).__name__,
                "state": json.dumps(state, allow_nan=False)}
    if type(est).__name__ not in _registry():
        raise ValueError(f"{type(est).__name__} is not a skpred estimator.")
    write_safetensors(path, encoder.tensors, metadata)


def load(path, device=None):
    """Read an estimator written by ``est.save(path)``; no pickle is involved.

    Parameters
    ----------
    path : str or path-like
    device : str, torch.device or None, default=None
        Where torch modules go. None: the device the estimator was saved
        from when it is available here, else the CPU.

    Returns
    -------
    estimator : a skpred estimator, as it was saved (fitted attributes,
        network weights and fixed dictionaries, optimizer state), so
        ``partial_fit`` and warm starts continue where they stopped.

    Raises
    ------
    ValueError
        The file is not a skpred file, is corrupt, or its weights do not
        match its parameters.
    """
    from ._training import resolve_device

    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not one written by skpred.save.")
    if metadata.get("version") != VERSION:
        raise ValueError(f"{path} was written by format version {metadata.get('version')!r}; "
                         f"this skpred reads version {VERSION}.")
    try:
        state = json.loads(metadata["state"])
    except (KeyError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"{path} has corrupt metadata.") from None
    if device is not None:
        target = resolve_device(device)
    else:
        saved = None
        if isinstance(state, dict) and isinstance(state.get("__dict__"), list):
            for pair in state["__dict__"]:
                if isinstance(pair, list) and len(pair) == 2 and pair[0] == "_saved_device":
                    saved = pair[1]
        try:
            target = resolve_device(saved) if isinstance(saved, str) else torch.device("cpu")
        except ValueError:
            target = torch.device("cpu")
    decoder = _Decoder(tensors, target)
    try:
        est = _restore(metadata.get("class"), decoder(state))
    except RecursionError:
        raise ValueError(f"{path} has corrupt metadata (nested too deeply).") from None
    except (TypeError, KeyError, AttributeError, IndexError, OverflowError) as exc:
        # At the file boundary: any value of the wrong kind where the format
        # has a structure is a corrupt file, reported as such.
        raise ValueError(f"{path} has corrupt metadata: {exc!r}.") from None
    unused = set(tensors) - decoder.used
    if unused:
        raise ValueError(f"{path} holds tensors its metadata never uses: {sorted(unused)[:5]}.")
    return est
