"""
===============================================
Predicted MLP against the dense MLP on digits
===============================================

Fits :class:`skpred.PredictedMLPClassifier` on scikit-learn's 8x8 digits with
the ``se`` dictionary at several alpha fractions, and the same network with
ordinary dense layers, and plots held-out accuracy against the fraction of
the hidden layer's weights that is learned.
"""

# %%
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skpred import PredictedMLPClassifier

X, y = load_digits(return_X_y=True)
X_tr, X_te, y_tr, y_te = train_test_split(X / 16, y, test_size=0.3, random_state=0, stratify=y)
# Defaults throughout; image_shape says the 64 features are 8x8 pixels, so
# dictionary="auto" predicts each feature with the smooth se kernel.
common = dict(image_shape=(8, 8), random_state=0)

# %%
# Dense network, then predicted networks.
warnings.simplefilter("ignore", ConvergenceWarning)
dense = PredictedMLPClassifier(dictionary=None, **common).fit(X_tr, y_tr)
fractions, scores = [0.1, 0.25, 0.5, 0.75], []
for f in fractions:
    clf = PredictedMLPClassifier(alpha_fraction=f, **common).fit(X_tr, y_tr)
    scores.append(clf.score(X_te, y_te))
    print(f"alpha={f}: learned {clf.fraction_learned_:.2f} of the weights, accuracy {scores[-1]:.3f}")

# %%
fig, ax = plt.subplots()
ax.plot(fractions, scores, marker="o", label="se dictionary")
ax.axhline(dense.score(X_te, y_te), color="k", ls="--", label="dense")
ax.set_xlabel("fraction of hidden-layer weights learned")
ax.set_ylabel("test accuracy")
ax.legend()
plt.show()
