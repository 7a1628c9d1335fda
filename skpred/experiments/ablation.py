"""Figure 4 (left) under the authors' exact settings and under each of the
package's earlier departures from them, one switched at a time.

``PAPER_MLP_SETTINGS`` follows the authors' released code; skpred used to
depart from it in five places (max-norm on W = U V instead of V, half the
weight decay, Adam pretraining with a linear decoder, a kernel ridge solve
in the dictionaries, a Glorot-like initialisation). This command fits the
``fig4`` points of SE-Emp, SE-Emp2, SE-AE, Emp-Emp and the dense network
with the authors' settings, with each departure alone, with all of them
(the package's previous setting), and without max-norm (what upstream
pylearn2 does with the authors' ``max_col_norm``: it never applies it to
their layers), and writes ``ablation.csv`` (one row per variant, method,
fraction and seed) and ``ablation.png``.
"""

from .._mlp import PredictedMLPClassifier
from . import _common, fig4

#: variant name -> the parameters it changes in the authors' setting
VARIANTS = {
    "authors": {},
    "max-norm on W": dict(max_norm_on="W"),
    "no max-norm": dict(max_norm=None),
    "half the decay": dict(alpha=5e-3),
    "Adam pretraining": dict(pretrain_recipe="adam", pretrain_learning_rate=1e-3),
    "ridge (krr)": dict(ridge="auto"),
    "Glorot init": dict(init="glorot"),
    "all five (skpred before)": dict(max_norm_on="W", alpha=5e-3, pretrain_recipe="adam",
                                     pretrain_learning_rate=1e-3, ridge="auto",
                                     init="glorot"),
}
METHODS = ("nokernel", "SE-Emp", "SE-Emp2", "SE-AE", "Emp-Emp")
COLUMNS = ["variant", "method", "alpha_fraction", "fraction_learned", "test_error", "seconds"]
# tiny (for tests): two points, the authors' setting and the old one
PRESETS = {k: dict(v, methods=METHODS, variants=None) for k, v in fig4.PRESETS.items()}
PRESETS["tiny"].update(methods=("nokernel", "SE-Emp"),
                       variants=("authors", "all five (skpred before)"))


def run(args):
    cfg = PRESETS[args.preset]
    X_tr, X_te, y_tr, y_te = _common.split_for(args, cfg, fig4.load, "(the MNIST IDX folder)")
    chosen = args.variants or cfg["variants"]
    variants = [v for v in VARIANTS if chosen is None or v in chosen]
    todo = [(v, *p) for v in variants for p in fig4.points(cfg, args)]
    _common.progress(f"ablation ({args.preset}): {len(todo)} fits, {len(X_tr)} train / "
                     f"{len(X_te)} test")
    eta = fig4.Eta(len(todo))
    rows = []
    for variant, method, columns, frac in todo:
        params = dict(fig4.settings(cfg, method, frac, args, columns), **VARIANTS[variant])
        clf = PredictedMLPClassifier(**params)
        row = _common.fit_row(clf, X_tr, y_tr, X_te, y_te, variant=variant, method=method,
                              columns=columns, alpha_fraction=frac)
        rows.append(row)
        _common.progress(f"{variant:<24} {method:<8} alpha={frac:<5} error={row['test_error']:.4f} "
                         f"({row['seconds']} s; {eta.step()})")
    return _common.finish(args, "ablation.csv", rows, COLUMNS,
                          keys=("variant", "method", "columns", "alpha_fraction"),
                          variants={v: VARIANTS[v] for v in variants},
                          **{k: v for k, v in cfg.items() if k != "variants"})


def plot(out):
    rows = _common.read_summary(out, "ablation.csv")
    plt = _common.pyplot()
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "nokernel"]
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.4), sharey=True,
                             squeeze=False)
    for ax, method in zip(axes[0], methods):
        for variant in dict.fromkeys(r["variant"] for r in rows):
            mine = [r for r in rows if r["variant"] == variant and r["method"] == method]
            if mine:
                _common.draw_series(ax, mine, "test_error", label=variant,
                                    ls="-" if variant == "authors" else ":")
        dense = [r for r in rows if r["method"] == "nokernel" and r["variant"] == "authors"]
        if dense:
            _common.draw_reference(ax, dense[0], "test_error", color="k", label="dense (authors)")
        ax.set_xscale("log")
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("fraction of parameters learned", fontsize=8)
    axes[0][0].set_ylabel("test error")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=7)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return _common.save_figure(fig, out, "ablation")


def main(argv=None):
    parser = _common.parser_for("ablation", __doc__, PRESETS)
    parser.add_argument("--columns", type=int, default=fig4.PAPER_COLUMNS,
                        help="columns of the predicted layers (as fig4)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="only these variants (default: all)")
    return _common.run_and_plot(parser.parse_args(argv), run, plot)
