"""Predicted dense layers: W = U V with U fixed (a buffer) and V learned."""

import contextlib
import contextvars
import math
from typing import Optional

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from ._spec import bias_numel, describable

__all__ = ["cached_weights", "PredictedLinear", "LowRankLinear", "SEPredictedLinear", "FactoredLayer",
           "as_dictionary_tensor", "flush_subnormals", "split_units", "column_sizes", "PATHS",
           "scale_to_cap_"]

PATHS = ("auto", "pool", "dense")


def as_dictionary_tensor(dictionaries, n_rows, device=None, dtype=None) -> Tensor:
    """Stack per-column dictionaries into a tensor of shape (C, n_rows, n_atoms).

    ``dictionaries`` is an array/tensor of shape ``(C, n_rows, n_atoms)`` or
    ``(n_rows, n_atoms)`` (one column), or a sequence of ``(n_rows, n_atoms)``
    arrays with the same number of atoms.
    """
    if isinstance(dictionaries, (list, tuple)):
        if len(dictionaries) == 0:
            raise ValueError("dictionaries is empty: give at least one column.")
        shapes = {tuple(getattr(d, "shape", ())) for d in dictionaries}
        if len(shapes) != 1:
            raise ValueError(
                f"Every column's dictionary must have the same shape "
                f"(n_rows, n_atoms), got {sorted(shapes)}."
            )
        dictionaries = [torch.as_tensor(d) for d in dictionaries]
        U = torch.stack(dictionaries)
    else:
        U = torch.as_tensor(dictionaries)
    if U.ndim == 2:
        U = U[None]
    if U.ndim != 3 or U.shape[1] != n_rows or U.shape[2] < 1:
        raise ValueError(
            f"dictionaries must have shape (n_columns, {n_rows}, n_atoms) or "
            f"({n_rows}, n_atoms), got {tuple(U.shape)}."
        )
    if not torch.isfinite(U).all():
        raise ValueError("dictionaries contain NaN or infinity.")
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    return flush_subnormals(U.to(device=device, dtype=dtype).clone())


def flush_subnormals(t: Tensor) -> Tensor:
    """Set the entries below the dtype's smallest normal number to zero, in place.

    Smooth kernels (se: ``exp(-d^2 / 2)``) have entries that underflow into
    float32's subnormal range (below 1.2e-38) for distant locations. CPUs
    compute with subnormals tens of times slower, and their size is far
    below float32's resolution next to the entries that matter, so zero is
    the same number for every result.
    """
    if t.is_floating_point():
        t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0.0)
    return t


def column_sizes(n_units: int, n_columns: int, what: str = "out_features") -> list:
    """The units of each column: as even as ``np.array_split`` makes them
    (the first ``n_units % n_columns`` columns one unit larger)."""
    if n_columns > n_units:
        raise ValueError(
            f"n_columns={n_columns} exceeds {what}={n_units}: every column needs "
            f"at least one unit."
        )
    m, extra = divmod(n_units, n_columns)
    return [m + 1] * extra + [m] * (n_columns - extra)


def split_units(n_units: int, n_columns: int, what: str = "out_features") -> int:
    """Units per column where they must divide equally (convolutions: one
    grouped convolution mixes every column)."""
    sizes = column_sizes(n_units, n_columns, what)
    if len(set(sizes)) > 1:
        raise ValueError(
            f"{what}={n_units} is not divisible by n_columns={n_columns}: "
            f"filters are split equally among columns."
        )
    return sizes[0]


def init_bound(fan_in: int, bound: Optional[float] = None) -> float:
    """``bound``, or torch's default for a layer of ``fan_in`` inputs,
    ``1/sqrt(fan_in)`` (0 without inputs)."""
    if bound is not None:
        return float(bound)
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


@torch.no_grad()
def init_factored_(V: Tensor, bias: Optional[Tensor], U_cols: Tensor, fan_in: int,
                   generator: Optional[torch.Generator] = None,
                   bound: Optional[float] = None) -> None:
    """Draw V (and the bias) so that W = U V has the variance of a dense
    layer drawn from U(-bound, bound).

    ``U_cols`` has shape (C, n_rows, n_atoms), ``V`` (C, n_atoms, m). The
    default ``bound`` is torch's, ``1/sqrt(fan_in)``; the estimators pass
    Glorot's (:func:`skpred.nn.glorot_bound`). Since Var(W_ij) = sum_k
    U_ik^2 Var(V), each column's V is uniform with that bound divided by
    the root mean squared row norm of its U. The bias is U(-bound, bound).
    """
    row_energy = (U_cols.detach() ** 2).sum(-1).mean(-1)  # (C,)
    row_energy = torch.where(row_energy > 0, row_energy, torch.ones_like(row_energy))
    b = init_bound(fan_in, bound)
    V.uniform_(-1.0, 1.0, generator=generator)
    V.mul_((b / row_energy.sqrt()).to(V)[:, None, None])
    if bias is not None:
        bias.uniform_(-b, b, generator=generator)


