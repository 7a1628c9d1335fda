"""Defaults are for everybody: every public estimator, constructed with its
defaults, fits tabular and image data of any width and depth, records what
"auto" resolved to, and reaches scikit-learn's MLP's accuracy (up to 3
standard errors of the held-out proportion).

Only ``device="cpu"``, ``random_state`` and, where a test says so, a smaller
``max_iter`` are ever set: the instances are the defaults, shrunk.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler

from skpred import (
    ImageEncoder,
    KernelDictionary,
    PredictedConvNetClassifier,
    PredictedMLPClassifier,
    PredictedRICA,
)

CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def tabular():
    """10 standardised features of breast cancer: not an image, not a square."""
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:, :10].astype(np.float32), y


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.3, random_state=0, stratify=y)


def _quiet_fit(est, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


# ------------------------------------------------------- resolved dictionaries


def test_mlp_defaults_on_tabular_data_use_emp_with_several_columns(tabular):
    """Breakage caught: a pixel-grid prior (se) on tabular input, an
    "auto" left unresolved in the fitted attributes, or a layer with fewer
    than 16 inputs predicted from 2 values (it is dense under "auto")."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)  # 30 features
    clf = _quiet_fit(PredictedMLPClassifier(max_iter=5, **CPU), X, y)
    (layer,) = clf.layers_
    assert layer["dictionary"] == "emp" and layer["image_shape"] is None
    assert layer["n_columns"] == 4 and layer["units"] == 100  # 4 divides 100
    assert layer["n_atoms"] == round(0.25 * 30) and not layer["pretrained"]
    assert clf.dictionaries_[0].kernel_ == "emp"
    assert clf.fraction_learned_ == pytest.approx(layer["n_atoms"] / 30)
    X10, y10 = tabular
    narrow = _quiet_fit(PredictedMLPClassifier(max_iter=5, **CPU), X10, y10)
    assert narrow.layers_[0]["dictionary"] is None and narrow.fraction_learned_ == 1.0
    asked = _quiet_fit(PredictedMLPClassifier(max_iter=5, dictionary="emp", **CPU), X10, y10)
    assert asked.layers_[0]["dictionary"] == "emp"  # only "auto" turns dense


def test_mlp_defaults_take_64_pixels_as_tabular_unless_image_shape_is_given(digits_split):
    """64 features are a perfect square, yet only image_shape makes an image."""
    X_tr, _, y_tr, _ = digits_split
    plain = _quiet_fit(PredictedMLPClassifier(max_iter=2, **CPU), X_tr, y_tr)
    image = _quiet_fit(PredictedMLPClassifier(max_iter=2, image_shape=(8, 8), **CPU), X_tr, y_tr)
    assert plain.layers_[0]["dictionary"] == "emp"
    assert image.layers_[0]["dictionary"] == "se" and image.layers_[0]["image_shape"] == (8, 8, 1)
    assert image.dictionaries_[0].ridge_ == pytest.approx(0.1)


@pytest.mark.parametrize("sizes", [(64,), (32, 32, 32), (500, 500), (7, 3)], ids=str)
def test_mlp_fits_any_depth_with_no_other_argument(digits_split, sizes):
    """hidden_layer_sizes alone: every layer resolves, deeper layers get emp
    from pretrained activations, and the network learns."""
    X_tr, X_te, y_tr, y_te = digits_split
    clf = _quiet_fit(PredictedMLPClassifier(sizes, max_iter=50, **CPU), X_tr, y_tr)
    # emp wherever the layer has 16 inputs or more; dense below that
    inputs = (64,) + sizes[:-1]
    expected = ["emp" if n >= 16 else None for n in inputs]
    assert [l["dictionary"] for l in clf.layers_] == expected
    # columns: the largest divisor of the units up to 4 (7 is prime, 3 is 3)
    expected_columns = [max(c for c in (1, 2, 3, 4) if s % c == 0) for s in sizes]
    predicted = [l for l, e in zip(clf.layers_, expected) if e]
    assert [l["n_columns"] for l in predicted] == [c for c, e in zip(expected_columns, expected)
                                                   if e]
    # layers below the highest emp layer above the first are pretrained
    top = max((i for i, e in enumerate(expected) if e and i > 0), default=0)
    assert [l["pretrained"] for l in clf.layers_] == [i < top for i in range(len(sizes))]
    # 50 epochs; measured: (64,) .933, (32, 32, 32) .894, (500, 500) .969,
    # and (7, 3), a 3-unit bottleneck for 10 classes whose second layer (7
    # inputs) is dense, so not pretrained: .193 (chance is .1)
    assert clf.score(X_te, y_te) > (0.15 if sizes == (7, 3) else 0.85)


