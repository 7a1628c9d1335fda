"""The one minibatch training loop.

Every estimator trains through :func:`train_epochs`; nothing else in skpred
loops over minibatches for training. The loop does the steps (minibatch
order, forward, backward, the optimiser step, the layer constraints, the
data-parallel gradient sum, the epoch loss); everything else (validation,
the learning-rate schedule, the history, logging, the progress bar, the
stopping rule with its best-weight restore, Ctrl-C) is a
:class:`skpred.callbacks.Callback` on its hooks.
"""

import math
import warnings
from typing import Callable, Optional, Sequence

import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from . import _device
from .callbacks import Callback, TrainingResult


def compiled(fn, what):
    """``fn`` compiled by ``torch.compile`` (the inductor backend), or
    ``fn`` itself, with a warning, where compilation is unavailable: when
    ``torch.compile`` or a later (re)compilation raises, the call runs
    eagerly and every later call too (only for torch's compiler's own
    errors, ``torch._dynamo``'s and ``torch._inductor``'s; any other error
    is raised). A failed compilation is retried eagerly from the start of
    the call: the step's work is the same whether part of it ran."""
    try:
        target = torch.compile(fn)
    except Exception as error:  # no backend on this platform
        warnings.warn(f"compile=True: {what} could not be compiled ({error!r}); running "
                      f"it eagerly.", UserWarning)
        return fn
    state = {"fn": target}

    def call(*args):
        if state["fn"] is fn:
            return fn(*args)
        try:
            return state["fn"](*args)
        except Exception as error:
            # only a failure of torch's compiler falls back; any other error
            # (a wrong input, out of memory) is the caller's to see
            if not type(error).__module__.startswith(("torch._dynamo", "torch._inductor")):
                raise
            warnings.warn(f"compile=True: {what} could not be compiled ({error!r}); "
                          f"running it eagerly.", UserWarning)
            state["fn"] = fn
            return fn(*args)

    return call


def _overrides(cb, hook):
    return getattr(type(cb), hook) is not getattr(Callback, hook)


class TrainingLoop:
    """The state a callback reads (see :mod:`skpred.callbacks`)."""

    def __init__(self, module, optimizer, *, epochs, phase, estimator=None):
        self.module = module
        self.optimizer = optimizer
        self.epochs = epochs
        self.phase = phase
        self.estimator = estimator
        self.epoch = 0
        self.batch = 0
        self.batch_loss = None
        self.record = None
        self.result = TrainingResult()
        self.error = None
        self.stop_requested = False

    def stop(self, converged: bool = False):
        """End the phase once the current epoch's callbacks have run."""
        self.stop_requested = True
        if converged:
            self.result.converged = True


def _drop_scheduler_patch(optimizer):
    # torch's LR schedulers wrap optimizer.step in an instance attribute (a
    # closure over a weak reference to this optimizer); left in place it
    # would follow a deep copy of the optimizer and step the original.
    optimizer.__dict__.pop("step", None)
    optimizer.__dict__.pop("_opt_called", None)


def train_epochs(*args, **kwargs) -> TrainingResult:
    """:func:`_train_epochs` with subnormal floats flushed to zero
    (:func:`skpred._device.flush_denormal`); its parameters."""
    with _device.flush_denormal():
        return _train_epochs(*args, **kwargs)


