"""Saving and loading fitted estimators without pickle.

A file is one safetensors file, written and read with the ``safetensors``
package (the format's reference implementation). Its JSON metadata holds the
estimator's class (one of skpred's: each registers itself by subclassing
:class:`SaveMixin`; nothing is imported by name), its constructor
parameters and its fitted attributes; arrays, tensors, module weights (fixed
U included) and optimizer state are tensors. Torch modules are rebuilt from
their description (``skpred.nn`` layers describe and rebuild themselves:
``to_spec`` / ``from_spec``) and filled with ``load_state_dict(strict=True)``,
so a file whose tensors do not fit its description is rejected. Loading runs
no code from the file.

Core module: below the estimators (which import it for :class:`SaveMixin`
and :class:`TorchStateMixin`); it imports none of them.
"""

import hashlib
import inspect
import json
import math
import os
import struct
import tempfile
import warnings

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as _safetensors_bytes
from torch import nn

from . import _device, _optim
from .nn._spec import layer_from_spec, layer_to_spec, spec_numel

__all__ = ["save", "load", "write_safetensors", "read_safetensors", "SaveMixin",
           "TorchStateMixin", "ESTIMATORS"]

FORMAT = "skpred"
VERSION = "1"
# A header larger than this is refused before it is read.
_MAX_HEADER = 64 * 1024 * 1024


# ------------------------------------------------------------ safetensors


def write_safetensors(path, tensors, metadata):
    """Write ``{name: tensor}`` and ``{str: str}`` metadata as safetensors,
    atomically: the bytes go to a temporary file in the target's folder,
    are flushed to disk, and the file is renamed over ``path``. On any
    failure (a full disk, Ctrl-C) the temporary file is removed and
    ``path`` is left as it was."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"Cannot save to {path}: it is a directory.")
    # The format forbids tensors that share memory: a tensor whose storage an
    # earlier one uses (views of one array, say) is copied; the others are
    # written from where they are, with no extra copy of the model.
    own, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        if t.numel() and t.untyped_storage().data_ptr() in seen:
            t = t.clone()
        if t.numel():
            seen.add(t.untyped_storage().data_ptr())
        own[name] = t
    try:
        data = _safetensors_bytes(own, metadata=dict(metadata))
    except (SafetensorError, TypeError, ValueError) as exc:
        raise ValueError(f"Cannot write these tensors as safetensors: {exc}") from None
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file private (0600); a saved model gets the mode
        # open() would give it (0666 less the umask), or the mode of the
        # file it replaces
        try:
            mode = os.stat(path).st_mode & 0o777
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _no_duplicates(pairs):
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        dup = next(k for k in names if names.count(k) > 1)
        raise ValueError(f"the name {dup!r} appears twice")
    return dict(pairs)


def read_safetensors(path):
    """Read a safetensors file: ``(tensors, metadata)``; ValueError when it is
    not one (truncated, a header that lies about its length, a name given
    twice, data outside the file, overlapping, or bytes no tensor covers)."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is not a safetensors file: it is {size} bytes long.")
        (n,) = struct.unpack("<Q", head)
        if n > min(_MAX_HEADER, size - 8):
            raise ValueError(f"{path} is not a valid safetensors file: its header length {n} "
                             f"exceeds the file.")
        raw_header = f.read(n)
    # The header is read here first, for what the package does not refuse
    # (a name given twice: JSON keeps the last) and for clear messages.
    try:
        header = json.loads(raw_header.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise ValueError(f"{path} has a corrupt safetensors header: {exc}.") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} has a corrupt safetensors header (not an object).")
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: the safetensors metadata must map strings to strings.")
    try:
        with safe_open(path, framework="pt") as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path} is not a valid safetensors file: {exc}") from None
    return tensors, dict(metadata)


# ------------------------------------------------------------ registration

#: class name -> estimator class: every skpred estimator that can be saved,
#: registered by :class:`SaveMixin` when the class is defined.
ESTIMATORS = {}


