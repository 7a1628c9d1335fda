"""
=====================================================
Grid search over alpha_fraction and n_columns
=====================================================

``alpha_fraction`` and ``n_columns`` are ordinary hyper-parameters: a
``GridSearchCV`` over a ``Pipeline`` searches them, and ``cv_results_`` shows
how accuracy depends on the share of weights learned.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skpred import PredictedMLPClassifier

warnings.simplefilter("ignore", ConvergenceWarning)
X, y = load_digits(return_X_y=True)
pipe = make_pipeline(MinMaxScaler(), PredictedMLPClassifier(max_iter=50, random_state=0))
grid = {"predictedmlpclassifier__alpha_fraction": [0.1, 0.25, 0.5],
        "predictedmlpclassifier__n_columns": [1, 4]}
search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(X, y)
print("best:", search.best_params_, round(search.best_score_, 3))

# %%
res = search.cv_results_
fig, ax = plt.subplots()
for c in grid["predictedmlpclassifier__n_columns"]:
    mask = np.array(res["param_predictedmlpclassifier__n_columns"]) == c
    ax.errorbar(np.array(res["param_predictedmlpclassifier__alpha_fraction"])[mask].astype(float),
                res["mean_test_score"][mask], yerr=res["std_test_score"][mask], marker="o",
                capsize=3, label=f"{c} column(s)")
ax.set_xlabel("alpha_fraction")
ax.set_ylabel("3-fold accuracy")
ax.legend()
plt.show()
