"""Benchmark: parameter prediction for networks skpred did not build.

Three tables (issue 28), each written as JSON for the docs:

- ``convert``: the paper's CIFAR-10 conv net and the paper's MNIST MLP
  written in plain torch, converted by ``skpred.predict_parameters`` (se
  filter banks; the MLP's second layer ``emp`` from the data); trainable
  and fixed parameters before and after, and seconds per epoch of one
  plain torch training loop (SGD, momentum 0.9) for each, the converted
  model against the original in this one process (random 32x32x3 images
  for the conv net, the bundled MNIST digits for the MLP; the median of 3
  epochs after one untimed epoch).
- ``redundancy``: ``skpred.redundancy`` of scikit-learn ``MLPClassifier``
  hidden layers trained on the 8x8 digits and on the bundled MNIST digits,
  against white noise of the same shape (the plot is
  ``docs/images/redundancy.png``).
- ``compress``: a scikit-learn ``MLPClassifier((500, 500))`` trained on
  the bundled MNIST digits for E epochs, compressed by
  ``PredictedMLPClassifier.from_trained`` to alpha 0.1 and 0.25 (se then
  emp), test accuracy before fine-tuning and after 5 epochs, against the
  original and against a predicted network trained from scratch for E + 5
  epochs.

Usage::

    python benchmarks/bench_convert.py            # writes results/{convert,redundancy,compress}.json
    python benchmarks/bench_convert.py --epochs 10 --json ''
"""

