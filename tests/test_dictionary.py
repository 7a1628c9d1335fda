"""KernelDictionary: behaviour, pipelines, grid search and bad input."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from skpred import KernelDictionary
from skpred import _kernels

KERNELS = ["se", "emp", "emp2", "dct", "ae", "random", "randcon"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_transform_is_x_times_each_column_dictionary(digits, kernel):
    X, _ = digits
    kd = KernelDictionary(kernel, alpha_fraction=0.25, n_columns=3, random_state=0).fit(X)
    assert kd.n_atoms_ == 16 and len(kd.dictionaries_) == 3
    assert kd.components_.shape == (48, 64)
    Z = kd.transform(X[:10])
    expected = np.hstack([X[:10].astype(np.float64) @ U for U in kd.dictionaries_])
    np.testing.assert_allclose(Z, expected, rtol=1e-4, atol=1e-5)  # float32 product
    assert Z.dtype == np.float32
    assert kd.transform(X[:10].astype(np.float64)).dtype == np.float64
    names = kd.get_feature_names_out()
    assert len(names) == 48 and names[0] == "kerneldictionary0"


def test_ae_dictionary_atoms_are_unit_autoencoder_features(digits):
    X, _ = digits
    kd = KernelDictionary("ae", n_atoms=10, ae_n_components=40, ae_max_iter=3, n_columns=2,
                          device="cpu", random_state=0).fit(X)
    for U, alpha in zip(kd.dictionaries_, kd.alpha_indices_):
        assert U.shape == (64, 10) and alpha.max() < 40  # alpha indexes the 40 atoms
        np.testing.assert_allclose(np.linalg.norm(U, axis=0), 1.0, rtol=1e-6)
    assert kd.ridge_ is None
    with pytest.raises(ValueError, match="fewer than the n_atoms=10 requested"):
        KernelDictionary("ae", n_atoms=10, ae_n_components=5, device="cpu").fit(X)


@pytest.mark.parametrize("kernel", ["se", "emp", "dct", "randcon", "ae"])
def test_columns_draw_different_alphas_and_same_seed_gives_same_u(digits, kernel):
    X, _ = digits
    a = KernelDictionary(kernel, n_columns=2, random_state=7).fit(X)
    b = KernelDictionary(kernel, n_columns=2, random_state=7).fit(X)
    c = KernelDictionary(kernel, n_columns=2, random_state=8).fit(X)
    assert not np.array_equal(a.alpha_indices_[0], a.alpha_indices_[1])
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not np.array_equal(a.components_, c.components_)


def test_krr_mode_v_holds_the_weights_at_alpha(digits):
    X, _ = digits
    kd = KernelDictionary("se", alpha_fraction=0.3, ridge=1e-8, random_state=0).fit(X)
    V = np.random.default_rng(0).normal(size=(kd.n_atoms_, 4))
    W = kd.predict_weights(V)
    np.testing.assert_allclose(W[kd.alpha_indices_[0]], V, atol=1e-5)


def test_full_alpha_raw_se_dictionary_is_full_rank(digits):
    X, _ = digits
    kd = KernelDictionary("se", alpha_fraction=1.0, ridge=None, random_state=0).fit(X)
    U = kd.dictionaries_[0]
    assert U.shape == (64, 64)
    assert np.linalg.matrix_rank(U) == 64
    # any dense W is U V for V = U^-1 W
    W = np.random.default_rng(0).normal(size=(64, 10))
    V = np.linalg.solve(U, W)
    np.testing.assert_allclose(kd.predict_weights(V), W, atol=1e-8)


def test_predict_weights_matches_transform_then_linear(digits):
    X, _ = digits
    kd = KernelDictionary("emp", n_columns=2, random_state=0).fit(X)
    V = np.random.default_rng(1).normal(size=(2, kd.n_atoms_, 3))
    W = kd.predict_weights(V)
    Z = kd.transform(X[:20].astype(np.float64))
    a = kd.n_atoms_
    via_pool = np.hstack([Z[:, :a] @ V[0], Z[:, a:] @ V[1]])
    np.testing.assert_allclose(X[:20] @ W, via_pool, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="V must have shape"):
        kd.predict_weights(np.ones((2, a + 1, 3)))
    with pytest.raises(ValueError, match="only accepted for one column"):
        kd.predict_weights(np.ones((a, 3)))


def test_emp_dictionary_uses_np_cov(digits):
    X, _ = digits
    kd = KernelDictionary("emp", ridge=1e-3, random_state=0).fit(X)
    Kf = np.cov(X.astype(np.float64), rowvar=False)
    a = kd.alpha_indices_[0]
    U = np.linalg.solve(Kf[np.ix_(a, a)] + 1e-3 * np.eye(len(a)), Kf[:, a].T).T
    np.testing.assert_allclose(kd.dictionaries_[0], U, rtol=1e-6, atol=1e-8)


def test_colour_se_shares_pixels_across_channels():
    X = np.random.default_rng(0).random((5, 6 * 6 * 3))
    kd = KernelDictionary("se", alpha_fraction=0.25, image_shape=(6, 6, 3), random_state=0).fit(X)
    assert kd.n_atoms_ == 9 * 3
    pixels, ch = np.divmod(kd.alpha_indices_[0], 3)
    assert len(np.unique(pixels)) == 9 and np.all(np.bincount(ch) == 9)


def test_callable_kernel_and_n_atoms_override(digits):
    X, _ = digits
    def gram(X):
        return _kernels.se_kernel((8, 8), 1.0)

    a = KernelDictionary(gram, n_atoms=10, alpha_fraction=0.9, ridge=0.1, random_state=0).fit(X)
    b = KernelDictionary("se", n_atoms=10, ridge=0.1, random_state=0).fit(X)
    assert a.n_atoms_ == 10
    np.testing.assert_allclose(a.components_, b.components_, atol=1e-12)
    with pytest.raises(ValueError, match=r"callable kernel must return an array of shape"):
        KernelDictionary(lambda X: np.eye(3)).fit(X)


def test_pipeline_and_grid_search_over_alpha_fraction_and_n_columns(digits):
    X, y = digits
    pipe = make_pipeline(
        KernelDictionary("se", random_state=0), LogisticRegression(max_iter=300)
    )
    grid = GridSearchCV(
        pipe,
        {"kerneldictionary__alpha_fraction": [0.1, 0.5], "kerneldictionary__n_columns": [1, 2]},
        cv=3,
    )
    grid.fit(X, y)
    scores = grid.cv_results_["mean_test_score"]
    assert len(scores) == 4
    # 32 smooth pooled features of digits classify far above chance (0.1)
    assert grid.best_score_ > 0.85
    params = grid.cv_results_["params"]
    by = {(p["kerneldictionary__alpha_fraction"], p["kerneldictionary__n_columns"]): s
          for p, s in zip(params, scores)}
    # more atoms is a richer model: 0.5 beats 0.1 at one column
    assert by[(0.5, 1)] > by[(0.1, 1)]


@pytest.mark.parametrize(
    "params, match",
    [
        ({"alpha_fraction": 0.0}, "alpha_fraction"),
        ({"alpha_fraction": 1.5}, "alpha_fraction"),
        ({"n_columns": 0}, "n_columns"),
        ({"kernel": "bogus"}, "kernel"),
        ({"ridge": -1.0}, "ridge"),
        ({"n_atoms": 100}, "n_atoms=100 exceeds the number of input features"),
        ({"image_shape": (4, 4)}, r"holds 16 values but the data has n_features=64"),
    ],
)
def test_bad_parameters_raise_clear_value_errors(digits, params, match):
    X, _ = digits
    with pytest.raises(ValueError, match=match):
        KernelDictionary(**params).fit(X)


def test_grid_kernel_without_derivable_image_shape():
    X = np.random.default_rng(0).random((10, 10))
    for kernel in ("se", "dct"):
        with pytest.raises(ValueError, match="not a perfect square"):
            KernelDictionary(kernel).fit(X)
    KernelDictionary("emp").fit(X)  # data kernels need no grid


@pytest.mark.parametrize("kernel", ["emp", "emp2", "se"])
def test_nan_inf_and_one_sample(kernel, digits):
    X, _ = digits
    Xbad = X[:20].copy()
    Xbad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KernelDictionary(kernel).fit(Xbad)
    Xbad[3, 4] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        KernelDictionary(kernel).fit(Xbad)
    if kernel != "se":
        with pytest.raises(ValueError, match="needs at least 2 samples, got n_samples=1"):
            KernelDictionary(kernel).fit(X[:1])


def test_wrong_feature_count_at_transform(digits):
    X, _ = digits
    kd = KernelDictionary("se").fit(X)
    with pytest.raises(ValueError, match="features"):
        kd.transform(X[:, :10])


def test_auto_ridge_is_relative_to_the_kernel_scale(digits):
    X, _ = digits
    a = KernelDictionary("emp", random_state=0).fit(X)
    b = KernelDictionary("emp", random_state=0).fit(X * 0.01)  # variances 1e4 times smaller
    mean_var = np.mean(np.var(X.astype(np.float64), axis=0, ddof=1))
    assert a.ridge_ == pytest.approx(0.01 * mean_var)
    assert b.ridge_ == pytest.approx(a.ridge_ * 1e-4)
    # so U, which maps kept weights to full ones, does not depend on the scale
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-4, atol=1e-6)
    assert KernelDictionary("se").fit(X).ridge_ == 0.1
    assert KernelDictionary("emp", ridge=0.5).fit(X).ridge_ == 0.5
