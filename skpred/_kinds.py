"""The dictionary kinds: one registry, read by every estimator.

A *dictionary kind* says how the fixed factor U of a predicted layer is
built (``"se"``, ``"emp"``, ...). Each kind is one :class:`DictionaryKind`
record in :data:`DICTIONARY_KINDS`; nothing else in the package dispatches
on a kind's name. The estimators' ``StrOptions`` are live views of the
registry (:func:`kind_names`), so a kind added with
:func:`register_dictionary` is accepted everywhere it fits at once:

>>> import numpy as np
>>> from skpred._kinds import register_dictionary, unregister_dictionary
>>> def first_inputs(request):  # U = the first a inputs, one copy per column
...     U = np.eye(request.n_in)[:, :request.n_atoms]
...     return [U] * request.n_columns, [np.arange(request.n_atoms)] * request.n_columns
>>> _ = register_dictionary("first", first_inputs, doc="the first inputs")
>>> from skpred import KernelDictionary
>>> KernelDictionary("first", alpha_fraction=0.5).fit(np.ones((3, 4))).components_.shape
(2, 4)
>>> unregister_dictionary("first")

Core module: below the estimators, above ``_kernels`` and the training modules (``_device``, ``_feeds``, ``_pretrain``).
"""

from collections.abc import Set
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np

from . import _kernels

__all__ = ["DictionaryKind", "BuildRequest", "DICTIONARY_KINDS", "register_dictionary",
           "unregister_dictionary", "kind_names"]


@dataclass(frozen=True)
class BuildRequest:
    """What a kind's ``build`` function is given for one layer.

    Attributes
    ----------
    n_in : int
        The layer's input width (rows of each U).
    n_atoms : int
        Atoms (columns of U) per column of the layer.
    n_columns : int
        How many dictionaries to build (one per column).
    data : ndarray, tensor, SparseRows or None
        The layer's input on the training data; None unless the kind
        ``needs_data``.
    weights : tensor or None
        Sample weights beside a tensor ``data``.
    rng : numpy RandomState
        Draws alpha and anything else random.
    grid : tuple (rows, cols, channels) or None
        The input's grid (validated); always set for kinds that ``needs_grid``.
    length_scale : float, pair or "loo"
    ridge : float or None
        Absolute, or relative to the kernel's mean diagonal when
        ``relative_ridge`` (``ridge="auto"`` resolved to the kind's default).
    relative_ridge : bool
    device : torch.device or str
    ae_n_components, ae_max_iter : as KernelDictionary's
    ae_recipe : {"adam", "authors"}
        How the ``ae`` kind trains its autoencoder (see
        :func:`skpred._pretrain.autoencoder_atoms`).
    dp : skpred._distributed.DataParallel or None
    """

    n_in: int
    n_atoms: int
    n_columns: int
    data: object
    weights: object
    rng: object
    grid: Optional[tuple]
    length_scale: object
    ridge: Optional[float]
    relative_ridge: bool
    device: object = "cpu"
    ae_n_components: Optional[int] = None
    ae_max_iter: int = 10
    ae_recipe: str = "adam"
    dp: object = None

    def sample_alpha(self, n_locations=None):
        """One sorted alpha per column: whole pixels (every channel) on a grid."""
        channels = self.grid[2] if self.grid is not None else 1
        return _kernels.sample_alpha(self.n_in if n_locations is None else n_locations,
                                     self.n_atoms, self.rng, self.n_columns, channels)