@torch.no_grad()
def scale_to_cap_(tensors, norms, max_norm: float) -> None:
    """``t /= max(1, n / max_norm)`` for every tensor and its units' norms
    (broadcast), in three multi-tensor operators whatever their number;
    a tensor below the cap is divided by exactly 1. ``norms`` are consumed."""
    norms = list(norms)
    torch._foreach_clamp_min_(norms, max_norm)
    torch._foreach_div_(norms, max_norm)
    torch._foreach_div_(list(tensors), norms)


def _columns_view(t: Tensor, C: int, k: int) -> Tensor:
    """``t`` (B, C*k) read as ``(C, k, B)`` (column c's block, transposed):
    a strided view of any layout, no copy."""
    sB, sK = t.stride()
    return t.as_strided((C, k, t.shape[0]), (k * sK, sK, sB))  # t's storage offset


class _Materialise(torch.autograd.Function):
    """``W = V_c^T Ut_c`` for every column c, returned as (C*m, n): the
    weight of a dense or convolutional layer, rows unit by unit, in one
    ``bmm``. Its backward gives V's gradient in V's own layout (autograd
    through the transpose would hand back a strided one, which it then
    copies), three operators where autograd took six. Autocast and first
    derivatives as :class:`_ColumnProduct`."""

    @staticmethod
    def forward(ctx, V, Ut):
        ctx.save_for_backward(V, Ut)
        dt = _compute_dtype(V)
        with torch.autocast(V.device.type, enabled=False):
            W = torch.bmm(_as(V, dt).transpose(1, 2), _as(Ut, dt))
        return W.view(-1, Ut.shape[2])

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        V, Ut = ctx.saved_tensors
        dt = g.dtype
        g3 = g.reshape(V.shape[0], V.shape[2], -1)  # (C, m, n)
        grad_V = grad_Ut = None
        if ctx.needs_input_grad[0]:
            grad_V = _as(torch.bmm(_as(Ut, dt), g3.transpose(1, 2)), V.dtype)
        if ctx.needs_input_grad[1]:
            grad_Ut = _as(torch.bmm(_as(V, dt), g3), Ut.dtype)
        return grad_V, grad_Ut


_CACHE_WEIGHTS = contextvars.ContextVar("skpred_cache_weights", default=False)


@contextlib.contextmanager
def cached_weights():
    """Inside this block, predicted layers evaluated without autograd build
    their W = U V once and reuse it while V, V_rest and U keep their
    storage and version (an optimiser step, ``load_state_dict`` or a move
    changes one or the other). The estimators predict and validate inside
    it. Outside it W is built on every call: a parameter changed through
    ``.data`` (which bypasses the version counter) is then never missed."""
    token = _CACHE_WEIGHTS.set(True)
    try:
        yield
    finally:
        _CACHE_WEIGHTS.reset(token)


def _compute_dtype(t: Tensor):
    """The dtype products run in: autocast's where it is on, else ``t``'s."""
    kind = t.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return t.dtype


def _as(t: Optional[Tensor], dtype):
    """``t`` in ``dtype`` (itself when it is already: no operator)."""
    return t if t is None or t.dtype == dtype else t.to(dtype)


class _ColumnProduct(torch.autograd.Function):
    """``z V_c + b`` for every column c at once, written for few operators.

    ``z`` is the pooled input (B, C*a), or ``x`` (B, in) with a fixed ``U``
    (then z = x U is computed here). The product runs as ``out^T = V_c^T
    z_c^T`` in one ``baddbmm`` on a strided view of z, written straight
    into the result: a new (B, C*m) tensor laid out column-major (not a
    view, so in-place operations on it are allowed). The backward pass
    computes exactly the gradients needed, V's in V's own layout (so
    autograd does not copy it). Under autocast the products run in
    autocast's dtype and the gradients come back in each input's own.
    First derivatives only (a second one raises). Results equal the plain
    product to float32 rounding (``tests/test_nn.py`` checks them and the
    gradients against einsum autograd and gradcheck).
    """

    @staticmethod
    def forward(ctx, x, U, V, bias):
        dt = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            z = _as(x, dt) if U is None else torch.mm(_as(x, dt), _as(U, dt))
            C, a, m = V.shape
            B = z.shape[0]
            zt = _columns_view(z, C, a)  # (C, a, B)
            out = torch.empty_strided((B, C * m), (1, B), dtype=dt, device=z.device)
            target = out.as_strided((C, m, B), (m * B, B, 1))  # out^T, contiguous
            Vt = _as(V, dt).transpose(1, 2)
            if bias is None:
                torch.bmm(Vt, zt, out=target)
            else:
                torch.baddbmm(_as(bias, dt).view(C, m, 1), Vt, zt, out=target)
        # zt is a view of x (or of x U, made here): saved, an in-place change
        # of x before the backward pass is an error, not a wrong gradient
        ctx.save_for_backward(U, V, zt)
        ctx.dtypes = (x.dtype, V.dtype, None if bias is None else bias.dtype)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        U, V, zt = ctx.saved_tensors
        x_dtype, V_dtype, bias_dtype = ctx.dtypes
        C, a, m = V.shape
        dt = g.dtype
        zt = _as(zt, dt)
        grad_x = grad_V = grad_bias = None
        if ctx.needs_input_grad[2]:
            sB, sN = g.stride()
            g3t = g.as_strided((C, g.shape[0], m), (m * sN, sB, sN))  # g_c, (C, B, m)
            grad_V = _as(torch.bmm(zt, g3t), V_dtype)  # (C, a, m), V's layout
        if bias_dtype is not None and ctx.needs_input_grad[3]:
            grad_bias = _as(g.sum(0), bias_dtype)
        if ctx.needs_input_grad[0]:
            g3 = _columns_view(g, C, m)  # g_c^T, (C, m, B)
            grad_zt = torch.bmm(_as(V, dt), g3).view(C * a, -1)  # (C*a, B)
            grad_x = _as((grad_zt if U is None else torch.mm(_as(U, dt), grad_zt)).t(), x_dtype)
        return grad_x, None, grad_V, grad_bias


