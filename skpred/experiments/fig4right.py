"""Figure 4 (right): columns, on frame-level speech data in the paper.

The paper's TIMIT experiment: a 429-1024-1024-183 sigmoid MLP with the
data-driven Emp kernel in both hidden layers, 1, 5 and 10 columns, test
error over the fraction of parameters learned. TIMIT is licensed and not
bundled, so the experiment runs on any frame-level data given as a ``.npz``
holding ``X_train``, ``y_train``, ``X_test`` and ``y_test`` (``--data
FILE.npz``, read without pickle); the ``quick`` preset runs the same
structure on the bundled MNIST digits as a stand-in. The paper's claim: with
several columns few parameters are needed.

Columns split a layer's units equally, so each requested column count is
replaced by its largest divisor of the layer width (1024 units: 1, 4, 8 for
1, 5, 10); the CSV records what ran.
"""

import numpy as np

from .._mlp import PAPER_MLP_SETTINGS, PredictedMLPClassifier
from . import _common

PRESETS = {
    # The paper's network and schedule on the user's frame data (--data).
    "paper": dict(hidden=(1024, 1024), columns=(1, 5, 10),
                  fractions=tuple(round(f, 4) for f in np.linspace(0.05, 0.5, 5)),
                  max_iter=100, pretrain_epochs=50, lr=0.01, n_train=None),
    # Bundled MNIST digits as a stand-in: the same structure, smaller.
    "quick": dict(hidden=(256, 256), columns=(1, 5, 10), fractions=(0.05, 0.1, 0.25),
                  max_iter=10, pretrain_epochs=3, lr=0.1, n_train=None),
    "tiny": dict(hidden=(20, 20), columns=(1, 5), fractions=(0.25,), max_iter=1,
                 pretrain_epochs=1, lr=0.1, n_train=300),
}
COLUMNS = ["requested_columns", "columns", "alpha_fraction", "fraction_learned", "test_error",
           "seconds"]
NPZ_KEYS = ("X_train", "y_train", "X_test", "y_test")


def load_npz(path):
    """X_train, X_test, y_train, y_test from a .npz (no pickled objects)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise ValueError(f"{path} lacks the arrays {missing}; it needs {list(NPZ_KEYS)}.")
            X_tr, y_tr, X_te, y_te = (f[k] for k in NPZ_KEYS)
    except (OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} is not a readable .npz of {list(NPZ_KEYS)}: {exc}") from exc
    for name, X, y in (("train", X_tr, y_tr), ("test", X_te, y_te)):
        if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
            raise ValueError(f"{path}: X_{name} must be 2-D and y_{name} 1-D of the same "
                             f"length, got {X.shape} and {y.shape}.")
    if X_tr.shape[1] != X_te.shape[1]:
        raise ValueError(f"{path}: X_train has {X_tr.shape[1]} features, X_test {X_te.shape[1]}.")
    return X_tr, X_te, y_tr, y_te


def load(args):
    if args.data:
        return load_npz(args.data)
    return _common.bundled_mnist_split(args.seed)


def run(args):
    cfg = PRESETS[args.preset]
    X_tr, X_te, y_tr, y_te = _common.split_for(
        args, cfg, load, "FILE.npz (X_train, y_train, X_test, y_test)")
    hidden = cfg["hidden"]
    _common.progress(f"fig4right ({args.preset}): {len(X_tr)} train / {len(X_te)} test, "
                     f"{X_tr.shape[1]}-{'-'.join(map(str, hidden))}-{len(np.unique(y_tr))}, "
                     f"Emp-Emp")
    rows = []
    for requested in cfg["columns"]:
        columns = max(c for c in range(1, requested + 1) if all(h % c == 0 for h in hidden))
        for frac in cfg["fractions"]:
            clf = PredictedMLPClassifier(**dict(
                PAPER_MLP_SETTINGS, hidden_layer_sizes=hidden, dictionary=("emp", "emp"),
                alpha_fraction=frac, n_columns=columns, pretrain_epochs=cfg["pretrain_epochs"],
                learning_rate_init=cfg["lr"], max_iter=cfg["max_iter"], device=args.device,
                random_state=args.seed))
            row = _common.fit_row(clf, X_tr, y_tr, X_te, y_te, requested_columns=requested,
                                  columns=columns, alpha_fraction=frac)
            rows.append(row)
            _common.progress(f"{columns} column(s) alpha={frac}: error {row['test_error']:.4f} "
                             f"({row['seconds']} s)")
    return _common.finish(args, "fig4right.csv", rows, COLUMNS,
                          keys=("requested_columns", "columns", "alpha_fraction"), **cfg)


def plot(out):
    rows, fig, ax = _common.results_figure(out, "fig4right.csv", figsize=(5, 3.5))
    for columns in dict.fromkeys(r["columns"] for r in rows):
        _common.draw_series(ax, [r for r in rows if r["columns"] == columns], "test_error",
                            label=f"{int(columns)} column(s)")
    _common.error_axes(ax, "Emp-Emp, columns (paper Fig. 4 right)", legend_size=8)
    return _common.save_figure(fig, out, "fig4right")


def main(argv=None):
    return _common.run_and_plot(_common.parser_for("fig4right", __doc__, PRESETS)
                                .parse_args(argv), run, plot)
