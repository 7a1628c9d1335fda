"""Plot helpers (matplotlib is imported only when one is called)."""

import math

import numpy as np

__all__ = ["plot_features", "plot_history", "plot_redundancy"]


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


def _phase_kind(phase):
    """Panels of plot_history: pretraining phases (a reconstruction MSE)
    share one; every other phase (fine-tuning, RICA) has its own."""
    return "pretraining (reconstruction MSE)" if phase.startswith("pretrain") else phase


def plot_history(history, *, fig=None, score=True):
    """Training curves from an estimator's ``history_``, one panel per kind
    of loss.

    Pretraining phases (each layer's reconstruction MSE) share the first
    panel; fine-tuning (cross-entropy or squared error) has its own, with
    the validation loss beside the training loss when there was one and
    the validation score on a right-hand axis. The x axis counts epochs
    over the whole fit. Legends sit outside the curves, right of each
    panel, and the layout is tightened so that no label is cut off.

    Parameters
    ----------
    history : list of dict or a fitted estimator
        ``est.history_`` (or ``est`` itself).
    fig : matplotlib Figure or None
        Drawn into (cleared first); a new figure when None.
    score : bool
        Draw the validation score (right axis) when the history has one.

    Returns
    -------
    axes : list of matplotlib Axes
        One per panel, in the order of the phases.
    """
    import matplotlib.pyplot as plt

    history = getattr(history, "history_", history)
    if not history:
        raise ValueError("history is empty: fit the estimator first.")
    kinds = list(dict.fromkeys(_phase_kind(r["phase"]) for r in history))
    if fig is None:
        fig = plt.figure(figsize=(7.5, 2.8 * len(kinds)))
    else:
        fig.clear()
    axes = fig.subplots(len(kinds), 1, squeeze=False)[:, 0].tolist()
    step = np.arange(1, len(history) + 1)
    for ax, kind in zip(axes, kinds):
        phases = [p for p in dict.fromkeys(r["phase"] for r in history) if _phase_kind(p) == kind]
        for phase in phases:
            rows = [i for i, r in enumerate(history) if r["phase"] == phase]
            ax.plot(step[rows], [history[i]["train_loss"] for i in rows],
                    label=f"{phase}: train loss")
            valid = [i for i in rows if history[i].get("valid_loss") is not None]
            if valid:
                ax.plot(step[valid], [history[i]["valid_loss"] for i in valid], "--",
                        label=f"{phase}: validation loss")
        ax.set_title(kind, fontsize="medium")
        ax.set_ylabel("loss")
        handles, labels = ax.get_legend_handles_labels()
        scored = [i for i, r in enumerate(history)
                  if r.get("valid_score") is not None and _phase_kind(r["phase"]) == kind]
        if score and scored:
            right = ax.twinx()
            right.plot(step[scored], [history[i]["valid_score"] for i in scored], ":",
                       color="k", label="validation score")
            right.set_ylabel("validation score")
            more_handles, more_labels = right.get_legend_handles_labels()
            handles, labels = handles + more_handles, labels + more_labels
            # the legend goes right of the score axis's labels
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.15, 1.0),
                      fontsize="small", frameon=False)
        else:
            ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      fontsize="small", frameon=False)
    axes[-1].set_xlabel("epoch (whole fit)")
    fig.tight_layout()
    return axes


def plot_redundancy(rows, *, ax=None, title=None):
    """Relative error of predicting features from a kept fraction of their
    weights, per layer, against the same on white noise (dashed): the
    result of :func:`skpred.redundancy`.

    Parameters
    ----------
    rows : list of dict
        :func:`skpred.redundancy`'s rows.
    ax : matplotlib Axes or None
    title : str or None

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt

    rows = list(rows)
    needed = {"layer", "kept_fraction", "mean_relative_error", "noise_mean_relative_error"}
    if not rows or not all(needed <= set(r) for r in rows):
        raise ValueError("rows must be skpred.redundancy's result (a non-empty list of dicts "
                         f"with {sorted(needed)}).")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    for layer in dict.fromkeys(r["layer"] for r in rows):
        mine = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["kept_fraction"])
        x = [r["kept_fraction"] for r in mine]
        line, = ax.plot(x, [r["mean_relative_error"] for r in mine], marker="o",
                        label=f"layer {layer}")
        ax.plot(x, [r["noise_mean_relative_error"] for r in mine], ls="--",
                color=line.get_color(), label=f"layer {layer}, white noise")
    ax.axhline(1.0, color="k", lw=0.8, ls=":")  # what predicting zeros scores
    ax.set_xlabel("kept fraction of each feature's weights")
    ax.set_ylabel("relative error of the prediction")
    ax.set_ylim(0, 1.15)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return ax
