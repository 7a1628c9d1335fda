"""Per-layer dictionaries and settings: the one path every estimator uses.

Core layer (no estimator is imported here). Its main functions:

- :func:`build_dictionaries` builds the fixed factors ``U_1 .. U_C`` of one
  predicted layer from ``(kind, n_in, data or None, rng, options)``.
  :class:`~skpred.KernelDictionary`, both network classifiers and
  :class:`~skpred.PredictedRICA` call it.
- :func:`resolve_layer_specs` turns the per-layer parameters of a network
  (one value for every layer or one per layer, ``"auto"`` included) into
  validated settings, one dict per layer; the MLP and the ConvNet call it.
- :func:`dense_layer` builds one dense layer of either network (dense,
  LowRank or predicted, by the kind's registry record).

The ``"auto"`` rules (the paper's): a layer's dictionary is ``se`` where its
input has a known spatial grid and ``emp`` where it has none; a layer's
number of columns is the largest divisor of its units that is at most
:data:`AUTO_MAX_COLUMNS`.
"""

from dataclasses import dataclass
from numbers import Integral, Real
from typing import List, Optional

import numpy as np

from . import _kernels
from ._kinds import (DICTIONARY_KINDS, BuildRequest, as_built, callable_kind, check_built,
                     kind_names)

__all__ = [
    "AUTO_MAX_COLUMNS",
    "LayerDictionaries", "build_dictionaries", "auto_dictionary", "auto_columns", "AUTO_MIN_INPUTS",
    "per_layer", "resolve_layer_specs", "layer_record",
]

# n_columns="auto": at most this many columns per layer (several columns
# are what make small fractions work, paper Sec. 4; each adds static
# parameters and pooling work, not learned ones).
AUTO_MAX_COLUMNS = 4
# dictionary="auto" on a network layer with fewer inputs than this gives an
# ordinary dense layer: at alpha 0.25 a narrower layer would predict its
# weights from 3 values or fewer, which loses accuracy (measured: R^2 0.24
# against 0.90 dense on scikit-learn's 10-feature regression check) for a
# saving of a few hundred weights.
AUTO_MIN_INPUTS = 16


@dataclass
class LayerDictionaries:
    """What :func:`build_dictionaries` returns for one layer.

    Attributes
    ----------
    kind : str
        The dictionary built (``"callable"`` for a callable kernel).
    dictionaries : list of ndarray of shape (n_in, n_atoms)
        ``U_c`` per column, float64.
    alphas : list of ndarray or None
        The sorted locations (or atoms) in alpha per column; None entries for
        ``random``, which has no alpha.
    n_atoms : int
    image_shape : tuple (rows, cols, channels) or None
        The grid used, or None.
    ridge : float or None
        The absolute ridge used; None where no ridge solve ran.
    length_scale : float, tuple or None
        The se length scale used (chosen by leave-one-out with "loo"); None
        for other kernels.
    """

    kind: str
    dictionaries: List[np.ndarray]
    alphas: list
    n_atoms: int
    image_shape: Optional[tuple]
    ridge: Optional[float]
    length_scale: Optional[object] = None


def auto_dictionary(has_grid):
    """The paper's rule: ``se`` on an input with a spatial grid, else ``emp``."""
    return "se" if has_grid else "emp"


def auto_columns(n_units):
    """Largest divisor of ``n_units`` that is at most :data:`AUTO_MAX_COLUMNS`."""
    return max(c for c in range(1, AUTO_MAX_COLUMNS + 1) if n_units % c == 0)


