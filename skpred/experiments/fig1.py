"""Figure 1: learned features are smooth and highly predictable.

Post-hoc prediction: take learned features, keep their values at a random
subset alpha of locations, predict the rest by kernel ridge regression with
the se kernel, and measure the relative error of the prediction as the kept
fraction varies. The kernel's length scale and ridge are chosen per feature
set and fraction from the kept values alone, by leave-one-out error (closed
form). Features: layer-1 features of an MLP trained to convergence on MNIST
digits, RICA features of 12x12 whitened natural-image patches and of the 8x8
digits; white noise of the same shape is the unpredictable baseline. The plot shows
blocks (feature | kept weights | prediction) as in the paper, and the error
curve.
"""

import numpy as np
from sklearn.datasets import load_digits, load_sample_images

from .._image import ZCAWhitening, normalize_patches, sample_patches
from .._mlp import PAPER_MLP_SETTINGS, PredictedMLPClassifier
from .._redundancy import LENGTH_SCALES, RIDGES, predict_subset
from .._rica import PredictedRICA
from ..datasets import load_mnist
from . import _common

PRESETS = {
    "paper": dict(mlp_hidden=500, mlp_epochs=200, rica_features=64, rica_iter=300,
                  n_patches=50000, fractions=(0.1, 0.25, 0.5, 0.75, 0.9), n_features=100),
    "quick": dict(mlp_hidden=100, mlp_epochs=200, rica_features=64, rica_iter=150,
                  n_patches=10000, fractions=(0.1, 0.25, 0.5, 0.75, 0.9), n_features=64),
    "tiny": dict(mlp_hidden=16, mlp_epochs=1, rica_features=16, rica_iter=5,
                 n_patches=500, fractions=(0.25, 0.5), n_features=8),
}
# Grid of every feature set: the length scale and ridge of the predictor are
# chosen per set and kept fraction from the kept values alone.
SOURCES = {"mlp_mnist": (28, 28), "rica_patches_12x12": (12, 12), "rica_digits": (8, 8),
           "white_noise": (28, 28)}
COLUMNS = ["source", "kept_fraction", "mean_relative_error", "std_relative_error",
           "length_scale", "ridge", "n_features"]


def mlp_features(cfg, args):
    X, y = load_mnist(args.data, return_X_y=True) if args.data else load_mnist(return_X_y=True)
    # The paper's sigmoid network, dense, trained with Adam until the
    # training loss stops improving (scikit-learn's rule), max_iter at most.
    clf = PredictedMLPClassifier(**dict(
        PAPER_MLP_SETTINGS, hidden_layer_sizes=(cfg["mlp_hidden"],), dictionary=None,
        pretrain=False, solver="adam", learning_rate_init=1e-3, learning_rate_decay=1.0,
        max_iter=cfg["mlp_epochs"], n_iter_no_change=10, max_norm=None, device=args.device,
        random_state=args.seed))
    _common.timed_fit(clf, X, y)
    _common.progress(f"MLP trained {clf.n_iter_} epochs")
    return clf.coefs_[0]  # (784, units): one feature per column


def rica_patch_features(cfg, args):
    """RICA on whitened 12x12 patches of the sample photos: at 12x12 the
    features' smoothness shows (at 8x8 whitened features are mostly edges)."""
    images = np.stack([im.mean(-1) for im in load_sample_images().images]).reshape(2, -1) / 255.0
    P = normalize_patches(sample_patches(images, (427, 640, 1), 12, cfg["n_patches"],
                                         random_state=args.seed), 1e-4)
    X = ZCAWhitening(0.1).fit_transform(P)
    rica = PredictedRICA(cfg["rica_features"], dictionary=None, max_iter=cfg["rica_iter"],
                         device=args.device, random_state=args.seed).fit(X)
    return rica.components_.T  # (144, k)


def rica_digit_features(cfg, args):
    """RICA on the (centred) 8x8 digits themselves."""
    X = load_digits().data / 16.0
    rica = PredictedRICA(cfg["rica_features"], dictionary=None, max_iter=cfg["rica_iter"],
                         device=args.device, random_state=args.seed).fit(X - X.mean(0))
    return rica.components_.T  # (64, k)


