"""Benchmark: PredictedMLPClassifier against its peers on MNIST digits.

Trains the same 784-500-500-10 sigmoid network from a random start (SGD,
classical momentum 0.7, learning rate 0.1, batch 100, the same number of
epochs) with the paper's constraints on every peer that can take them:
weight decay with gradient 1e-4 W on the weights (the authors' ``5e-5 *
sum(W^2)``; biases not decayed) and a max norm of 1.9365 on each hidden
unit's weights after every step. The peers: scikit-learn's MLPClassifier
(``alpha`` = 1e-4 x 100; it has no max-norm: that row runs without it),
skorch's NeuralNetClassifier (weight decay on the weights' parameter group,
max-norm in a callback after every batch), a bare torch loop (``renorm_``),
PredictedMLPClassifier with dictionary=None (dense), and with ("se", "emp")
at alpha_fraction 0.25 and 0.1 with one column, 0.1 with 10 columns and
0.25 with 5 (max-norm on V, the authors' ``max_col_norm``). No peer
pretrains: skpred's set-up is its dictionaries (and the pooling computed
once).

All timings come from this one process, every peer treated alike: one
untimed 1-epoch warm-up on 200 samples (imports, first calls), then, three
times over with the peers taking turns, a 1-epoch and an E-epoch fit from
scratch; the table gives medians over the three: seconds per epoch
((t_E - t_1) / (E - 1)), its ratio to
skpred's dense network and to the bare torch loop, the set-up time
(t_1 - one epoch), the end-to-end fit time of E epochs, the break-even
epoch count (after how many epochs a predicted fit, set-up included,
takes less time than the dense one: set-up difference / per-epoch saving),
and the accuracy after exactly E epochs. Peak memory is measured
separately, each peer in a fresh child process (the growth of the peak
resident set size during a 1-epoch fit, after the data is loaded),
because a process's peak cannot be attributed to one of several fits.

Usage::

    python benchmarks/bench_mlp.py                 # bundled 5,000 MNIST digits
    python benchmarks/bench_mlp.py --data DIR      # the standard MNIST IDX files
    python benchmarks/bench_mlp.py --epochs 3 --no-memory

Needs the ``bench`` extra (skorch, mlxtend); a peer whose package is missing
is reported as skipped.
"""

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402

SIZES = (500, 500)
# The authors fine-tune at 0.01 after pretraining; from a random start that
# sigmoid network needs 0.1 to leave its initial plateau within a few epochs.
LR, MOMENTUM, BATCH = 0.1, 0.7, 100
DECAY = 1e-4  # gradient DECAY * W on the batch-mean loss (the authors' 5e-5 sum W^2)
MAX_NORM = 1.9365  # the authors' max_col_norm


def load(data, seed=0):
    from sklearn.model_selection import train_test_split

    from skpred.datasets import load_mnist

    b = load_mnist(data)
    if b.data_test is not None:
        return b.data, b.data_test, b.target, b.target_test
    return train_test_split(b.data, b.target, test_size=0.2, random_state=seed, stratify=b.target)


class DenseNet(torch.nn.Module):
    def __init__(self, n_in=784, n_out=10):
        super().__init__()
        self.l1 = torch.nn.Linear(n_in, SIZES[0])
        self.l2 = torch.nn.Linear(SIZES[0], SIZES[1])
        self.out = torch.nn.Linear(SIZES[1], n_out)

    def forward(self, x):
        return self.out(torch.sigmoid(self.l2(torch.sigmoid(self.l1(x)))))


# Each peer: one fit of exactly `epochs` epochs from scratch, timed end to
# end (dictionaries and pretraining included for skpred), no warm-up;
# returns (seconds, test accuracy). main() runs every peer the same way.