import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import emit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def paper_convnet():
    """The paper's CIFAR-10 architecture (Figure 5) in plain torch."""
    return nn.Sequential(
        nn.Conv2d(3, 48, 8, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(48, 64, 8, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 5, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 500), nn.ReLU(), nn.Linear(500, 10))


def paper_mlp():
    return nn.Sequential(nn.Linear(784, 500), nn.Sigmoid(), nn.Linear(500, 500), nn.Sigmoid(),
                         nn.Linear(500, 10))


def epoch_seconds(model, X, y, batch):
    """Median seconds of 3 epochs of a plain SGD loop, after one untimed."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    times = []
    for epoch in range(4):
        t = time.perf_counter()
        for s in range(0, len(X), batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[s:s + batch]), y[s:s + batch]).backward()
            opt.step()
        if epoch:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def mnist():
    from sklearn.model_selection import train_test_split

    from skpred.datasets import load_mnist

    X, y = load_mnist(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)


def convert_table(X, y):
    from skpred import parameter_report, predict_parameters

    torch.manual_seed(0)  # benchmark script: torch's default init
    rng = np.random.RandomState(0)
    images = torch.as_tensor(rng.rand(1024, 3, 32, 32).astype(np.float32))
    labels = torch.as_tensor(np.arange(1024) % 10)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    cases = [
        ("CIFAR conv net, se a=0.25", paper_convnet,
         dict(alpha_fraction=0.25), images, labels, 128),
        ("MNIST MLP, se-emp a=0.1, 10 columns", paper_mlp,
         dict(alpha_fraction=0.1, n_columns=10, input_shape=(28, 28), data=X[:2000]),
         Xt, yt, 100),
    ]
    rows, data = [], {}
    for name, make, kwargs, Xc, yc, batch in cases:
        model = make()
        converted = predict_parameters(model, random_state=0, **kwargs)
        before, after = parameter_report(model), parameter_report(converted)
        t_dense = epoch_seconds(model, Xc, yc, batch)
        t_pred = epoch_seconds(converted, Xc, yc, batch)
        data[name] = dict(trainable_before=before.trainable, trainable_after=after.trainable,
                          fixed_after=after.fixed, seconds_per_epoch_original=t_dense,
                          seconds_per_epoch_converted=t_pred)
        rows.append([name, f"{before.trainable:,}", f"{after.trainable:,}",
                     f"{after.fixed:,}", f"{t_dense:.2f}", f"{t_pred:.2f}",
                     f"{t_pred / t_dense:.2f}x"])
        print(f"  {name}: {before.trainable:,} -> {after.trainable:,} trainable, "
              f"{t_dense:.2f} -> {t_pred:.2f} s/epoch", flush=True)
    return rows, data


def redundancy_table(X, y, epochs):
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    from skpred import redundancy

    Xd, yd = load_digits(return_X_y=True)
    sets = [("digits 8x8, MLPClassifier((64,))", Xd / 16.0, yd, (8, 8), (64,)),
            ("MNIST 28x28, MLPClassifier((500,))", X, y, (28, 28), (500,))]
    rows, data = [], {}
    for name, Xs, ys, shape, hidden in sets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlp = MLPClassifier(hidden, max_iter=epochs, random_state=0).fit(Xs, ys)
        result = redundancy(mlp, (0.1, 0.25, 0.5, 0.75), image_shape=shape, n_features=100,
                            random_state=0)
        data[name] = result
        for r in result:
            rows.append([name, f"{r['kept_fraction']:.2f}", f"{r['mean_relative_error']:.3f}",
                         f"{r['noise_mean_relative_error']:.3f}",
                         f"{r['length_scale']:g}", f"{r['ridge']:g}"])
    return rows, data


def compress_table(X, Xt, y, yt, epochs):
    from sklearn.neural_network import MLPClassifier

    from skpred import PredictedMLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((500, 500), max_iter=epochs, random_state=0).fit(X, y)
    original = mlp.score(Xt, yt)
    rows, data = [], {}
    for frac in (0.1, 0.25):
        kw = dict(dictionary=("se", "emp"), alpha_fraction=frac, random_state=0,
                  learning_rate_init=1e-3)
        start = PredictedMLPClassifier.from_trained(mlp, X, y, **kw)
        tuned = PredictedMLPClassifier.from_trained(mlp, X, y, fine_tune_epochs=5, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scratch = PredictedMLPClassifier(hidden_layer_sizes=(500, 500), pretrain=False,
                                             max_iter=epochs + 5, n_iter_no_change=np.inf,
                                             **kw).fit(X, y)
        data[frac] = dict(original=original, compressed=start.score(Xt, yt),
                          fine_tuned=tuned.score(Xt, yt), scratch=scratch.score(Xt, yt),
                          fraction_learned=tuned.fraction_learned_)
        d = data[frac]
        rows.append([f"{frac:.2f}", f"{d['fraction_learned']:.3f}", f"{original:.3f}",
                     f"{d['compressed']:.3f}", f"{d['fine_tuned']:.3f}", f"{d['scratch']:.3f}"])
        print(f"  alpha {frac}: original {original:.3f}, compressed {d['compressed']:.3f}, "
              f"+5 epochs {d['fine_tuned']:.3f}, scratch {d['scratch']:.3f}", flush=True)
    return rows, data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30,
                        help="epochs of the scikit-learn MLPs (default 30)")
    parser.add_argument("--json", default=None, help="'' writes nothing")
    args = parser.parse_args(argv)
    X, Xt, y, yt = mnist()
    cmd = "python benchmarks/bench_convert.py"
    rows, data = convert_table(X, y)
    emit("convert", ["model", "trainable before", "trainable after", "fixed after",
                     "s/epoch original", "s/epoch converted", "ratio"], rows, data, cmd,
         args.json if args.json == "" else None)
    rows, data = redundancy_table(X, y, args.epochs)
    emit("redundancy", ["network", "kept fraction", "relative error", "white noise",
                        "length scale", "ridge"], rows, data, cmd,
         args.json if args.json == "" else None)
    if args.json != "":
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from skpred.plotting import plot_redundancy

        fig, axes = plt.subplots(1, len(data), figsize=(9, 3.2))
        for ax, (name, result) in zip(axes, data.items()):
            plot_redundancy(result, ax=ax, title=name)
        fig.tight_layout()
        fig.savefig(os.path.join(HERE, "..", "docs", "images", "redundancy.png"), dpi=110)
    rows, data = compress_table(X, Xt, y, yt, args.epochs)
    emit("compress", ["alpha", "fraction learned", "original", "compressed",
                      "+ 5 epochs", f"from scratch ({args.epochs} + 5 epochs)"], rows,
         {str(k): v for k, v in data.items()}, cmd, args.json if args.json == "" else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
