"""Benchmark: training throughput of PredictedConvNetClassifier, dense vs predicted.

Trains on random 32x32x3 images (throughput does not depend on the
pixels) and prints images/second for dictionary=None (dense filters) and for
the se dictionary at alpha_fraction 0.25, plus a bare torch loop over the
same dense network as the reference, all in this one process, each after
an untimed warm-up fit on 256 images.

    python benchmarks/bench_conv.py              # smaller network (CPU-sized)
    python benchmarks/bench_conv.py --paper      # the paper's CIFAR-10 network
    python benchmarks/bench_conv.py --paper --device cuda --n 10000 --epochs 3
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

SMALL = dict(conv_layers=((16, 5, 2), (32, 5, 2)), dense_layers=(100,), n_columns=(1, 1, 5))
PAPER = dict(conv_layers=((48, 8, 2), (64, 8, 2), (64, 5, 2)), dense_layers=(500,),
             n_columns=(1, 1, 1, 5))


def run_skpred(arch, dictionary, alpha, X, y, epochs, device, batch):
    from sklearn.exceptions import ConvergenceWarning

    from skpred import PredictedConvNetClassifier

    clf = PredictedConvNetClassifier(
        **arch, image_shape=(32, 32, 3), dictionary=dictionary, alpha_fraction=alpha,
        solver="sgd", learning_rate_init=0.01, momentum=0.9, nesterovs_momentum=False,
        alpha=1e-4 * batch, batch_size=batch, max_iter=1,  # torch's weight decay 1e-4
        device=device, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)  # build and warm up (one epoch)
        clf.set_params(warm_start=True, max_iter=epochs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        clf.fit(X, y)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
    return len(X) * epochs / dt, clf.fraction_learned_, clf.n_dynamic_params_


def run_torch(arch, X, y, epochs, device, batch):
    """The dense network in a bare loop, same layers and optimiser."""
    torch.manual_seed(0)  # benchmark script, not library code
    layers, c, side = [], 3, 32
    for f, k, p in arch["conv_layers"]:
        layers += [torch.nn.Conv2d(c, f, k, padding="same"), torch.nn.ReLU(), torch.nn.MaxPool2d(p)]
        c, side = f, side // p
    n = c * side * side
    layers.append(torch.nn.Flatten())
    for d in arch["dense_layers"]:
        layers += [torch.nn.Linear(n, d), torch.nn.ReLU()]
        n = d
    layers.append(torch.nn.Linear(n, 10))
    model = torch.nn.Sequential(*layers).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    Xg = torch.tensor(X, device=device).reshape(-1, 32, 32, 3).permute(0, 3, 1, 2)
    yg = torch.tensor(y, device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        order = torch.randperm(len(Xg), device=device)
        for s in range(0, len(Xg), batch):
            idx = order[s:s + batch]
            opt.zero_grad()
            loss_fn(model(Xg[idx]), yg[idx]).backward()
            opt.step()

    epoch()  # warm up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(epochs):
        epoch()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(X) * epochs / (time.perf_counter() - t)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper", action="store_true", help="the paper's CIFAR-10 network")
    parser.add_argument("--n", type=int, default=2000, help="number of random images")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="where to write the JSON ('' for nowhere)")
    args = parser.parse_args(argv)
    arch = PAPER if args.paper else SMALL
    rng = np.random.default_rng(0)
    X = rng.random((args.n, 32 * 32 * 3), dtype=np.float32)
    y = rng.integers(0, 10, args.n)
    name = "paper CIFAR-10 network" if args.paper else "small network"
    print(f"{name} {arch['conv_layers']} + dense {arch['dense_layers']}; {args.n} random 32x32x3 "
          f"images, {args.epochs} epochs, batch {args.batch}, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    # One untimed warm-up fit per peer (first calls: thread pools, oneDNN
    # kernels), so the first peer timed does not pay them for the others.
    run_torch(arch, X[:256], y[:256], 1, args.device, args.batch)
    for d, a in ((None, 1.0), ("se", 0.25)):
        run_skpred(arch, d, a, X[:256], y[:256], 1, args.device, args.batch)
    ref = run_torch(arch, X, y, args.epochs, args.device, args.batch)
    rows = [("bare torch loop (dense)", ref, 1.0, None)]
    for label, d, a in (("skpred dense (None)", None, 1.0), ("skpred se a=0.25", "se", 0.25)):
        ips, frac, dyn = run_skpred(arch, d, a, X, y, args.epochs, args.device, args.batch)
        rows.append((label, ips, frac, dyn))
    print()
    table = [[label, f"{ips:.0f}", f"{ips / ref:.2f}x", f"{frac:.3f}",
              f"{dyn:,}" if dyn is not None else "-"] for label, ips, frac, dyn in rows]
    device = torch.device(args.device).type
    emit(f"conv_{'paper' if args.paper else 'small'}" + ("" if device == "cpu" else f"_{device}"),
         ["model", "images/s", "vs torch loop", "fraction learned", "dynamic weights"], table,
         [dict(model=label, images_per_second=ips, fraction_learned=frac, dynamic_weights=dyn)
          for label, ips, frac, dyn in rows],
         "python benchmarks/bench_conv.py" + (" --paper" if args.paper else "")
         + f" --n {args.n} --epochs {args.epochs} --device {args.device}", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