def run_sklearn(X, Xt, y, yt, epochs):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(SIZES, activation="logistic", solver="sgd", learning_rate_init=LR,
                        momentum=MOMENTUM, nesterovs_momentum=False, batch_size=BATCH,
                        alpha=DECAY * BATCH, max_iter=epochs, n_iter_no_change=epochs + 1, tol=0,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t = time.perf_counter()
        clf.fit(X, y)
        dt = time.perf_counter() - t
    return dt, clf.score(Xt, yt)


def _renorm_hidden(model):
    with torch.no_grad():
        for layer in (model.l1, model.l2):
            layer.weight.renorm_(2, 0, MAX_NORM)


def run_skorch(X, Xt, y, yt, epochs):
    from skorch import NeuralNetClassifier
    from skorch.callbacks import Callback

    class MaxNorm(Callback):
        def on_batch_end(self, net, batch=None, training=None, **kwargs):
            if training:
                _renorm_hidden(net.module_)

    torch.manual_seed(0)  # benchmark script, not library code
    net = NeuralNetClassifier(
        DenseNet, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.SGD,
        optimizer__lr=LR, optimizer__momentum=MOMENTUM, optimizer__weight_decay=DECAY,
        optimizer__param_groups=[("*.bias", {"weight_decay": 0.0})],
        batch_size=BATCH, max_epochs=epochs, train_split=None, iterator_train__shuffle=True,
        callbacks=[MaxNorm()], verbose=0, device="cpu",
    )
    t = time.perf_counter()
    net.fit(X, y.astype(np.int64))
    dt = time.perf_counter() - t
    return dt, float((net.predict(Xt) == yt).mean())


def run_torch(X, Xt, y, yt, epochs):
    torch.manual_seed(0)
    model = DenseNet()
    weights = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    biases = [p for n, p in model.named_parameters() if n.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": DECAY}, {"params": biases}],
                          lr=LR, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xg, yg = torch.tensor(X), torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(Xg), generator=g)
        for s in range(0, len(Xg), BATCH):
            idx = order[s:s + BATCH]
            opt.zero_grad()
            loss = loss_fn(model(Xg[idx]), yg[idx])
            loss.backward()
            opt.step()
            _renorm_hidden(model)
    dt = time.perf_counter() - t
    with torch.no_grad():
        acc = (model(torch.tensor(Xt)).argmax(1).numpy() == yt).mean()
    return dt, float(acc)


def _skpred(dictionary, alpha, columns=1):
    def run(X, Xt, y, yt, epochs):
        from sklearn.exceptions import ConvergenceWarning

        from skpred import PredictedMLPClassifier

        clf = PredictedMLPClassifier(
            SIZES, activation="sigmoid", dictionary=dictionary, alpha_fraction=alpha,
            n_columns=columns, solver="sgd",
            learning_rate_init=LR, momentum=MOMENTUM, nesterovs_momentum=False,
            batch_size=BATCH, alpha=DECAY * BATCH,  # gradient DECAY * W, as alpha
            max_norm=MAX_NORM, max_norm_on="V", pretrain=False, max_iter=epochs,
            tol=0.0, n_iter_no_change=epochs + 1, random_state=0, device="cpu",
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t = time.perf_counter()
            clf.fit(X, y)  # dictionaries and `epochs` epochs
            dt = time.perf_counter() - t
        return dt, clf.score(Xt, yt)

    return run


PEERS = {
    "sklearn MLPClassifier": run_sklearn,
    "skorch NeuralNetClassifier": run_skorch,
    "bare torch loop": run_torch,
    "skpred dense (None)": _skpred(None, 1.0),
    "skpred se-emp a=0.25": _skpred(("se", "emp"), 0.25),
    "skpred se-emp a=0.10": _skpred(("se", "emp"), 0.10),
    "skpred se-emp a=0.10, 10 cols": _skpred(("se", "emp"), 0.10, 10),
    "skpred se-emp a=0.25, 5 cols": _skpred(("se", "emp"), 0.25, 5),
}


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_child(name, data, queue):
    X, Xt, y, yt = load(data)
    try:
        # Reset the peak resident set size (Linux >= 4.0), so that the peak
        # below is the fit's own, not that of imports and data loading.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kb("VmRSS")
        PEERS[name](X, Xt, y, yt, 1)
        queue.put((_status_kb("VmHWM") - base) / 1024.0)
    except OSError:  # not Linux: fall back to the lifetime peak
        queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


def peak_memory_mb(name, data):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_memory_child, args=(name, data, q))
    p.start()
    mb = q.get()
    p.join()
    return mb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder of the MNIST IDX files")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3,
                        help="paired repeats; the table gives medians (default 3)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", default=None,
                        help="where to write the JSON (default benchmarks/results/mlp.json; '' "
                             "for nowhere)")
    args = parser.parse_args(argv)

    X, Xt, y, yt = load(args.data)
    print(f"data: {len(X)} train / {len(Xt)} test, 784-500-500-10 sigmoid, {args.epochs} epochs, "
          f"torch {torch.__version__} on CPU with {torch.get_num_threads()} threads")
    runs = {}
    for name, run in PEERS.items():
        try:
            run(X[:200], Xt[:50], y[:200], yt[:50], 1)  # warm-up for every peer (imports)
        except ImportError as exc:
            print(f"  {name}: skipped ({exc})")
            continue
        runs[name] = run
    samples = {name: [] for name in runs}
    for rep in range(args.repeats):
        # The same for every peer: a 1-epoch fit and an E-epoch fit, each
        # from scratch; per-epoch time is their difference over E - 1, so
        # set-up (and any first-call cost) is in neither peer's epoch time
        # and in every peer's end-to-end time. Peers take turns, and each
        # number is the median over the repeats (this machine's timings
        # vary by about 10% from one run to the next).
        for name, run in runs.items():
            t1, _ = run(X, Xt, y, yt, 1)
            tE, acc = run(X, Xt, y, yt, args.epochs)
            samples[name].append((t1, tE, acc))
            print(f"  {name} ({rep + 1}/{args.repeats}): {(tE - t1) / (args.epochs - 1):.3f} "
                  f"s/epoch, fit {tE:.2f} s, accuracy {acc:.3f}", flush=True)
    rows = {}
    for name, got in samples.items():
        t1 = float(np.median([g[0] for g in got]))
        tE = float(np.median([g[1] for g in got]))
        per_epoch = float(np.median([(g[1] - g[0]) / (args.epochs - 1) for g in got]))
        rows[name] = {"sec_per_epoch": per_epoch, "fit_seconds": tE,
                      "setup_seconds": max(0.0, t1 - per_epoch), "test_accuracy": got[-1][2],
                      "per_epoch_samples": [(g[1] - g[0]) / (args.epochs - 1) for g in got]}
    if not args.no_memory:
        for name in rows:
            rows[name]["peak_mb"] = peak_memory_mb(name, args.data)
    ref = rows.get("bare torch loop", {}).get("sec_per_epoch")
    dense = rows.get("skpred dense (None)")
    for name, r in rows.items():
        r["vs_dense"] = r["sec_per_epoch"] / dense["sec_per_epoch"] if dense else None
        r["break_even_epochs"] = None
        if dense and name.startswith("skpred se"):
            saving = dense["sec_per_epoch"] - r["sec_per_epoch"]
            extra = r["setup_seconds"] - dense["setup_seconds"]
            r["break_even_epochs"] = (max(extra, 0.0) / saving) if saving > 0 else float("inf")
    print()
    table = []
    for name, r in rows.items():
        be = r["break_even_epochs"]
        table.append([name, f"{r['sec_per_epoch']:.3f}",
                      f"{r['vs_dense']:.2f}x" if r["vs_dense"] else "n/a",
                      f"{r['sec_per_epoch'] / ref:.2f}x" if ref else "n/a",
                      f"{r['setup_seconds']:.2f}", f"{r['fit_seconds']:.2f}",
                      "-" if be is None else ("never" if be == float("inf") else f"{be:.0f}"),
                      f"{r['test_accuracy']:.3f}",
                      f"{r['peak_mb']:.0f}" if "peak_mb" in r else "-",
                      "no (none in sklearn)" if name.startswith("sklearn") else "yes"])
    emit("mlp", ["model", "s/epoch", "vs skpred dense", "vs torch loop", "set-up s",
                 f"fit s ({args.epochs} epochs)", "break-even epochs", "test acc", "peak MB",
                 "max-norm"], table, rows,
         "python benchmarks/bench_mlp.py" + (f" --data {args.data}" if args.data else ""),
         args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
