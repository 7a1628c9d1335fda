"""Numeric core of parameter prediction: pure numpy/scipy functions.

Arrays in, arrays out, no estimator state. Every function that draws random
numbers takes a ``numpy.random.Generator`` or ``RandomState`` explicitly.

Conventions
-----------
Input locations are the features of a layer's input. For an image of shape
``(rows, cols)`` or ``(rows, cols, channels)`` the flattened input is the
C-order ravel of that shape: feature ``i`` sits at
``numpy.unravel_index(i, image_shape)``. For a colour image this is
channels-last ("HWC", the order of ``image.reshape(-1)`` for an array of
shape ``(rows, cols, channels)``).

A dictionary ``U`` has shape ``(n_features, n_atoms)``: column ``k`` is the
``k``-th atom; a layer's weights are ``W = U @ V``.
"""

import math

import numpy as np
from scipy import linalg
from scipy.fft import dct as _scipy_dct

__all__ = [
    "grid_coordinates",
    "infer_image_shape",
    "grid_shape",
    "se_kernel",
    "empirical_kernel",
    "empirical_squared_kernel",
    "dct_atoms",
    "sample_alpha",
    "ridge_predictor",
    "random_dictionary",
    "randcon_dictionary",
    "predict_from_subset",
    "krr_loo_residuals",
    "select_se_by_loo",
    "hwc_to_chw_rows",
]


def infer_image_shape(n_features, image_shape=None):
    """Return a validated image shape for ``n_features`` inputs.

    Parameters
    ----------
    n_features : int
        Number of input features.
    image_shape : tuple of int or None
        ``(rows, cols)`` or ``(rows, cols, channels)``. ``None`` infers a
        square grayscale grid, which requires ``n_features`` to be a perfect
        square.

    Returns
    -------
    image_shape : tuple of int
        Always of length 3, ``(rows, cols, channels)``.

    Raises
    ------
    ValueError
        If the shape does not multiply out to ``n_features`` or cannot be
        inferred.
    """
    if image_shape is None:
        side = math.isqrt(int(n_features))
        if side * side != n_features:
            raise ValueError(
                f"image_shape=None can only be inferred for a square grayscale "
                f"image, but n_features={n_features} is not a perfect square; "
                f"pass image_shape=(rows, cols) or (rows, cols, channels)."
            )
        return (side, side, 1)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or any(s < 1 for s in shape):
        raise ValueError(
            f"image_shape must be (rows, cols) or (rows, cols, channels) of "
            f"positive integers, got {image_shape!r}."
        )
    if math.prod(shape) != n_features:
        raise ValueError(
            f"image_shape={image_shape!r} holds {math.prod(shape)} values but "
            f"the data has n_features={n_features}."
        )
    return shape if len(shape) == 3 else shape + (1,)


def grid_shape(n_features, image_shape=None):
    """The grid a convolution-style model reads ``n_features`` inputs on.

    Parameters
    ----------
    n_features : int
    image_shape : tuple of int, "1d" or None
        A given shape is validated by :func:`infer_image_shape`. ``"1d"`` is a
        1-D signal. None is a square grayscale image when ``n_features`` is a
        perfect square and a 1-D signal otherwise: a model made of local
        filters needs some grid, and the feature order is the only one
        there is.

    Returns
    -------
    image_shape : tuple (rows, cols, channels)
    one_d : bool
        Whether the grid is a 1-D signal, ``(1, n_features, 1)``.
    """
    if image_shape == "1d":
        return (1, int(n_features), 1), True
    if image_shape is None:
        side = math.isqrt(int(n_features))
        if side * side != n_features:
            return (1, int(n_features), 1), True
    return infer_image_shape(n_features, image_shape), False


