"""Kernels over input locations and post-hoc prediction of learned features.

The building blocks of the dictionaries, public for analyses such as the
paper's Figure 1 (how well a learned feature is predicted from a random
subset of its weights). Every function validates its input and raises a
ValueError naming the problem.
"""

from numbers import Real

import numpy as np
from sklearn.utils import check_random_state

from . import _kernels
from ._layers import check_length_scale

__all__ = ["se_kernel", "empirical_kernel", "ridge_predictor", "predict_from_subset"]


def _finite_2d(A, name):
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {A.shape}.")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or infinity.")
    return A


def _check_shape(image_shape):
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else None
    if (shape is None or not 1 <= len(shape) <= 3
            or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in shape)):
        raise ValueError(f"image_shape must be (n,), (rows, cols) or (rows, cols, channels) "
                         f"of positive integers, got {image_shape!r}.")
    return tuple(int(s) for s in shape)


def se_kernel(image_shape, length_scale=1.0):
    """Squared-exponential kernel between the locations of an image grid.

    ``k(i, j) = exp(-d^2 / 2)``, ``d`` the distance between the (row, col)
    coordinates of ``i`` and ``j`` divided by the length scale of each axis;
    0 between different channels. Locations are numbered channels-last
    (the order of a flattened ``(rows, cols, channels)`` image).

    Parameters
    ----------
    image_shape : tuple of int
        ``(n,)``, ``(rows, cols)`` or ``(rows, cols, channels)``.
    length_scale : float or pair of float, default=1.0
        In pixels; a pair gives the rows' and the columns' scale.

    Returns
    -------
    K : ndarray of shape (n_locations, n_locations)

    Examples
    --------
    >>> from skpred.kernels import se_kernel
    >>> K = se_kernel((8, 8))
    >>> K.shape, float(K[0, 1].round(4)), float(K[0, 8].round(4))
    ((64, 64), 0.6065, 0.6065)
    """
    shape = _check_shape(image_shape)
    check_length_scale(length_scale)
    return _kernels.se_kernel(shape, length_scale)


def empirical_kernel(X):
    """The covariance of the input features, ``np.cov(X, rowvar=False)``:
    the paper's data-driven ``emp`` kernel.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), n_samples >= 2

    Returns
    -------
    K : ndarray of shape (n_features, n_features)
    """
    X = _finite_2d(X, "X")
    if X.shape[0] < 2:
        raise ValueError(f"The empirical kernel needs at least 2 samples, got {X.shape[0]}.")
    return _kernels.empirical_kernel(X)


def ridge_predictor(K_xa, K_aa, ridge):
    """Kernel ridge predictor ``U = K_xa (K_aa + ridge I)^-1``: the map from
    a feature's weights at the locations alpha to all its weights.

    Parameters
    ----------
    K_xa : array-like of shape (n_locations, n_atoms)
    K_aa : array-like of shape (n_atoms, n_atoms)
        Symmetric positive semi-definite.
    ridge : float > 0 or None
        None is the paper's raw mode, ``U = K_xa``.

    Returns
    -------
    U : ndarray of shape (n_locations, n_atoms)
    """
    K_xa, K_aa = _finite_2d(K_xa, "K_xa"), _finite_2d(K_aa, "K_aa")
    if K_aa.shape != (K_xa.shape[1],) * 2:
        raise ValueError(f"K_aa must have shape ({K_xa.shape[1]}, {K_xa.shape[1]}), "
                         f"got {K_aa.shape}.")
    if ridge is not None and not (isinstance(ridge, Real) and ridge > 0):
        raise ValueError(f"ridge must be a positive number or None, got {ridge!r}.")
    return _kernels.ridge_predictor(K_xa, K_aa, ridge)


def predict_from_subset(W, kernel, alpha_fraction, random_state=None, ridge=1e-6):
    """Predict learned features from a random subset of their weights.

    For every feature (a column of ``W``) an independent subset alpha of
    its weights is kept and the rest predicted by kernel ridge regression,
    ``w_hat = U w[alpha]`` with ``U = K_xa (K_aa + ridge I)^-1`` (the
    paper's Figure 1).

    Parameters
    ----------
    W : array-like of shape (n_locations, n_units)
        Learned features, one per column (e.g. ``clf.coefs_[0]``).
    kernel : array-like of shape (n_locations, n_locations)
        E.g. :func:`se_kernel` or :func:`empirical_kernel`.
    alpha_fraction : float in (0, 1]
        Share of each feature's weights kept.
    random_state : int, RandomState instance or None, default=None
    ridge : float > 0, default=1e-6

    Returns
    -------
    W_hat : ndarray of shape (n_locations, n_units)
    alphas : ndarray of int of shape (n_units, n_atoms)
        The kept locations of each feature.
    relative_error : ndarray of shape (n_units,)
        ``||w - w_hat|| / ||w||`` per feature.

    Examples
    --------
    >>> import numpy as np
    >>> from skpred.kernels import predict_from_subset, se_kernel
    >>> K = se_kernel((8, 8), length_scale=2.0)
    >>> smooth = np.linalg.cholesky(K + 1e-6 * np.eye(64)) @ np.random.RandomState(0).randn(64, 5)
    >>> W_hat, alphas, err = predict_from_subset(smooth, K, 0.25, random_state=0)
    >>> alphas.shape, bool(err.mean() < 0.5)
    ((5, 16), True)
    """
    W = _finite_2d(W, "W")
    K = _finite_2d(kernel, "kernel")
    if not (isinstance(alpha_fraction, Real) and 0 < alpha_fraction <= 1):
        raise ValueError(f"alpha_fraction must be in (0, 1], got {alpha_fraction!r}.")
    if not (isinstance(ridge, Real) and ridge > 0):
        raise ValueError(f"ridge must be a positive number, got {ridge!r}.")
    rng = random_state if isinstance(random_state, np.random.Generator) \
        else check_random_state(random_state)
    return _kernels.predict_from_subset(W, K, alpha_fraction, rng, ridge=ridge)