@dataclass(frozen=True)
class DictionaryKind:
    """One dictionary kind.

    Attributes
    ----------
    name : str
    build : callable or None
        ``build(request: BuildRequest)`` returns ``(dictionaries, alphas)``
        or ``(dictionaries, alphas, ridge_used, length_scale_used)``:
        ``dictionaries`` a list of ``n_columns`` arrays of shape
        ``(n_in, n_atoms)``, ``alphas`` a list of the locations (or atoms)
        each column keeps, None entries where there are none. None: U is not
        fixed but learned (``lowrank``), so only networks accept the kind.
    needs_data : bool
        U is computed from the layer's input on the training data.
    needs_grid : bool
        U is defined on an image grid: a network's first layer uses the
        image's grid, deeper layers a 1-D grid over their inputs; atoms are
        counted in whole pixels.
    conv_ok : bool
        Usable as a convolution's filter bank (needs no data).
    default_ridge : float or None
        ``ridge="auto"``: this times the kernel's mean diagonal.
    doc : str
        One line for the documentation.
    """

    name: str
    build: Optional[Callable]
    needs_data: bool = False
    needs_grid: bool = False
    conv_ok: bool = False
    default_ridge: Optional[float] = None
    doc: str = ""

    @property
    def fixed(self):
        """U is fixed (built once); False for a learned U (``lowrank``)."""
        return self.build is not None


#: name -> DictionaryKind; the one place a kind's name is looked up.
DICTIONARY_KINDS = {}


def register_dictionary(name, build, *, needs_data=False, needs_grid=False, conv_ok=False,
                        default_ridge=None, doc=""):
    """Add a dictionary kind: every estimator accepts ``name`` from then on
    (convolutions only where ``conv_ok``). Returns the record."""
    if not isinstance(name, str) or not name or name in ("auto", "callable"):
        raise ValueError(f"A dictionary kind needs a new name, got {name!r}.")
    if name in DICTIONARY_KINDS:
        raise ValueError(f"The dictionary kind {name!r} is registered already.")
    if conv_ok and needs_data:
        raise ValueError("A convolution's filter bank is built before any data is seen: "
                         "a kind cannot both need data and be conv_ok.")
    kind = DictionaryKind(name, build, needs_data, needs_grid, conv_ok, default_ridge, doc)
    DICTIONARY_KINDS[name] = kind
    return kind


def unregister_dictionary(name):
    """Remove a kind added with :func:`register_dictionary`."""
    DICTIONARY_KINDS.pop(name)


class _KindNames(Set):
    """The names of the registered kinds that pass ``keep``, plus ``extra``,
    read from the registry at every use (a live view, for StrOptions)."""

    def __init__(self, keep, extra=()):
        self._keep, self._extra = keep, frozenset(extra)

    @classmethod
    def _from_iterable(cls, names):  # the result of |, &, -: a plain frozenset
        return frozenset(names)

    def _names(self):
        return [n for n, k in DICTIONARY_KINDS.items() if self._keep(k)] + sorted(self._extra)

    def __contains__(self, name):
        return name in self._extra or (name in DICTIONARY_KINDS
                                       and self._keep(DICTIONARY_KINDS[name]))

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    def __repr__(self):
        return repr(set(self._names()))


def kind_names(*, fixed=None, conv=False, needs_data=None, extra=()):
    """A live set of kind names: ``fixed`` True/False/None (any), ``conv``
    True for conv filter banks only, ``needs_data`` True/False/None."""
    def keep(k):
        return ((fixed is None or k.fixed == fixed) and (not conv or k.conv_ok)
                and (needs_data is None or k.needs_data == needs_data))
    return _KindNames(keep, extra)


# ------------------------------------------------------------------ builders


def _as_numpy(data):
    """A CPU numpy view of a torch tensor (a copy only when it lives elsewhere)."""
    if hasattr(data, "detach"):
        return data.detach().cpu().numpy()
    return data


def _scaled(ridge, relative, K):
    """A relative ("auto") ridge scaled by the kernel's mean diagonal.

    A data kernel's scale is the data's: the covariance of sigmoid
    activations is ~100 times smaller than that of pixels. A fixed ridge
    would then dominate K_aa and shrink U (and the gradient V sees) towards
    zero; relative to the mean diagonal it acts alike on any data.
    """
    if not relative or ridge is None:
        return ridge
    scale = float(np.mean(np.diag(K)))
    return ridge * scale if scale > 0 else ridge


