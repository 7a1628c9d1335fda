"""Autoencoder pretraining of one layer, and the data-driven dictionaries' own
training-data statistics (covariance, autoencoder atoms).
"""

from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ._device import resolve_device, seeded, torch_generator
from ._feeds import SparseRows, to_device, weighted_mean
from ._loop import train_epochs
from .callbacks import Callback, EpochLog, TrainingResult
from ._optim import make_optimizer


@torch.no_grad()
def covariance(X: torch.Tensor, square: bool = False, chunk: int = 4096,
               weights: Optional[torch.Tensor] = None, dp=None) -> np.ndarray:
    """``np.cov(X, rowvar=False)`` (of ``X * X`` with ``square``) computed
    where ``X`` lives, in float64, chunk by chunk; only the (d, d) result
    travels to the host. Shifted by the first chunk's mean, as
    :func:`skpred._kernels.empirical_kernel`, for an accurate one-pass sum.

    ``weights`` are frequency weights (``np.cov(..., fweights=w)``): integer
    weights give the covariance of the data with rows repeated. The
    denominator is ``sum(w) - 1`` (``sum(w)`` when that is not above 1).

    With ``dp`` (data-parallel), each rank reads its share of the chunks and
    the sums are added over the ranks once: every rank gets the covariance
    of the whole data.
    """
    n, d = X.shape
    total = torch.zeros(d, dtype=torch.float64, device=X.device)
    cross = torch.zeros(d, d, dtype=torch.float64, device=X.device)
    count = torch.zeros((), dtype=torch.float64, device=X.device)
    # The shift (the first chunk's mean) is the same on every rank.
    first = X[0:chunk].to(torch.float64)
    shift = (first * first if square else first).mean(0)
    for start in (range(0, n, chunk) if dp is None else dp.my_chunks(n, chunk)):
        B = X[start:start + chunk].to(torch.float64)
        if square:
            B = B * B
        B = B - shift
        if weights is None:
            total += B.sum(0)
            cross += B.T @ B
            count += B.shape[0]
        else:
            w = weights[start:start + chunk].to(torch.float64)
            total += w @ B
            cross += (B * w[:, None]).T @ B
            count += w.sum()
    if dp is not None:
        packed = dp.sum_(torch.cat([total, cross.reshape(-1), count.reshape(1)]), once=True)
        total, cross, count = packed[:d], packed[d:d + d * d].view(d, d), packed[-1]
    count = float(count)
    mean = total / count
    denominator = count - 1 if count > 1 else count
    return ((cross - count * torch.outer(mean, mean)) / denominator).cpu().numpy()


def fit_tied_autoencoder(
    layer: nn.Module,
    X: torch.Tensor,
    activation: Callable,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    generator: torch.Generator,
    after_step: Optional[Callable] = None,
    weights: Optional[torch.Tensor] = None,
    phase: str = "pretrain",
    callbacks: Sequence[Callback] = (),
    estimator=None,
    dp=None,
    pooled: Optional[torch.Tensor] = None,
) -> TrainingResult:
    """Train ``layer`` as the encoder of a tied-weight autoencoder.

    ``h = activation(layer(x))``, ``x_hat = h W + c`` with ``W`` the layer's
    own (out, in) weight: the decoder shares the encoder's weights (for a
    predicted layer, its U V) and has only a bias of its own. The loss is the
    mean squared reconstruction error per input value.

    The optimiser is Adam. The authors pretrained with SGD, but with a
    predicted layer SGD's effective step on W is scaled by U U^T, which
    varies by orders of magnitude between dictionaries and data; with plain
    SGD the sigmoid units of some layers saturate and collapse (measured:
    activation variance 1e-7 on MNIST digits). Adam's step does not depend
    on that scale.

    ``pooled``: ``layer.pool(X)`` computed once (a predicted layer with a
    fixed U): the encoder then runs ``layer.forward_pooled`` on its rows
    instead of the layer on X's (the loop draws row indices and reads
    both).

    ``callbacks`` run on the loop's hooks (history, logging, Ctrl-C: the
    caller's choice); there is no stopping rule, every epoch runs.
    """
    device = X.device
    decoder_bias = nn.Parameter(torch.zeros(X.shape[1], device=device, dtype=X.dtype))
    holder = nn.Module()
    holder.layer = layer
    holder.decoder_bias = decoder_bias

    def batch_loss(rows_or_xb, _, wb=None):
        if pooled is None:
            xb = rows_or_xb
            h = activation(layer(xb))
        else:
            xb = X[rows_or_xb]
            h = activation(layer.forward_pooled(pooled[rows_or_xb]))
        x_hat = h @ layer.weight + decoder_bias
        if wb is None:
            return ((x_hat - xb) ** 2).mean()
        # sample weights: the weighted mean of each sample's mean error
        return weighted_mean(((x_hat - xb) ** 2).mean(1), wb)

    optimizer = make_optimizer(holder, "adam", learning_rate)
    feed = X if pooled is None else torch.arange(X.shape[0], device=device)
    return train_epochs(
        holder, batch_loss, feed, None, optimizer,
        epochs=epochs, batch_size=batch_size, shuffle=True, generator=generator,
        after_step=after_step, weights=weights, phase=phase, callbacks=callbacks,
        estimator=estimator, dp=dp,
    )


def autoencoder_atoms(X, n_atoms, *, epochs, random_state, device="auto", batch_size=100,
                      learning_rate=1e-3, verbose=0, weights=None, dp=None):
    """Dictionary atoms learned by a sigmoid tied-weight autoencoder.

    Parameters
    ----------
    X : ndarray or tensor of shape (n_samples, n_features)
        A tensor is used where it lives (no copy through the host).
    n_atoms : int
        Number of hidden units (atoms).
    random_state : numpy RandomState

    Returns
    -------
    atoms : ndarray of shape (n_features, n_atoms)
        The encoder's weight vectors, each scaled to unit norm.
    """
    if isinstance(X, SparseRows):
        X_t, device = X, X.device
    elif torch.is_tensor(X):
        X_t = X.detach().to(dtype=torch.float32)
        device = X_t.device
    else:
        device = resolve_device(device)
        X_t = to_device(X, device)
    generator = torch_generator(random_state)
    layer = seeded(lambda: nn.Linear(X.shape[1], n_atoms), generator, device)
    # A dictionary is not a usable model: Ctrl-C here stops the whole fit.
    fit_tied_autoencoder(
        layer, X_t, torch.sigmoid, epochs=epochs, batch_size=batch_size,
        learning_rate=learning_rate, generator=generator, weights=weights,
        phase="ae dictionary", dp=dp,
        callbacks=[EpochLog("ae dictionary epoch")] if verbose else [],
    )
    atoms = layer.weight.detach().cpu().numpy().T.astype(np.float64)
    norms = np.linalg.norm(atoms, axis=0)
    return atoms / np.where(norms > 0, norms, 1.0)
