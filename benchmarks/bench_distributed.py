"""Benchmark: data-parallel training, 1 process against 2 workers, dense
against predicted; seconds per epoch and bytes sent per step.

The paper's 784-500-500-10 sigmoid MLP (``PAPER_MLP_SETTINGS`` with 1
pretraining epoch per layer and ``--epochs`` fine-tuning epochs) on the
bundled MNIST digits (or ``--data`` MNIST): dense, and SE-Emp at alpha
0.05 with 10 columns. Every row does the same work (same data, epochs,
global minibatch of 100): "1 process" is a plain ``fit`` with all the
machine's threads; "2 workers" is ``skpred.distributed.fit`` (gloo over
loopback, each worker half the threads). Columns: seconds per
fine-tuning epoch (the mean of ``history_`` durations), end-to-end wall
seconds (dictionaries, pretraining and, for workers, process start-up
included), bytes all-reduced per step, and the dense network's bytes
per step over this row's. Writes ``benchmarks/results/distributed.json``
beside the printed table.

    python benchmarks/bench_distributed.py [--epochs 3] [--data MNIST_DIR]
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402


def one_row(label, est, n_workers, X, y):
    from skpred import distributed

    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if n_workers == 1:
            fitted = est.fit(X, y)
        else:
            fitted = distributed.fit(est, X, y, n_workers=n_workers)
    wall = time.perf_counter() - t
    epochs = [r["duration"] for r in fitted.history_ if r["phase"] == "fine-tune"]
    learned = sum(p.numel() for p in fitted.module_.parameters() if p.requires_grad)
    comm = getattr(fitted, "communication_", None)
    dense = sum(l.weight.numel() + l.bias.numel() for l in fitted.module_.weight_layers())
    return dict(model=label, workers=n_workers, seconds_per_epoch=float(np.mean(epochs)),
                wall_seconds=wall, learned_scalars=int(learned),
                bytes_per_step=comm["bytes_per_step"] if comm else 0,
                bytes_total=comm["gradient_bytes"] + comm["once_bytes"] + comm["other_bytes"]
                if comm else 0,
                dense_over_this=(4 * dense) / (4 * learned),
                train_accuracy=float(fitted.score(X, y)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="MNIST IDX folder (default: bundled digits)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", default=None, help="where to write the JSON ('' for nowhere)")
    args = p.parse_args(argv)

    import torch

    from skpred import PAPER_MLP_SETTINGS, PredictedMLPClassifier
    from skpred.datasets import load_mnist

    X, y = (load_mnist(args.data).data, load_mnist(args.data).target) if args.data \
        else load_mnist(return_X_y=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(X)} digits, "
          f"{args.epochs} fine-tuning epochs, batch 100")
    base = dict(PAPER_MLP_SETTINGS, pretrain_epochs=1, max_iter=args.epochs, device="cpu",
                random_state=0)
    models = [("dense", PredictedMLPClassifier(**dict(base, dictionary=None))),
              ("SE-Emp a=0.05, 10 columns",
               PredictedMLPClassifier(**dict(base, alpha_fraction=0.05, n_columns=10)))]
    rows = [one_row(label, est, n, X, y) for label, est in models for n in (1, 2)]
    table = [[r["model"], r["workers"], f"{r['seconds_per_epoch']:.2f}",
              f"{r['wall_seconds']:.1f}", f"{r['bytes_per_step']:,}" if r["workers"] > 1 else "-",
              f"{r['dense_over_this']:.1f}x", f"{r['train_accuracy']:.4f}"] for r in rows]
    emit("distributed", ["model", "workers", "s / epoch", "wall s", "bytes / step",
                         "dense bytes / this", "train acc"], table, rows,
         "python benchmarks/bench_distributed.py", args.json)


if __name__ == "__main__":
    main()