class FactoredLayer(nn.Module):
    """What predicted layers share: parameter counts and copying into a dense twin.

    V is one Parameter of shape ``(C, n_atoms, m)`` when the columns have
    ``m`` units each. When they cannot (the units split as
    ``np.array_split`` does, the first ``r`` columns one unit larger), V
    holds those ``r`` columns, ``(r, n_atoms, m + 1)``, and ``V_rest`` the
    others, ``(C - r, n_atoms, m)``: every entry is a learned weight, and
    each group runs in one batched product.
    """

    def _groups(self):
        """``[(V, first column, end column)]``: V alone, or V and V_rest."""
        if getattr(self, "V_rest", None) is None:
            return [(self.V, 0, self.n_columns)]
        r = self.V.shape[0]
        return [(self.V, 0, r), (self.V_rest, r, self.n_columns)]

    @property
    def n_dynamic_params(self) -> int:
        """Learned weights (V), biases excluded: sum_c n_atoms * units_c."""
        return sum(V.numel() for V, _, _ in self._groups())

    @property
    def n_static_params(self) -> int:
        """Fixed weights (U): sum_c fan_in * n_atoms."""
        return self.U.numel()

    @torch.no_grad()
    def max_norm_(self, max_norm: float, on: str = "W") -> None:
        """Scale V so that no unit's incoming weight vector has a norm above
        ``max_norm``.

        ``on="W"``: the unit's weights W = U v (a column of W, a filter of a
        convolution); with ``U_c = Q_c R_c`` (a QR of each column's
        dictionary, cached while U does not change), ``||U_c v|| = ||R_c
        v||``, so the norms come from the small ``R_c V_c`` without
        materialising W. ``on="V"``: the unit's learned vector v itself (the
        authors' ``max_col_norm`` on the layer that follows their fixed
        dictionary layer). A vector whose norm ``n`` exceeds the cap is
        scaled by ``max_norm / n``. ``skpred.nn._mlp.max_norm_`` caps several
        layers with one set of multi-tensor operators.
        """
        pending = self._unit_norms(max_norm, on)
        if pending:
            scale_to_cap_(*zip(*pending), max_norm)

    def _unit_norms(self, max_norm: float, on: str) -> list:
        """``[(V, norms)]``: each group's V and its units' norms, shape (c, 1,
        m), for :func:`scale_to_cap_`; a one-column V capped on itself is
        renormalised here (torch's ``renorm_``, one operator) and left out."""
        if on not in ("W", "V"):
            raise ValueError(f"max_norm_on must be 'W' or 'V', got {on!r}.")
        factor = self._norm_factor() if on == "W" else None
        groups = self._groups()
        pending = []
        for V, c0, c1 in groups:
            if on == "V" and V.shape[0] == 1:
                # its units are the columns of V[0]; renorm divides by the norm
                # + 1e-7, a relative 5e-8 of the cap: below float32's resolution
                V.view(V.shape[1], V.shape[2]).renorm_(2, 1, max_norm)
                continue
            P = V if on == "V" else torch.bmm(factor if len(groups) == 1 else factor[c0:c1], V)
            pending.append((V, torch.linalg.vector_norm(P, dim=1, keepdim=True)))
        return pending

    def _norm_factor(self) -> Tensor:
        """``R_c`` with ``U_c^T U_c = R_c^T R_c`` per column, (C, a, a). For
        a fixed U it is cached in the non-persistent buffer ``_gram_cache``
        (it moves with the module and is never saved) and rebuilt when U
        changes; for a learned U (LowRank) it is computed on every call."""
        U = self.dictionaries.detach()  # (C, fan_in, a)
        if self.U.requires_grad:
            return torch.linalg.qr(U, mode="r")[1]
        key = (self.U.data_ptr(), self.U._version)
        if getattr(self, "_gram_key", None) != key or self._gram_cache is None:
            # QR in float64: R's rounding is then far below float32's
            self._gram_cache = torch.linalg.qr(U.double(), mode="r")[1].to(U.dtype)
            self._gram_key = key
        return self._gram_cache

    # ---------------------------------------- evaluation weight cache

    def _eval_weight(self, build):
        """``build()`` (the materialised weight), cached inside
        :func:`cached_weights` while no gradient is recorded: it is rebuilt
        when V, V_rest or U change (an optimiser step, ``load_state_dict``,
        a move to another device all change a parameter's version or
        storage), so repeated predictions build W once. Never cached where
        autograd records, in inference mode, or outside the block."""
        if (not _CACHE_WEIGHTS.get() or torch.is_grad_enabled()
                or torch.is_inference_mode_enabled() or self.V.is_inference()):
            self.__dict__.pop("_weight_cache", None)
            return build()
        key = tuple((t.data_ptr(), t._version, t.dtype)
                    for t in (self.V, getattr(self, "V_rest", None), self.U) if t is not None)
        cached = self.__dict__.get("_weight_cache")
        if cached is None or cached[0] != key:
            cached = (key, build())
            self.__dict__["_weight_cache"] = cached
        return cached[1]

    def __getstate__(self):
        # the cached weight is a function of the parameters: never copied
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state.pop("_weight_cache", None)
        return state

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_weight_cache", None)
        return super()._apply(fn, *args, **kwargs)

    def _make_parameters(self, n_units: int, bias: bool, factory_kwargs: dict) -> None:
        """V (one block per column; V and V_rest for uneven columns) and the
        bias, then their initial values."""
        sizes = self.column_sizes
        larger = sizes.count(sizes[0])
        self.V = nn.Parameter(torch.empty(larger, self.n_atoms, sizes[0], **factory_kwargs))
        if larger < len(sizes):
            self.V_rest = nn.Parameter(torch.empty(len(sizes) - larger, self.n_atoms,
                                                   sizes[-1], **factory_kwargs))
        else:
            self.register_parameter("V_rest", None)
        if bias:
            self.bias = nn.Parameter(torch.empty(n_units, **factory_kwargs))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _init_groups(self, dictionaries: Tensor, fan_in: int,
                     generator: Optional[torch.Generator], bound: Optional[float]) -> None:
        # every group's V, then the bias: one group draws as init_factored_ does
        for V, c0, c1 in self._groups():
            init_factored_(V, None, dictionaries[c0:c1], fan_in, generator, bound)
        if self.bias is not None:
            b = init_bound(fan_in, bound)
            with torch.no_grad():
                self.bias.uniform_(-b, b, generator=generator)

    @torch.no_grad()
    def _fill_dense(self, dense: nn.Module) -> nn.Module:
        dense.weight.copy_(self.weight)
        if self.bias is not None:
            dense.bias.copy_(self.bias)
        return dense