def noise_features(cfg, args):
    """The baseline: white noise is not predictable from any subset."""
    return np.random.RandomState(args.seed).standard_normal((784, cfg["n_features"]))


def run(args):
    cfg = PRESETS[args.preset]
    rng = np.random.RandomState(args.seed)
    rows, blocks = [], {}
    for source, get in (("mlp_mnist", mlp_features), ("rica_patches_12x12", rica_patch_features),
                        ("rica_digits", rica_digit_features), ("white_noise", noise_features)):
        _common.progress(f"fig1 ({args.preset}): learning {source} features")
        W = get(cfg, args)[:, :cfg["n_features"]]
        shape = SOURCES[source]
        for frac in cfg["fractions"]:
            W_hat, alpha, err, ls, ridge = predict_subset(W, shape, frac, rng)
            rows.append(dict(source=source, kept_fraction=frac,
                             mean_relative_error=round(float(err.mean()), 5),
                             std_relative_error=round(float(err.std()), 5),
                             length_scale=ls, ridge=ridge, n_features=W.shape[1]))
            _common.progress(f"{source} kept {frac:.2f}: relative error {err.mean():.3f} "
                             f"(length scale {ls}, ridge {ridge:g})")
            if frac == cfg["fractions"][len(cfg["fractions"]) // 2]:
                kept = np.full_like(W[:, :4], np.nan)
                kept[alpha] = W[alpha, :4]
                blocks[source] = dict(feature=W[:, :4], kept=kept, prediction=W_hat[:, :4],
                                      shape=shape, fraction=frac)
    rows = _common.finish(args, "fig1.csv", rows, COLUMNS, keys=("source", "kept_fraction"),
                          outcome="mean_relative_error", length_scales=LENGTH_SCALES,
                          ridges=RIDGES, **cfg)
    np.savez(f"{args.out}/fig1_blocks.npz", **{f"{s}_{k}": v for s, b in blocks.items()
                                              for k, v in b.items()})
    return rows


def plot(out):
    rows = _common.read_summary(out, "fig1.csv")
    blocks = np.load(f"{out}/fig1_blocks.npz")
    plt = _common.pyplot()
    sources = list(dict.fromkeys(r["source"] for r in rows))
    fig = plt.figure(figsize=(9, 2.6 * len(sources)))
    for i, source in enumerate(sources):
        shape = tuple(blocks[f"{source}_shape"])
        n = blocks[f"{source}_feature"].shape[1]
        # the tiles left of 0.68 of the width, the curve (and its axis
        # labels) right of 0.74: nothing overlaps
        tiles = fig.add_gridspec(len(sources), 3 * n, left=0.02, right=0.68, wspace=0.15)
        for j in range(n):
            for k, part in enumerate(("feature", "kept", "prediction")):
                ax = fig.add_subplot(tiles[i, 3 * j + k])
                ax.imshow(blocks[f"{source}_{part}"][:, j].reshape(shape), cmap="gray")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(part[:4], fontsize=7)
        ax = fig.add_axes([0.78, 1 - (i + 0.85) / len(sources), 0.2, 0.7 / len(sources)])
        _common.draw_series(ax, [r for r in rows if r["source"] == source],
                            "mean_relative_error", x="kept_fraction")
        ax.axhline(1.0, color="k", ls="--", lw=0.8)  # what predicting zeros scores
        ax.set_ylim(0, 1.1)
        ax.set_xlabel("kept fraction", fontsize=7)
        ax.set_ylabel("relative error", fontsize=7)
        ax.set_title(source, fontsize=8)
        ax.tick_params(labelsize=6)
    return _common.save_figure(fig, out, "fig1")


def main(argv=None):
    args = _common.parser_for("fig1", __doc__, PRESETS).parse_args(argv)
    if args.preset == "paper" and not args.data:
        _common.progress("no --data: the MLP features use the bundled MNIST digits")
    return _common.run_and_plot(args, run, plot)
