"""How redundant a trained network's weights are: the paper's Figure 1
analysis for any network.

For each layer and each kept fraction, keep every feature's weights at one
random subset alpha of its input locations, predict the others by kernel
ridge regression with the se kernel on the input grid (length scale and
ridge chosen from the kept values alone, by closed-form leave-one-out
error), and report the relative error of the prediction; the same on white
noise of the same shape is the baseline of weights with no structure (and
predicting zeros scores 1).
"""

from typing import List

import numpy as np
import torch
from torch import nn

from . import _kernels
from ._convert import _layers, _record_inputs
from .nn import PredictedConv2d

__all__ = ["redundancy", "predict_subset", "LENGTH_SCALES", "RIDGES"]

# Candidates of the leave-one-out choice; a ridge of 1e3 predicts about
# zero, so the choice is never much worse than predicting zeros.
LENGTH_SCALES = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
RIDGES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 1e3)


def _relative_errors(W, W_hat):
    """Each feature's (column's) ``||w - w_hat|| / ||w||`` (0 for a zero w)."""
    norms = np.linalg.norm(W, axis=0)
    return np.linalg.norm(W - W_hat, axis=0) / np.where(norms > 0, norms, 1.0)


def predict_subset_with_kernel(W, K, frac, rng):
    """:func:`predict_subset` with a given kernel matrix ``K`` (n, n) over
    the locations (e.g. the covariance of the layer's inputs): the ridge,
    relative to K's mean diagonal, is chosen by leave-one-out on the kept
    values."""
    n = W.shape[0]
    alpha = _kernels.sample_alpha(n, _kernels.n_atoms_for(n, alpha_fraction=frac), rng)[0]
    scale = float(np.mean(np.diag(K))) or 1.0
    ridges = [r * scale for r in RIDGES]
    errors = _kernels.krr_loo_errors(K[np.ix_(alpha, alpha)], W[alpha], ridges)
    ridge = ridges[int(np.argmin(errors))]
    W_hat = _kernels.ridge_predictor(K[:, alpha], K[np.ix_(alpha, alpha)], ridge) @ W[alpha]
    return W_hat, alpha, _relative_errors(W, W_hat), None, ridge


