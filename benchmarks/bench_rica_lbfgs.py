"""Benchmark: PredictedRICA's L-BFGS against a bare torch L-BFGS on the same
RICA objective, in one process.

The issue's grid: 50,000 whitened 8x8 patches of the sample photos, k = 64
and 128 features, alpha 1.0 (plain RICA, no dictionary) and 0.5 (se
dictionary, one alpha per feature), 50 iterations with no early stop, the
same strong Wolfe L-BFGS settings. Equal work: the bare loop starts from
PredictedRICA's own initial weights (and, at alpha 0.5, runs the same
factored objective ``W^T = U V`` with PredictedRICA's fixed U), so both
take the same iterations and evaluate the objective the same number of
times (counted). The bare loop's time is its loop only (no validation, no
dictionary building: that is PredictedRICA's set-up, which its whole-fit
time includes, so the ratio is an upper bound on the overhead). Each pair
runs twice; the second is reported (the first pays first-call costs).

    python benchmarks/bench_rica_lbfgs.py [--n 50000] [--iterations 50] [--json PATH]
"""

import argparse
import os
import sys
import time

import torch

from skpred import PredictedRICA

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402
from bench_rica import patches  # noqa: E402

SPARSITY = 0.1


def objective(W, X):
    """The RICA objective written out here (not skpred's function)."""
    Z = X @ W.t()
    return (SPARSITY * torch.log(torch.cosh(Z)).sum(1)
            + 0.5 * ((Z @ W - X) ** 2).sum(1)).mean()


def estimator(k, alpha, iterations):
    return PredictedRICA(k, dictionary=None if alpha == 1.0 else "se", alpha_fraction=alpha,
                         max_iter=iterations, tol=0.0, device="cpu", random_state=0)


def bare(X, k, alpha, iterations):
    """The bare loop from PredictedRICA's starting point: (seconds, objective, evaluations)."""
    layer = estimator(k, alpha, 0).fit(X).layer_  # the start (and U), untimed
    X_t = torch.tensor(X)
    if alpha == 1.0:
        W0 = layer.weight.detach().clone()
        params = [W0.requires_grad_(True)]

        def weight():
            return params[0]
    else:
        U = layer.dictionaries.detach().clone()  # (C, d, a), fixed
        params = [layer.V.detach().clone().requires_grad_(True)]  # (C, a, 1)

        def weight():
            return torch.bmm(U, params[0])[:, :, 0]  # row c: feature c = U_c v_c

    opt = torch.optim.LBFGS(params, lr=1, max_iter=iterations, max_eval=25 * iterations,
                            history_size=20, tolerance_grad=1e-9, tolerance_change=0.0,
                            line_search_fn="strong_wolfe")
    evaluations = [0]

    def closure():
        evaluations[0] += 1
        opt.zero_grad()
        f = objective(weight(), X_t)
        f.backward()
        return f

    t = time.perf_counter()
    opt.step(closure)
    dt = time.perf_counter() - t
    with torch.no_grad():
        return dt, objective(weight(), X_t).item(), evaluations[0]


def ours(X, k, alpha, iterations):
    """The whole fit: (seconds, objective, evaluations, iterations)."""
    est = estimator(k, alpha, iterations)
    evaluations = [0]
    original = torch.optim.LBFGS.step

    def counting_step(self, closure):
        def counted():
            evaluations[0] += 1
            return closure()
        return original(self, counted)

    torch.optim.LBFGS.step = counting_step
    try:
        t = time.perf_counter()
        est.fit(X)
        dt = time.perf_counter() - t
    finally:
        torch.optim.LBFGS.step = original
    with torch.no_grad():
        f = objective(torch.tensor(est.components_, dtype=torch.float32), torch.tensor(X)).item()
    return dt, f, evaluations[0], est.n_iter_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--json", default=None, help="where to write the JSON ('' for nowhere)")
    args = parser.parse_args(argv)
    X = patches(args.n)
    print(f"{X.shape[0]} whitened 8x8 patches, {args.iterations} L-BFGS iterations, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows, data = [], []
    for k in (64, 128):
        for alpha in (1.0, 0.5):
            for _ in range(2):  # the second run is the one reported
                tb, fb, eb = bare(X, k, alpha, args.iterations)
                to, fo, eo, it = ours(X, k, alpha, args.iterations)
            label = "plain RICA" if alpha == 1.0 else "se"
            rows.append([k, f"{alpha} ({label})", it, f"{eb} / {eo}", f"{tb:.2f}", f"{to:.2f}",
                         f"{to / tb:.2f}x", f"{fb:.4f} / {fo:.4f}"])
            data.append(dict(k=k, alpha=alpha, iterations=it, bare_evaluations=eb,
                             evaluations=eo, bare_seconds=tb, seconds=to, ratio=to / tb,
                             bare_objective=fb, objective=fo))
    emit("rica_lbfgs", ["k", "alpha", "iterations", "evaluations (bare / ours)",
                        "bare torch L-BFGS s", "PredictedRICA fit s", "ratio",
                        "objective (bare / ours)"],
         rows, data, "python benchmarks/bench_rica_lbfgs.py", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