class SaveMixin:
    """``est.save(path)``: the estimator as a safetensors file, read back by
    :func:`skpred.load` without pickle.

    Every concrete skpred estimator class deriving from it is registered in
    :data:`ESTIMATORS` (a base class says ``_abstract = True``); classes
    defined outside skpred are not, so a file can only name skpred's own.
    """

    _abstract = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("_abstract", False) or not cls.__module__.startswith("skpred."):
            return
        known = ESTIMATORS.get(cls.__name__)
        if known is not None and (known.__module__, known.__qualname__) != (
                cls.__module__, cls.__qualname__):
            raise TypeError(f"Two skpred estimators are named {cls.__name__}.")
        ESTIMATORS[cls.__name__] = cls  # the same class again (a module reloaded): the new one

    def save(self, path):
        """Write the estimator (parameters, fitted attributes, weights, fixed
        dictionaries and optimizer state) to ``path`` as safetensors.

        Unlike pickle, loading the file runs no code: :func:`skpred.load`
        reads JSON and tensors, rebuilds the network from a fixed set of
        layer types and rejects a file whose weights do not match it. The
        file is written atomically: a failed save leaves ``path`` as it was.
        A fitted estimator is saved with the parameters of its last fit: a
        parameter changed since by ``set_params`` is not written (a warning
        names it), so the file always describes the weights it holds. A
        SHA-256 checksum lets :func:`skpred.load` refuse a file changed
        after it was written.

        Parameters
        ----------
        path : str or path-like
        """
        save(self, path)


def _tensors_to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _tensors_to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors_to_cpu(v) for v in obj)
    return obj


class TorchStateMixin:
    """Pickling (and saving) for estimators holding torch modules, an
    optimizer and a torch.Generator.

    Modules named in ``_torch_modules`` are stored on the CPU, so a model
    fitted on a GPU unpickles on a CPU-only machine. The optimizer
    ``_optimizer`` (bound to ``module_``'s parameters) is stored as its state
    dict on the CPU (moments, step counts and the decayed learning rate) and
    rebuilt on loading, so training after a pickle round trip continues
    exactly as without it.
    """

    _torch_modules = ()

    def __getstate__(self):
        state = dict(super().__getstate__())
        optimizer = state.get("_optimizer")
        if optimizer is not None:
            state["_optimizer"] = None
            state["_optimizer_state"] = (
                "sgd" if isinstance(optimizer, torch.optim.SGD) else "adam",
                _tensors_to_cpu(optimizer.state_dict()),
            )
        for name in self._torch_modules:
            if name in state:
                state[name] = _device.cpu_copy(getattr(self, name))
                state["device_"] = torch.device("cpu")
        if "_generator" in state:
            state["_generator_state"] = state.pop("_generator").get_state()
        return state

    def __setstate__(self, state):
        gen_state = state.pop("_generator_state", None)
        if gen_state is not None:
            state["_generator"] = torch.Generator()
            state["_generator"].set_state(gen_state)
        optimizer_state = state.pop("_optimizer_state", None)
        super().__setstate__(state)
        if optimizer_state is not None:
            solver, opt_state = optimizer_state
            # lr, momentum, betas and eps are restored by load_state_dict.
            self._optimizer = _optim.make_optimizer(self.module_, solver, 1.0)
            _optim.load_state(self._optimizer, opt_state)


# -------------------------------------------------------------- estimators


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
            spec = layer_to_spec(v)
            for name, t in v.state_dict().items():
                self._tensor(f"{path}/{name}", t.detach().cpu())
            return {"__module__": spec, "prefix": path}
        if isinstance(v, BaseEstimator):
            if ESTIMATORS.get(type(v).__name__) is not type(v):
                raise ValueError(f"Cannot save {path}: {type(v).__name__} is not a skpred "
                                 f"estimator (use joblib for pipelines of other estimators).")
            return {"__estimator__": type(v).__name__,
                    "state": self(_state(v), f"{path}~")}
        if isinstance(v, np.random.RandomState):
            raise ValueError(f"Cannot save {path}: a RandomState instance. Set random_state to "
                             f"an int or None before saving.")
        raise ValueError(f"Cannot save {path} of type {type(v).__name__}.")