def grid_coordinates(image_shape):
    """Integer coordinates of every input location of an image grid.

    Parameters
    ----------
    image_shape : tuple of int
        ``(rows, cols)`` or ``(rows, cols, channels)``.

    Returns
    -------
    coords : ndarray of shape (prod(image_shape), len(image_shape))
        Row ``i`` is ``numpy.unravel_index(i, image_shape)``: the C-order of
        the shape given, so it matches ``image.reshape(-1)``.
    """
    shape = tuple(int(s) for s in image_shape)
    grids = np.indices(shape).reshape(len(shape), -1).T
    return grids.astype(np.float64)


def _length_scales(length_scale, n_axes):
    ls = np.atleast_1d(np.asarray(length_scale, dtype=np.float64))
    if ls.ndim != 1 or ls.size not in (1, n_axes):
        raise ValueError(
            f"length_scale must be a scalar or have one entry per spatial axis "
            f"({n_axes}), got {length_scale!r}."
        )
    if not np.all(np.isfinite(ls)) or np.any(ls <= 0):
        raise ValueError(f"length_scale must be positive, got {length_scale!r}.")
    return np.broadcast_to(ls, (n_axes,))


def se_kernel(image_shape, length_scale=1.0, columns=None):
    """Squared-exponential kernel between input locations of an image grid.

    ``k(i, j) = exp(-d^2 / 2)`` with ``d`` the distance between the spatial
    (row, col) coordinates of ``i`` and ``j`` divided by the length scale per
    axis; ``k(i, j) = 0`` when ``i`` and ``j`` lie in different channels.

    Parameters
    ----------
    image_shape : tuple of int
        ``(n,)`` for a 1-D grid, ``(rows, cols)`` or ``(rows, cols, channels)``.
    length_scale : float or array-like of shape (n_spatial_axes,)
        In grid steps (pixels).
    columns : array-like of int or None
        Locations to evaluate against (``K[:, columns]``); all when None.

    Returns
    -------
    K : ndarray of shape (n_features, n_columns)
    """
    shape = tuple(int(s) for s in image_shape)
    has_channels = len(shape) == 3
    coords = grid_coordinates(shape)
    if has_channels:
        spatial, channel = coords[:, :2], coords[:, 2]
    else:
        spatial, channel = coords, np.zeros(len(coords))
    spatial = spatial / _length_scales(length_scale, spatial.shape[1])
    cols = slice(None) if columns is None else np.asarray(columns, dtype=np.intp)
    d2 = (
        (spatial**2).sum(1)[:, None]
        + (spatial[cols] ** 2).sum(1)[None, :]
        - 2.0 * spatial @ spatial[cols].T
    )
    K = np.exp(-0.5 * np.maximum(d2, 0.0))
    K[channel[:, None] != channel[cols][None, :]] = 0.0
    return K


def _covariance(X, name, square=False, chunk=4096):
    """Covariance over samples, computed in float64 chunk by chunk.

    The data is never copied to float64 whole: peak extra memory is one
    chunk plus the (n_features, n_features) result. A shift by the first
    chunk's mean keeps the one-pass formula accurate.
    """
    if not hasattr(X, "shape"):
        X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"The {name} kernel needs a 2-D data array, got {X.ndim}-D.")
    n, d = X.shape
    if n < 2:
        raise ValueError(
            f"The {name} kernel is a covariance over samples and needs at least "
            f"2 samples, got n_samples={n}."
        )
    shift = None
    total = np.zeros(d)
    cross = np.zeros((d, d))
    for start in range(0, n, chunk):
        B = np.asarray(X[start:start + chunk], dtype=np.float64)
        if not np.all(np.isfinite(B)):
            raise ValueError(f"The {name} kernel got data containing NaN or infinity.")
        if square:
            B = B * B
        if shift is None:
            shift = B.mean(axis=0)
        B = B - shift
        total += B.sum(axis=0)
        cross += B.T @ B
    mean = total / n
    return (cross - n * np.outer(mean, mean)) / (n - 1)


def empirical_kernel(X):
    """Empirical covariance of the inputs, the ``emp`` kernel.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any float dtype; it is not copied to float64 as a whole.

    Returns
    -------
    K : ndarray of shape (n_features, n_features)
        Equal to ``np.cov(X, rowvar=False)``.
    """
    return _covariance(X, "emp")


