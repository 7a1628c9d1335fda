"""Benchmark: operators issued per training step, predicted against dense.

A training step at small batches on a GPU is bound by kernel launches and
host time, not arithmetic (on an H200, 0.1 ms of GPU work in a 1.26 ms
step of the paper's MLP at batch 100), so what decides predicted against
dense there is how many operators a step issues. This counts them on the
CPU with ``torch.profiler`` (``skpred._opcount.top_level_ops``: every ATen
operator called by Python or by autograd, not those called inside another
operator); it times nothing.

Per step = (operators of an E2-epoch fit - those of an E1-epoch fit) /
the steps between them, so set-up (dictionaries, the optimizer, the
pooling computed once) cancels and per-epoch work (the shuffle, the one
loss sync) is spread over the epoch's steps, for every row alike.

Rows: a bare torch loop doing the paper MLP's step (SGD, classical momentum
0.7, weight decay 1e-4 on the weights only, the rate divided by 1.00004
after every batch with ``LambdaLR``, ``renorm_`` of the hidden weights at
1.9365), skpred's dense network and SE-Emp at alpha 0.1 with 1 and 10
columns (``PAPER_MLP_SETTINGS`` without pretraining, which does not change
a fine-tuning step), on 1,000 of the bundled MNIST digits at batch 100;
and the paper's CIFAR-10 conv net (``PAPER_CONVNET_SETTINGS``), dense and
se at alpha 0.25, on 256 random 32x32x3 images at batch 128.

Usage::

    python benchmarks/bench_step_ops.py          # writes results/step_ops.json
    python benchmarks/bench_step_ops.py --json ''
"""

import argparse
import os
import sys
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402

from skpred._opcount import top_level_ops  # noqa: E402

SIZES = (500, 500)


def mnist_1000():
    from skpred.datasets import load_mnist

    X, y = load_mnist(return_X_y=True)
    order = np.random.RandomState(0).permutation(len(X))[:1000]
    return X[order], y[order]


def bare_loop(X, y, epochs, batch=100):
    """The paper MLP's fine-tuning step as a torch user writes it."""
    torch.manual_seed(0)  # benchmark script, not library code
    layers = [torch.nn.Linear(X.shape[1], SIZES[0]), torch.nn.Linear(*SIZES),
              torch.nn.Linear(SIZES[1], 10)]
    model = torch.nn.Sequential(layers[0], torch.nn.Sigmoid(), layers[1], torch.nn.Sigmoid(),
                                layers[2])
    opt = torch.optim.SGD([{"params": [l.weight for l in layers], "weight_decay": 1e-4},
                           {"params": [l.bias for l in layers], "weight_decay": 0.0}],
                          lr=0.01, momentum=0.7)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.00004 ** -k)
    Xt, yt = torch.tensor(X), torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(0)

    def run():
        for _ in range(epochs):
            order = torch.randperm(len(Xt), generator=g)
            total = torch.zeros(())
            for s in range(0, len(Xt), batch):
                idx = order[s:s + batch]
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    for layer in layers[:-1]:
                        layer.weight.renorm_(2, 0, 1.9365)
                    total += loss.detach() * len(idx)
            total.item()

    return run


def _fitter(cls, settings, X, y):
    clf = cls(**settings)

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)

    return run


def skpred_mlp(X, y, epochs, **params):
    from skpred import PAPER_MLP_SETTINGS, PredictedMLPClassifier

    return _fitter(PredictedMLPClassifier, dict(PAPER_MLP_SETTINGS, pretrain=False,
                                                max_iter=epochs, random_state=0, device="cpu",
                                                **params), X, y)


def skpred_conv(X, y, epochs, **params):
    from skpred import PAPER_CONVNET_SETTINGS, PredictedConvNetClassifier

    return _fitter(PredictedConvNetClassifier,
                   dict(PAPER_CONVNET_SETTINGS, image_shape=(32, 32, 3), max_iter=epochs,
                        n_iter_no_change=np.inf, random_state=0, device="cpu", **params), X, y)


def per_step(make, X, y, steps_per_epoch, epochs=(1, 3)):
    """Operators per step from two fits of ``epochs[0]`` and ``epochs[1]``
    epochs; also returns the second fit's counts by operator."""
    first = top_level_ops(make(X, y, epochs[0]))
    second = top_level_ops(make(X, y, epochs[1]))
    steps = (epochs[1] - epochs[0]) * steps_per_epoch
    diff = {k: (second[k] - first[k]) / steps for k in set(first) | set(second)}
    return sum(second.values()) - sum(first.values()), steps, {
        k: v for k, v in sorted(diff.items(), key=lambda kv: -kv[1]) if v}


