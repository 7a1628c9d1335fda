"""Torch layers with predicted parameters (no scikit-learn import here).

- :class:`PredictedLinear`: ``W = U V`` with fixed U (buffer) and learned V.
- :class:`LowRankLinear`: the LowRank baseline, U learned too.
- :class:`SEPredictedLinear`: a predicted layer with se dictionaries on an
  image grid, run as one shared separable blur when that is cheaper.
- :class:`PredictedConv2d`: convolution with a fixed dictionary filter bank
  and a learned 1x1 combination.
- :class:`PredictedMLP`, :class:`PredictedConvNet`: the networks the
  estimators train (return logits; usable on their own).
"""

from ._conv import PredictedConv2d
from ._convnet import PredictedConvNet
from ._linear import LowRankLinear, PredictedLinear, SEPredictedLinear
from ._mlp import PredictedMLP

__all__ = [
    "PredictedLinear", "LowRankLinear", "SEPredictedLinear", "PredictedConv2d", "PredictedMLP", "PredictedConvNet",
]
