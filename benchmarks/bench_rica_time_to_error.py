"""Benchmark: time for PredictedRICA and MiniBatchDictionaryLearning to
reach the same reconstruction error on held-out patches, in one process.

50,000 whitened 8x8 patches of the sample photos to learn from and 5,000
others (another draw) held out, whitened with the same ZCA. Each method is
scored on the held-out patches with its own encoder, two ways:

- reconstruction error, as a fraction of the held-out energy,
  ``sum ||x_hat - x||^2 / sum ||x||^2``; RICA: ``x_hat = W^T W x`` (its
  objective's reconstruction term); dictionary learning: ``x_hat = c D``
  with the code ``c`` its own objective gives (lasso at its fitting
  ``alpha``, ``lasso_lars``). This is the criterion the issue names, but
  alone it says little: a random complete W already reconstructs
  (near-)orthogonally, and a less sparse code reconstructs better.
- sparse-coding cost, dictionary learning's objective per patch,
  ``1/2 ||x - c D||^2 + alpha |c|_1`` with unit-norm atoms: for RICA the
  atoms are its normalised features ``W_k / ||W_k||`` and the code
  ``c_k = (W_k x) ||W_k||`` (so that ``c D = W^T W x``): reconstruction
  and sparsity together, on the same scale for both.

MiniBatchDictionaryLearning (batch 256, its default ``alpha`` = 1) is
fitted from scratch for 1, 2, ... ``--epochs`` epochs (``max_iter``), each
fit timed whole (its scoring is not timed); the scores of the last are the
targets. PredictedRICA (L-BFGS) is fitted from scratch for 0 (its
random start), 1, 2, 3, 5, ... 100 iterations, each fit timed whole
(set-up included); its time to a target is that of the first fit that
reaches it. The ratio is RICA's time over dictionary learning's time to
the same score (dictionary learning's own: its first fit that reaches
its final score).

    python benchmarks/bench_rica_time_to_error.py [--n 50000] [--epochs 5] [--json PATH]
"""

import argparse
import os
import sys
import time

import numpy as np
from sklearn.decomposition import MiniBatchDictionaryLearning

from skpred import PredictedRICA, ZCAWhitening

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402
from bench_rica import image_patches  # noqa: E402

RICA_ITERATIONS = (0, 1, 2, 3, 5, 8, 13, 20, 30, 50, 75, 100)


def patch_sets(n, n_test):
    """Whitened patches to learn from and held out (another draw, the same ZCA)."""
    train, test = image_patches(n, seed=0), image_patches(n_test, seed=1)
    zca = ZCAWhitening(0.1).fit(train)
    return zca.transform(train).astype(np.float32), zca.transform(test).astype(np.float32)


def scores(X_hat, codes, X, alpha):
    """(reconstruction error as a fraction of the energy, sparse-coding cost per patch)."""
    sq = ((X_hat - X) ** 2).sum()
    cost = (0.5 * sq + alpha * np.abs(codes).sum()) / len(X)
    return float(sq / (X ** 2).sum()), float(cost)


def rica_scores(W, X, alpha):
    norms = np.linalg.norm(W, axis=1)
    Z = X @ W.T
    return scores(Z @ W, Z * norms, X, alpha)


def dictionary_learning(X, X_test, k, epochs, batch=256):
    """[(seconds of a fit from scratch, epochs, error, cost)] for 1..epochs."""
    trace = []
    for e in range(1, epochs + 1):
        est = MiniBatchDictionaryLearning(k, batch_size=batch, max_iter=e, random_state=0,
                                          transform_algorithm="lasso_lars")
        t = time.perf_counter()
        est.fit(X)
        dt = time.perf_counter() - t
        est.transform_alpha = est.alpha  # the code its objective uses
        codes = est.transform(X_test)
        trace.append((dt, e, *scores(codes @ est.components_, codes, X_test, est.alpha)))
    return trace, est.alpha


def rica(X, X_test, k, alpha, coding_alpha):
    """[(seconds of a fit from scratch, iterations, error, cost)]."""
    trace = []
    for m in RICA_ITERATIONS:
        est = PredictedRICA(k, dictionary=None if alpha == 1.0 else "se", alpha_fraction=alpha,
                            max_iter=m, tol=0.0, random_state=0, device="cpu")
        t = time.perf_counter()
        est.fit(X)
        trace.append((time.perf_counter() - t, m,
                      *rica_scores(est.components_, X_test, coding_alpha)))
    return trace


def first_hit(trace, column, target):
    """(seconds, work, score) of the first entry at most ``target`` in
    ``column`` (2: error, 3: cost), or None."""
    return next(((e[0], e[1], e[column]) for e in trace if e[column] <= target * (1 + 1e-12)),
                None)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--json", default=None, help="where to write the JSON ('' for nowhere)")
    args = parser.parse_args(argv)
    X, X_test = patch_sets(args.n, args.n_test)
    print(f"{len(X)} whitened 8x8 patches to learn from, {len(X_test)} held out")
    PredictedRICA(8, max_iter=1, device="cpu").fit(X[:500])  # first-call costs, untimed
    rows, data = [], []

    def cells(hit, best, ref, unit):
        if hit is None:
            return [f"{best:.4f}", f"not in {RICA_ITERATIONS[-1]} {unit}", "-", "not reached"]
        unit = unit[:-1] if hit[1] == 1 else unit  # "1 epoch", "1 it"
        return [f"{hit[2]:.4f}", f"{hit[1]} {unit}", f"{hit[0]:.2f}", f"{hit[0] / ref:.3f}x"]

    for k in (64, 128):
        mbdl, coding_alpha = dictionary_learning(X, X_test, k, args.epochs)
        targets = {2: mbdl[-1][2], 3: mbdl[-1][3]}
        refs = {c: first_hit(mbdl, c, targets[c]) for c in (2, 3)}
        rows.append([k, "MiniBatchDictionaryLearning",
                     *cells(refs[2], None, refs[2][0], "epochs")[:3], "1.00x",
                     *cells(refs[3], None, refs[3][0], "epochs")[:3], "1.00x"])
        data.append(dict(k=k, method="MiniBatchDictionaryLearning", trace=mbdl,
                         targets=targets, coding_alpha=coding_alpha))
        for alpha in (1.0, 0.5):
            trace = rica(X, X_test, k, alpha, coding_alpha)
            label = f"PredictedRICA a={alpha}" + (" (plain)" if alpha == 1.0 else " (se)")
            row = [k, label]
            for c in (2, 3):
                row += cells(first_hit(trace, c, targets[c]), min(e[c] for e in trace),
                             refs[c][0], "its")
            rows.append(row)
            data.append(dict(k=k, method=label, trace=trace, targets=targets))
            print(f"  {row}", flush=True)
    emit("rica_time_to_error",
         ["k", "method", "held-out error", "work", "seconds", "vs DL",
          "sparse-coding cost", "work", "seconds", "vs DL"],
         rows, data, "python benchmarks/bench_rica_time_to_error.py", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
