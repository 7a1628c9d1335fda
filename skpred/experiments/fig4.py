"""Figure 4 (left): MNIST, comparing dictionaries over the fraction of
parameters learned.

The 784-500-500-10 sigmoid MLP with layers 1 and 2 predicted by: LowRank,
RandCon, RandFixU, SE-Emp, SE-Emp2, SE-AE and Emp-Emp, at several alpha
fractions, against the dense network (nokernel). Test error vs the fraction
of parameters learned (the user guide's definition). The paper's claim: SE-Emp
and SE-Emp2 are best, and over 95% of the weights can be predicted without a
drop in accuracy.
"""

import numpy as np

from .._mlp import PAPER_MLP_SETTINGS, PredictedMLPClassifier
from ..datasets import load_mnist
from . import _common

METHODS = {
    "nokernel": (None, None),
    "LowRank": ("lowrank", "lowrank"),
    "RandCon": ("randcon", "randcon"),
    "RandFixU": ("random", "random"),
    "SE-Emp": ("se", "emp"),
    "SE-Emp2": ("se", "emp2"),
    "SE-AE": ("se", "ae"),
    "Emp-Emp": ("emp", "emp"),
}

# The paper's Figure 4 uses several columns in layers 1 and 2 (10 in its
# text); the authors' MNIST job grid sweeps fractions linspace(20/784, 1, 10).
PAPER_COLUMNS = 10
PRESETS = {
    # The authors' settings (PAPER_MLP_SETTINGS), on the full MNIST (--data).
    "paper": dict(hidden=(500, 500), fractions=tuple(round(f, 4) for f in
                                                     np.linspace(20 / 784, 1, 10)[:-1]),
                  max_iter=100, pretrain_epochs=50, lr=0.01, n_train=None,
                  methods=tuple(METHODS)),
    # Bundled 5,000 MNIST digits, fewer epochs: a few minutes on 2 CPU cores.
    "quick": dict(hidden=(500, 500), fractions=(0.05, 0.1, 0.25), max_iter=15,
                  pretrain_epochs=5, lr=0.1, n_train=None, methods=tuple(METHODS)),
    "tiny": dict(hidden=(40, 40), fractions=(0.25,), max_iter=1, pretrain_epochs=1,
                 lr=0.1, n_train=600, methods=("nokernel", "SE-Emp", "LowRank")),
}
COLUMNS = ["method", "alpha_fraction", "fraction_learned", "test_error", "seconds"]


def settings(cfg, method, frac, args):
    """The estimator's parameters for one point: the paper's schedule
    (PAPER_MLP_SETTINGS) with the preset's size, epochs and learning rate,
    ``--columns`` columns in both predicted layers, and every model but
    LowRank pretrained (the paper: its autoencoder pretraining was unstable)."""
    columns = max(c for c in range(1, args.columns + 1) if cfg["hidden"][0] % c == 0
                  and cfg["hidden"][1] % c == 0)
    return dict(
        PAPER_MLP_SETTINGS, hidden_layer_sizes=cfg["hidden"], dictionary=METHODS[method],
        alpha_fraction=frac, n_columns=columns, pretrain=method != "LowRank",
        pretrain_epochs=cfg["pretrain_epochs"], learning_rate_init=cfg["lr"],
        max_iter=cfg["max_iter"], device=args.device, random_state=args.seed,
    )


def load(args):
    if args.data:
        b = load_mnist(args.data)
        return b.data, b.data_test, b.target, b.target_test
    return _common.bundled_mnist_split(args.seed)


def run(args):
    cfg = PRESETS[args.preset]
    X_tr, X_te, y_tr, y_te = _common.split_for(args, cfg, load, "(the MNIST IDX folder)")
    _common.progress(f"fig4 ({args.preset}): {len(X_tr)} train / {len(X_te)} test, "
                     f"784-{'-'.join(map(str, cfg['hidden']))}-10 sigmoid")
    rows = []
    for method in cfg["methods"]:
        fractions = (1.0,) if method == "nokernel" else cfg["fractions"]
        for frac in fractions:
            clf = PredictedMLPClassifier(**settings(cfg, method, frac, args))
            row = _common.fit_row(clf, X_tr, y_tr, X_te, y_te, method=method, alpha_fraction=frac)
            rows.append(row)
            _common.progress(f"{method:<9} alpha={frac:<5} learned={row['fraction_learned']:.3f} "
                             f"error={row['test_error']:.4f} ({row['seconds']} s)")
    return _common.finish(args, "fig4.csv", rows, COLUMNS, columns=args.columns, **cfg)


def plot(out):
    rows, fig, ax = _common.results_figure(out, "fig4.csv", figsize=(6, 4))
    for method in dict.fromkeys(r["method"] for r in rows):
        pts = sorted((r["fraction_learned"], r["test_error"]) for r in rows if r["method"] == method)
        if method == "nokernel":
            ax.axhline(pts[0][1], color="k", ls="--", label="nokernel (dense)")
        else:
            ax.plot(*zip(*pts), marker="o", label=method)
    ax.set_xscale("log")
    _common.error_axes(ax, "MNIST, 784-500-500-10 (paper Fig. 4 left)", legend_size=8)
    return _common.save_figure(fig, out, "fig4")


def main(argv=None):
    parser = _common.parser_for("fig4", __doc__, PRESETS)
    parser.add_argument("--columns", type=int, default=PAPER_COLUMNS,
                        help="columns of the predicted layers 1 and 2 (the paper: 10; the "
                             "largest divisor of the layer sizes up to this is used)")
    return _common.run_and_plot(parser.parse_args(argv), run, plot)
