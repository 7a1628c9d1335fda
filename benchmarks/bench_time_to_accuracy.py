"""Benchmark: wall-clock time until a predicted network reaches the dense
network's accuracy.

The headline a user cares about: learning fewer weights is worth it if the
predicted network gets as accurate as the dense one, and sooner. Each model
is trained one epoch at a time (``partial_fit``: the optimizer state carries
over; the first call builds the dictionaries and pretrains, and that time is
counted); after every epoch the held-out accuracy is measured (not counted).
The target is the dense network's final held-out accuracy after ``--epochs``
epochs; each row reports the seconds (set-up included) until its held-out
accuracy first reaches the target, or "-" within ``2 * --epochs`` epochs.

- MLP: the paper's 784-500-500-10 sigmoid network (``PAPER_MLP_SETTINGS``,
  the ``fig4 --quick`` schedule: 5 pretraining epochs per layer, SGD at 0.1),
  dense vs SE-Emp at alpha 0.05, 0.1, 0.25 with 10 columns, on the bundled
  MNIST digits (or ``--data`` MNIST).
- ConvNet: the ``fig5 --quick`` network on the bundled digits, dense vs se
  at alpha 0.25 and 0.5.

    python benchmarks/bench_time_to_accuracy.py
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402


def curve(make, X_tr, y_tr, X_te, y_te, max_epochs):
    """(cumulative training seconds, held-out accuracy) after each epoch."""
    est, spent, points = make(), 0.0, []
    classes = np.unique(y_tr)
    for _ in range(max_epochs):
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.partial_fit(X_tr, y_tr, classes=classes)
        spent += time.perf_counter() - t
        points.append((spent, est.score(X_te, y_te)))
    return points, est


def first_reach(points, target):
    return next(((i + 1, s) for i, (s, acc) in enumerate(points) if acc >= target), (None, None))


def run(name, title, makers, data, epochs, json_path):
    X_tr, X_te, y_tr, y_te = data
    (dense_label, make_dense), *others = makers
    dense_points, _ = curve(make_dense, X_tr, y_tr, X_te, y_te, epochs)
    target = dense_points[-1][1]
    d_epoch, d_seconds = first_reach(dense_points, target)
    print(f"\n{title}: target = dense accuracy after {epochs} epochs = {target:.4f}")
    rows = [[dense_label, "1.000", d_epoch, f"{d_seconds:.2f}", "1.00x", f"{target:.4f}"]]
    data_rows = [dict(model=dense_label, fraction_learned=1.0, curve=dense_points,
                      epochs_to_target=d_epoch, seconds_to_target=d_seconds)]
    for label, make in others:
        points, est = curve(make, X_tr, y_tr, X_te, y_te, 2 * epochs)
        epoch, seconds = first_reach(points, target)
        reached = "-" if epoch is None else f"{seconds:.2f}"
        ratio = "-" if epoch is None else f"{seconds / d_seconds:.2f}x"
        rows.append([label, f"{est.fraction_learned_:.3f}", epoch or "-", reached, ratio,
                     f"{points[epochs - 1][1]:.4f}"])
        data_rows.append(dict(model=label, fraction_learned=est.fraction_learned_, curve=points,
                              epochs_to_target=epoch, seconds_to_target=seconds))
        print(f"  {rows[-1]}", flush=True)
    emit(name, ["model", "fraction learned", "epochs to target", "seconds to target",
                "vs dense", f"accuracy after {epochs} epochs"], rows,
         dict(target=target, rows=data_rows), "python benchmarks/bench_time_to_accuracy.py",
         json_path and json_path.replace(".json", f"_{name}.json"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="MNIST IDX folder (default: bundled digits)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--conv-epochs", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None,
                   help="JSON path stem (NAME.json gets _mlp/_conv; '' for nowhere)")
    args = p.parse_args(argv)

    import torch

    from skpred import (PAPER_CONVNET_SETTINGS, PAPER_MLP_SETTINGS, PredictedConvNetClassifier,
                        PredictedMLPClassifier)
    from skpred.datasets import load_mnist

    if args.data:
        b = load_mnist(args.data)
        data = (b.data, b.data_test, b.target, b.target_test)
    else:
        X, y = load_mnist(return_X_y=True)
        data = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}; "
          f"{len(data[0])} train / {len(data[1])} test digits")

    def mlp(**params):
        return lambda: PredictedMLPClassifier(**dict(
            PAPER_MLP_SETTINGS, pretrain_epochs=5, learning_rate_init=0.1, device=args.device,
            random_state=0, **params))

    run("time_to_accuracy_mlp", "MLP 784-500-500-10", [("dense", mlp(dictionary=None))] + [
        (f"SE-Emp a={a}, 10 columns", mlp(alpha_fraction=a, n_columns=10))
        for a in (0.05, 0.1, 0.25)], data, args.epochs, args.json)

    def conv(**params):
        return lambda: PredictedConvNetClassifier(**dict(
            PAPER_CONVNET_SETTINGS, conv_layers=((16, 5, 2), (32, 5, 2)), dense_layers=(100,),
            n_columns=(1, 1, 5), image_shape=(28, 28, 1), solver="adam",
            learning_rate_init=3e-3, device=args.device, random_state=0, **params))

    run("time_to_accuracy_conv", "ConvNet conv 16 5x5, conv 32 5x5, dense 100", [("dense", conv(dictionary=None))] + [
        (f"se a={a}", conv(dictionary="se", alpha_fraction=a)) for a in (0.25, 0.5)],
        data, args.conv_epochs, args.json)


if __name__ == "__main__":
    main()
