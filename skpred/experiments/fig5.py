"""Figure 5: convolutional network on CIFAR-10 over the fraction learned.

The paper's network (conv 48 8x8, conv 64 8x8, conv 64 5x5, dense 500 in 5
columns, softmax), se dictionaries everywhere, at several alpha fractions,
against the dense network. The paper's claim: learning 25% of the
parameters costs almost no accuracy. ``--data`` is the CIFAR-10 "python
version" folder; ``--quick`` runs a small network on the bundled 28x28
MNIST digits instead.
"""


from .._conv import PAPER_CONVNET_SETTINGS, PredictedConvNetClassifier
from ..datasets import load_cifar10
from . import _common

PRESETS = {
    "paper": dict(conv=((48, 8, 2), (64, 8, 2), (64, 5, 2)), dense=(500,), columns=(1, 1, 1, 5),
                  fractions=(0.1, 0.25, 0.5, 0.75, 1.0), max_iter=50, lr=0.01, solver="sgd",
                  n_train=None),
    "quick": dict(conv=((16, 5, 2), (32, 5, 2)), dense=(100,), columns=(1, 1, 5),
                  fractions=(0.1, 0.25, 0.5, 1.0), max_iter=5, lr=3e-3, solver="adam",
                  n_train=None),
    "tiny": dict(conv=((4, 3, 2),), dense=(10,), columns=(1, 1), fractions=(0.5,), max_iter=1,
                 lr=3e-3, solver="adam", n_train=300),
}
COLUMNS = ["model", "alpha_fraction", "fraction_learned", "test_error", "seconds"]


def settings(cfg, dictionary, frac, shape, args):
    """The estimator's parameters for one point: the paper's network and our
    schedule (PAPER_CONVNET_SETTINGS) with the preset's architecture,
    optimiser and epochs."""
    return dict(
        PAPER_CONVNET_SETTINGS, conv_layers=cfg["conv"], dense_layers=cfg["dense"],
        image_shape=shape, dictionary=dictionary, alpha_fraction=frac, n_columns=cfg["columns"],
        solver=cfg["solver"], learning_rate_init=cfg["lr"], max_iter=cfg["max_iter"],
        device=args.device, random_state=args.seed,
    )


def load(args):
    if args.data:
        b = load_cifar10(args.data)
        return b.data, b.data_test, b.target, b.target_test, (32, 32, 3)
    return (*_common.bundled_mnist_split(args.seed), (28, 28, 1))


def run(args):
    cfg = PRESETS[args.preset]
    X_tr, X_te, y_tr, y_te, shape = _common.split_for(args, cfg, load,
                                                      "(the CIFAR-10 python batches)")
    _common.progress(f"fig5 ({args.preset}): {len(X_tr)} train / {len(X_te)} test images {shape}")
    rows = []
    points = [("dense", None, 1.0)] + [("se", "se", f) for f in cfg["fractions"]]
    for model, dictionary, frac in points:
        clf = PredictedConvNetClassifier(**settings(cfg, dictionary, frac, shape, args))
        row = _common.fit_row(clf, X_tr, y_tr, X_te, y_te, model=model, alpha_fraction=frac)
        rows.append(row)
        _common.progress(f"{model} alpha={frac}: learned {row['fraction_learned']:.3f}, "
                         f"error {row['test_error']:.4f} ({row['seconds']} s)")
    return _common.finish(args, "fig5.csv", rows, COLUMNS, keys=("model", "alpha_fraction"),
                          **cfg)


def plot(out):
    rows, fig, ax = _common.results_figure(out, "fig5.csv", figsize=(5, 3.5))
    dense = [r for r in rows if r["model"] == "dense"]
    _common.draw_series(ax, [r for r in rows if r["model"] == "se"], "test_error",
                        label="se, predicted")
    if dense:
        _common.draw_reference(ax, dense[0], "test_error", color="k", label="dense")
    _common.error_axes(ax, "Convolutional network (paper Fig. 5)")
    return _common.save_figure(fig, out, "fig5")


def main(argv=None):
    return _common.run_and_plot(_common.parser_for("fig5", __doc__, PRESETS).parse_args(argv),
                                run, plot)