def kernel_ridge(K_columns, alphas, ridge):
    """Kernel ridge dictionaries ``K[:, a] (K[a, a] + ridge I)^-1``, one per
    alpha; ``K_columns(a)`` returns ``K[:, a]`` (se never builds all of K)."""
    dicts = []
    for alpha in alphas:
        K_xa = K_columns(alpha)
        dicts.append(_kernels.ridge_predictor(K_xa, K_xa[alpha], ridge))
    return dicts


# length_scale="loo": the candidates (pixels), and the ridges tried with
# ridge="auto" (the se kernel's diagonal is 1, so these are absolute).
LOO_LENGTH_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
LOO_RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def build_se(r):
    alphas = r.sample_alpha()
    length_scale, ridge = r.length_scale, r.ridge  # se's diagonal is 1: relative = absolute
    if isinstance(length_scale, str):  # "loo": what best predicts the data at alpha
        length_scale, ridge, _ = _kernels.select_se_by_loo(
            r.grid, _as_numpy(r.data), alphas, LOO_LENGTH_SCALES,
            LOO_RIDGES if r.relative_ridge else (ridge,))
    dicts = kernel_ridge(lambda a: _kernels.se_kernel(r.grid, length_scale, columns=a),
                         alphas, ridge)
    return dicts, alphas, ridge, length_scale


def kernel_matrix_dictionaries(r, K):
    """Kernel ridge dictionaries from a full (n_in, n_in) kernel matrix."""
    ridge = _scaled(r.ridge, r.relative_ridge, K)
    alphas = _kernels.sample_alpha(r.n_in, r.n_atoms, r.rng, r.n_columns)
    return kernel_ridge(lambda a: K[:, a], alphas, ridge), alphas, ridge, None


def _empirical(square):
    def build(r):
        data = r.data
        if hasattr(data, "detach") and data.device.type in ("cpu", "cuda"):
            # A tensor (a layer's input inside a network): the covariance is
            # formed where it lives; only the (d, d) kernel comes back.
            from ._pretrain import covariance

            K = covariance(data, square=square, weights=r.weights, dp=r.dp)
        elif square:
            K = _kernels.empirical_squared_kernel(_as_numpy(data))
        else:
            K = _kernels.empirical_kernel(_as_numpy(data))
        return kernel_matrix_dictionaries(r, K)
    return build


def build_dct(r):
    D = _kernels.dct_atoms(r.grid)
    alphas = r.sample_alpha()
    return [D[:, a] for a in alphas], alphas


def build_ae(r):
    from ._pretrain import autoencoder_atoms  # torch only where needed

    n_hidden = r.ae_n_components if r.ae_n_components is not None else 2 * r.n_in
    if r.n_atoms > n_hidden:
        raise ValueError(
            f"The ae dictionary has ae_n_components={n_hidden} atoms, fewer than "
            f"the n_atoms={r.n_atoms} requested per column.")
    D = autoencoder_atoms(r.data, n_hidden, epochs=r.ae_max_iter, random_state=r.rng,
                          device=r.device, weights=r.weights, dp=r.dp, recipe=r.ae_recipe)
    alphas = _kernels.sample_alpha(n_hidden, r.n_atoms, r.rng, r.n_columns)
    return [D[:, a] for a in alphas], alphas


def _fixed_random(draw):
    """A kind whose U is ``draw(n_in, n_atoms, rng)`` per column (no alpha)."""
    def build(r):
        dicts = [draw(r.n_in, r.n_atoms, r.rng) for _ in range(r.n_columns)]
        return dicts, [None] * r.n_columns
    return build


def build_randcon(r):
    alphas = r.sample_alpha()
    return [_kernels.randcon_dictionary(r.n_in, a) for a in alphas], alphas


