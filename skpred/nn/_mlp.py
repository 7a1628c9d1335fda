"""A multilayer perceptron whose hidden layers may be predicted."""

import math
from typing import List, Sequence

import torch
from torch import Tensor, nn

from ._linear import scale_to_cap_
from ._spec import describable, layer_from_spec, layer_to_spec, spec_numel

__all__ = ["PredictedMLP", "ACTIVATIONS", "max_norm_", "glorot_bound"]

# One registry for the string option `activation`.
# scikit-learn's names ("logistic" is also called "sigmoid", the name
# earlier releases used).
ACTIVATIONS = {
    "identity": lambda x: x,
    "logistic": torch.sigmoid,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "tanh": torch.tanh,
}


def glorot_bound(fan_in: int, fan_out: int, activation: str) -> float:
    """scikit-learn's MLP initialisation (Glorot and Bengio 2010): weights
    and biases uniform on ``(-b, b)`` with ``b = sqrt(f / (fan_in +
    fan_out))``, ``f`` 2 for the logistic activation and 6 for the others
    (``BaseMultilayerPerceptron._init_coef``); the output layer takes the
    hidden layers' activation's factor too."""
    factor = 2.0 if activation in ("logistic", "sigmoid") else 6.0
    return math.sqrt(factor / (fan_in + fan_out))


@torch.no_grad()
def max_norm_(layers, max_norm: float, on: str = "W") -> None:
    """Cap the norm of every unit's incoming weight vector at ``max_norm``.

    ``layers`` is one layer or a sequence of them: ``nn.Linear`` and
    ``nn.Conv2d`` (rows or filters of ``weight``, renormalised in place)
    and the predicted layers, dense and convolutional (V scaled). ``on="W"``
    caps the weights W = U V a unit applies to its input, ``on="V"`` the
    learned vector of each unit (the two are the same for a dense layer).
    The predicted layers of a sequence are scaled together, by three
    multi-tensor operators in all.
    """
    if on not in ("W", "V"):
        raise ValueError(f"max_norm_on must be 'W' or 'V', got {on!r}.")
    if isinstance(layers, nn.Module):
        layers = [layers]
    pending = []
    for layer in layers:
        if hasattr(layer, "_unit_norms"):
            pending += layer._unit_norms(max_norm, on)
        else:
            layer.weight.renorm_(2, 0, max_norm)
    if pending:
        scale_to_cap_(*zip(*pending), max_norm)


@describable
class PredictedMLP(nn.Module):
    """Hidden layers (any ``nn.Linear``-shaped modules) and a dense output layer.

    ``forward`` returns the logits; the softmax is left to the loss.

    Parameters
    ----------
    hidden
        the hidden layers, in order (``PredictedLinear``,
        ``LowRankLinear`` or ``nn.Linear``).
    n_outputs
        number of output units (classes).
    activation
        key of :data:`ACTIVATIONS`.
    """

    def __init__(self, hidden: Sequence[nn.Module], n_outputs: int, activation: str = "sigmoid",
                 device=None, dtype=None) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        if len(hidden) == 0:
            raise ValueError("PredictedMLP needs at least one hidden layer.")
        self.activation = activation
        self.hidden = nn.ModuleList(hidden)
        self.output = nn.Linear(hidden[-1].out_features, n_outputs, device=device, dtype=dtype)

    def to_spec(self) -> dict:
        """A JSON-able description (the hidden layers' own included) from
        which :meth:`from_spec` rebuilds a network of the same shape."""
        return dict(type="PredictedMLP", hidden=[layer_to_spec(h) for h in self.hidden],
                    n_outputs=self.output.out_features, activation=self.activation)

    @classmethod
    def from_spec(cls, spec: dict, dtype=None) -> "PredictedMLP":
        hidden = [layer_from_spec(h, dtype) for h in spec["hidden"]]
        return cls(hidden, spec["n_outputs"], spec["activation"], dtype=dtype)

    @classmethod
    def spec_numel(cls, spec: dict) -> int:
        last = spec["hidden"][-1]["out_features"]
        return (sum(spec_numel(h) for h in spec["hidden"])
                + last * spec["n_outputs"] + spec["n_outputs"])

    def features(self, x: Tensor, depth: int = None) -> Tensor:
        """Activations of hidden layer ``depth`` (1-based; the last by default)."""
        act = ACTIVATIONS[self.activation]
        depth = len(self.hidden) if depth is None else depth
        for layer in self.hidden[:depth]:
            x = act(layer(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.features(x))

    def forward_pooled(self, pooled: Tensor) -> Tensor:
        """The logits from ``hidden[0].pool(x)`` (a predicted first layer).

        Equals ``forward(x)`` up to rounding; lets a training loop pool its
        fixed inputs through the first layer's fixed dictionary once rather
        than on every step.
        """
        first = self.hidden[0]
        if not hasattr(first, "forward_pooled"):
            raise ValueError(f"forward_pooled needs a predicted first layer, got "
                             f"{type(first).__name__}.")
        act = ACTIVATIONS[self.activation]
        x = act(first.forward_pooled(pooled))
        for layer in self.hidden[1:]:
            x = act(layer(x))
        return self.output(x)

    def weight_layers(self) -> List[nn.Module]:
        """All layers with weights, output last."""
        return [*self.hidden, self.output]

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"
