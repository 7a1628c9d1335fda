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
    """The estimator's parameters for one point: the paper's network and
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
    if args.preset == "paper" and not args.data:
        raise SystemExit("fig5 --preset paper needs --data (the CIFAR-10 python batches); "
                         "use --quick for the bundled digits.")
    X_tr, X_te, y_tr, y_te, shape = load(args)
    if cfg["n_train"]:
        X_tr, y_tr = X_tr[:cfg["n_train"]], y_tr[:cfg["n_train"]]
    _common.progress(f"fig5 ({args.preset}): {len(X_tr)} train / {len(X_te)} test images {shape}")
    rows = []
    points = [("dense", None, 1.0)] + [("se", "se", f) for f in cfg["fractions"]]
    for model, dictionary, frac in points:
        clf = PredictedConvNetClassifier(**settings(cfg, dictionary, frac, shape, args))
        seconds = _common.timed_fit(clf, X_tr, y_tr)
        row = dict(model=model, alpha_fraction=frac, fraction_learned=round(clf.fraction_learned_, 5),
                   test_error=round(1 - clf.score(X_te, y_te), 5),
                   seconds=seconds)
        rows.append(row)
        _common.progress(f"{model} alpha={frac}: learned {row['fraction_learned']:.3f}, "
                         f"error {row['test_error']:.4f} ({row['seconds']} s)")
    _common.write_rows(args.out, "fig5.csv", rows, meta=dict(preset=args.preset, seed=args.seed,
                                                             data=args.data, **cfg))
    _common.print_table(rows, COLUMNS)
    return rows


def plot(out):
    rows = _common.read_rows(out, "fig5.csv")
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    dense = [r for r in rows if r["model"] == "dense"]
    se = sorted((r["fraction_learned"], r["test_error"]) for r in rows if r["model"] == "se")
    ax.plot(*zip(*se), marker="o", label="se, predicted")
    if dense:
        ax.axhline(dense[0]["test_error"], color="k", ls="--", label="dense")
    ax.set_xlabel("fraction of parameters learned")
    ax.set_ylabel("test error")
    ax.set_title("Convolutional network (paper Fig. 5)")
    ax.legend()
    fig.tight_layout()
    return _common.save_figure(fig, out, "fig5")


def main(argv=None):
    args = _common.parser_for("fig5", __doc__, PRESETS).parse_args(argv)
    run(args)
    if not args.no_plot:
        plot(args.out)
    return 0
