"""Parameter prediction for any torch network: convert its layers, count
its parameters.

:func:`predict_parameters` returns a copy of a ``torch.nn.Module`` whose
``nn.Linear`` and ``nn.Conv2d`` layers are replaced by their predicted
twins (:class:`~skpred.nn.PredictedLinear`, :class:`~skpred.nn.PredictedConv2d`),
each with a fixed dictionary U from the registry of kinds and its learned
V fitted to the layer's current weights by least squares, so a trained
network starts from the closest predicted one. :func:`parameter_report`
counts trainable, fixed and total parameters per layer, as peft's
``print_trainable_parameters`` does for LoRA.

It lives beside the estimators, not in :mod:`skpred.nn`, because it builds
dictionaries through the kinds' registry, which itself builds
``skpred.nn`` layers.
"""

import copy
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import List

import numpy as np
import torch
from torch import nn

from . import _kernels
from ._kinds import DICTIONARY_KINDS, kind_names
from ._layers import build_dictionaries
from .nn import PredictedConv2d, PredictedLinear

__all__ = ["predict_parameters", "parameter_report", "ParameterReport"]


def _eligible(module):
    """None if ``module`` can be predicted, else the reason it cannot."""
    if type(module) is nn.Linear:
        return None
    if type(module) is nn.Conv2d:
        if module.groups != 1:
            return f"groups={module.groups} (only groups=1 convolutions)"
        if module.padding_mode != "zeros":
            return f"padding_mode={module.padding_mode!r} (only 'zeros')"
        return None
    return "not an nn.Linear or nn.Conv2d"


def _layers(model):
    """(name, module) of every leaf layer with weights, in registration order."""
    def has_weights(m):
        # a predicted layer's weight is a property that materialises W: not read
        return hasattr(m, "n_atoms") or isinstance(m._parameters.get("weight"), torch.Tensor)

    return [(name, m) for name, m in model.named_modules()
            if name and not list(m.children()) and has_weights(m)]


def _set_module(model, name, new):
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _batches(data, batch_size):
    """Input tensors from an array-like (in chunks of ``batch_size``) or a
    ``torch.utils.data.DataLoader`` (each batch, or its first element when
    it yields ``(inputs, targets)``)."""
    if isinstance(data, torch.utils.data.DataLoader):
        for batch in data:
            yield torch.as_tensor(batch[0] if isinstance(batch, (tuple, list)) else batch)
        return
    for start in range(0, len(data), batch_size):
        yield torch.as_tensor(np.asarray(data[start:start + batch_size]))


