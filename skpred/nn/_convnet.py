"""A convolutional network whose layers may be predicted."""

from typing import Sequence, Tuple

from torch import Tensor, nn
from torch.nn import functional as F

from ._mlp import ACTIVATIONS
from ._spec import describable, layer_from_spec, layer_to_spec, spec_numel

__all__ = ["PredictedConvNet"]


@describable
class PredictedConvNet(nn.Module):
    """Convolutions (each followed by the activation and max pooling), dense
    hidden layers, and a dense output layer returning logits.

    Inputs are flattened channels-last images, ``(batch, rows * cols *
    channels)`` in C-order of ``image_shape`` (or already ``(batch, rows,
    cols, channels)``); the network reshapes them to torch's ``(batch,
    channels, rows, cols)`` itself, so the data can stay flat on the device.

    Parameters
    ----------
    image_shape
        ``(rows, cols, channels)``.
    convs
        conv layers (``PredictedConv2d`` or ``nn.Conv2d``), padding "same".
    pools
        max-pooling window ``(ph, pw)`` after each conv (``(1, 1)``: none).
    dense
        hidden dense layers (``PredictedLinear``, ``nn.Linear``, ...).
    n_outputs
        number of classes.
    activation
        key of ``ACTIVATIONS``.
    """

    def __init__(self, image_shape: Tuple[int, int, int], convs: Sequence[nn.Module],
                 pools: Sequence[Tuple[int, int]], dense: Sequence[nn.Module], n_outputs: int,
                 activation: str = "relu", device=None, dtype=None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        if len(convs) != len(pools):
            raise ValueError("pools needs one entry per conv layer.")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.activation = activation
        self.convs = nn.ModuleList(convs)
        self.pools = [tuple(p) for p in pools]
        self.dense = nn.ModuleList(dense)
        n_last = dense[-1].out_features if len(dense) else self.n_conv_features()
        self.output = nn.Linear(n_last, n_outputs, device=device, dtype=dtype)

    def to_spec(self) -> dict:
        """A JSON-able description (every layer's own included) from which
        :meth:`from_spec` rebuilds a network of the same shape."""
        return dict(type="PredictedConvNet", image_shape=list(self.image_shape),
                    convs=[layer_to_spec(c) for c in self.convs],
                    pools=[list(p) for p in self.pools],
                    dense=[layer_to_spec(d) for d in self.dense],
                    n_outputs=self.output.out_features, activation=self.activation)

    @classmethod
    def from_spec(cls, spec: dict, dtype=None) -> "PredictedConvNet":
        return cls(tuple(spec["image_shape"]), [layer_from_spec(c, dtype) for c in spec["convs"]],
                   [tuple(p) for p in spec["pools"]],
                   [layer_from_spec(d, dtype) for d in spec["dense"]],
                   spec["n_outputs"], spec["activation"], dtype=dtype)

    @classmethod
    def spec_numel(cls, spec: dict) -> int:
        inner = [spec_numel(m) for m in spec["convs"] + spec["dense"]]
        if spec["dense"]:
            last = spec["dense"][-1]["out_features"]
        else:
            rows, cols, channels = spec["image_shape"]
            for conv, (ph, pw) in zip(spec["convs"], spec["pools"]):
                channels, rows, cols = conv["out_channels"], rows // ph, cols // pw
            last = channels * rows * cols
        return sum(inner) + last * spec["n_outputs"] + spec["n_outputs"]

    def feature_map_shape(self, depth: int = None) -> Tuple[int, int, int]:
        """(channels, rows, cols) after conv block ``depth`` (all by default)."""
        rows, cols, channels = self.image_shape
        for conv, (ph, pw) in list(zip(self.convs, self.pools))[:depth]:
            channels = conv.out_channels
            rows, cols = rows // ph, cols // pw
        return channels, rows, cols

    def n_conv_features(self) -> int:
        c, h, w = self.feature_map_shape()
        return c * h * w

    def conv_features(self, x: Tensor) -> Tensor:
        """Flattened output of the conv blocks, in torch's (C, H, W) order."""
        rows, cols, channels = self.image_shape
        x = x.reshape(-1, rows, cols, channels).permute(0, 3, 1, 2)
        act = ACTIVATIONS[self.activation]
        for conv, pool in zip(self.convs, self.pools):
            x = act(conv(x))
            if pool != (1, 1):
                x = F.max_pool2d(x, pool)
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        z = self.conv_features(x)
        act = ACTIVATIONS[self.activation]
        for layer in self.dense:
            z = act(layer(z))
        return self.output(z)

    def weight_layers(self):
        """All layers with weights, output last."""
        return [*self.convs, *self.dense, self.output]

    def extra_repr(self) -> str:
        return f"image_shape={self.image_shape}, pools={self.pools}, activation={self.activation!r}"
