"""Predicted convolution: a fixed dictionary filter bank and a learned 1x1 mix."""

from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._linear import _PATHS, _Factored, _split_units, as_dictionary_tensor, init_factored_

__all__ = ["PredictedConv2d"]


def _pair(v) -> Tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(int(x) for x in v)
    if len(v) != 2:
        raise ValueError(f"Expected an int or a pair of ints, got {v!r}.")
    return v


class PredictedConv2d(_Factored):
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
        ``"auto"``, ``"pool"`` or ``"dense"``.

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
        if path not in _PATHS:
            raise ValueError(f"path must be one of {_PATHS}, got {path!r}.")
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
        self.units_per_column = _split_units(self.out_channels, self.n_columns, "out_channels")
        bank = U.permute(0, 2, 1).reshape(self.n_columns * self.n_atoms, self.in_channels, kh, kw)
        self.register_buffer("U", bank.contiguous())
        self.register_buffer("_gram_cache", None, persistent=False)
        self.V = nn.Parameter(
            torch.empty(self.n_columns, self.n_atoms, self.units_per_column, **factory_kwargs)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels, **factory_kwargs))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    @property
    def dictionaries(self) -> Tensor:
        """View of U as ``(C, in_channels*kh*kw, n_atoms)``."""
        return self.U.view(self.n_columns, self.n_atoms, self.fan_in).transpose(1, 2)

    def reset_parameters(self, generator: Optional[torch.Generator] = None) -> None:
        """Draw V so the filters have ``nn.Conv2d``'s default initial variance."""
        init_factored_(self.V, self.bias, self.dictionaries, self.fan_in, generator)

    @property
    def weight(self) -> Tensor:
        """The materialised filters, shaped like ``nn.Conv2d.weight``."""
        Uc = self.U.view(self.n_columns, self.n_atoms, self.fan_in)
        W = torch.bmm(self.V.transpose(1, 2), Uc)  # (C, m, fan_in)
        return W.reshape(self.out_channels, self.in_channels, *self.kernel_size)

    def _mix_weight(self) -> Tensor:
        # Grouped 1x1 conv: output c*m + j reads atoms c*a .. c*a + a - 1.
        return self.V.transpose(1, 2).reshape(self.out_channels, self.n_atoms, 1, 1)

    def _pool_is_cheaper(self, n_positions: Optional[int]) -> bool:
        """Whether the bank-then-mix ordering costs fewer multiply-adds.

        ``n_positions=None`` amortises the filters' materialisation away, so
        the choice (and the result) does not depend on the batch.
        """
        if self.path != "auto":
            return self.path == "pool"
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
