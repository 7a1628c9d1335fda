"""Benchmark: PredictedRICA against FastICA and MiniBatchDictionaryLearning.

On the same normalised, ZCA-whitened 8x8 grayscale patches of scikit-learn's
sample photos (50,000 by default), fits, in this one process:
PredictedRICA at alpha_fraction 1.0 (ordinary RICA, no dictionary), 0.5 and
0.25 (se dictionary, one alpha per feature), FastICA (complete only, so only
at 64 components) and MiniBatchDictionaryLearning, for 64 and 128
components. Prints fit seconds, the ratio to ordinary RICA's time, the work
each did (iterations or epochs, and its stopping rule), and the RICA
objective (sparsity 0.1, log cosh) of every method's features, each at its
best overall scale: the objective depends on the features' scale, so every
method's W (RICA's too) is scored as ``min_s f(s W)`` (a bounded scalar
search). The objective of W = 0 is printed as the floor any method must
beat.

    python benchmarks/bench_rica.py [--n 50000] [--max-iter 100]
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_sample_images
from sklearn.decomposition import FastICA, MiniBatchDictionaryLearning

from skpred import PredictedRICA, ZCAWhitening
from skpred.patches import normalize_patches, sample_patches

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402


def image_patches(n, seed=0):
    """n normalised 8x8 grayscale patches of scikit-learn's two sample photos."""
    images = np.stack([im.mean(-1) for im in load_sample_images().images]).reshape(2, -1) / 255.0
    return normalize_patches(sample_patches(images, (427, 640, 1), 8, n, random_state=seed), 1e-4)


def patches(n, seed=0):
    """The same, ZCA-whitened (epsilon 0.1), float32: what every RICA benchmark fits."""
    return ZCAWhitening(epsilon=0.1).fit_transform(image_patches(n, seed)).astype(np.float32)


def objective(W, X, sparsity=0.1):
    """The RICA objective (Le et al. 2011), written here from the paper so
    every method is scored by the same formula, none by its own code:
    sparsity * sum_j log cosh(W_j x) + 1/2 ||W^T W x - x||^2, sample mean."""
    W, X = np.asarray(W, dtype=np.float64), np.asarray(X, dtype=np.float64)
    Z = X @ W.T
    logcosh = np.logaddexp(Z, -Z) - np.log(2.0)
    return float(np.mean(sparsity * logcosh.sum(1) + 0.5 * ((Z @ W - X) ** 2).sum(1)))


def best_scaled(W, X):
    """min over s > 0 of f(s W): every method on the same scale."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda s: objective(s * W, X), bounds=(1e-3, 10.0), method="bounded",
                          options={"xatol": 1e-4})
    return min(res.fun, objective(W, X)), float(res.x)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="where to write the JSON ('' for nowhere)")
    args = parser.parse_args(argv)
    X = patches(args.n)
    print(f"{args.n} whitened 8x8 patches; RICA: L-BFGS, {args.max_iter} iterations; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    print(f"W = 0 scores {objective(np.zeros((1, X.shape[1])), X):.4f} (half the mean squared norm)")
    print()
    rows, data = [], []
    for k in (64, 128):
        runs = []
        for label, d, a in (("PredictedRICA a=1.0 (plain)", None, 1.0),
                            ("PredictedRICA se a=0.5", "se", 0.5),
                            ("PredictedRICA se a=0.25", "se", 0.25)):
            est = PredictedRICA(k, dictionary=d, alpha_fraction=a, max_iter=args.max_iter,
                                tol=0, random_state=0, device=args.device)
            t = time.perf_counter()
            est.fit(X)
            runs.append((label, f"{est.n_iter_} L-BFGS its", time.perf_counter() - t,
                         est.components_))
        if k <= X.shape[1]:
            est = FastICA(k, whiten=False, max_iter=args.max_iter, random_state=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = time.perf_counter()
                est.fit(X)
                dt = time.perf_counter() - t
            runs.append(("FastICA (whiten=False)", f"{est.n_iter_} its, tol 1e-4", dt,
                         est.components_))
        est = MiniBatchDictionaryLearning(k, batch_size=256, max_iter=5, random_state=0)
        t = time.perf_counter()
        est.fit(X)
        dt = time.perf_counter() - t
        runs.append(("MiniBatchDictionaryLearning", "5 epochs", dt, est.components_))
        ref = runs[0][2]
        for label, work, sec, W in runs:
            obj, scale = best_scaled(W, X)
            rows.append([label, k, work, f"{sec:.2f}", f"{sec / ref:.2f}x",
                         f"{obj:.4f} ({scale:.2f})"])
            data.append(dict(method=label, k=k, work=work, seconds=sec, objective=obj,
                             scale=scale))
            print(f"  {rows[-1]}", flush=True)
    emit("rica", ["method", "k", "work", "seconds", "vs RICA a=1", "objective at best scale (s)"],
         rows, data, f"python benchmarks/bench_rica.py --n {args.n} --max-iter {args.max_iter}",
         args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
