"""skpred.kernels and skpred.patches: the public helpers the examples use."""

import numpy as np
import pytest

from skpred.kernels import empirical_kernel, predict_from_subset, ridge_predictor, se_kernel
from skpred.patches import normalize_patches, sample_patches


def test_se_kernel_against_the_formula():
    """Reference: exp(-d^2 / (2 l^2)) written out over (row, col, channel)
    coordinates, channels-last order, 0 across channels."""
    K = se_kernel((3, 4, 2), length_scale=(1.5, 0.7))
    idx = np.arange(24)
    r, c, ch = idx // 8, idx // 2 % 4, idx % 2
    d2 = ((r[:, None] - r[None]) / 1.5) ** 2 + ((c[:, None] - c[None]) / 0.7) ** 2
    np.testing.assert_allclose(K, np.exp(-d2 / 2) * (ch[:, None] == ch[None]), rtol=1e-12)
    for bad in [(0, 3), (2, 2, 2, 2), "8x8", (2.5, 3)]:
        with pytest.raises(ValueError, match="image_shape must be"):
            se_kernel(bad)
    with pytest.raises(ValueError, match="length"):
        se_kernel((4, 4), length_scale=-1.0)


def test_empirical_kernel_and_ridge_predictor_against_numpy():
    X = np.random.RandomState(0).standard_normal((50, 6))
    np.testing.assert_allclose(empirical_kernel(X), np.cov(X, rowvar=False), rtol=1e-10)
    K = empirical_kernel(X)
    a = [1, 4]
    U = ridge_predictor(K[:, a], K[np.ix_(a, a)], 0.5)
    np.testing.assert_allclose(U, K[:, a] @ np.linalg.inv(K[np.ix_(a, a)] + 0.5 * np.eye(2)),
                               rtol=1e-10)
    np.testing.assert_array_equal(ridge_predictor(K[:, a], K[np.ix_(a, a)], None), K[:, a])
    with pytest.raises(ValueError, match="at least 2 samples"):
        empirical_kernel(X[:1])
    with pytest.raises(ValueError, match="NaN"):
        empirical_kernel(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="K_aa must have shape"):
        ridge_predictor(K[:, a], K, 0.1)
    with pytest.raises(ValueError, match="ridge must be"):
        ridge_predictor(K[:, a], K[np.ix_(a, a)], 0.0)


def test_predict_from_subset_recovers_smooth_features_not_noise():
    """Breakage caught: the kept locations not used (error as large for
    smooth features as for noise), or a seed that does not reproduce.
    Reference: the prediction recomputed here from the returned alphas."""
    K = se_kernel((8, 8), length_scale=2.0)
    rng = np.random.RandomState(0)
    smooth = np.linalg.cholesky(K + 1e-6 * np.eye(64)) @ rng.standard_normal((64, 6))
    W_hat, alphas, err = predict_from_subset(smooth, K, 0.25, random_state=1, ridge=1e-3)
    for j, a in enumerate(alphas):
        U = K[:, a] @ np.linalg.inv(K[np.ix_(a, a)] + 1e-3 * np.eye(len(a)))
        np.testing.assert_allclose(W_hat[:, j], U @ smooth[a, j], rtol=1e-8, atol=1e-10)
    _, _, noise_err = predict_from_subset(rng.standard_normal((64, 6)), K, 0.25, random_state=1)
    assert err.mean() < 0.5 < noise_err.mean()
    again = predict_from_subset(smooth, K, 0.25, random_state=1, ridge=1e-3)
    np.testing.assert_array_equal(again[1], alphas)
    for kwargs, match in [(dict(alpha_fraction=0.0), "alpha_fraction"),
                          (dict(alpha_fraction=0.5, ridge=-1), "ridge"),
                          (dict(alpha_fraction=0.5, kernel=K[:10]), "kernel must have shape")]:
        args = dict(W=smooth, kernel=K)
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            predict_from_subset(**args)


def test_sample_patches_reads_the_right_pixels():
    """Breakage caught: rows and columns swapped, channels interleaved
    wrongly. Reference: each patch found by explicit slicing at some
    position of its image."""
    rng = np.random.RandomState(0)
    images = rng.standard_normal((3, 5 * 7 * 2))
    P = sample_patches(images, (5, 7, 2), (2, 3), 20, random_state=0)
    assert P.shape == (20, 2 * 3 * 2)
    cube = images.reshape(3, 5, 7, 2)
    for p in P:
        found = any(np.array_equal(cube[i, r:r + 2, c:c + 3].ravel(), p)
                    for i in range(3) for r in range(4) for c in range(5))
        assert found
    for args, match in [((images, (5, 7), 2, 3), "must have shape"),
                        ((images, (5, 7, 2), 9, 3), "larger than"),
                        ((images, (5, 7, 2), 2, 0), "n_patches"),
                        ((np.full_like(images, np.nan), (5, 7, 2), 2, 3), "finite")]:
        with pytest.raises(ValueError, match=match):
            sample_patches(*args)


def test_normalize_patches_against_numpy():
    P = np.random.RandomState(0).standard_normal((4, 9)) * 5 + 3
    out = normalize_patches(P, 10.0)
    centred = P - P.mean(1, keepdims=True)
    np.testing.assert_allclose(out, centred / np.sqrt(centred.var(1, keepdims=True) + 10.0))
    with pytest.raises(ValueError, match="constant and epsilon=0"):
        normalize_patches(np.ones((2, 4)), 0)
    with pytest.raises(ValueError, match="epsilon must be"):
        normalize_patches(P, -1)