def empirical_squared_kernel(X):
    """Empirical covariance of the element-wise squared inputs, ``emp2``."""
    return _covariance(X, "emp2", square=True)


def dct_atoms(image_shape):
    """Orthonormal separable DCT-II atoms on an image grid.

    Parameters
    ----------
    image_shape : tuple of int
        ``(rows, cols)`` or ``(rows, cols, channels)``. With channels every
        atom lives in a single channel (zero elsewhere).

    Returns
    -------
    atoms : ndarray of shape (n_features, n_features)
        Column ``k`` is the atom of frequency ``unravel_index(k, image_shape)``
        (frequencies in the same C-order as locations), flattened like the
        input. The matrix is orthogonal.
    """
    shape = tuple(int(s) for s in image_shape)
    rows, cols = shape[0], shape[1]
    channels = shape[2] if len(shape) == 3 else 1
    # Orthonormal DCT-II matrices: D[k, n] is frequency k at position n.
    d_rows = _scipy_dct(np.eye(rows), type=2, norm="ortho", axis=0)
    d_cols = _scipy_dct(np.eye(cols), type=2, norm="ortho", axis=0)
    spatial = np.kron(d_rows, d_cols).T  # (positions, frequencies)
    atoms = np.kron(spatial, np.eye(channels))
    return atoms


def n_atoms_for(n_locations, alpha_fraction=None, n_atoms=None):
    """Number of atoms for a layer: ``n_atoms`` or ``round(fraction * n)``.

    Always between 1 and ``n_locations``.
    """
    if n_atoms is not None:
        if not 1 <= n_atoms <= n_locations:
            raise ValueError(
                f"n_atoms={n_atoms} must be between 1 and the number of input "
                f"locations ({n_locations})."
            )
        return int(n_atoms)
    if not 0 < alpha_fraction <= 1:
        raise ValueError(f"alpha_fraction must be in (0, 1], got {alpha_fraction!r}.")
    return int(min(n_locations, max(1, round(alpha_fraction * n_locations))))


def sample_alpha(n_locations, n_atoms, random_state, n_columns=1, n_channels=1):
    """Draw the subsets alpha of input locations, one per column.

    Parameters
    ----------
    n_locations : int
        Number of input locations (all channels together).
    n_atoms : int
        Size of each subset (a multiple of ``n_channels``).
    random_state : numpy.random.Generator or RandomState
    n_columns : int
        Number of independent draws.
    n_channels : int
        With more than one channel (channels-last layout), one spatial sample
        of ``n_atoms // n_channels`` pixels is drawn and shared by all
        channels, so alpha holds every channel at the chosen pixels.

    Returns
    -------
    alphas : list of ndarray of int
        ``n_columns`` sorted arrays of ``n_atoms`` distinct indices.
    """
    if n_locations % n_channels or n_atoms % n_channels:
        raise ValueError(
            f"n_locations={n_locations} and n_atoms={n_atoms} must be multiples "
            f"of n_channels={n_channels}."
        )
    if not 1 <= n_atoms <= n_locations:
        raise ValueError(
            f"n_atoms={n_atoms} must be between 1 and n_locations={n_locations}."
        )
    n_pixels, n_pick = n_locations // n_channels, n_atoms // n_channels
    alphas = []
    for _ in range(n_columns):
        pixels = np.sort(random_state.choice(n_pixels, size=n_pick, replace=False))
        idx = (pixels[:, None] * n_channels + np.arange(n_channels)[None, :]).ravel()
        alphas.append(idx.astype(np.intp))
    return alphas


