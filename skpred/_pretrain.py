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
from ._optim import make_optimizer, schedule_callback


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


#: How a tied autoencoder is trained. "adam": ours (Adam, a linear decoder
#: with its own bias, one reconstruction from all units, mean squared error
#: per input value). "authors": the authors' pretraining of a predicted layer
#: (their models/autoencoder.py and pretrain_layer*.yaml: SGD with classical
#: momentum and a per-minibatch decay, a sigmoid decoder with no bias, every
#: column reconstructing the input, squared error summed over the inputs).
#: "authors-ae": pylearn2's Autoencoder as their learn_dict_layer2.yaml
#: trains the SE-AE dictionary (sigmoid decoder with a visible bias, one
#: reconstruction, momentum rising linearly from 0.5 at epoch 1 to 0.7 at
#: epoch 250).
RECIPES = {
    "adam": dict(solver="adam", sigmoid_decoder=False, decoder_bias=True, per_column=False,
                 sum_over_inputs=False, momentum_ramp=None),
    "authors": dict(solver="sgd", sigmoid_decoder=True, decoder_bias=False, per_column=True,
                    sum_over_inputs=True, momentum_ramp=None),
    "authors-ae": dict(solver="sgd", sigmoid_decoder=True, decoder_bias=True, per_column=False,
                       sum_over_inputs=True, momentum_ramp=(0.5, 0.7, 1, 250)),
}


