"""Figure 6: RICA features with prediction in the Coates et al. pipeline.

Left: classification error vs fraction of parameters learned, for RICA
features predicted with the se kernel (length scale 1) at several alpha
fractions, through the pipeline ImageEncoder (random patches, normalisation,
ZCA, RICA, dense extraction, encoding, quadrant pooling) -> StandardScaler ->
LinearSVC. Right: at an equal number of dynamic parameters, ordinary RICA
with k features vs RICA predicting 50% of each feature with 2k features.
The paper's claims: over half of the dynamic parameters can be predicted
without a real drop; and prediction wins at equal dynamic parameters.

``--dataset cifar10|stl10 --data PATH`` for the full sets (STL-10: each of
its 10 predefined training folds, with 90% intervals over folds, images
down-sampled to 32x32); ``--quick``: load_digits with 5 random splits.
"""

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from .._image import ImageEncoder
from .._rica import PredictedRICA
from ..datasets import load_cifar10, load_stl10
from . import _common

PRESETS = {
    "paper": dict(k=200, patch=8, n_patches=100000, rica_iter=200, fractions=(0.25, 0.5, 0.75, 1.0),
                  C=0.01, n_splits=None),
    "quick": dict(k=32, patch=4, n_patches=10000, rica_iter=50, fractions=(0.25, 0.5, 0.75, 1.0),
                  C=0.1, n_splits=5),
    "tiny": dict(k=4, patch=3, n_patches=300, rica_iter=2, fractions=(0.5,), C=0.1, n_splits=2),
}
COLUMNS = ["panel", "model", "alpha_fraction", "n_components", "fraction_learned",
           "dynamic_params", "error_mean", "error_low", "error_high"]


def splits(args, cfg):
    """(X_train, X_test, y_train, y_test, image_shape) per repetition."""
    if args.data:
        if args.dataset == "stl10":
            b = load_stl10(args.data, downsample=3)
            return [(b.data[f], b.data_test, b.target[f], b.target_test, b.image_shape)
                    for f in b.folds]
        b = load_cifar10(args.data)
        return [(b.data, b.data_test, b.target, b.target_test, b.image_shape)]
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return [(*train_test_split(X, y, test_size=0.3, stratify=y, random_state=args.seed * cfg["n_splits"] + i), (8, 8, 1))
            for i in range(cfg["n_splits"])]


def evaluate(cfg, args, reps, k, dictionary, alpha):
    errors, rica = [], None
    for X_tr, X_te, y_tr, y_te, shape in reps:
        model = make_pipeline(
            ImageEncoder(
                PredictedRICA(k, dictionary=dictionary, alpha_fraction=alpha, length_scale=1.0,
                              max_iter=cfg["rica_iter"], device=args.device),
                patch_size=cfg["patch"], n_patches=cfg["n_patches"], image_shape=shape,
                device=args.device, random_state=args.seed,
            ),
            StandardScaler(), LinearSVC(C=cfg["C"], max_iter=5000),
        )
        _common.timed_fit(model, X_tr, y_tr)
        errors.append(1 - model.score(X_te, y_te))
        rica = model[0].feature_learner_
    errors = np.array(errors)
    return dict(n_components=k, fraction_learned=round(rica.fraction_learned_, 5),
                dynamic_params=rica.n_dynamic_params_, error_mean=round(float(errors.mean()), 5),
                error_low=round(float(np.percentile(errors, 5)), 5),
                error_high=round(float(np.percentile(errors, 95)), 5))


def run(args):
    cfg = PRESETS[args.preset]
    if args.preset == "paper" and not args.data:
        raise SystemExit("fig6 --preset paper needs --data and --dataset; use --quick for load_digits.")
    reps = splits(args, cfg)
    _common.progress(f"fig6 ({args.preset}): {len(reps)} split(s), {len(reps[0][0])} training images")
    rows = []
    for alpha in cfg["fractions"]:
        t0 = time.perf_counter()
        dictionary = None if alpha == 1.0 else "se"
        r = evaluate(cfg, args, reps, cfg["k"], dictionary, alpha)
        rows.append(dict(panel="left", model="RICA" if dictionary is None else "RICA se",
                         alpha_fraction=alpha, **r))
        _common.progress(f"left alpha={alpha}: error {r['error_mean']:.4f} "
                         f"({time.perf_counter() - t0:.1f} s)")
    for model, k, dictionary, alpha in (("RICA k", cfg["k"], None, 1.0),
                                        ("RICA se 50% 2k", 2 * cfg["k"], "se", 0.5)):
        r = evaluate(cfg, args, reps, k, dictionary, alpha)
        rows.append(dict(panel="right", model=model, alpha_fraction=alpha, **r))
        _common.progress(f"right {model}: {r['dynamic_params']} dynamic, error {r['error_mean']:.4f}")
    return _common.finish(args, "fig6.csv", rows, COLUMNS, keys=("panel", "model", "alpha_fraction"),
                          outcome="error_mean", dataset=args.dataset, **cfg)


def plot(out):
    rows = _common.read_rows(out, "fig6.csv")
    if len({r["seed"] for r in rows}) > 1:
        # several seeds: each group's mean over the seeds (each seed's value
        # is a mean over its splits) and the 95% interval of that mean
        summary = _common.read_summary(out, "fig6.csv")
        for s in summary:
            member = next(r for r in rows if all(r[k] == s[k] for k in
                                                 ("panel", "model", "alpha_fraction")))
            s.update(fraction_learned=member["fraction_learned"],
                     dynamic_params=member["dynamic_params"], error_mean=s["error_mean_mean"],
                     error_low=s["error_mean_low"], error_high=s["error_mean_high"])
        rows = summary
    plt = _common.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    pts = sorted((r["fraction_learned"], r["error_mean"], r["error_low"], r["error_high"])
                 for r in rows if r["panel"] == "left")
    x, m, lo, hi = map(np.array, zip(*pts))
    left.errorbar(x, m, yerr=[m - lo, hi - m], marker="o", capsize=3)
    left.set_xlabel("fraction of parameters learned")
    left.set_ylabel("test error")
    left.set_title("RICA + SVM over alpha (Fig. 6 left)")
    rr = [r for r in rows if r["panel"] == "right"]
    right.bar(range(len(rr)), [r["error_mean"] for r in rr],
              yerr=[[r["error_mean"] - r["error_low"] for r in rr],
                    [r["error_high"] - r["error_mean"] for r in rr]], capsize=3)
    right.set_xticks(range(len(rr)), [f"{r['model']}\n{int(r['dynamic_params'])} dyn." for r in rr],
                     fontsize=8)
    right.set_ylabel("test error")
    right.set_title("equal dynamic parameters (Fig. 6 right)")
    fig.tight_layout()
    return _common.save_figure(fig, out, "fig6")


def main(argv=None):
    parser = _common.parser_for("fig6", __doc__, PRESETS)
    parser.add_argument("--dataset", choices=["cifar10", "stl10"], default="cifar10",
                        help="which data set --data holds")
    return _common.run_and_plot(parser.parse_args(argv), run, plot)
