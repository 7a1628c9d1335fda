"""
=====================================================
A kernel dictionary in front of a linear classifier
=====================================================

``KernelDictionary`` builds the fixed factor ``U`` of a predicted layer.
Followed by a logistic regression it gives a linear classifier whose weights
are predicted from ``alpha_fraction`` of their values. This example plots
test accuracy against the fraction of weights learned on the bundled digits.
"""

# %%
import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline

from skpred import KernelDictionary

X, y = load_digits(return_X_y=True)
X = X / 16.0

# %%
fractions = [0.05, 0.1, 0.25, 0.5]
scores = {}
for kernel in ("se", "randcon", "random"):
    scores[kernel] = [
        cross_val_score(
            make_pipeline(
                KernelDictionary(kernel, alpha_fraction=f, random_state=0),
                LogisticRegression(max_iter=300),
            ),
            X, y, cv=3,
        ).mean()
        for f in fractions
    ]

# %%
fig, ax = plt.subplots()
for kernel, s in scores.items():
    ax.plot(fractions, s, marker="o", label=kernel)
ax.set_xscale("log")
ax.set_xlabel("fraction of weights learned")
ax.set_ylabel("3-fold accuracy")
ax.legend()
plt.show()