class MomentumRamp(Callback):
    """pylearn2's MomentumAdjustor: SGD's momentum rises linearly from
    ``initial`` at epoch ``start`` to ``final`` at epoch ``saturate``."""

    def __init__(self, initial, final, start, saturate):
        self.initial, self.final, self.start, self.saturate = initial, final, start, saturate

    def on_epoch_begin(self, loop):
        share = min(1.0, max(0.0, (loop.epoch - self.start) / (self.saturate - self.start)))
        for group in loop.optimizer.param_groups:
            group["momentum"] = self.initial + share * (self.final - self.initial)


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
    recipe: str = "adam",
    momentum: float = 0.7,
    learning_rate_decay: float = 1.0,
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

    ``recipe="authors"`` is the authors' pretraining instead (their
    ``pretrain_layer*.yaml`` and ``models/autoencoder.py``): plain SGD at
    ``learning_rate`` with classical ``momentum``, the rate divided by
    ``learning_rate_decay`` after every minibatch; a sigmoid decoder tied to
    the encoder with no bias of its own; every column of a predicted layer
    reconstructs the whole input from its own units (``sigmoid(h_c W_c)``),
    and the loss is the squared error summed over the input values and the
    columns, averaged over the batch.
    """
    if recipe not in RECIPES:
        raise ValueError(f"pretrain_recipe must be 'adam' or 'authors', got {recipe!r}.")
    r = RECIPES[recipe]
    device = X.device
    holder = nn.Module()
    holder.layer = layer
    if r["decoder_bias"]:
        holder.decoder_bias = nn.Parameter(torch.zeros(X.shape[1], device=device,
                                                       dtype=X.dtype))
    # one reconstruction per column (the authors'), or one from all units
    sizes = (list(getattr(layer, "column_sizes", [layer.weight.shape[0]]))
             if r["per_column"] else [layer.weight.shape[0]])
    decode = torch.sigmoid if r["sigmoid_decoder"] else (lambda z: z)

    def batch_loss(rows_or_xb, _, wb=None):
        if pooled is None:
            xb = rows_or_xb
            h = activation(layer(xb))
        else:
            xb = X[rows_or_xb]
            h = activation(layer.forward_pooled(pooled[rows_or_xb]))
        W = layer.weight
        if len(sizes) > 1 and len(set(sizes)) == 1 and not r["decoder_bias"]:
            # equal columns: every column's reconstruction in one batched
            # product, (C, B, n_in)
            C, m = len(sizes), sizes[0]
            z = torch.bmm(h.view(-1, C, m).transpose(0, 1), W.view(C, m, -1))
            err = (decode(z) - xb) ** 2
            per_sample = err.sum((0, 2)) if r["sum_over_inputs"] else err.mean(2).sum(0)
        else:
            per_sample = 0.0
            for h_c, W_c in zip(h.split(sizes, dim=1), W.split(sizes, dim=0)):
                z = h_c @ W_c
                if r["decoder_bias"]:
                    z = z + holder.decoder_bias
                err = (decode(z) - xb) ** 2
                per_sample = per_sample + (err.sum(1) if r["sum_over_inputs"] else err.mean(1))
        if wb is None:
            return per_sample.mean()
        # sample weights: the weighted mean of each sample's error
        return weighted_mean(per_sample, wb)

    if r["solver"] == "sgd":
        optimizer = make_optimizer(holder, "sgd", learning_rate, momentum=momentum,
                                   nesterovs_momentum=False)
        schedule = schedule_callback("decay", learning_rate_init=learning_rate,
                                     learning_rate_decay=learning_rate_decay)
        callbacks = [*callbacks, *([schedule] if schedule is not None else []),
                     *([MomentumRamp(*r["momentum_ramp"])] if r["momentum_ramp"] else [])]
    else:
        optimizer = make_optimizer(holder, "adam", learning_rate)
    feed = X if pooled is None else torch.arange(X.shape[0], device=device)
    return train_epochs(
        holder, batch_loss, feed, None, optimizer,
        epochs=epochs, batch_size=batch_size, shuffle=True, generator=generator,
        after_step=after_step, weights=weights, phase=phase, callbacks=callbacks,
        estimator=estimator, dp=dp,
    )


#: The authors' SE-AE dictionary autoencoder (their learn_dict_layer2.yaml):
#: ``irange`` 0.001, SGD at 0.1, the rate divided by 1.000004 per minibatch.
AUTHORS_AE = dict(irange=0.001, learning_rate=0.1, learning_rate_decay=1.000004)


def autoencoder_atoms(X, n_atoms, *, epochs, random_state, device="auto", batch_size=100,
                      learning_rate=1e-3, verbose=0, weights=None, dp=None, recipe="adam"):
    """Dictionary atoms learned by a sigmoid tied-weight autoencoder.

    ``recipe="adam"``: trained with :func:`fit_tied_autoencoder`'s Adam
    recipe at ``learning_rate``, atoms scaled to unit norm. ``"authors"``:
    as the authors trained their SE-AE dictionary (``AUTHORS_AE``, the
    "authors-ae" recipe: sigmoid decoder with a visible bias, SGD with
    momentum 0.5 rising to 0.7), the raw encoder weights as atoms.

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
    if recipe not in ("adam", "authors"):
        raise ValueError(f"recipe must be 'adam' or 'authors', got {recipe!r}.")
    authors = recipe == "authors"
    layer = seeded(lambda: nn.Linear(X.shape[1], n_atoms), generator, device,
                   irange=AUTHORS_AE["irange"] if authors else None)
    # A dictionary is not a usable model: Ctrl-C here stops the whole fit.
    fit_tied_autoencoder(
        layer, X_t, torch.sigmoid, epochs=epochs, batch_size=batch_size,
        learning_rate=AUTHORS_AE["learning_rate"] if authors else learning_rate,
        generator=generator, weights=weights, phase="ae dictionary", dp=dp,
        callbacks=[EpochLog("ae dictionary epoch")] if verbose else [],
        recipe="authors-ae" if authors else "adam",
        learning_rate_decay=AUTHORS_AE["learning_rate_decay"],
    )
    atoms = layer.weight.detach().cpu().numpy().T.astype(np.float64)
    if authors:
        return atoms
    norms = np.linalg.norm(atoms, axis=0)
    return atoms / np.where(norms > 0, norms, 1.0)
