"""Layers that describe and rebuild themselves.

A module's *spec* is a JSON-able dict (``{"type": NAME, ...}``) from which
a module of the same shape can be built (its weights loaded afterwards):
``skpred.load`` rebuilds networks this way, so that loading a file runs no
code from it. Each skpred layer class defines ``to_spec()`` and the class
methods ``from_spec(spec, dtype)`` and ``spec_numel(spec)`` (the number of
values its ``state_dict`` holds, checked before anything is allocated) and
registers itself with :func:`describable`; torch's own ``nn.Linear`` and
``nn.Conv2d`` (groups 1) are described here.
"""

import math

from torch import nn

__all__ = ["describable", "layer_to_spec", "layer_from_spec", "spec_numel"]

#: spec type name -> the class that rebuilds it (a fixed set: the skpred
#: layers and torch's Linear and Conv2d; nothing is imported by name).
LAYER_TYPES = {}


def describable(cls):
    """Class decorator: ``cls`` can be written to and rebuilt from a spec."""
    for method in ("to_spec", "from_spec", "spec_numel"):
        if not hasattr(cls, method):
            raise TypeError(f"{cls.__name__} lacks {method}.")
    LAYER_TYPES[cls.__name__] = cls
    return cls


def pair_list(value):
    return value if isinstance(value, str) else list(value)


def pair_tuple(value):
    return value if isinstance(value, str) else tuple(value)


def bias_numel(spec, n):
    return n if spec["bias"] else 0


class _TorchLinear:
    """The spec of torch's own ``nn.Linear``."""

    @staticmethod
    def to_spec(m):
        return dict(type="Linear", in_features=m.in_features, out_features=m.out_features,
                    bias=m.bias is not None)

    @staticmethod
    def from_spec(spec, dtype):
        return nn.Linear(spec["in_features"], spec["out_features"], bias=spec["bias"],
                         dtype=dtype)

    @staticmethod
    def spec_numel(spec):
        return spec["in_features"] * spec["out_features"] + bias_numel(spec, spec["out_features"])


class _TorchConv2d:
    """The spec of torch's own ``nn.Conv2d`` (groups 1)."""

    @staticmethod
    def to_spec(m):
        return dict(type="Conv2d", in_channels=m.in_channels, out_channels=m.out_channels,
                    kernel_size=list(m.kernel_size), stride=list(m.stride),
                    padding=pair_list(m.padding), dilation=list(m.dilation),
                    bias=m.bias is not None)

    @staticmethod
    def from_spec(spec, dtype):
        return nn.Conv2d(spec["in_channels"], spec["out_channels"], tuple(spec["kernel_size"]),
                         stride=tuple(spec["stride"]), padding=pair_tuple(spec["padding"]),
                         dilation=tuple(spec["dilation"]), bias=spec["bias"], dtype=dtype)

    @staticmethod
    def spec_numel(spec):
        kh, kw = spec["kernel_size"]
        return (spec["out_channels"] * spec["in_channels"] * kh * kw
                + bias_numel(spec, spec["out_channels"]))


LAYER_TYPES["Linear"] = _TorchLinear
LAYER_TYPES["Conv2d"] = _TorchConv2d


def layer_to_spec(module):
    """The spec of ``module``; ValueError for a module no spec describes."""
    kind = type(module)
    if kind is nn.Linear:
        return _TorchLinear.to_spec(module)
    if kind is nn.Conv2d and module.groups == 1:
        return _TorchConv2d.to_spec(module)
    if LAYER_TYPES.get(kind.__name__) is kind:
        return module.to_spec()
    if hasattr(module, "to_spec"):  # a skpred layer that says why it cannot be described
        module.to_spec()
    raise ValueError(f"Cannot describe a module of type {kind.__name__}.")


def _describer(spec):
    if not isinstance(spec, dict) or spec.get("type") not in LAYER_TYPES:
        kind = spec.get("type") if isinstance(spec, dict) else None
        raise ValueError(f"Unknown or corrupt module description {kind!r} in the file.")
    return LAYER_TYPES[spec["type"]]


def spec_numel(spec):
    """The number of values a described module's ``state_dict`` holds;
    ValueError for a description that is not one."""
    try:
        n = _describer(spec).spec_numel(spec)
    except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError):
        raise ValueError("Corrupt module description in the file.") from None
    if not isinstance(n, int) or n < 0 or not math.isfinite(n):
        raise ValueError("Corrupt module description in the file.")
    return n


def layer_from_spec(spec, dtype=None):
    """A module of the described shape, weights to be loaded; ValueError on
    anything that is not one of the known layer descriptions."""
    describer = _describer(spec)
    try:
        return describer.from_spec(spec, dtype)
    except (KeyError, TypeError, RuntimeError) as exc:
        raise ValueError(f"Corrupt {spec['type']} description in the file: {exc!r}.") from None