ROWS = {
    "bare torch loop (dense)": ("mlp", bare_loop, {}),
    "skpred dense": ("mlp", skpred_mlp, dict(dictionary=None)),
    "skpred SE-Emp a=0.1, 1 column": ("mlp", skpred_mlp, dict(alpha_fraction=0.1,
                                                             n_columns=1)),
    "skpred SE-Emp a=0.1, 10 columns": ("mlp", skpred_mlp, dict(alpha_fraction=0.1,
                                                               n_columns=10)),
    "skpred CIFAR net dense": ("conv", skpred_conv, dict(dictionary=None)),
    "skpred CIFAR net se a=0.25": ("conv", skpred_conv, dict(alpha_fraction=0.25)),
}
REFERENCE = {"mlp": "skpred dense", "conv": "skpred CIFAR net dense"}


def _k(n):
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def routes(epochs=100):
    """The ordering each paper MLP layer runs (``PredictedLinear._route``;
    for layer 1's training, whether the estimator pools X once, by
    ``skpred._mlp.pool_once`` itself), with the multiply-adds per sample
    of both orderings: training at batch 100 and 4,096 (forward and
    backward; layer 1's input needs no gradient, layer 2's does) and
    evaluation (W cached)."""
    from skpred._mlp import pool_once
    from skpred.nn import PredictedLinear

    layers = [("layer 1: 784 -> 500, SE, 78 atoms", 784, 500, 78, False),
              ("layer 2: 500 -> 500, Emp, 50 atoms", 500, 500, 50, True)]
    rows, data = [], []
    for name, n_in, n_out, a, input_grad in layers:
        for C in (1, 10):
            layer = PredictedLinear(n_in, n_out, torch.rand(C, n_in, a))
            cells = []
            for batch in (100, 4096):
                costs = layer._costs(batch, training=True, input_grad=input_grad)
                route = layer._route(batch, True, input_grad)
                cell = f"{route} (pool {_k(costs['pool'])}, dense {_k(costs['dense'])})"
                if not input_grad and pool_once(layer, torch.zeros(1, n_in), epochs,
                                                batch) is not None:
                    once = layer.pool_once_cost(epochs, batch)
                    cell = (f"pooled once ({_k(once['pool once'] / epochs)} a step over "
                            f"{epochs} epochs; else {cell})")
                cells.append(cell)
                data.append(dict(layer=name, columns=C, batch=batch, training=True,
                                 route=route, costs=costs))
            costs = layer._costs(None)
            route = layer._route(None)
            cells.append(f"{route} (pool {_k(costs['pool'])}, dense {_k(costs['dense'])})")
            data.append(dict(layer=name, columns=C, batch=None, training=False, route=route,
                             costs=costs))
            rows.append([name, str(C)] + cells)
    return rows, data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None,
                        help="where to write the JSON (default benchmarks/results/"
                             "step_ops.json; '' for nowhere)")
    parser.add_argument("--only", default=None, help="rows whose name contains this")
    parser.add_argument("--by-op", action="store_true", help="print each row's operators")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # counts do not depend on it; keeps the run short and quiet
    X, y = mnist_1000()
    images = np.random.RandomState(0).rand(256, 32 * 32 * 3).astype(np.float32)
    labels = np.arange(256) % 10
    data = {"mlp": (X, y, 10), "conv": (images, labels, 2)}
    results = {}
    for name, (kind, make, params) in ROWS.items():
        if args.only and args.only not in name:
            continue
        Xd, yd, steps = data[kind]
        total, n_steps, by_op = per_step(lambda X, y, e: make(X, y, e, **params), Xd, yd, steps)
        results[name] = dict(kind=kind, ops_per_step=total / n_steps, steps=n_steps, by_op=by_op)
        print(f"  {name}: {total / n_steps:.1f} ops/step", flush=True)
        if args.by_op:
            print("    " + ", ".join(f"{k[6:]} {v:g}" for k, v in by_op.items()))
    rows = []
    for name, r in results.items():
        ref = results.get(REFERENCE[r["kind"]])
        r["vs_dense"] = r["ops_per_step"] / ref["ops_per_step"] if ref else None
        rows.append([name, f"{r['ops_per_step']:.1f}",
                     f"{r['vs_dense']:.2f}x" if r["vs_dense"] else "n/a"])
    emit("step_ops", ["model", "ops / step", "vs skpred dense"], rows, results,
         "python benchmarks/bench_step_ops.py", "" if args.only else args.json)
    if not args.only:
        route_rows, route_data = routes()
        emit("routes", ["layer", "columns", "training, batch 100", "training, batch 4,096",
                        "evaluation"], route_rows, route_data,
             "python benchmarks/bench_step_ops.py",
             args.json if args.json == "" else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
