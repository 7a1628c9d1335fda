"""Predicted convolution: a fixed dictionary filter bank and a learned 1x1 mix."""

from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._spec import bias_numel, describable, pair_list, pair_tuple
from ._linear import (PATHS, FactoredLayer, _Materialise, as_dictionary_tensor, init_factored_,
                      split_units)

__all__ = ["PredictedConv2d"]

CONV_PATHS = PATHS + ("separable",)


def _pair(v) -> Tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise ValueError(f"Expected an int or a pair of ints, got {v!r}.")
    return v


@describable
class PredictedConv2d(FactoredLayer):
    r"""2-D convolution whose filter bank is predicted: ``W = U V``.

    Each of the ``C`` columns owns ``out_channels / C`` filters. Column ``c``
    has ``n_atoms`` fixed dictionary filters ``U_c`` (a buffer) and learned
    coefficients ``V_c`` (``n_atoms x out_channels / C``). Convolving with
    ``W`` equals convolving with the dictionary filters and then applying a
    learned 1x1 convolution, which is the ``"pool"`` ordering; ``"dense"``
    materialises the filters once per call and runs one convolution.
    ``"auto"`` picks the one with fewer multiply-adds for the input at hand.

    Parameters
    ----------
    in_channels, out_channels, kernel_size, stride, padding, dilation, bias
        as ``torch.nn.Conv2d`` (``groups`` is not supported).
    dictionaries
        ``(C, in_channels*kh*kw, n_atoms)`` or
        ``(in_channels*kh*kw, n_atoms)`` array/tensor, or a list of
        per-column arrays. Rows follow the flattened order of a
        ``Conv2d`` filter, ``(in_channel, row, col)`` in C-order.
    path
        ``"auto"``, ``"pool"``, ``"dense"`` or ``"separable"``.

    When every dictionary filter lives in one input channel (the ``se``
    dictionary's do: its kernel is zero across channels), a third exact
    ordering exists, ``"separable"``: a grouped (per input channel)
    convolution with each channel's filters, ``C a kh kw`` multiply-adds
    per output position instead of ``C a c_in kh kw``, then the learned
    1x1 mix. It runs when asked for: ``"auto"`` keeps choosing between
    pool and dense, because on a CPU grouped convolutions run far below
    GEMM speed (``benchmarks/bench_conv_layer.py`` measures the three
    paths). ``separable_cost`` gives its count.

    Attributes
    ----------
    U
        dictionary filter bank, buffer of shape ``(C * n_atoms, in_channels, kh, kw)``.
    V
        Parameter of shape ``(C, n_atoms, out_channels / C)``.
    bias
        Parameter of shape ``(out_channels,)`` or None.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Union[int, Tuple[int, int]],
        dictionaries,
        stride: Union[int, Tuple[int, int]] = 1,
        padding: Union[str, int, Tuple[int, int]] = 0,
        dilation: Union[int, Tuple[int, int]] = 1,
        bias: bool = True,
        device=None,
        dtype=None,
        path: str = "auto",
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        super().__init__()
        if path not in CONV_PATHS:
            raise ValueError(f"path must be one of {CONV_PATHS}, got {path!r}.")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"padding must be 'same', 'valid' or int(s), got {padding!r}.")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("padding='same' needs stride 1, as in torch.nn.Conv2d.")
            self.padding = padding
        else:
            self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.path = path
        kh, kw = self.kernel_size
        fan_in = self.in_channels * kh * kw
        U = as_dictionary_tensor(dictionaries, fan_in, **factory_kwargs)
        self.n_columns, self.n_atoms = U.shape[0], U.shape[2]
        self.units_per_column = split_units(self.out_channels, self.n_columns, "out_channels")
        self.column_sizes = [self.units_per_column] * self.n_columns
        bank = U.permute(0, 2, 1).reshape(self.n_columns * self.n_atoms, self.in_channels, kh, kw)
        self.register_buffer("U", bank.contiguous())
        self.register_buffer("_gram_cache", None, persistent=False)
        # The per-channel bank of the separable path, built from U on first use
        # (never saved: it is a function of U).
        self.register_buffer("_sep_bank", None, persistent=False)
        self.register_buffer("_sep_index", None, persistent=False)
        self._sep_key = None
        self._make_parameters(out_channels, bias, factory_kwargs)

    def to_spec(self) -> dict:
        """A JSON-able description from which :meth:`from_spec` rebuilds a
        layer of the same shape (weights and U to be loaded)."""
        return dict(type="PredictedConv2d", in_channels=self.in_channels,
                    out_channels=self.out_channels, kernel_size=list(self.kernel_size),
                    n_columns=self.n_columns, n_atoms=self.n_atoms, stride=list(self.stride),
                    padding=pair_list(self.padding), dilation=list(self.dilation),
                    bias=self.bias is not None, path=self.path)

    @classmethod
    def from_spec(cls, spec: dict, dtype=None) -> "PredictedConv2d":
        kh, kw = spec["kernel_size"]
        U = torch.zeros(spec["n_columns"], spec["in_channels"] * kh * kw, spec["n_atoms"])
        return cls(spec["in_channels"], spec["out_channels"], (kh, kw), U,
                   stride=tuple(spec["stride"]), padding=pair_tuple(spec["padding"]),
                   dilation=tuple(spec["dilation"]), bias=spec["bias"], path=spec["path"],
                   dtype=dtype)

    @classmethod
    def spec_numel(cls, spec: dict) -> int:
        kh, kw = spec["kernel_size"]
        C, a = spec["n_columns"], spec["n_atoms"]
        return (C * a * spec["in_channels"] * kh * kw + a * spec["out_channels"]
                + bias_numel(spec, spec["out_channels"]))

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    @property
    def dictionaries(self) -> Tensor:
        """View of U as ``(C, in_channels*kh*kw, n_atoms)``."""
        return self.U.view(self.n_columns, self.n_atoms, self.fan_in).transpose(1, 2)

    def reset_parameters(self, generator: Optional[torch.Generator] = None,
                         bound: Optional[float] = None) -> None:
        """Draw V so the filters have the variance of U(-bound, bound)
        (default: ``nn.Conv2d``'s, ``1/sqrt(fan_in)``)."""
        init_factored_(self.V, self.bias, self.dictionaries, self.fan_in, generator, bound)

    @property
    def weight(self) -> Tensor:
        """The materialised filters, shaped like ``nn.Conv2d.weight``."""
        Uc = self.U.view(self.n_columns, self.n_atoms, self.fan_in)
        W = _Materialise.apply(self.V, Uc)  # (C*m, fan_in)
        return W.view(self.out_channels, self.in_channels, *self.kernel_size)

    def _mix_weight(self) -> Tensor:
        # Grouped 1x1 conv: output c*m + j reads atoms c*a .. c*a + a - 1.
        return self.V.transpose(1, 2).reshape(self.out_channels, self.n_atoms, 1, 1)

    def channel_separable(self) -> bool:
        """Whether every dictionary filter has weights in one input channel only."""
        used = self.U.detach().abs().sum((2, 3)) != 0  # (C*a, c_in)
        return bool((used.sum(1) <= 1).all())

    def _separable(self):
        """(bank, index): the filters grouped by input channel, each group
        padded with zero filters to the largest group, shaped
        ``(c_in * n, 1, kh, kw)``; ``index[j]`` is where filter ``j`` of U
        went. Rebuilt when U changes."""
        key = (self.U.data_ptr(), str(self.U.device), self.U.dtype, self.U._version)
        if self._sep_key == key and self._sep_bank is not None:
            return self._sep_bank, self._sep_index
        if not self.channel_separable():
            raise ValueError(
                "path='separable' needs dictionary filters that each live in one input channel "
                "(as the se dictionary's); this bank mixes channels.")
        U = self.U.detach()
        channel = (U.abs().sum((2, 3)) != 0).to(torch.int64).argmax(1)  # zero filters: channel 0
        counts = torch.bincount(channel, minlength=self.in_channels)
        per = int(counts.max())
        rank_in_channel = torch.zeros_like(channel)
        for ch in range(self.in_channels):
            members = (channel == ch).nonzero().flatten()
            rank_in_channel[members] = torch.arange(len(members), device=U.device)
        index = channel * per + rank_in_channel
        bank = U.new_zeros(self.in_channels * per, 1, *self.kernel_size)
        bank[index, 0] = U[torch.arange(len(U), device=U.device), channel]
        self._sep_bank, self._sep_index, self._sep_key = bank, index, key
        return bank, index

    def separable_cost(self) -> int:
        """Multiply-adds per output position of the separable path."""
        bank, _ = self._separable()
        mix = bank.shape[0] * self.out_channels if self.n_columns == 1 else \
            self.n_atoms * self.out_channels
        return bank.shape[0] * self.kernel_size[0] * self.kernel_size[1] + mix

    def _pool_is_cheaper(self, n_positions: Optional[int]) -> bool:
        """Whether the bank-then-mix ordering costs fewer multiply-adds.

        ``n_positions=None`` amortises the filters' materialisation away, so
        the choice (and the result) does not depend on the batch.
        """
        if self.path != "auto":
            return self.path in ("pool", "separable")
        C, a, out, k = self.n_columns, self.n_atoms, self.out_channels, self.fan_in
        pool = C * a * k + a * out
        dense = out * k + (k * a * out / max(n_positions, 1) if n_positions is not None else 0)
        return pool <= dense

    def _out_positions(self, x: Tensor) -> int:
        h, w = x.shape[-2:]
        batch = x.shape[0] if x.ndim == 4 else 1
        if self.padding == "same":
            return batch * h * w
        padding = (0, 0) if self.padding == "valid" else self.padding
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = (
            self.kernel_size, self.stride, padding, self.dilation
        )
        oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        return batch * max(oh, 0) * max(ow, 0)

    def forward(self, input: Tensor) -> Tensor:
        conv = dict(stride=self.stride, padding=self.padding, dilation=self.dilation)
        # Training picks the ordering for its batch; evaluation one per layer.
        if self.path == "separable":
            bank, index = self._separable()
            z = F.conv2d(input, bank, None, groups=self.in_channels, **conv)
            if self.n_columns == 1:
                # one mix over the channel-grouped filters (zero for padding)
                mix = self.V[0].t().new_zeros(self.out_channels, bank.shape[0])
                mix = mix.index_copy(1, index, self.V[0].t())
                return F.conv2d(z, mix[:, :, None, None], self.bias)
            z = z.index_select(1, index)  # back to column order, then the grouped mix
            return F.conv2d(z, self._mix_weight(), self.bias, groups=self.n_columns)
        if self._pool_is_cheaper(self._out_positions(input) if self.training else None):
            z = F.conv2d(input, self.U, None, **conv)
            return F.conv2d(z, self._mix_weight(), self.bias, groups=self.n_columns)
        return F.conv2d(input, self.weight, self.bias, **conv)

    def to_dense(self) -> nn.Conv2d:
        """An equivalent ``torch.nn.Conv2d`` holding the materialised filters."""
        dense = nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=self.bias is not None,
            device=self.V.device,
            dtype=self.V.dtype,
        )
        return self._fill_dense(dense)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, n_columns={self.n_columns}, "
            f"n_atoms={self.n_atoms}, bias={self.bias is not None}, path={self.path!r}"
        )
