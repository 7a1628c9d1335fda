"""Main job: accuracy vs fraction of parameters learned on bundled digits.

A ``KernelDictionary`` (``se`` kernel) in front of a logistic regression is a
linear classifier whose weights are predicted from ``alpha_fraction`` of
each class's weights. The table shows how little is lost.
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from .._dictionary import KernelDictionary


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m skpred.experiments demo", description=__doc__)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25, 0.5])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=args.seed)
    print(f"digits 8x8: {len(X_tr)} train / {len(X_te)} test, linear classifier per dictionary")
    print(f"{'model':<22}{'fraction learned':>18}{'test accuracy':>15}{'seconds':>9}")
    t0 = time.perf_counter()
    dense = LogisticRegression(max_iter=1000).fit(X_tr, y_tr)
    print(f"{'dense':<22}{1.0:>18.3f}{dense.score(X_te, y_te):>15.3f}{time.perf_counter() - t0:>9.2f}")
    for frac in args.fractions:
        t0 = time.perf_counter()
        model = make_pipeline(
            KernelDictionary("se", alpha_fraction=frac, random_state=args.seed),
            LogisticRegression(max_iter=1000),
        ).fit(X_tr, y_tr)
        kd = model[0]
        learned = kd.n_atoms_ / kd.n_features_in_
        acc = model.score(X_te, y_te)
        print(f"{'se alpha=' + str(frac):<22}{learned:>18.3f}{acc:>15.3f}{time.perf_counter() - t0:>9.2f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