def ridge_predictor(K_xa, K_aa, ridge):
    """Kernel ridge predictor ``U = K_xa (K_aa + ridge I)^-1``.

    Parameters
    ----------
    K_xa : ndarray of shape (n_features, n_atoms)
        Kernel between all locations and the locations alpha.
    K_aa : ndarray of shape (n_atoms, n_atoms)
        Kernel among the locations alpha (symmetric positive semi-definite).
    ridge : float > 0 or None
        ``None`` is raw mode: ``U = K_xa``.

    Returns
    -------
    U : ndarray of shape (n_features, n_atoms)

    Notes
    -----
    Solved as a symmetric positive definite system (Cholesky), never with an
    explicit inverse. ``U[alpha] -> I`` as ``ridge -> 0``.
    """
    K_xa = np.asarray(K_xa, dtype=np.float64)
    if ridge is None:
        return K_xa.copy()
    if not ridge > 0:
        raise ValueError(f"ridge must be positive or None, got {ridge!r}.")
    K_aa = np.asarray(K_aa, dtype=np.float64)
    A = K_aa + ridge * np.eye(K_aa.shape[0])
    try:
        return linalg.solve(A, K_xa.T, assume_a="pos").T
    except linalg.LinAlgError as exc:
        raise ValueError(
            "The kernel among the sampled locations is not positive definite "
            "even after adding the ridge; use a larger ridge."
        ) from exc


def krr_loo_residuals(K, Y, ridge):
    """Leave-one-out residuals of kernel ridge regression, in closed form.

    With ``A = K + ridge I`` and targets ``Y`` (one column per function
    observed at the m locations of ``K``), the residual of predicting
    location i from all the others is ``(A^-1 Y)_i / (A^-1)_ii`` (no refit).

    Parameters
    ----------
    K : ndarray of shape (m, m)
        Kernel among the locations.
    Y : ndarray of shape (m, n)
        Values at the locations, one function per column.
    ridge : float > 0

    Returns
    -------
    residuals : ndarray of shape (m, n)
        ``y_i - prediction of y_i from the other m - 1 values``.
    """
    K = np.asarray(K, dtype=np.float64)
    A_inv = linalg.cho_solve(linalg.cho_factor(K + ridge * np.eye(len(K))), np.eye(len(K)))
    return (A_inv @ np.asarray(Y, dtype=np.float64)) / np.diag(A_inv)[:, None]


def krr_loo_errors(K_aa, T, ridges):
    """Sum of squared leave-one-out residuals of kernel ridge regression of
    the kept values ``T`` (m, n) on their kernel ``K_aa`` (m, m), for every
    ridge: the closed form ``[A^-1 T]_i / [A^-1]_ii`` with ``A = K_aa + r
    I``. One eigendecomposition serves every ridge (``A^-1 = Q (S + r)^-1
    Q^T``), each then O(m^2 n)."""
    s_, Q = np.linalg.eigh(np.asarray(K_aa, dtype=np.float64))
    s_ = np.maximum(s_, 0.0)
    QT = Q.T @ T
    Q2 = Q * Q
    out = np.zeros(len(ridges))
    for j, r in enumerate(ridges):
        inv = 1.0 / (s_ + r)
        residual = (Q @ (QT * inv[:, None])) / (Q2 @ inv)[:, None]
        out[j] = float(np.sum(residual ** 2))
    return out


def select_se_by_loo(image_shape, Y, alphas, length_scales, ridges):
    """The se length scale and ridge that best predict kept values from the
    other kept values, by leave-one-out error.

    Parameters
    ----------
    image_shape : tuple
        Grid of the locations.
    Y : ndarray of shape (n_functions, n_locations)
        Functions on the grid (e.g. images, or learned features), each row
        one function. Only the values at the locations in ``alphas`` are read.
    alphas : list of ndarray of int
        The kept locations (one set per column; their errors are summed).
    length_scales, ridges : sequences of float
        The candidates.

    Returns
    -------
    length_scale : float
    ridge : float
    errors : ndarray of shape (len(length_scales), len(ridges))
        Mean squared LOO residual of every candidate, relative to the mean
        squared value (1.0 is what predicting zeros scores).
    """
    Y = np.asarray(Y, dtype=np.float64)
    errors = np.zeros((len(length_scales), len(ridges)))
    energy = 0.0
    for alpha in alphas:
        T = Y[:, alpha].T  # (m, n)
        energy += float(np.sum(T * T))
        for i, ls in enumerate(length_scales):
            errors[i] += krr_loo_errors(se_kernel(image_shape, ls, columns=alpha)[alpha], T,
                                        ridges)
    errors /= energy if energy > 0 else 1.0
    i, j = np.unravel_index(np.argmin(errors), errors.shape)
    return float(length_scales[i]), float(ridges[j]), errors