def _equal(a, b):
    """Parameter values compared as get_params reports them (lists and
    tuples alike); anything that does not compare is different."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _state(est):
    device = getattr(est, "device_", None)
    state = est.__getstate__() if hasattr(est, "__getstate__") else dict(est.__dict__)
    state = {k: v for k, v in state.items() if k != "_sklearn_version"}
    fitted_with = state.get("_fit_params")
    if isinstance(fitted_with, dict):
        # The file holds the fitted model with the parameters it was fitted
        # with: a parameter changed since (set_params without a refit) would
        # describe another network, or an invalid one, than the weights.
        changed = sorted(k for k, v in fitted_with.items()
                         if k in state and k != "callbacks" and not _equal(state[k], v))
        if changed:
            warnings.warn(
                f"{type(est).__name__}.save: {', '.join(changed)} changed since the last fit; "
                f"the file holds the fitted model with the values it was fitted with. Refit "
                f"first to save the new ones.", UserWarning, stacklevel=3)
        for k in changed:
            state[k] = fitted_with[k]
    if state.get("callbacks") is not None:
        # callbacks are code, which the format does not carry (it never runs code)
        warnings.warn(f"{type(est).__name__}.save: callbacks are code and are not saved; the "
                      f"loaded estimator has callbacks=None.", UserWarning, stacklevel=3)
        state["callbacks"] = None
    if callable(state.get("learning_rate")):
        raise ValueError(f"Cannot save a {type(est).__name__} whose learning_rate is a "
                         f"callable (code, which the format does not carry); set "
                         f"learning_rate to a named schedule before saving.")
    if device is not None:
        state["_saved_device"] = str(device)
    return state


class _Decoder:
    def __init__(self, tensors, device, allow_nonfinite=False):
        self.tensors = tensors
        self.device = device
        self.allow_nonfinite = allow_nonfinite
        self.used = set()

    def _finite(self, path, t):
        """Weights and optimizer state that hold NaN or infinity are refused
        (a model that predicts NaN), unless the caller allows them."""
        if (not self.allow_nonfinite and t.is_floating_point()
                and not bool(torch.isfinite(t).all())):
            raise ValueError(
                f"The file's tensor {path!r} holds NaN or infinite values; a model with such "
                f"weights predicts NaN. skpred.load(path, allow_nonfinite=True) loads it anyway.")
        return t

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
            if dtype.newbyteorder("=") != array.dtype.newbyteorder("="):
                # the tensor's bytes are of another type than the array they
                # were written from: reinterpreting them would be garbage
                raise ValueError(f"The file's tensor {v['__array__']!r} is {array.dtype}, but "
                                 f"its metadata says the array was {dtype}.")
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
            return self._finite(v["__tensor__"], self._take(v["__tensor__"])).clone()
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
            if spec_numel(v["__module__"]) != sum(t.numel() for t in state.values()):
                raise ValueError("The weights in the file do not match its description of the "
                                 "network (their sizes differ).")
            module = layer_from_spec(v["__module__"], floats[0] if floats else None)
            expected = module.state_dict()
            for name, t in state.items():
                want = expected.get(name)
                if want is not None and t.dtype != want.dtype:
                    raise ValueError(
                        f"The file's tensor {prefix + '/' + name!r} is {t.dtype}, but the network "
                        f"it describes holds {want.dtype} there (every weight of a network has "
                        f"one floating dtype).")
                self._finite(f"{prefix}/{name}", t)
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


#: Constructor parameters newer than some files, with the value that reproduces the
#: behaviour those files were written with.
#: ``nesterovs_momentum=False``: earlier releases used classical momentum;
#: ``beta_1``, ``beta_2``, ``epsilon``: torch's Adam defaults they used;
#: ``max_norm_on="W"``, ``pretrain_recipe="adam"``, ``init="glorot"``: how
#: networks were capped, pretrained and (for a warm start's new layers)
#: initialised before the authors' settings became options.
ADDED_PARAMETERS = {"callbacks": None, "nesterovs_momentum": False, "beta_1": 0.9,
                    "beta_2": 0.999, "epsilon": 1e-8, "max_fun": 15000,
                    "loss": "squared_error", "max_norm_on": "W", "pretrain_recipe": "adam",
                    "init": "glorot", "compile": False}


def _migrate(names, state):
    """Bring a file's parameters up to this release's (in place)."""
    if "weight_decay" in state and "alpha" in names and "alpha" not in state:
        # torch's weight decay ``wd`` on batches of ``b`` is scikit-learn's
        # ``alpha = wd * b`` (``"auto"``: b at most 200).
        decay, batch = state.pop("weight_decay"), state.get("batch_size")
        if isinstance(decay, (int, float)) and not isinstance(decay, bool):
            state["alpha"] = float(decay) * (batch if isinstance(batch, int) else 200)
    for key, default in ADDED_PARAMETERS.items():
        if key in names and key not in state:
            state[key] = default


def _constructor_parameters(cls):
    """The names ``get_params`` reports: the constructor's keyword parameters
    (scikit-learn's convention, read from the signature)."""
    return [p.name for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _restore(name, state):
    registry = ESTIMATORS
    if not isinstance(name, str) or name not in registry:
        raise ValueError(f"The file holds a {name!r}, which is not a skpred estimator.")
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ValueError("Corrupt estimator state in the file.")
    cls = registry[name]
    est = cls.__new__(cls)
    state = dict(state)
    saved_device = state.pop("_saved_device", None)
    # Parameters added after a file was written take the value that behaves as before.
    names = _constructor_parameters(cls)
    _migrate(names, state)
    try:
        est.__setstate__(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"Corrupt {name} state in the file: {exc!r}.") from None
    modules = [getattr(est, n) for n in getattr(est, "_torch_modules", ()) if hasattr(est, n)]
    if saved_device is not None and modules and hasattr(est, "device_"):
        # where the modules were put (the device asked for, or the saved one)
        est.device_ = next(modules[0].parameters()).device
    # The constructor parameters must be valid ones ...
    missing = sorted(set(names) - set(state))
    if missing:
        raise ValueError(f"The file's {name} lacks parameters: {missing}.")
    try:
        est._validate_params()
    except Exception as exc:  # sklearn's InvalidParameterError is a ValueError
        raise ValueError(f"The file's parameters are invalid: {exc}") from None
    # ... and agree with the fitted network.
    check = getattr(est, "_check_loaded", None)
    if check is not None:
        check()
    return est


def _checksum(tensors, state_json):
    """SHA-256 of the metadata's state and of every tensor (name, dtype,
    shape, bytes, in name order): a byte changed anywhere after the file
    was written is detected at load time, not loaded as other weights."""
    digest = hashlib.sha256(state_json.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def save(est, path):
    """Write a fitted (or unfitted) skpred estimator to ``path`` (safetensors)."""
    encoder = _Encoder()
    state = encoder(_state(est), "state")
    state_json = json.dumps(state, allow_nan=False)
    metadata = {"format": FORMAT, "version": VERSION, "class": type(est).__name__,
                "state": state_json, "sha256": _checksum(encoder.tensors, state_json)}
    if ESTIMATORS.get(type(est).__name__) is not type(est):
        raise ValueError(f"{type(est).__name__} is not a skpred estimator.")
    write_safetensors(path, encoder.tensors, metadata)


def load(path, device=None, *, allow_nonfinite=False):
    """Read an estimator written by ``est.save(path)``; no pickle is involved.

    Parameters
    ----------
    path : str or path-like
    device : str, torch.device or None, default=None
        Where torch modules go. None: the device the estimator was saved
        from when it is available here, else the CPU.
    allow_nonfinite : bool, default=False
        A file whose network weights or optimizer state hold NaN or
        infinity is refused (its model would predict NaN); True loads it
        anyway (to inspect a diverged model).

    Returns
    -------
    estimator : a skpred estimator, as it was saved (fitted attributes,
        network weights and fixed dictionaries, optimizer state), so
        ``partial_fit`` and warm starts continue where they stopped.

    Raises
    ------
    ValueError
        The file is not a skpred file, is corrupt (a tensor named twice,
        bytes no tensor covers, a tensor of another dtype than the network
        or array it belongs to), its weights do not match its parameters,
        or they hold NaN or infinity (see ``allow_nonfinite``); the message
        names the tensor and the rule.
    """
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path} is a safetensors file but not one written by skpred.save.")
    if metadata.get("version") != VERSION:
        raise ValueError(f"{path} was written by format version {metadata.get('version')!r}; "
                         f"this skpred reads version {VERSION}.")
    if "sha256" in metadata and (not isinstance(metadata.get("state"), str) or _checksum(
            tensors, metadata["state"]) != metadata["sha256"]):
        # (files from before the checksum have none, and load without it)
        raise ValueError(f"{path} is corrupt: its contents do not match the SHA-256 checksum "
                         f"written with it (bytes changed after it was saved).")
    try:
        state = json.loads(metadata["state"])
    except (KeyError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"{path} has corrupt metadata.") from None
    if device is not None:
        target = _device.resolve_device(device)
    else:
        saved = None
        if isinstance(state, dict) and isinstance(state.get("__dict__"), list):
            for pair in state["__dict__"]:
                if isinstance(pair, list) and len(pair) == 2 and pair[0] == "_saved_device":
                    saved = pair[1]
        try:
            target = (_device.resolve_device(saved) if isinstance(saved, str)
                      else torch.device("cpu"))
        except ValueError:
            target = torch.device("cpu")
    decoder = _Decoder(tensors, target, allow_nonfinite=allow_nonfinite)
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
