"""Benchmark: accuracy against the fraction learned and the columns.

The table of the user guide's "Choosing alpha_fraction and n_columns":
``PredictedMLPClassifier`` with its defaults (100 hidden units, ``emp``,
Adam, up to 200 epochs) but for ``alpha_fraction`` and ``n_columns``, on
``load_digits() / 16``, held-out accuracy averaged over three stratified
70/30 splits (seeds 0, 1, 2), with the fraction actually learned
(``fraction_learned_``: alpha rounds to whole atoms) and the dense network
(``dictionary=None``) as the reference. Accuracy only: no times.

    python benchmarks/bench_choosing.py
"""

import os
import sys
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skpred import PredictedMLPClassifier

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402

FRACTIONS = (0.05, 0.1, 0.25, 0.5)
COLUMNS = (1, 2, 4, 8)
SEEDS = (0, 1, 2)


def accuracy(X, y, **params):
    scores, learned = [], None
    for seed in SEEDS:
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=seed,
                                                  stratify=y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est = PredictedMLPClassifier(random_state=seed, device="cpu", **params)
            est.fit(X_tr, y_tr)
        scores.append(est.score(X_te, y_te))
        learned = est.fraction_learned_
    return float(np.mean(scores)), float(np.std(scores) / np.sqrt(len(scores))), learned


def main():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    dense, dense_se, _ = accuracy(X, y, dictionary=None)
    rows, data = [], {"dense": [dense, dense_se]}
    for fraction in FRACTIONS:
        row = [f"{fraction:g}"]
        for columns in COLUMNS:
            mean, se, learned = accuracy(X, y, alpha_fraction=fraction, n_columns=columns)
            data[f"{fraction}-{columns}"] = [mean, se, learned]
            row.append(f"{mean:.3f}")
        row.append(f"{learned:.3f}")
        rows.append(row)
    rows.append(["dense (`dictionary=None`)", f"{dense:.3f}", "", "", "", "1.000"])
    emit("choosing", ["alpha_fraction"] + [f"{c} column{'s' * (c > 1)}" for c in COLUMNS]
         + ["fraction learned"], rows, data, "python benchmarks/bench_choosing.py")


if __name__ == "__main__":
    main()