# ridge="auto": the authors' 0.1 for se (whose diagonal is 1), and for data
# kernels 0.01 of the mean variance (on MNIST pixels, mean variance about
# 0.1, that is the authors' absolute 0.001).
register_dictionary("se", build_se, needs_grid=True, conv_ok=True, default_ridge=0.1,
                    doc="squared exponential kernel on the input grid (pixel distance)")
register_dictionary("emp", _empirical(False), needs_data=True, default_ridge=1e-2,
                    doc="empirical covariance of the layer's inputs")
register_dictionary("emp2", _empirical(True), needs_data=True, default_ridge=1e-2,
                    doc="empirical covariance of the squared inputs")
register_dictionary("dct", build_dct, needs_grid=True, conv_ok=True,
                    doc="separable DCT-II atoms on the input grid")
register_dictionary("ae", build_ae, needs_data=True,
                    doc="atoms of a tied sigmoid autoencoder trained on the inputs")
register_dictionary("random", _fixed_random(_kernels.random_dictionary), conv_ok=True,
                    doc="a fixed Gaussian matrix (RandFixU as the paper describes it)")
register_dictionary("uniform", _fixed_random(_kernels.uniform_dictionary), conv_ok=True,
                    doc="a fixed uniform(-0.1, 0.1) matrix (RandFixU as the authors' code has it)")
register_dictionary("randcon", build_randcon, conv_ok=True,
                    doc="identity columns at alpha: random connections (RandCon)")
register_dictionary("lowrank", None,
                    doc="U learned too: the LowRank baseline (networks only)")

#: A callable kernel (KernelDictionary's ``kernel(X) -> (n, n)``) is built
#: as a data kind with this default ridge.
CALLABLE_RIDGE = 1e-2


def callable_kind(kernel):
    """The record for a user's callable kernel ``kernel(X) -> (n_in, n_in)``."""
    def build(r):
        K = np.asarray(kernel(_as_numpy(r.data)), dtype=np.float64)
        if K.shape != (r.n_in, r.n_in):
            raise ValueError(
                f"The callable kernel must return an array of shape "
                f"(n_features, n_features) = ({r.n_in}, {r.n_in}), got {K.shape}.")
        if not np.all(np.isfinite(K)):
            raise ValueError("The callable kernel returned NaN or infinity.")
        return kernel_matrix_dictionaries(r, K)
    return DictionaryKind("callable", build, needs_data=True, default_ridge=CALLABLE_RIDGE,
                          doc="a user's kernel over the inputs")


def as_built(kind, result):
    """Normalise a ``build`` result to ``(dictionaries, alphas, ridge, length_scale)``."""
    if len(result) == 2:
        return list(result[0]), list(result[1]), None, None
    dicts, alphas, ridge, length_scale = result
    return list(dicts), list(alphas), ridge, length_scale


def check_built(kind, dictionaries: List[np.ndarray], n_in, n_atoms, n_columns):
    """A registered kind's output has the promised shapes and is finite."""
    if len(dictionaries) != n_columns:
        raise ValueError(f"The {kind.name!r} dictionary built {len(dictionaries)} dictionaries "
                         f"for {n_columns} column(s).")
    for U in dictionaries:
        if np.shape(U) != (n_in, n_atoms):
            raise ValueError(f"The {kind.name!r} dictionary must build finite arrays of shape "
                             f"({n_in}, {n_atoms}), got shape {np.shape(U)}.")
        if not np.all(np.isfinite(U)):
            raise ValueError(f"The {kind.name!r} dictionary must build finite arrays of shape "
                             f"({n_in}, {n_atoms}), got NaN or infinity.")


def needs_data(name):
    """The kind ``name`` (None: a dense layer) is built from data."""
    kind = DICTIONARY_KINDS.get(name) if isinstance(name, str) else None
    return kind is not None and kind.needs_data


def needs_grid(name):
    """The kind ``name`` is defined on an input grid."""
    kind = DICTIONARY_KINDS.get(name) if isinstance(name, str) else None
    return kind is not None and kind.needs_grid