def test_convnet_defaults_on_images_and_on_tabular_data(digits_split, tabular):
    """The default architecture shrinks to 8x8 images; tabular input is
    convolved as a 1-D signal; se wherever the input is a grid, emp deeper."""
    X_tr, _, y_tr, _ = digits_split
    img = _quiet_fit(PredictedConvNetClassifier(max_iter=1, **CPU), X_tr, y_tr)
    assert img.image_shape_ == (8, 8, 1)
    assert img.conv_layers_ == ((16, 5, 2), (32, 3, 2))
    assert [l["dictionary"] for l in img.layers_] == ["se", "se", "se"]
    assert img.layers_[2]["image_shape"] == (2, 2, 32)  # the last conv map

    X, y = tabular
    tab = _quiet_fit(PredictedConvNetClassifier(max_iter=1, **CPU), X, y)
    assert tab.image_shape_ == (1, 10, 1)
    assert tab.conv_layers_ == ((16, 5, 2), (32, 5, 2))  # 10 -> 5 -> 2 along the signal
    deep = _quiet_fit(PredictedConvNetClassifier(dense_layers=(32, 16), max_iter=1, **CPU), X, y)
    assert [l["dictionary"] for l in deep.layers_] == ["se", "se", "se", "emp"]


@pytest.mark.parametrize("n_features", [1, 2, 3, 30])
def test_convnet_and_image_encoder_defaults_fit_any_width(n_features):
    """Tiny and odd widths: kernels, pools and patches shrink to fit."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, n_features)).astype(np.float32)
    y = np.arange(40) % 2
    clf = _quiet_fit(PredictedConvNetClassifier(max_iter=2, **CPU), X, y)
    assert clf.predict(X).shape == (40,)
    enc = ImageEncoder(**CPU, n_patches=200).fit(X)
    assert enc.patch_shape_ == (1, min(6, n_features), 1)
    assert np.isfinite(enc.transform(X)).all()


def test_rica_and_kernel_dictionary_resolve_auto_by_image_shape(tabular, digits_split):
    X, _ = tabular
    kd = KernelDictionary().fit(X)
    assert kd.kernel_ == "emp" and kd.n_atoms_ == round(0.25 * 10)
    X_img = digits_split[0]
    kd_img = KernelDictionary(image_shape=(8, 8)).fit(X_img)
    assert kd_img.kernel_ == "se" and kd_img.image_shape_ == (8, 8, 1)
    rica = PredictedRICA(max_iter=3, **CPU).fit(X)
    assert rica.dictionary_.kernel_ == "emp"
    rica_img = PredictedRICA(max_iter=3, image_shape=(8, 8), **CPU).fit(X_img)
    assert rica_img.dictionary_.kernel_ == "se"


def test_image_encoder_default_learner_is_predicted_rica_with_se_patches(digits_split):
    X_tr = digits_split[0]
    enc = ImageEncoder(**CPU, n_patches=2000).fit(X_tr[:200])
    assert isinstance(enc.feature_learner_, PredictedRICA)
    assert enc.patch_shape_ == (6, 6, 1) and enc.image_shape_ == (8, 8, 1)
    assert enc.feature_learner_.dictionary_.kernel_ == "se"
    assert enc.feature_learner_.dictionary_.image_shape_ == (6, 6, 1)
    assert enc.transform(X_tr[:5]).shape == (5, 4 * 64)


# -------------------------------------------------------------- accuracy floors


def test_mlp_defaults_on_digits_reach_sklearn_accuracy(digits_split):
    """The issue's target on the 70/30 digits split (seed 0): scikit-learn's
    MLPClassifier(random_state=0) accuracy, up to chance. Breakage caught: a
    default (dictionary, columns, pretraining, solver, epochs) that costs
    accuracy a plain MLP has.

    The floor is an absolute one (sklearn is not refitted here, which would
    double the runtime), placed 3 standard errors under both numbers:
    measured ours 527/540 = 0.976 (the same with 1 and 2 threads), SE =
    sqrt(p(1-p)/540) = 0.0066, 3 SE = 0.020, so at most 0.956; the peer,
    scikit-learn 1.9's MLPClassifier(random_state=0): 529/540 = 0.980, the
    two differing on 10 test images (ours alone right on 4, sklearn alone on
    6): paired SE of the difference sqrt(b + c - (b - c)^2 / n) / n = 0.0059,
    3 SE = 0.018, so 0.955 is the peer's score less 0.025 = 4.2 SE of the
    difference: "sklearn's accuracy up to 3 SE" holds at the floor. (The
    issue's 0.97 is 1 SE under ours: too tight to assert on 540 images.)"""
    X_tr, X_te, y_tr, y_te = digits_split
    clf = _quiet_fit(PredictedMLPClassifier(**CPU), X_tr, y_tr)
    # measured 0.976, n = 540, SE 0.0066: the floor is 0.021 = 3.2 SE below
    # (516 of 540 right passes, 515 fails)
    assert clf.score(X_te, y_te) >= 0.955


def test_mlp_defaults_on_standardised_breast_cancer():
    """Tabular target: scikit-learn's MLPClassifier(random_state=0) accuracy on
    the 70/30 split (seed 0), up to chance. Breakage caught: a tabular
    default (emp dictionary, columns, pretraining) that costs accuracy.
    Measured: ours 163/171 = 0.953 (1 and 2 threads), scikit-learn 1.9's
    also 163/171, wrong on the same 8 images (a paired difference of 0, SE
    0: the floor below comes from our own score's SE alone)."""
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(
        StandardScaler().fit_transform(X), y, test_size=0.3, random_state=0, stratify=y)
    clf = _quiet_fit(PredictedMLPClassifier(**CPU), X_tr, y_tr)
    # measured 0.953, n = 171, SE = sqrt(p(1-p)/171) = 0.016, 3 SE = 0.048:
    # the floor is 0.053 = 3.3 SE below (154 of 171 right passes, 153 fails)
    assert clf.score(X_te, y_te) >= 0.90


def test_convnet_defaults_learn_digits(digits_split):
    """Floor, not a timing: 30 epochs of the default ConvNet on digits.
    Measured: 0.91 after 30 epochs (0.93 after the default 50)."""
    X_tr, X_te, y_tr, y_te = digits_split
    clf = _quiet_fit(PredictedConvNetClassifier(max_iter=30, **CPU), X_tr, y_tr)
    assert clf.score(X_te, y_te) > 0.85


# ------------------------------------------------------------------ grid search


def test_grid_over_depth_fraction_and_columns_scores_every_cell(digits_split):
    """Breakage caught: per-layer defaults tied to a depth (a 2-tuple
    dictionary) turn every other depth into a NaN score."""
    X_tr, _, y_tr, _ = digits_split
    grid = GridSearchCV(
        PredictedMLPClassifier(max_iter=3, **CPU),
        {"hidden_layer_sizes": [(64,), (32, 32, 32), (500, 500)],
         "alpha_fraction": [0.1, 0.25], "n_columns": [1, 4, "auto"]},
        cv=2, error_score="raise",
    )
    _quiet_fit(grid, X_tr[:400], y_tr[:400])
    scores = grid.cv_results_["mean_test_score"]
    assert len(scores) == 18 and np.all(np.isfinite(scores))
    best = grid.best_estimator_
    assert best.fraction_learned_ == pytest.approx(grid.best_params_["alpha_fraction"], rel=0.1)
    if grid.best_params_["n_columns"] != "auto":
        assert {l["n_columns"] for l in best.layers_} == {grid.best_params_["n_columns"]}


def test_convnet_without_convs_predicts_its_first_dense_layer_on_the_image_grid(digits_split):
    """Breakage caught: the first dense se layer of a conv-free network on a
    1-D grid over the flattened index, (1, 64, 1), instead of the 8x8 image."""
    X_tr, _, y_tr, _ = digits_split
    clf = _quiet_fit(PredictedConvNetClassifier(conv_layers=(), max_iter=1, **CPU), X_tr, y_tr)
    assert clf.layers_[0]["dictionary"] == "se"
    assert clf.layers_[0]["image_shape"] == (8, 8, 1)
    assert clf.dictionaries_[0].image_shape_ == (8, 8, 1)
