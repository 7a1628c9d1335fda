"""Image patches, as the Coates et al. pipeline and PredictedRICA use them.

Images are flattened channels-last rows, ``(n_images, rows * cols *
channels)``, as everywhere in skpred.
"""

from numbers import Integral, Real

import numpy as np

from . import _image

__all__ = ["sample_patches", "normalize_patches"]


def sample_patches(X, image_shape, patch_size, n_patches, random_state=None):
    """Random patches from flattened channels-last images.

    Parameters
    ----------
    X : array-like of shape (n_images, rows * cols * channels)
    image_shape : tuple ``(rows, cols)`` or ``(rows, cols, channels)``
    patch_size : int or tuple ``(ph, pw)``
    n_patches : int >= 1
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    patches : ndarray of shape (n_patches, ph * pw * channels)
        Flattened channels-last, like the images.

    Examples
    --------
    >>> import numpy as np
    >>> from skpred.patches import sample_patches
    >>> images = np.arange(2 * 6 * 6, dtype=float).reshape(2, 36)
    >>> sample_patches(images, (6, 6), 3, n_patches=4, random_state=0).shape
    (4, 9)
    """
    shape = tuple(image_shape) if isinstance(image_shape, (tuple, list)) else ()
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3 or not all(isinstance(s, Integral) and s >= 1 for s in shape):
        raise ValueError(f"image_shape must be (rows, cols) or (rows, cols, channels) of "
                         f"positive integers, got {image_shape!r}.")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] != int(np.prod(shape)):
        raise ValueError(f"X must have shape (n_images, {int(np.prod(shape))}) for "
                         f"image_shape={image_shape!r}, got {X.shape}.")
    if not np.issubdtype(X.dtype, np.number) or not np.all(np.isfinite(X)):
        raise ValueError("X must hold finite numbers (no NaN or infinity).")
    sizes = (patch_size,) * 2 if isinstance(patch_size, Integral) else tuple(patch_size)
    if len(sizes) != 2 or not all(isinstance(s, Integral) and s >= 1 for s in sizes):
        raise ValueError(f"patch_size must be a positive int or a pair, got {patch_size!r}.")
    if not isinstance(n_patches, Integral) or n_patches < 1:
        raise ValueError(f"n_patches must be a positive integer, got {n_patches!r}.")
    return _image.sample_patches(X, shape, sizes, int(n_patches), random_state)


def normalize_patches(patches, epsilon=10.0):
    """Remove each patch's mean and divide by ``sqrt(variance + epsilon)``
    (Coates et al.'s brightness and contrast normalisation; their epsilon
    is 10 for pixel values in 0..255).

    Parameters
    ----------
    patches : array-like of shape (n_patches, n_values)
    epsilon : float >= 0, default=10.0
        0 divides by the standard deviation exactly; a constant patch then
        has none, which is a ValueError.

    Returns
    -------
    normalized : ndarray of shape (n_patches, n_values), float64
    """
    P = np.asarray(patches, dtype=np.float64)
    if P.ndim != 2 or P.size == 0:
        raise ValueError(f"patches must be a non-empty 2-D array, got shape {P.shape}.")
    if not np.all(np.isfinite(P)):
        raise ValueError("patches contain NaN or infinity.")
    if not (isinstance(epsilon, Real) and epsilon >= 0):
        raise ValueError(f"epsilon must be a number >= 0, got {epsilon!r}.")
    if epsilon == 0 and np.any(P.var(axis=1) == 0):
        raise ValueError("A patch is constant and epsilon=0: its variance is 0. Use epsilon > 0.")
    return _image.normalize_patches(P, epsilon)
