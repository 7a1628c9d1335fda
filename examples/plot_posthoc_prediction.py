"""
==================================================
Post-hoc prediction of learned features
==================================================

The paper's Figure 1: keep a random subset of a learned feature's weights
and predict the rest by kernel ridge regression with a squared-exponential
kernel over pixel positions. Learned features are smooth, so a small subset
predicts them well; white noise is not predictable at all.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpred import PredictedMLPClassifier
from skpred.kernels import predict_from_subset, se_kernel

warnings.simplefilter("ignore", ConvergenceWarning)
X, y = load_digits(return_X_y=True)
clf = PredictedMLPClassifier((32,), dictionary=None, random_state=0).fit(X / 16, y)
W = clf.coefs_[0]  # (64, 32): one 8x8 feature per column
K = se_kernel((8, 8), length_scale=1.0)
rng = np.random.RandomState(0)

# %%
fractions = [0.1, 0.25, 0.5, 0.75]
learned = [predict_from_subset(W, K, f, rng, ridge=1e-3)[2].mean() for f in fractions]
noise = [predict_from_subset(rng.standard_normal(W.shape), K, f, rng, ridge=1e-3)[2].mean()
         for f in fractions]
fig, ax = plt.subplots()
ax.plot(fractions, learned, marker="o", label="learned features")
ax.plot(fractions, noise, marker="s", label="white noise")
ax.set_xlabel("fraction of weights kept")
ax.set_ylabel("relative prediction error")
ax.legend()
plt.show()
