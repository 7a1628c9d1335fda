"""Plot helpers (matplotlib is imported only when one is called)."""

import math

import numpy as np

__all__ = ["plot_features"]


def plot_features(components, patch_shape, *, n_cols=None, fig=None, title=None):
    """Show features as a grid of image patches (the paper's Figure 2 look).

    Parameters
    ----------
    components : ndarray of shape (n_features, ph * pw * channels)
        One feature per row, channels-last like the patches.
    patch_shape : tuple ``(ph, pw)`` or ``(ph, pw, channels)``
    n_cols : int or None
        Grid columns; about square when None.
    fig : matplotlib Figure or None
    title : str or None

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt

    W = np.asarray(components, dtype=np.float64)
    shape = tuple(patch_shape)
    if W.ndim != 2 or W.shape[1] != int(np.prod(shape)):
        raise ValueError(
            f"components must have shape (n_features, {int(np.prod(shape))}) for "
            f"patch_shape={patch_shape}, got {W.shape}."
        )
    n = len(W)
    n_cols = n_cols or math.ceil(math.sqrt(n))
    n_rows = math.ceil(n / n_cols)
    fig = fig or plt.figure(figsize=(n_cols * 0.6, n_rows * 0.6))
    for i, w in enumerate(W):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        img = w.reshape(shape)
        # each feature scaled to its own range, grey = 0
        m = np.abs(img).max() or 1.0
        img = 0.5 + 0.5 * img / m
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None,
                  interpolation="nearest", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    return fig