def _n_atoms(kind, n_in, shape, alpha_fraction, n_atoms):
    """Atoms per column; whole pixels (all channels) for grid kernels."""
    channels = shape[2] if shape is not None and kind.needs_grid else 1
    if n_atoms is not None:
        if n_atoms > n_in:
            raise ValueError(f"n_atoms={n_atoms} exceeds the number of input features ({n_in}).")
        if n_atoms % channels:
            raise ValueError(
                f"n_atoms={n_atoms} must be a multiple of the number of channels "
                f"({channels}) for the {kind.name!r} kernel, which samples whole pixels."
            )
        return int(n_atoms)
    return channels * _kernels.n_atoms_for(n_in // channels, alpha_fraction=alpha_fraction)


def check_length_scale(length_scale, where="length_scale"):
    """A positive finite scalar, or one per spatial axis (1 or 2 values).

    Checked whatever the dictionary, so that a wrong value is reported even
    where the kernel chosen does not read it.
    """
    ls = np.asarray(length_scale, dtype=object)
    try:
        values = np.asarray(length_scale, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        values = None
    if (values is None or ls.ndim > 1 or values.size not in (1, 2)
            or not np.all(np.isfinite(values)) or np.any(values <= 0)):
        raise ValueError(
            f"{where} must be a positive number or a pair (rows, cols) of positive "
            f"numbers, got {length_scale!r}.")


def build_dictionaries(kind, n_in, data, rng, *, alpha_fraction=0.25, n_atoms=None,
                       n_columns=1, length_scale=1.0, ridge="auto", image_shape=None,
                       ae_n_components=None, ae_max_iter=10, device="cpu", weights=None,
                       dp=None, ae_recipe="adam"):
    """Build the fixed dictionaries ``U_1 .. U_C`` of one predicted layer.

    Parameters
    ----------
    kind : str or callable
        A registered kind with a fixed U (:data:`skpred._kinds.DICTIONARY_KINDS`),
        or ``kernel(X) -> (n_in, n_in)`` array.
    n_in : int
        The layer's input width.
    data : array or tensor of shape (n_samples, n_in), or None
        The layer's input on the training data. Read only by data kernels
        (``emp``, ``emp2``, ``ae``, callables), which need it; the others
        see only ``n_in``.
    rng : numpy RandomState
        Draws alpha, the random dictionary and the ae initialisation.
    alpha_fraction, n_atoms, n_columns, length_scale, ridge, image_shape,
    ae_n_components, ae_max_iter, device :
        As :class:`~skpred.KernelDictionary`'s parameters. ``ridge="auto"``
        is 0.1 for ``se`` and 0.01 times the kernel's mean diagonal for data
        and callable kernels.
    weights : tensor of shape (n_samples,) or None
        Sample weights (a tensor beside a tensor ``data``): ``emp``/``emp2``
        use them as frequency weights of the covariance and ``ae`` in its
        reconstruction loss. Callables and ``length_scale="loo"`` ignore
        them.
    dp : skpred._distributed.DataParallel or None
        Data-parallel: ``emp``/``emp2`` sum their statistics over the ranks
        and ``ae`` trains data-parallel, so every rank gets the dictionary
        one process would build on the whole data.

    Returns
    -------
    LayerDictionaries
    """
    record = callable_kind(kind) if callable(kind) else DICTIONARY_KINDS.get(kind)
    if record is None or not record.fixed:
        raise ValueError(f"Unknown dictionary {kind!r}; expected one of "
                         f"{sorted(kind_names(fixed=True))}.")
    name = record.name
    loo = isinstance(length_scale, str) and length_scale == "loo"
    if not loo:
        check_length_scale(length_scale)
    if loo and name != "se":
        raise ValueError(f"length_scale='loo' selects the se kernel's length scale; the "
                         f"{name!r} dictionary has none.")
    if loo and ridge is None:
        raise ValueError("length_scale='loo' selects by kernel ridge regression and needs a "
                         "ridge: a number, or 'auto' to select it too.")
    needs_data = record.needs_data or loo
    from ._feeds import SparseRows  # torch only where needed

    if (name == "callable" or loo) and isinstance(data, SparseRows):
        raise ValueError("Callable kernels and length_scale='loo' read the data as a dense "
                         "array; with sparse X use 'emp', 'emp2', 'ae' or a data-free kernel.")
    if needs_data:
        if data is None:
            raise ValueError(f"The {name!r} dictionary is built from data, but none was given.")
        if data.shape[0] < 2:
            raise ValueError(
                f"The {name!r} kernel is estimated from data and needs at least 2 "
                f"samples, got n_samples={data.shape[0]}."
            )
    # A given shape is validated even where the kernel does not use it: a
    # wrong shape is always a user error worth reporting.
    shape = None
    if record.needs_grid or image_shape is not None:
        shape = _kernels.infer_image_shape(n_in, image_shape)
    atoms = _n_atoms(record, n_in, shape, alpha_fraction, n_atoms)
    relative = ridge == "auto"
    if relative:
        ridge = record.default_ridge
    request = BuildRequest(
        n_in=n_in, n_atoms=atoms, n_columns=n_columns, data=data if needs_data else None,
        weights=weights, rng=rng, grid=shape if record.needs_grid else None,
        length_scale=length_scale, ridge=ridge, relative_ridge=relative, device=device,
        ae_n_components=ae_n_components, ae_max_iter=ae_max_iter, ae_recipe=ae_recipe, dp=dp)
    dicts, alphas, used_ridge, used_scale = as_built(record, record.build(request))
    check_built(record, dicts, n_in, atoms, n_columns)
    return LayerDictionaries(name, dicts, alphas, atoms, shape, used_ridge, used_scale)


def dense_layer(spec, n_in, n_out, data, rng, *, image_shape=None, reorder=None, **options):
    """One dense layer of a network, the MLP's and the ConvNet's alike.

    Returns ``(make, built)``: a constructor of the layer (``nn.Linear``
    for ``dictionary=None``, ``LowRankLinear`` for a kind whose U is
    learned, else ``PredictedLinear`` over the kind's dictionaries) and its
    :class:`LayerDictionaries` (None where U is not fixed). ``data`` (the
    layer's input on the training data) is read only by kinds that need
    it; ``reorder`` maps each U's rows to the layer's input order;
    ``options`` go to :func:`build_dictionaries`.
    """
    import torch

    from .nn import LowRankLinear, PredictedLinear

    kind = spec["dictionary"]
    if kind is None:
        return (lambda: torch.nn.Linear(n_in, n_out)), None
    record = DICTIONARY_KINDS[kind]
    if not record.fixed:
        return (lambda: LowRankLinear.for_fraction(n_in, n_out, spec["alpha_fraction"],
                                                   spec["n_columns"])), None
    built = build_dictionaries(
        kind, n_in, data if record.needs_data else None, rng,
        alpha_fraction=spec["alpha_fraction"], n_columns=spec["n_columns"],
        length_scale=spec["length_scale"], ridge=spec["ridge"], image_shape=image_shape,
        **options)
    Us = built.dictionaries if reorder is None else [reorder(U) for U in built.dictionaries]
    return (lambda: PredictedLinear(n_in, n_out, Us)), built


def per_layer(name, value, n_layers, what="hidden_layer_sizes",
              is_scalar=lambda v: not isinstance(v, (tuple, list))):
    """One value for every layer, or a tuple/list with one entry per layer."""
    if is_scalar(value):
        return [value] * n_layers
    values = list(value)
    if len(values) != n_layers:
        raise ValueError(
            f"{name} has {len(values)} entries but {what} has {n_layers} layer(s); "
            f"pass one value for all layers or one per layer."
        )
    return values


def resolve_layer_specs(layers, *, dictionary, alpha_fraction, n_columns, length_scale, ridge,
                        what):
    """Validated per-layer settings of a network, ``"auto"`` resolved.

    Parameters
    ----------
    layers : list of dict
        One per weight layer below the output: ``name`` (for messages, e.g.
        "hidden layer 1"), ``units`` (units or filters; ``unit_word``, optional,
        names them in messages), ``has_grid`` (its
        input has a spatial grid), ``allowed`` (the dictionary kinds the
        layer accepts, None aside) and optionally ``equal_columns`` (True:
        ``n_columns`` must divide the units; otherwise they split as
        ``np.array_split`` does).
    dictionary, alpha_fraction, n_columns, length_scale, ridge :
        The estimator's parameters: one value for every layer, or a
        tuple/list with one entry per layer. ``dictionary`` and
        ``n_columns`` may be (or hold) ``"auto"``.
    what : str
        What sets the number of layers, for messages.

    Returns
    -------
    specs : list of dict
        Per layer: ``dictionary`` (resolved; None for a dense layer),
        ``alpha_fraction``, ``n_columns`` (resolved), ``length_scale``,
        ``ridge``, ``units``, ``has_grid``, and the layer's own keys.
    """
    n = len(layers)
    dicts = per_layer("dictionary", dictionary, n, what,
                      is_scalar=lambda v: v is None or isinstance(v, str))
    fracs = per_layer("alpha_fraction", alpha_fraction, n, what)
    cols = per_layer("n_columns", n_columns, n, what,
                     is_scalar=lambda v: isinstance(v, (str, Integral)))
    scales = per_layer("length_scale", length_scale, n, what,
                       is_scalar=lambda v: isinstance(v, Real))
    ridges = per_layer("ridge", ridge, n, what,
                       is_scalar=lambda v: v is None or isinstance(v, (str, Real)))
    specs = []
    for layer, d, f, c, ls, r in zip(layers, dicts, fracs, cols, scales, ridges):
        where, units = layer["name"], layer["units"]
        unit_word = layer.get("unit_word", "units")
        if d == "auto":
            d = auto_dictionary(layer["has_grid"])
        if d is not None and d not in layer["allowed"]:
            raise ValueError(
                f"dictionary of {where} must be one of {sorted(layer['allowed'] | {'auto'})} "
                f"or None, got {d!r}.")
        if isinstance(f, bool) or not isinstance(f, Real) or not 0 < f <= 1:
            raise ValueError(f"alpha_fraction of {where} must be in (0, 1], got {f!r}.")
        if c == "auto":
            c = auto_columns(units) if d is not None else 1
        if isinstance(c, bool) or not isinstance(c, Integral) or c < 1:
            raise ValueError(
                f"n_columns of {where} must be a positive integer or 'auto', got {c!r}.")
        if d is not None and c > units:
            raise ValueError(
                f"n_columns={c} exceeds the {units} {unit_word} of {where}: every column "
                f"needs at least one.")
        if d is not None and units % c and layer.get("equal_columns", False):
            raise ValueError(
                f"n_columns={c} does not divide the {units} {unit_word} of {where}: "
                f"they are split equally among columns.")
        check_length_scale(ls, f"length_scale of {where}")
        if r is not None and r != "auto" and not (isinstance(r, Real) and r > 0):
            raise ValueError(f"ridge of {where} must be positive, None or 'auto', got {r!r}.")
        specs.append({**layer, "dictionary": d, "alpha_fraction": float(f),
                      "n_columns": int(c), "length_scale": ls, "ridge": r})
    return specs


def layer_record(spec, built, **extra):
    """What a network's ``layers_`` says of one layer: its resolved settings.

    ``spec`` comes from :func:`resolve_layer_specs`, ``built`` from
    :func:`build_dictionaries` (None for dense and lowrank layers).
    """
    predicted = spec["dictionary"] is not None
    return dict(
        dictionary=spec["dictionary"], alpha_fraction=spec["alpha_fraction"],
        n_columns=spec["n_columns"] if predicted else None,
        n_atoms=None if built is None else built.n_atoms,
        image_shape=None if built is None else built.image_shape,
        ridge=None if built is None else built.ridge,
        units=spec["units"], **extra,
    )