def _train_epochs(
    module: nn.Module,
    batch_loss: Callable,
    X: torch.Tensor,
    y: Optional[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    shuffle: bool = True,
    generator: Optional[torch.Generator] = None,
    after_step: Optional[Callable] = None,
    penalty: Optional[Callable] = None,
    weights: Optional[torch.Tensor] = None,
    dp=None,
    phase: str = "fine-tune",
    callbacks: Sequence[Callback] = (),
    estimator=None,
    warn_not_converged: bool = False,
    stop_on_divergence: bool = False,
) -> TrainingResult:
    """Minibatch training for at most ``epochs`` epochs.

    Parameters
    ----------
    module : nn.Module
        In train mode during the loop, eval mode after it.
    batch_loss : callable
        ``batch_loss(X_batch, y_batch)`` returns the mean loss of the batch
        (``batch_loss(X_batch, y_batch, w_batch)`` the weighted mean
        ``sum(w l) / sum(w)`` when ``weights`` is given).
    X, y : tensors already on the training device (``y`` may be None).
    after_step : callable or None
        Called after every optimiser step (e.g. the max-norm constraint).
    penalty : skpred._optim.L2Penalty or None
        Added to every minibatch's loss divided by the minibatch's weight
        (its size, or its sum of sample weights), as scikit-learn adds its
        L2 term: its gradient by ``penalty.add_grad_``, its value (in the
        epoch loss and the batch loss the callbacks see) by
        ``penalty.value()``.
    weights : tensor or None
        Per-sample weights aligned with X; the epoch loss is then
        ``sum(w l) / sum(w)`` over the epoch.
    dp : skpred._distributed.DataParallel or None
        Data-parallel training: every rank holds the same X and draws the
        same minibatch order; each computes its slice of every minibatch,
        scaled to its share of the minibatch's global mean, and the
        gradients of the learned parameters are summed over the ranks (one
        flat all-reduce per step) before the step. The epoch loss is summed
        over the ranks once per epoch.
    phase : str
        The phase's name in the history records.
    callbacks : sequence of Callback
        Called on the loop's hooks, in order.
    warn_not_converged : bool
        A ConvergenceWarning when the budget ran out before any callback
        stopped the phase.

    stop_on_divergence : bool
        What a NaN or infinite epoch loss (checked once per epoch) does:
        False, a ValueError; True (early stopping, as scikit-learn), the
        epoch is recorded and its callbacks run (the validation score is
        NaN), then the phase ends, and the stopping callback restores the
        best epoch's weights.
    """
    loop = TrainingLoop(module, optimizer, epochs=epochs, phase=phase, estimator=estimator)
    result = loop.result
    callbacks = list(callbacks)
    on_batch = [cb.on_batch_end for cb in callbacks if _overrides(cb, "on_batch_end")]
    n = X.shape[0]
    weight_total = float(weights.sum()) if weights is not None else float(n)
    learned = [p for group in optimizer.param_groups for p in group["params"]]
    module.train()
    try:
        for cb in callbacks:
            cb.on_train_begin(loop)
        for epoch in range(epochs):
            loop.epoch = epoch + 1
            for cb in callbacks:
                cb.on_epoch_begin(loop)
            if shuffle:
                order = torch.randperm(n, generator=generator).to(X.device)
            # The running loss stays on the device: no host sync per batch.
            total = torch.zeros((), device=X.device)
            for batch, start in enumerate(range(0, n, batch_size)):
                rows = order[start:start + batch_size] if shuffle else slice(start, start + batch_size)
                if dp is not None:
                    global_rows = rows if shuffle else torch.arange(
                        start, min(start + batch_size, n), device=X.device)
                    global_weight = (len(global_rows) if weights is None
                                     else weights[global_rows].sum())
                    rows = dp.my_rows(global_rows)
                xb = X[rows]
                yb = None if y is None else y[rows]
                optimizer.zero_grad(set_to_none=True)
                if dp is not None and xb.shape[0] == 0:
                    # a final minibatch smaller than the world: nothing here
                    loss, batch_weight = torch.zeros((), device=X.device), 0.0
                elif weights is None:
                    loss = batch_loss(xb, yb)
                    batch_weight = xb.shape[0]
                else:
                    wb = weights[rows]
                    loss = batch_loss(xb, yb, wb)
                    batch_weight = wb.sum()
                if dp is not None:
                    # this rank's share of the minibatch's global mean
                    loss = loss * (batch_weight / global_weight)
                    batch_weight = global_weight
                    if loss.requires_grad:
                        loss.backward()
                    dp.all_reduce_gradients(learned)
                else:
                    loss.backward()
                if penalty is not None:
                    # the penalty's gradient, alpha w / batch weight, on every
                    # rank after the sum; its value counted once (rank 0)
                    penalty.add_grad_(1.0 / batch_weight)
                    if dp is None or dp.rank == 0:
                        loss = loss.detach() + penalty.value() / batch_weight
                optimizer.step()
                if after_step is not None:
                    after_step()
                with torch.no_grad():
                    if isinstance(batch_weight, torch.Tensor):
                        total.add_(loss * batch_weight)
                    else:
                        total.add_(loss, alpha=batch_weight)
                if on_batch:
                    loop.batch, loop.batch_loss = batch, loss.detach()
                    for hook in on_batch:
                        hook(loop)
            if dp is not None:
                dp.sum_(total)  # the ranks' shares of the epoch's loss
            epoch_loss = total.item() / weight_total  # one sync per epoch
            diverged = not math.isfinite(epoch_loss)
            if diverged and not stop_on_divergence:
                raise ValueError(
                    "The training loss became NaN or infinite; lower the "
                    "learning rate or standardise the inputs."
                )
            result.losses.append(epoch_loss)
            result.n_epochs = epoch + 1
            loop.record = dict(phase=phase, epoch=epoch + 1, train_loss=epoch_loss,
                               valid_score=None, valid_loss=None)
            for cb in callbacks:
                cb.on_epoch_end(loop)
            if diverged:
                loop.stop()
                result.diverged = True
            if loop.stop_requested:
                break
    except KeyboardInterrupt as error:
        # every callback hears of it; one that returns True ends it cleanly
        if not any([cb.on_interrupt(loop) for cb in callbacks]):
            loop.error = error
            raise
        result.interrupted = True
    except BaseException as error:
        loop.error = error
        raise
    finally:
        module.eval()
        try:
            for cb in callbacks:
                cb.on_train_end(loop)
        finally:
            _drop_scheduler_patch(optimizer)
    if warn_not_converged and not loop.stop_requested and not result.interrupted and epochs > 0:
        warnings.warn(
            f"Stopped after max_iter={epochs} epochs before the stopping criterion "
            f"was met; the model may not have converged.",
            ConvergenceWarning,
        )
    return result
