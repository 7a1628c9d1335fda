"""skpred: Predicting Parameters in Deep Learning, as scikit-learn estimators.

Denil, Shakibi, Dinh, Ranzato and de Freitas (NIPS 2013) factor each layer's
weights as ``W = U V``: ``U`` a fixed dictionary that predicts a feature's
full weights from a few of them, ``V`` the only part that is learned.
"""

from ._conv import PAPER_CONVNET_SETTINGS, PredictedConvNetClassifier
from ._convert import ParameterReport, parameter_report, predict_parameters
from ._dictionary import KernelDictionary
from ._image import ImageEncoder, ZCAWhitening
from ._mlp import PAPER_MLP_SETTINGS, PredictedMLPClassifier, PredictedMLPRegressor
from ._persist import load
from ._redundancy import redundancy
from ._rica import PredictedRICA

__version__ = "0.1.0.dev0"

__all__ = [
    "KernelDictionary",
    "PredictedMLPClassifier",
    "PredictedMLPRegressor",
    "PredictedConvNetClassifier",
    "PredictedRICA",
    "ZCAWhitening",
    "ImageEncoder",
    "PAPER_MLP_SETTINGS",
    "PAPER_CONVNET_SETTINGS",
    "load",
    "predict_parameters",
    "parameter_report",
    "ParameterReport",
    "redundancy",
    "__version__",
]