def random_dictionary(n_features, n_atoms, random_state):
    """Fixed Gaussian dictionary (the paper's RandFixU).

    Entries are N(0, 1 / n_features), so each atom has unit expected squared
    norm and ``x @ U`` has the variance of ``x`` for white ``x``.
    """
    return random_state.standard_normal((n_features, n_atoms)) / np.sqrt(n_features)


def uniform_dictionary(n_features, n_atoms, random_state, irange=0.1):
    """Fixed uniform dictionary, entries U(-irange, irange): RandFixU as the
    authors' code draws it (their ``low_rank_mlp.py``, U fixed, ``irange``
    0.1), where the paper's text describes a Gaussian
    (:func:`random_dictionary`)."""
    return random_state.uniform(-irange, irange, size=(n_features, n_atoms))


def randcon_dictionary(n_features, alpha):
    """Columns of the identity at ``alpha`` (random connections, RandCon)."""
    U = np.zeros((n_features, len(alpha)))
    U[np.asarray(alpha), np.arange(len(alpha))] = 1.0
    return U


def predict_from_subset(W, kernel, alpha_fraction, random_state, ridge=1e-6):
    """Post-hoc prediction of features from a random subset of their weights.

    For every feature (column of ``W``) an independent subset alpha of its
    input locations is kept and the rest is predicted by kernel ridge
    regression, ``w_hat = U w[alpha]`` with ``U = K_xa (K_aa + ridge I)^-1``
    (the paper's Figure 1).

    Parameters
    ----------
    W : array-like of shape (n_features, n_units)
        Learned features, one per column.
    kernel : array-like of shape (n_features, n_features)
        Kernel over input locations (e.g. from :func:`se_kernel`).
    alpha_fraction : float in (0, 1]
        Share of each feature's weights kept.
    random_state : numpy.random.Generator or RandomState
    ridge : float > 0
        Ridge of the predictor.

    Returns
    -------
    W_hat : ndarray of shape (n_features, n_units)
        The predicted features (equal to ``W`` at the kept locations up to the
        ridge's shrinkage).
    alphas : ndarray of int of shape (n_units, n_atoms)
        The kept locations per feature.
    relative_error : ndarray of shape (n_units,)
        ``||w - w_hat|| / ||w||`` per feature.
    """
    W = np.asarray(W, dtype=np.float64)
    K = np.asarray(kernel, dtype=np.float64)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (n_features, n_units), got shape {W.shape}.")
    if K.shape != (W.shape[0], W.shape[0]):
        raise ValueError(
            f"kernel must have shape ({W.shape[0]}, {W.shape[0]}), got {K.shape}."
        )
    n_atoms = n_atoms_for(W.shape[0], alpha_fraction=alpha_fraction)
    alphas = np.stack(sample_alpha(W.shape[0], n_atoms, random_state, W.shape[1]))
    W_hat = np.empty_like(W)
    for j, alpha in enumerate(alphas):
        U = ridge_predictor(K[:, alpha], K[np.ix_(alpha, alpha)], ridge)
        W_hat[:, j] = U @ W[alpha, j]
    norms = np.linalg.norm(W, axis=0)
    err = np.linalg.norm(W - W_hat, axis=0) / np.where(norms > 0, norms, 1.0)
    return W_hat, alphas, err


def hwc_to_chw_rows(U, shape):
    """Reorder dictionary rows from channels-last (rows, cols, channels) to
    torch's (channels, rows, cols) order, both C-order."""
    rows, cols, channels = shape
    perm = np.arange(rows * cols * channels).reshape(rows, cols, channels).transpose(2, 0, 1).ravel()
    return U[perm]