def _record_inputs(model, names, data, batch_size):
    """The inputs of the named layers on ``data`` (one pass of the model),
    flattened to (n, in_features) on the CPU, float32."""
    recorded = {n: [] for n in names}
    hooks = []
    for name in names:
        module = model.get_submodule(name)

        def hook(mod, args, name=name):
            recorded[name].append(args[0].detach().reshape(-1, args[0].shape[-1])
                                  .to("cpu", torch.float32))

        hooks.append(module.register_forward_pre_hook(hook))
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for chunk in _batches(data, batch_size):
                # floats in the model's dtype; integer inputs (token ids) as they are
                model(chunk.to(param.device, param.dtype) if chunk.is_floating_point()
                      else chunk.to(param.device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {n: torch.cat(v) for n, v in recorded.items()}


@torch.no_grad()
def fit_to_weights_(layer, W, bias=None) -> None:
    """Set a predicted layer's V to the least-squares fit of the weights
    ``W`` (out, fan_in; a convolution's filters flattened as torch lays
    them out), ``min ||U_c V_c - W_c^T||`` per column, and copy ``bias``
    (if given). Exact where U_c has full rank."""
    U = layer.dictionaries.detach().to("cpu", torch.float64)  # (C, fan_in, a)
    Wd = torch.as_tensor(W).detach().to("cpu", torch.float64)
    if Wd.shape != (sum(layer.column_sizes), U.shape[1]):
        raise ValueError(f"The weights have shape {tuple(Wd.shape)}; the layer needs "
                         f"({sum(layer.column_sizes)}, {U.shape[1]}).")
    solved, start = [], 0
    for c, m in enumerate(layer.column_sizes):
        solved.append(torch.linalg.lstsq(U[c], Wd[start:start + m].t()).solution)  # (a, m)
        start += m
    for V, c0, c1 in layer._groups():
        V.copy_(torch.stack(solved[c0:c1]).to(V))
    if bias is not None:
        layer.bias.copy_(torch.as_tensor(bias).to(layer.bias))


def predict_parameters(model: nn.Module, alpha_fraction: float = 0.25, *,
                       dictionary="auto", n_columns: int = 1, input_shape=None, data=None,
                       exclude="last", length_scale=1.0, ridge="auto", random_state=None,
                       batch_size: int = 1024) -> nn.Module:
    """A copy of ``model`` with its ``nn.Linear`` and ``nn.Conv2d`` layers
    predicted: ``W = U V`` with U fixed (a buffer) and V learned.

    Each eligible layer (``nn.Linear``; ``nn.Conv2d`` with ``groups=1`` and
    zero padding) becomes a :class:`~skpred.nn.PredictedLinear` or
    :class:`~skpred.nn.PredictedConv2d` on the same device and dtype, its V
    the least-squares fit of the layer's current weights (exact where U
    has full rank, e.g. ``alpha_fraction=1``) and its bias copied. Other
    layers, and those named in ``exclude``, are left as they are (see
    :func:`parameter_report`). The original model is not changed.

    Parameters
    ----------
    model : torch.nn.Module
    alpha_fraction : float in (0, 1], default=0.25
        Share of each unit's weights that stays learned (atoms per column
        over the layer's inputs).
    dictionary : str, default="auto"
        A kind of :data:`skpred._kinds.DICTIONARY_KINDS` for every converted
        layer, or "auto": ``se`` for convolutions (on the filter's
        ``(kh, kw, in_channels)`` grid) and for the first linear layer when
        ``input_shape`` gives its input's grid; for other linear layers
        ``emp`` when ``data`` is given, else ``se`` on a 1-D grid over the
        inputs (data-free). Convolutions take only data-free kinds.
    n_columns : int, default=1
        Columns per converted layer (capped at each layer's units;
        convolutions need it to divide their filters).
    input_shape : tuple (rows, cols) or (rows, cols, channels), optional
        The grid of the first linear layer's input, flattened channels-last
        (``se`` then measures pixel distances).
    data : array-like of shape (n_samples, ...), DataLoader or None
        Inputs of the model (a ``torch.utils.data.DataLoader`` may yield
        ``(inputs, targets)``): every layer with a data-driven kind
        (``emp``, ``emp2``, ``ae``) builds its U from what reaches it,
        recorded with forward hooks in one pass of the original model
        over ``data``.
    exclude : "last", str, list of str or None, default="last"
        Layers left dense: "last" the last eligible layer (the classifier
        of most networks, dense in the paper too), or module names.
    length_scale, ridge : as :class:`~skpred.KernelDictionary`'s.
    random_state : int, RandomState or None
        Seeds alpha.
    batch_size : int, default=1024
        Rows per forward pass when recording ``data``.

    Returns
    -------
    torch.nn.Module
        The converted copy, ready for any torch training loop (skorch's
        ``NeuralNet`` included): its learned parameters are V and the
        biases, U being buffers.

    Examples
    --------
    >>> import torch
    >>> from skpred import predict_parameters, parameter_report
    >>> net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(),
    ...                           torch.nn.Linear(32, 10))
    >>> small = predict_parameters(net, alpha_fraction=0.25, input_shape=(8, 8),
    ...                            random_state=0)
    >>> type(small[0]).__name__, type(small[2]).__name__
    ('PredictedLinear', 'Linear')
    >>> parameter_report(small).trainable, parameter_report(net).trainable
    (874, 2410)
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    if (not isinstance(alpha_fraction, Real) or isinstance(alpha_fraction, bool)
            or not 0 < alpha_fraction <= 1):
        raise ValueError(f"alpha_fraction must be in (0, 1], got {alpha_fraction!r}.")
    if not isinstance(n_columns, Integral) or isinstance(n_columns, bool) or n_columns < 1:
        raise ValueError(f"n_columns must be a positive integer, got {n_columns!r}.")
    if dictionary != "auto" and (dictionary not in kind_names(fixed=True)):
        raise ValueError(f"dictionary must be 'auto' or one of "
                         f"{sorted(kind_names(fixed=True))}, got {dictionary!r}.")
    rng = random_state if isinstance(random_state, np.random.RandomState) \
        else np.random.RandomState(random_state)
    layers = _layers(model)
    eligible = [name for name, m in layers if _eligible(m) is None]
    if exclude == "last":
        excluded = set(eligible[-1:])
    elif exclude is None:
        excluded = set()
    else:
        excluded = {exclude} if isinstance(exclude, str) else set(exclude)
        unknown = excluded - {name for name, _ in layers}
        if unknown:
            raise ValueError(f"exclude names no layer of the model: {sorted(unknown)}.")
    targets = [n for n in eligible if n not in excluded]
    first_linear = next((n for n in targets if type(model.get_submodule(n)) is nn.Linear),
                        None)
    plan = {}
    for name in targets:
        module = model.get_submodule(name)
        conv = type(module) is nn.Conv2d
        kind = dictionary
        if kind == "auto":
            kind = "se" if conv or (name == first_linear and input_shape is not None) or \
                data is None else "emp"
        record = DICTIONARY_KINDS[kind]
        if conv and not record.conv_ok:
            raise ValueError(f"Layer {name!r} is a convolution; its filter bank is built "
                             f"without data, so dictionary={kind!r} cannot be used there. "
                             f"Use one of {sorted(kind_names(conv=True))}.")
        if record.needs_data and data is None:
            raise ValueError(f"dictionary={kind!r} is built from each layer's inputs: "
                             f"give data.")
        plan[name] = kind
    inputs = {}
    needing = [n for n, k in plan.items() if DICTIONARY_KINDS[k].needs_data]
    if needing:
        if not isinstance(data, torch.utils.data.DataLoader) and len(data) < 2:
            raise ValueError("data needs at least 2 samples to estimate a covariance.")
        inputs = _record_inputs(model, needing, data, batch_size)
    converted = copy.deepcopy(model)
    aliases = {}
    for alias, m in model.named_modules(remove_duplicate=False):
        if alias:
            aliases.setdefault(id(m), []).append(alias)
    for name, kind in plan.items():
        old = model.get_submodule(name)
        weight = old.weight
        factory = dict(device=weight.device, dtype=weight.dtype)
        if type(old) is nn.Conv2d:
            kh, kw = old.kernel_size
            grid = (kh, kw, old.in_channels)
            fan_in = kh * kw * old.in_channels
            columns = max(c for c in range(1, min(n_columns, old.out_channels) + 1)
                          if old.out_channels % c == 0)
            built = build_dictionaries(kind, fan_in, None, rng, alpha_fraction=alpha_fraction,
                                       n_columns=columns, length_scale=length_scale,
                                       ridge=ridge, image_shape=grid)
            banks = [_kernels.hwc_to_chw_rows(U, grid) for U in built.dictionaries]
            new = PredictedConv2d(old.in_channels, old.out_channels, old.kernel_size, banks,
                                  stride=old.stride, padding=old.padding,
                                  dilation=old.dilation, bias=old.bias is not None, **factory)
            W = weight.reshape(old.out_channels, -1)
        else:
            n_in = old.in_features
            grid = None
            if name == first_linear and input_shape is not None:
                grid = _kernels.infer_image_shape(n_in, tuple(input_shape))
            elif DICTIONARY_KINDS[kind].needs_grid:
                grid = (1, n_in, 1)
            built = build_dictionaries(
                kind, n_in, inputs.get(name), rng, alpha_fraction=alpha_fraction,
                n_columns=min(n_columns, old.out_features), length_scale=length_scale,
                ridge=ridge, image_shape=grid)
            new = PredictedLinear(n_in, old.out_features, built.dictionaries,
                                  bias=old.bias is not None, **factory)
            W = weight
        fit_to_weights_(new, W, old.bias)
        new.train(old.training)
        new.dictionary_kind = built.kind
        # a layer shared under several names (tied) stays shared: every
        # alias of it gets the one converted layer
        for alias in aliases.get(id(old), [name]):
            _set_module(converted, alias, new)
    return converted


@dataclass
class ParameterReport:
    """Parameters per layer of a network: ``rows`` (one dict per layer:
    name, type, trainable, fixed, total, and for predicted layers the
    dictionary and atoms per column) and the totals. ``str(report)`` is a
    table; ``pandas.DataFrame(report.rows)`` a frame."""

    rows: List[dict] = field(default_factory=list)
    trainable: int = 0
    fixed: int = 0

    @property
    def total(self) -> int:
        return self.trainable + self.fixed

    def __str__(self):
        header = ["layer", "type", "dictionary", "trainable", "fixed", "total"]
        lines = [" | ".join(header)]
        for r in self.rows:
            lines.append(" | ".join(str(r.get(k, "")) for k in
                                    ("name", "type", "dictionary", "trainable", "fixed",
                                     "total")))
        share = 100.0 * self.trainable / self.total if self.total else 0.0
        lines.append(f"trainable params: {self.trainable:,} || fixed params: {self.fixed:,} "
                     f"|| all params: {self.total:,} || trainable%: {share:.2f}")
        return "\n".join(lines)


def parameter_report(model: nn.Module) -> ParameterReport:
    """Trainable (learned), fixed (a predicted layer's U, and any frozen
    parameter) and total parameters of every layer with weights, and the
    totals over the whole model (parameters outside those layers included)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    report = ParameterReport()
    for name, m in _layers(model):
        trainable = sum(p.numel() for p in m.parameters(recurse=False) if p.requires_grad)
        fixed = sum(p.numel() for p in m.parameters(recurse=False) if not p.requires_grad)
        U = getattr(m, "U", None)
        if isinstance(U, torch.Tensor) and not isinstance(U, nn.Parameter):
            fixed += U.numel()
        row = dict(name=name, type=type(m).__name__, trainable=trainable, fixed=fixed,
                   total=trainable + fixed)
        if hasattr(m, "n_atoms"):
            row.update(dictionary=getattr(m, "dictionary_kind", ""), n_atoms=m.n_atoms,
                       n_columns=m.n_columns)
        elif _eligible(m) is not None:
            row["note"] = f"kept: {_eligible(m)}"
        report.rows.append(row)
    report.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report.fixed = (sum(p.numel() for p in model.parameters() if not p.requires_grad)
                    + sum(m.U.numel() for m in model.modules()
                          if hasattr(m, "n_atoms") and not isinstance(m.U, nn.Parameter)))
    return report
