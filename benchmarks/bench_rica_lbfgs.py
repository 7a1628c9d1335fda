"""Benchmark: PredictedRICA's L-BFGS against a bare torch L-BFGS on the same
RICA objective, in one process.

20,000 whitened 8x8 patches of the sample photos, 64 features, no
dictionary (plain RICA), 50 iterations with no early stop, the same strong
Wolfe L-BFGS settings; each timed twice (the second run is reported too, so
a warm-up effect shows). Equal work: the same iterations from the same kind
of start; the objectives printed show they end at the same place.

    python benchmarks/bench_rica_lbfgs.py
"""

import time

import numpy as np
import torch
from sklearn.datasets import load_sample_images

from skpred import PredictedRICA, ZCAWhitening
from skpred._image import normalize_patches, sample_patches
from skpred._rica import rica_objective


def patches(n=20000):
    images = np.stack([im.mean(-1) for im in load_sample_images().images]).reshape(2, -1) / 255.0
    P = normalize_patches(sample_patches(images, (427, 640, 1), 8, n, random_state=0), 1e-4)
    return ZCAWhitening(0.1).fit_transform(P).astype(np.float32)


def bare(X, iterations):
    g = torch.Generator().manual_seed(0)
    W = ((torch.rand(64, 64, generator=g) * 2 - 1) / 8).requires_grad_(True)
    X_t = torch.tensor(X)
    opt = torch.optim.LBFGS([W], lr=1, max_iter=iterations, max_eval=25 * iterations,
                            history_size=20, tolerance_grad=1e-9, tolerance_change=0.0,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        f = rica_objective(W, X_t, 0.1)
        f.backward()
        return f

    t = time.perf_counter()
    opt.step(closure)
    return time.perf_counter() - t, rica_objective(W, X_t, 0.1).item()


def ours(X, iterations):
    t = time.perf_counter()
    rica = PredictedRICA(64, dictionary=None, max_iter=iterations, tol=0.0, device="cpu",
                         random_state=0).fit(X)
    return time.perf_counter() - t, rica.objective_curve_[-1]


def main():
    X = patches()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {X.shape} patches, "
          f"k=64, 50 iterations")
    print("| run | bare torch L-BFGS s | PredictedRICA s | ratio | objectives |")
    print("|---|---|---|---|---|")
    for run in (1, 2):
        (tb, fb), (to, fo) = bare(X, 50), ours(X, 50)
        print(f"| {run} | {tb:.2f} | {to:.2f} | {to / tb:.2f}x | {fb:.4f} / {fo:.4f} |")


if __name__ == "__main__":
    main()