@describable
class PredictedLinear(FactoredLayer):
    r"""Dense layer with predicted weights, ``y = x W + b`` with ``W = U V``.

    Hidden units are split among ``C`` columns as evenly as ``np.array_split``
    splits them; column ``c`` has a fixed
    dictionary ``U_c`` (``in_features x n_atoms``, a buffer: never trained) and
    learned coefficients ``V_c`` (``n_atoms x out_features / C``, a Parameter).

    The forward pass takes the cheaper of two exact orderings for the batch
    at hand (user guide, "The method"):

    - ``"pool"``: ``(x U) V``, a fixed linear pooling then a small dense map;
      ``C*a*in + a*out`` multiply-adds per sample.
    - ``"dense"``: materialise ``W = U V`` once per call, then ``x W``;
      ``in*a*out / B + in*out`` per sample.

    Both run every column in one batched op.

    Parameters
    ----------
    in_features
        size of each input sample.
    out_features
        size of each output sample (at least the number of columns).
    dictionaries
        ``(C, in_features, n_atoms)`` or ``(in_features, n_atoms)``
        array/tensor, or a list of ``(in_features, n_atoms)`` arrays.
    bias
        if ``False``, the layer has no additive bias.
    path
        ``"auto"`` (cheaper ordering), ``"pool"`` or ``"dense"``.

    Attributes
    ----------
    U
        fixed dictionaries, buffer of shape ``(in_features, C * n_atoms)``
        (column ``c`` is the slice ``[:, c*a:(c+1)*a]``).
    V
        learned coefficients, Parameter of shape ``(C, n_atoms, out_features / C)``
        (with uneven columns, the larger ones; see :class:`FactoredLayer`).
    V_rest
        None, or with uneven columns the smaller columns' coefficients.
    bias
        Parameter of shape ``(out_features,)`` or None.
    """

    __constants__ = ["in_features", "out_features", "n_columns", "n_atoms"]
    _paths = PATHS

    def __init__(
        self,
        in_features: int,
        out_features: int,
        dictionaries,
        bias: bool = True,
        device=None,
        dtype=None,
        path: str = "auto",
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        if path not in self._paths:
            raise ValueError(f"path must be one of {self._paths}, got {path!r}.")
        U = as_dictionary_tensor(dictionaries, in_features, **factory_kwargs)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.n_columns = U.shape[0]
        self.n_atoms = U.shape[2]
        self.column_sizes = column_sizes(self.out_features, self.n_columns)
        # units of every column when they split equally, else None
        self.units_per_column = (self.column_sizes[0] if len(set(self.column_sizes)) == 1
                                 else None)
        self.path = path
        U_flat = U.permute(1, 0, 2).reshape(in_features, -1).contiguous()
        self._register_dictionary(U_flat)
        self.register_buffer("_gram_cache", None, persistent=False)
        self._make_parameters(out_features, bias, factory_kwargs)

    def _register_dictionary(self, U_flat: Tensor) -> None:
        self.register_buffer("U", U_flat)

    @property
    def dictionaries(self) -> Tensor:
        """View of U as ``(C, in_features, n_atoms)``."""
        return self.U.view(self.in_features, self.n_columns, self.n_atoms).permute(1, 0, 2)

    # ------------------------------------------------------ description

    def to_spec(self) -> dict:
        """A JSON-able description from which :meth:`from_spec` rebuilds a
        layer of the same shape (weights and U to be loaded)."""
        return dict(type="PredictedLinear", in_features=self.in_features,
                    out_features=self.out_features, n_columns=self.n_columns,
                    n_atoms=self.n_atoms, bias=self.bias is not None, path=self.path)

    @classmethod
    def from_spec(cls, spec: dict, dtype=None) -> "PredictedLinear":
        U = torch.zeros(spec["n_columns"], spec["in_features"], spec["n_atoms"])
        return cls(spec["in_features"], spec["out_features"], U, bias=spec["bias"],
                   path=spec["path"], dtype=dtype)

    @classmethod
    def spec_numel(cls, spec: dict) -> int:
        C, n_in, n_out, a = (spec["n_columns"], spec["in_features"], spec["out_features"],
                             spec["n_atoms"])
        return n_in * C * a + a * n_out + bias_numel(spec, n_out)

    def reset_parameters(self, generator: Optional[torch.Generator] = None,
                         bound: Optional[float] = None) -> None:
        """Draw V so that W = U V has the initial variance of a dense layer
        drawn from U(-bound, bound) (default: ``torch.nn.Linear``'s,
        ``bound = 1/sqrt(in_features)``).

        Each column's V is uniform with a bound scaled by the mean squared
        row norm of its U, so any dictionary starts from a W distributed like
        such a dense layer's. The bias is drawn from U(-bound, bound).
        """
        self._init_groups(self.dictionaries, self.in_features, generator, bound)

    def _costs(self, batch: Optional[int], training: bool = False,
               input_grad: bool = True) -> dict:
        """Multiply-adds per sample of each way to run the layer.

        Evaluation (``training=False``) counts the forward pass; the dense
        route's W is cached between calls (see :meth:`_eval_weight`), so
        its materialisation is free there and the choice does not depend
        on how a prediction is split into batches. Training counts forward
        and backward at batch ``batch``, with ``g = 1`` when the input needs
        a gradient: pooling costs ``C a in (1 + g) + (2 + g) a out`` (``x U``
        and, for the input's gradient, its transpose; ``z V``, V's gradient
        and, for the input's, z's),
        materialising ``in out (2 + g) + 2 in a out / batch`` (``x W`` and
        its gradients, W = U V built and its gradient taken once per step;
        ``batch=None`` amortises that away).
        """
        n_in, n_out, a, C = self.in_features, self.out_features, self.n_atoms, self.n_columns
        if not training:
            return {"pool": C * a * n_in + a * n_out, "dense": n_in * n_out}
        g = 1 if input_grad else 0
        build = 0 if batch is None else 2 * n_in * a * n_out / max(batch, 1)
        return {
            "pool": C * a * n_in * (1 + g) + (2 + g) * a * n_out,
            "dense": n_in * n_out * (2 + g) + build,
        }

    def _route(self, batch: Optional[int], training: bool = False,
               input_grad: bool = True) -> str:
        """The path to run: the forced one, or the cheapest (pool on ties)."""
        if self.path != "auto":
            return self.path
        costs = self._costs(batch, training, input_grad)
        return "dense" if costs["dense"] < costs["pool"] else "pool"

    def _pooled(self, x: Tensor, route: str) -> Tensor:
        """``x U`` for every column at once, shape (B, C * a); ``route`` is
        the path or the route chosen (read by subclasses with structured
        routes)."""
        return torch.mm(x, self.U)

    def _build_weight(self) -> Tensor:
        """W as (out_features, in_features): ``V_c^T U_c^T`` for every
        column in one batched product (one per group of equal columns),
        laid out as ``F.linear`` reads it, with no copy."""
        C, a = self.n_columns, self.n_atoms
        Ut = self.U.t().reshape(C, a, self.in_features)  # U_c^T, a view
        parts = [_Materialise.apply(V, Ut if c1 - c0 == C else Ut[c0:c1])
                 for V, c0, c1 in self._groups()]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    @property
    def weight(self) -> Tensor:
        """The full predicted weight, shaped like ``nn.Linear.weight`` (out, in)."""
        return self._build_weight()

    def forward(self, input: Tensor) -> Tensor:
        if input.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__} expects inputs with in_features={self.in_features} "
                f"values in the last dimension, got input of shape {tuple(input.shape)}.")
        flat = input.ndim == 2
        x = input if flat else input.reshape(-1, self.in_features)
        # Training picks the ordering for its batch; evaluation one per layer.
        if self.training:
            route = self._route(x.shape[0], True, x.requires_grad)
        else:
            route = self._route(None)
        if route == "pool" and self.fixed_dictionary and self.n_columns > 1 \
                and self.V_rest is None:
            # x U and the columns' products in one autograd node
            out = _ColumnProduct.apply(x, self.U, self.V, self.bias)
        elif route != "dense":
            # (B, C*a): every column's pooling at once, then the learned map
            out = self._apply_pooled(self._pooled(x, route))
        else:
            out = F.linear(x, self._eval_weight(self._build_weight), self.bias)
        return out if flat else out.reshape(*input.shape[:-1], self.out_features)

    @property
    def fixed_dictionary(self) -> bool:
        """Whether U is fixed (a buffer), so that :meth:`pool` depends on
        the input only (False for :class:`LowRankLinear`)."""
        return not self.U.requires_grad

    def pool(self, input: Tensor) -> Tensor:
        """The fixed half of the layer: ``x U`` for every column at once.

        Returns shape ``(..., n_columns * n_atoms)`` (column ``c`` in the
        slice ``[c*a:(c+1)*a]``); ``forward_pooled(pool(x))`` equals
        ``forward(x)`` up to rounding. With a fixed U it depends on the
        input only: when the input does not change between epochs (the
        first layer on its training data) it can be computed once and only
        :meth:`forward_pooled` run per step, which is what the estimators do
        when it is cheaper.
        """
        if input.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__}.pool expects inputs with in_features="
                f"{self.in_features} values in the last dimension, got input of shape "
                f"{tuple(input.shape)}.")
        x = input.reshape(-1, self.in_features)
        # _pooled computes x U whatever the path, by a forced structured
        # route where there is one (SEPredictedLinear's path="blur")
        return self._pooled(x, self.path).reshape(*input.shape[:-1],
                                                  self.n_columns * self.n_atoms)

    def forward_pooled(self, pooled: Tensor) -> Tensor:
        """The learned half of the layer: ``(x U) V + b`` from :meth:`pool`'s output."""
        width = self.n_columns * self.n_atoms
        if pooled.shape[-1] != width:
            raise ValueError(
                f"{type(self).__name__}.forward_pooled expects n_columns * n_atoms = {width} "
                f"values in the last dimension, got input of shape {tuple(pooled.shape)}.")
        if pooled.ndim == 2:
            return self._apply_pooled(pooled)
        out = self._apply_pooled(pooled.reshape(-1, width))
        return out.reshape(*pooled.shape[:-1], self.out_features)

    def _apply_pooled(self, z: Tensor) -> Tensor:
        """``z V + b`` for pooled inputs z of shape (B, C * a), every column
        at once and the bias fused: with one column an ``addmm``; with
        several equal columns :class:`_ColumnProduct`; with uneven ones a
        batched product per group."""
        if self.n_columns == 1:
            V = self.V.view(self.n_atoms, self.out_features)
            return torch.mm(z, V) if self.bias is None else torch.addmm(self.bias, z, V)
        if self.V_rest is None:
            return _ColumnProduct.apply(z, None, self.V, self.bias)
        zt = _columns_view(z, self.n_columns, self.n_atoms)
        parts = [torch.bmm(V.transpose(1, 2), zt[c0:c1]).flatten(0, 1)
                 for V, c0, c1 in self._groups()]
        out = torch.cat(parts).t()
        return out if self.bias is None else out + self.bias

    def pool_once_cost(self, epochs: int, batch: Optional[int]) -> dict:
        """Multiply-adds per sample over ``epochs`` training passes over
        data that does not change (and needs no gradient): ``"per step"``
        runs :meth:`forward` on every batch (the cheaper ordering for
        training, forward and backward), ``"pool once"`` runs :meth:`pool`
        once and :meth:`forward_pooled` on every batch (``z V`` and V's
        gradient: ``2 a out``)."""
        C, a = self.n_columns, self.n_atoms
        per_step = min(self._costs(batch, training=True, input_grad=False).values())
        return {"per step": epochs * per_step,
                "pool once": C * a * self.in_features + epochs * 2 * a * self.out_features}

    def to_dense(self) -> nn.Linear:
        """An equivalent ``torch.nn.Linear`` holding the materialised weight."""
        dense = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                          device=self.V.device, dtype=self.V.dtype)
        return self._fill_dense(dense)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"n_columns={self.n_columns}, n_atoms={self.n_atoms}, "
            f"bias={self.bias is not None}, path={self.path!r}"
        )


