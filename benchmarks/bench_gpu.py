"""Benchmark: seconds per training epoch of the paper's MLP on a GPU, skpred
against a bare torch loop over the same dense network, in one process.

The paper's 784-500-500-10 sigmoid network (PAPER_MLP_SETTINGS: SGD with
momentum, batches of 100) on MNIST-sized random data (60,000 x 784; the
time does not depend on the pixels), data on the device. skpred's epoch
time is ``(fit with 1 + E epochs - fit with 1 epoch) / E``, so dictionary
building and pretraining are left out of this per-epoch figure and reported
separately as the set-up time. The CIFAR-10 network is timed by
``bench_conv.py --paper --device cuda``.

    python benchmarks/bench_gpu.py                 # cuda when present
    python benchmarks/bench_gpu.py --device cpu --n 10000
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def bare_loop(X, y, epochs, device, batch=100):
    """The dense network, plain torch, doing what skpred's dense row does."""
    torch.manual_seed(0)  # benchmark script, not library code
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 500), torch.nn.Sigmoid(), torch.nn.Linear(500, 500),
        torch.nn.Sigmoid(), torch.nn.Linear(500, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.7, weight_decay=5e-5)
    Xg = torch.tensor(X, device=device)
    yg = torch.tensor(y, device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    hidden = [model[0], model[2]]

    def epoch():
        # The same work per step as PAPER_MLP_SETTINGS: max column norm on
        # the hidden layers and the learning rate divided after each batch.
        order = torch.randperm(len(Xg), device=device)
        for s in range(0, len(Xg), batch):
            idx = order[s:s + batch]
            opt.zero_grad()
            loss_fn(model(Xg[idx]), yg[idx]).backward()
            opt.step()
            with torch.no_grad():
                for layer in hidden:
                    layer.weight.renorm_(2, 0, 1.9365)
            for group in opt.param_groups:
                group["lr"] /= 1.00004

    epoch()  # warm up
    sync(device)
    t = time.perf_counter()
    for _ in range(epochs):
        epoch()
    sync(device)
    return (time.perf_counter() - t) / epochs


def skpred_epoch(X, y, epochs, device, **params):
    from sklearn.exceptions import ConvergenceWarning

    from skpred import PAPER_MLP_SETTINGS, PredictedMLPClassifier

    def fit(n):
        clf = PredictedMLPClassifier(**dict(PAPER_MLP_SETTINGS, pretrain_epochs=1, max_iter=n,
                                            tol=0.0, n_iter_no_change=n + 1, device=device,
                                            random_state=0, **params))
        sync(device)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        sync(device)
        return time.perf_counter() - t

    fit(1)  # warm up (CUDA context, kernels)
    one = fit(1)
    many = fit(1 + epochs)
    return (many - one) / epochs, one


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n", type=int, default=60000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", default=None, help="where to write the JSON ('' for nowhere)")
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    X = rng.random((args.n, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.n)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"{name}, torch {torch.__version__}; {args.n} x 784, batch 100, {args.epochs} epochs")
    ref = bare_loop(X, y, args.epochs, args.device)
    rows = [["bare torch loop (dense)", f"{ref:.3f}", "1.00x", "-"]]
    data = [dict(model=rows[0][0], sec_per_epoch=ref)]
    for label, params in (("skpred dense (None)", dict(dictionary=None)),
                          ("skpred SE-Emp a=0.1, 1 column", dict(alpha_fraction=0.1, n_columns=1)),
                          ("skpred SE-Emp a=0.1, 10 columns",
                           dict(alpha_fraction=0.1, n_columns=10))):
        per_epoch, setup = skpred_epoch(X, y, args.epochs, args.device, **params)
        rows.append([label, f"{per_epoch:.3f}", f"{per_epoch / ref:.2f}x", f"{setup:.2f}"])
        data.append(dict(model=label, sec_per_epoch=per_epoch, setup_plus_one_epoch=setup))
        print(f"  {rows[-1]}", flush=True)
    device = torch.device(args.device).type
    emit("gpu_mlp" if device == "cuda" else f"gpu_mlp_on_{device}",
         ["model", "s/epoch", "vs bare torch", "set-up + 1 epoch s"], rows, data,
         f"python benchmarks/bench_gpu.py --device {args.device} --n {args.n}", args.json)


if __name__ == "__main__":
    main()