def predict_subset(W, shape, frac, rng):
    """Keep one random alpha of every feature (the same locations for all:
    whole pixels on a grid with channels), choose the se predictor by
    leave-one-out on the kept values, predict the rest.

    ``W`` has one feature per column, ``(n_locations, n_features)``, its
    rows in the grid ``shape``'s channels-last order. Returns the
    prediction, alpha, each feature's relative error and the choice
    (length scale, ridge).
    """
    n = W.shape[0]
    channels = shape[2] if len(shape) == 3 else 1
    atoms = channels * _kernels.n_atoms_for(n // channels, alpha_fraction=frac)
    alpha = _kernels.sample_alpha(n, atoms, rng, n_channels=channels)[0]
    ls, ridge, _ = _kernels.select_se_by_loo(shape, W.T, [alpha], LENGTH_SCALES, RIDGES)
    K_xa = _kernels.se_kernel(shape, ls, columns=alpha)
    W_hat = _kernels.ridge_predictor(K_xa, K_xa[alpha], ridge) @ W[alpha]
    return W_hat, alpha, _relative_errors(W, W_hat), ls, ridge


def _layers_of(source, image_shape):
    """[(name, W (n_locations, n_features), grid)] of a weight matrix, a
    list of them, a fitted MLP (its hidden layers) or a torch module (its
    Linear and Conv2d layers, predicted ones included)."""
    def grid_for(i, n_in):
        if i == 0 and image_shape is not None:
            return _kernels.infer_image_shape(n_in, tuple(image_shape))
        return (1, n_in, 1)

    if isinstance(source, nn.Module):
        out = []
        for name, m in _layers(source):
            with torch.no_grad():
                weight = m.weight  # a predicted layer's W, materialised once
            if isinstance(m, (nn.Conv2d, PredictedConv2d)):
                Wt = weight.detach().to("cpu", torch.float64)  # (out, in, kh, kw)
                kh, kw = Wt.shape[2:]
                # channels-last rows on the filter's (kh, kw, in) grid
                W = Wt.permute(0, 2, 3, 1).reshape(Wt.shape[0], -1).T.numpy()
                out.append((name, W, (kh, kw, Wt.shape[1])))
            elif hasattr(m, "in_features"):
                W = weight.detach().to("cpu", torch.float64).T.numpy()
                out.append((name, W, grid_for(len(out), W.shape[0])))
        if not out:
            raise ValueError("The module has no Linear or Conv2d layer to analyse.")
        return out
    coefs = getattr(source, "coefs_", None)
    if coefs is not None:  # a fitted MLP: its hidden layers (the output layer is no feature)
        mats = list(coefs[:-1])
    elif isinstance(source, (list, tuple)):
        mats = list(source)
    else:
        mats = [source]
    out = []
    for i, W in enumerate(mats):
        W = np.asarray(W, dtype=np.float64)
        if W.ndim != 2 or min(W.shape) < 1:
            raise ValueError(f"Weight matrices must be 2-D (n_inputs, n_features), got shape "
                             f"{W.shape}.")
        if not np.isfinite(W).all():
            raise ValueError("The weights contain NaN or infinity.")
        out.append((str(i), W, grid_for(i, W.shape[0])))
    return out


_NP_ACTIVATIONS = {
    "identity": lambda h: h,
    "logistic": lambda h: 1.0 / (1.0 + np.exp(-h)),
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
    "tanh": np.tanh,
    "relu": lambda h: np.maximum(h, 0.0),
}


def _layer_inputs(source, layers, data, batch_size=1024):
    """{layer name: its inputs on ``data``} for the ``emp`` kernel."""
    if isinstance(source, nn.Module):
        for name, _, _ in layers:
            if isinstance(source.get_submodule(name), (nn.Conv2d, PredictedConv2d)):
                raise ValueError(f"kernel='emp' reads each layer's inputs; layer {name!r} is "
                                 f"a convolution, whose inputs are patches: use kernel='se'.")
        return {name: x.numpy().astype(np.float64) for name, x in
                _record_inputs(source, [n for n, _, _ in layers], data, batch_size).items()}
    h = np.asarray(data, dtype=np.float64)
    coefs = getattr(source, "coefs_", None)
    if coefs is None:
        if len(layers) > 1:
            raise ValueError("kernel='emp' on a list of weight matrices knows the first one's "
                             "inputs only (data); give one matrix, a fitted MLP or a module.")
        return {layers[0][0]: h}
    act = _NP_ACTIVATIONS.get(getattr(source, "activation", None))
    if act is None:
        raise ValueError(f"Unknown activation {getattr(source, 'activation', None)!r}.")
    out = {}
    for (name, _, _), W, b in zip(layers, coefs, source.intercepts_):
        out[name] = h
        h = act(h @ W + b)
    return out


def redundancy(source, fractions=(0.1, 0.25, 0.5, 0.75, 0.9), *, kernel="se",
               image_shape=None, data=None, n_features=None, random_state=None) -> List[dict]:
    """How well each feature's weights are predicted from a few of them.

    Parameters
    ----------
    source : ndarray of shape (n_inputs, n_features), list of them, a fitted
        MLP (scikit-learn's ``MLPClassifier``/``MLPRegressor`` or skpred's:
        its hidden layers' ``coefs_``), or a ``torch.nn.Module`` (its
        ``Linear`` and ``Conv2d`` layers, predicted ones included: their
        materialised weights).
    fractions : tuple of float in (0, 1)
        Kept fractions of each feature's weights.
    kernel : {"se", "emp"}, default="se"
        The predictor's kernel over a layer's inputs: ``se`` on the input
        grid (length scale and ridge chosen by leave-one-out), or ``emp``,
        the covariance of the layer's inputs on ``data`` (the ridge chosen
        by leave-one-out, relative to its mean variance; the paper's
        hidden-layer kernel).
    image_shape : tuple (rows, cols) or (rows, cols, channels), optional
        The grid of the first layer's input (flattened channels-last). A
        convolution's filters use their own ``(kh, kw, in_channels)`` grid;
        every other layer a 1-D grid over its inputs.
    data : array-like or None
        The network's inputs, for ``kernel="emp"``: a torch module's layers
        read theirs through forward hooks, a fitted MLP's are computed with
        its activation, a single weight matrix's are ``data`` itself.
    n_features : int or None
        Analyse at most this many features per layer (the first ones).
    random_state : int, RandomState or None
        Seeds alpha and the noise.

    Returns
    -------
    rows : list of dict
        One per layer and fraction (``pandas.DataFrame(rows)`` is the
        table): ``layer``, ``n_inputs``, ``n_features``, ``kept_fraction``,
        ``mean_relative_error``, ``std_relative_error``,
        ``noise_mean_relative_error`` (white noise of the same shape, the
        predictor chosen the same way), ``length_scale`` (None for
        ``emp``), ``ridge``. :func:`skpred.plotting.plot_redundancy` draws
        them.
    """
    fractions = tuple(fractions)
    if not fractions or not all(0 < f < 1 for f in fractions):
        raise ValueError(f"fractions must lie in (0, 1), got {fractions!r}.")
    if kernel not in ("se", "emp"):
        raise ValueError(f"kernel must be 'se' or 'emp', got {kernel!r}.")
    if kernel == "emp" and data is None:
        raise ValueError("kernel='emp' is the covariance of each layer's inputs: give data.")
    rng = random_state if isinstance(random_state, np.random.RandomState) \
        else np.random.RandomState(random_state)
    layers = _layers_of(source, image_shape)
    inputs = _layer_inputs(source, layers, data) if kernel == "emp" else {}
    rows = []
    for name, W, grid in layers:
        if n_features is not None:
            W = W[:, :n_features]
        noise = rng.standard_normal(W.shape)
        if kernel == "emp":
            X = inputs[name]
            if X.ndim != 2 or X.shape[1] != W.shape[0] or X.shape[0] < 2:
                raise ValueError(f"Layer {name!r} reads {W.shape[0]} inputs; data gives "
                                 f"{X.shape}.")
            K = _kernels.empirical_kernel(X)

            def predict(M, frac):
                return predict_subset_with_kernel(M, K, frac, rng)
        else:
            def predict(M, frac):
                return predict_subset(M, grid, frac, rng)
        for frac in fractions:
            _, _, err, ls, ridge = predict(W, frac)
            _, _, noise_err, _, _ = predict(noise, frac)
            rows.append(dict(layer=name, n_inputs=W.shape[0], n_features=W.shape[1],
                             kept_fraction=frac, mean_relative_error=float(err.mean()),
                             std_relative_error=float(err.std()),
                             noise_mean_relative_error=float(noise_err.mean()),
                             length_scale=ls, ridge=ridge))
    return rows
