"""Benchmark: compiled fine-tuning steps (``compile=True``) against eager.

For skpred's dense network and SE-Emp at alpha 0.1 with 10 columns
(``PAPER_MLP_SETTINGS`` without pretraining, learning rate 0.1 from a
random start), on the bundled MNIST digits at batch 100, one E-epoch fit
each, eager then compiled, with every epoch's end time recorded by a
callback: seconds per epoch (the median of epochs 2..E), the compile time
(epoch 1 minus that median: the first steps compile; with torch's
in-memory and on-disk compile caches off, as on a new machine, and after
one throwaway compilation that imports inductor, which a process pays
once), the end-to-end fit, the break-even epoch count (from which the
compiled fit finishes first), operators per step (host dispatches; a
compiled graph runs as a few fused kernels) and the largest difference of
the predicted probabilities from the eager model's.

Usage::

    python benchmarks/bench_compile.py            # writes results/compile.json
    python benchmarks/bench_compile.py --epochs 5 --json ''
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
import torch._inductor.config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402


ROWS = {"skpred dense": dict(dictionary=None),
        "skpred SE-Emp a=0.1, 10 columns": dict(alpha_fraction=0.1, n_columns=10)}


def load():
    from sklearn.model_selection import train_test_split

    from skpred.datasets import load_mnist

    X, y = load_mnist(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


def make(epochs, compile, **params):
    from skpred import PAPER_MLP_SETTINGS, PredictedMLPClassifier

    return PredictedMLPClassifier(**dict(PAPER_MLP_SETTINGS, pretrain=False, max_iter=epochs,
                                         learning_rate_init=0.1, random_state=0, device="cpu",
                                         compile=compile, **params))


def timed_fit(X, y, epochs, compile, **params):
    """(seconds of each epoch, whole fit seconds, fitted estimator)."""
    from skpred.callbacks import Callback

    class EpochTimes(Callback):
        def on_epoch_end(self, loop):
            if loop.phase == "fine-tune":
                ends.append(time.perf_counter())

    ends = []
    clf = make(epochs, compile, callbacks=[EpochTimes()], **params)
    if compile:
        torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        clf.fit(X, y)
        total = time.perf_counter() - t
    first = ends[0] - t  # set-up (dictionaries) and epoch 1
    return [first] + list(np.diff(ends)), total, clf


def ops_per_step(X, y, compile, **params):
    """Operators per step of epochs 2 and 3 of a 3-epoch fit on 1,000
    samples (10 steps an epoch), counted by a callback that profiles
    between the end of epoch 1 and the end of epoch 3: compilation (in
    epoch 1) is not in the count."""
    from skpred._opcount import count_top_level, profiler
    from skpred.callbacks import Callback

    class CountOps(Callback):
        def on_epoch_end(self, loop):
            if loop.phase != "fine-tune":
                return
            if loop.epoch == 1:
                self.prof = profiler()
                self.prof.__enter__()
            elif loop.epoch == 3:
                self.prof.__exit__(None, None, None)
                self.counts = count_top_level(self.prof)

    counter = CountOps()
    clf = make(3, compile, callbacks=[counter], **params)
    if compile:
        torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X[:1000], y[:1000])
    return sum(counter.counts.values()) / 20


def main(argv=None):
    torch._inductor.config.force_disable_caches = True  # every fit compiles anew
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    X, Xt, y, yt = load()
    print(f"{len(X)} training digits, batch 100, {args.epochs} epochs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    results, rows = {}, []
    torch.compile(lambda t: t + 1)(torch.zeros(1))  # inductor's imports, once
    for name, params in ROWS.items():
        r = {}
        timed_fit(X[:200], y[:200], 2, False, **params)  # warm-up (imports, first calls)
        for mode, compile in (("eager", False), ("compiled", True)):
            times, total, clf = timed_fit(X, y, args.epochs, compile, **params)
            per_epoch = float(np.median(times[1:]))
            r[mode] = dict(sec_per_epoch=per_epoch, first_epoch=times[0], fit_seconds=total,
                           epoch_seconds=times, proba=clf.predict_proba(Xt),
                           accuracy=clf.score(Xt, yt),
                           ops_per_step=ops_per_step(X, y, compile, **params))
            print(f"  {name}, {mode}: {per_epoch:.3f} s/epoch, first epoch {times[0]:.1f} s, "
                  f"fit {total:.1f} s, {r[mode]['ops_per_step']:.1f} ops/step", flush=True)
        eager, comp = r["eager"], r["compiled"]
        compile_s = comp["first_epoch"] - eager["first_epoch"]
        saving = eager["sec_per_epoch"] - comp["sec_per_epoch"]
        break_even = compile_s / saving if saving > 0 else float("inf")
        diff = float(np.abs(eager["proba"] - comp["proba"]).max())
        results[name] = dict(
            {m: {k: v for k, v in r[m].items() if k != "proba"} for m in r},
            compile_seconds=compile_s, break_even_epochs=break_even, max_proba_difference=diff)
        rows.append([name, f"{eager['sec_per_epoch']:.3f}", f"{comp['sec_per_epoch']:.3f}",
                     f"{compile_s:.1f}", f"{eager['fit_seconds']:.1f}",
                     f"{comp['fit_seconds']:.1f}",
                     "never" if break_even == float("inf") else f"{break_even:.0f}",
                     f"{eager['ops_per_step']:.1f}", f"{comp['ops_per_step']:.1f}",
                     f"{diff:.1e}"])
    emit("compile", ["model", "eager s/epoch", "compiled s/epoch", "compile s",
                     f"eager fit s ({args.epochs} epochs)", f"compiled fit s ({args.epochs} epochs)",
                     "break-even epochs", "eager ops/step", "compiled ops/step",
                     "max |proba difference|"], rows, results,
         "python benchmarks/bench_compile.py", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
