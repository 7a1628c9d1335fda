"""Writes the format-1 model files that tests/test_persist.py loads back.

Run once, with the skpred of commit 8444de9 (the last before persistence
moved to the safetensors package): ``python tests/data/format1/make_files.py``.
Each ``NAME.skpred`` is a fitted estimator; ``outputs.npz`` holds, per name,
its output (predict_proba, predict or transform) on the first 20 digits
(``X``, also stored), which a loaded file must reproduce.
"""
import os
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpred import (ImageEncoder, KernelDictionary, PredictedConvNetClassifier,
                    PredictedMLPClassifier, PredictedMLPRegressor, PredictedRICA, ZCAWhitening)

HERE = os.path.dirname(os.path.abspath(__file__))
CPU = dict(device="cpu", random_state=0)
MODELS = {
    "mlp": PredictedMLPClassifier((8, 8), dictionary=("se", "emp"), n_columns=2, max_iter=2,
                                  pretrain=True, pretrain_epochs=1, **CPU),
    "mlp-lowrank-dense": PredictedMLPClassifier((8, 8), dictionary=("lowrank", None),
                                                max_iter=2, **CPU),
    "regressor": PredictedMLPRegressor((8,), max_iter=2, **CPU),
    "convnet": PredictedConvNetClassifier(((4, 3, 2),), (8,), max_iter=1, image_shape=(8, 8),
                                          **CPU),
    "kernel-dictionary": KernelDictionary("se", alpha_fraction=0.25, random_state=0),
    "rica": PredictedRICA(n_components=8, max_iter=3, **CPU),
    "zca": ZCAWhitening(),
    "encoder": ImageEncoder(PredictedRICA(n_components=4, max_iter=2, **CPU),
                            image_shape=(8, 8), n_patches=200, **CPU),
}


def output(est, X):
    for method in ("predict_proba", "predict", "transform"):
        if hasattr(est, method):
            return np.asarray(getattr(est, method)(X))


def main():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)[:300]
    y = y[:300]
    outputs = {"X": X[:20]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, est in MODELS.items():
            if hasattr(est, "predict"):
                est.fit(X, y.astype(float) if "Regressor" in type(est).__name__ else y)
            else:
                est.fit(X)
            est.save(os.path.join(HERE, f"{name}.skpred"))
            outputs[name] = output(est, X[:20])
    np.savez(os.path.join(HERE, "outputs.npz"), **outputs)


if __name__ == "__main__":
    main()