@describable
class LowRankLinear(PredictedLinear):
    """The LowRank baseline: ``W = U V`` with both factors learned.

    Same layout and forward as :class:`PredictedLinear`, but ``U`` is a
    Parameter, drawn with N(0, 1/in_features) entries by ``reset_parameters``,
    and counts as dynamic.

    Parameters
    ----------
    in_features, out_features, bias, device, dtype, path
        as PredictedLinear.
    rank
        atoms per column (the rank of each column's W).
    n_columns
        number of columns.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        n_columns: int = 1,
        bias: bool = True,
        device=None,
        dtype=None,
        path: str = "auto",
    ) -> None:
        if rank < 1 or n_columns < 1:
            raise ValueError(f"rank and n_columns must be >= 1, got {rank}, {n_columns}.")
        # Placeholder of the right shape; reset_parameters draws the real U.
        placeholder = torch.ones(n_columns, in_features, rank)
        super().__init__(in_features, out_features, placeholder, bias, device, dtype, path)

    def to_spec(self) -> dict:
        return dict(type="LowRankLinear", in_features=self.in_features,
                    out_features=self.out_features, rank=self.n_atoms, n_columns=self.n_columns,
                    bias=self.bias is not None, path=self.path)

    @classmethod
    def from_spec(cls, spec: dict, dtype=None) -> "LowRankLinear":
        return cls(spec["in_features"], spec["out_features"], spec["rank"], spec["n_columns"],
                   bias=spec["bias"], path=spec["path"], dtype=dtype)

    @classmethod
    def spec_numel(cls, spec: dict) -> int:
        return PredictedLinear.spec_numel(dict(spec, n_atoms=spec["rank"]))

    @classmethod
    def for_fraction(cls, in_features: int, out_features: int, alpha_fraction: float,
                     n_columns: int = 1, **kwargs) -> "LowRankLinear":
        """The LowRank baseline whose learned share matches ``alpha_fraction``.

        Per column of ``m`` units, ``rank * (in_features + m)`` weights are
        learned against ``in_features * m`` for a dense layer, so the rank is
        ``alpha_fraction * in_features * m / (in_features + m)`` (at least 1).
        """
        if not 0 < alpha_fraction <= 1:
            raise ValueError(f"alpha_fraction must be in (0, 1], got {alpha_fraction!r}.")
        if n_columns < 1:
            raise ValueError(f"n_columns must be >= 1, got {n_columns!r}.")
        m = out_features // n_columns
        rank = max(1, round(alpha_fraction * in_features * m / (in_features + m)))
        return cls(in_features, out_features, rank, n_columns, **kwargs)

    def _register_dictionary(self, U_flat: Tensor) -> None:
        self.U = nn.Parameter(U_flat)

    def reset_parameters(self, generator: Optional[torch.Generator] = None,
                         bound: Optional[float] = None) -> None:
        with torch.no_grad():
            self.U.normal_(0.0, 1.0 / math.sqrt(self.in_features), generator=generator)
        super().reset_parameters(generator, bound)

    @property
    def n_dynamic_params(self) -> int:
        return self.U.numel() + self.V.numel()

    @property
    def n_static_params(self) -> int:
        return 0


def _gaussian_gram(n: int, length_scale: float, dtype=torch.float64) -> Tensor:
    """exp(-(i - j)^2 / (2 l^2)) on 0..n-1: one axis of the separable se kernel."""
    idx = torch.arange(n, dtype=dtype)
    return torch.exp(-0.5 * ((idx[:, None] - idx[None, :]) / length_scale) ** 2)


class SEPredictedLinear(PredictedLinear):
    r"""A :class:`PredictedLinear` whose dictionaries are the se kernel on an
    image grid, with the kernel's structure used to run it.

    Column ``c`` has ``U_c = K_{x,alpha_c} M_c`` with ``M_c = (K_{alpha_c
    alpha_c} + ridge I)^{-1}`` (``I`` in raw mode, ``ridge=None``). For the
    squared exponential on a (rows, cols) grid, zero across channels,
    ``x K_{x, alpha}`` is the image blurred by a separable Gaussian and read
    at the pixels alpha: ``x U_c = blur(x)[alpha_c] M_c``. The blur is shared
    by every column, so the ``"blur"`` path costs ``channels * rows * cols *
    (rows + cols) + C a^2 + a out`` multiply-adds per sample against ``C a
    in`` for ``"pool"``. It runs when ``path="blur"`` is asked for:
    ``"auto"`` keeps choosing between pool and dense, because on a CPU the
    blur was measured slower despite fewer multiply-adds (see the comment
    on ``"auto"`` below).
    The blur uses the full Gram matrices (no truncation): every path is
    exact.

    Parameters
    ----------
    in_features, out_features, bias, device, dtype
        as ``PredictedLinear``; ``in_features = rows * cols * channels``.
    image_shape
        ``(rows, cols, channels)`` of the input, flattened channels-last.
    length_scale
        se length scale in pixels, one value or ``(rows, cols)``.
    alphas
        ``(C, a)`` flat (channels-last) indices of the kept locations per
        column (every channel of a kept pixel, as the se dictionary samples).
    ridge
        ``> 0``, or None for raw mode.
    path
        ``"auto"``, ``"pool"``, ``"dense"`` or ``"blur"``.
    """

    _paths = PATHS + ("blur",)

    def to_spec(self) -> dict:
        raise ValueError("SEPredictedLinear layers cannot be saved by skpred.save yet; use "
                         "torch.save(module.state_dict()).")

    def __init__(self, in_features: int, out_features: int, image_shape, length_scale, alphas,
                 ridge: Optional[float] = 0.1, bias: bool = True, device=None, dtype=None,
                 path: str = "auto") -> None:
        rows, cols, channels = (tuple(image_shape) + (1,))[:3] if len(image_shape) == 2 \
            else tuple(image_shape)
        if rows * cols * channels != in_features:
            raise ValueError(f"image_shape={tuple(image_shape)} does not hold "
                             f"in_features={in_features} values.")
        ls = torch.as_tensor(length_scale, dtype=torch.float64).reshape(-1)
        ls_r, ls_c = (float(ls[0]), float(ls[-1]))
        alphas = torch.as_tensor(alphas, dtype=torch.long)
        if alphas.ndim == 1:
            alphas = alphas[None]
        G_r, G_c = _gaussian_gram(rows, ls_r), _gaussian_gram(cols, ls_c)
        # The kernel between all locations and alpha, from the separable form.
        r, c, ch = (torch.arange(in_features) // (cols * channels),
                    torch.arange(in_features) // channels % cols,
                    torch.arange(in_features) % channels)
        dictionaries, inverses = [], []
        for alpha in alphas:
            K_xa = G_r[r][:, r[alpha]] * G_c[c][:, c[alpha]] * (ch[:, None] == ch[alpha][None])
            if ridge is None:
                M = torch.eye(len(alpha), dtype=torch.float64)
            else:
                A = K_xa[alpha] + ridge * torch.eye(len(alpha), dtype=torch.float64)
                M = torch.cholesky_inverse(torch.linalg.cholesky(A))
            dictionaries.append(K_xa @ M)
            inverses.append(M)
        super().__init__(in_features, out_features, torch.stack(dictionaries), bias=bias,
                         device=device, dtype=dtype, path=path)
        dtype = self.V.dtype
        self.image_shape = (rows, cols, channels)
        self.register_buffer("G_rows", flush_subnormals(G_r.to(device=device, dtype=dtype)))
        self.register_buffer("G_cols", flush_subnormals(G_c.to(device=device, dtype=dtype)))
        self.register_buffer("alpha_index", alphas.reshape(-1).to(device))
        self.register_buffer("M", flush_subnormals(torch.stack(inverses).to(device=device,
                                                                            dtype=dtype)))

    # "auto" still chooses between pool and dense only (PredictedLinear's
    # costs): on a CPU the blur path is slower than pooling despite fewer
    # multiply-adds, its gather and small products not running at GEMM
    # speed. It runs when asked for (path="blur"); blur_cost counts it.

    def blur_cost(self) -> int:
        """Multiply-adds per sample of the blur path."""
        rows, cols, channels = self.image_shape
        a, C = self.n_atoms, self.n_columns
        return channels * rows * cols * (rows + cols) + C * a * a + a * self.out_features

    def _pooled(self, x: Tensor, route: str) -> Tensor:
        if route != "blur":
            return super()._pooled(x, route)
        rows, cols, channels = self.image_shape
        img = x.reshape(-1, rows, cols, channels)
        blurred = torch.einsum("ir,brwc->biwc", self.G_rows, img)
        blurred = torch.einsum("jw,biwc->bijc", self.G_cols, blurred)
        z = blurred.reshape(x.shape[0], -1)[:, self.alpha_index]  # (B, C*a)
        z = z.view(x.shape[0], self.n_columns, self.n_atoms).transpose(0, 1)
        return torch.bmm(z, self.M).transpose(0, 1).reshape(x.shape[0], -1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", image_shape={self.image_shape}"
