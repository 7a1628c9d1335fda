"""The one minibatch training loop, with scikit-learn's stopping rule.

Every estimator trains through :func:`train_epochs`; nothing else in skpred
loops over minibatches for training.
"""

import logging
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from ._device import learned_state
from ._optim import LearningRateSchedule


logger = logging.getLogger("skpred")


def enable_verbose_logging(verbose):
    """Make ``verbose`` visible without the user configuring logging."""
    if verbose and not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[skpred] %(message)s"))
        logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)


@dataclass
class TrainingResult:
    losses: List[float] = field(default_factory=list)
    validation_scores: List[float] = field(default_factory=list)
    n_epochs: int = 0
    converged: bool = False
    interrupted: bool = False
    history: List[dict] = field(default_factory=list)
    # the stopping rule's (best, count) at the end, to carry into a later call
    stopping_state: Optional[tuple] = None


class StoppingRule:
    """scikit-learn's MLP stopping rule, tie for tie.

    ``BaseMultilayerPerceptron._update_no_improvement_count``: with a
    validation set (``higher_is_better=True``) an epoch whose score is below
    ``best + tol`` counts as no improvement, so a score *equal* to
    ``best + tol`` is an improvement; on the training loss an epoch whose loss
    is above ``best - tol`` counts. Either way the best is updated on any gain,
    however small, and the rule is met once more than ``n_iter_no_change``
    epochs in a row brought no improvement (the caller then stops, or, with
    the ``"adaptive"`` schedule, lowers the rate and sets ``count`` to 0).
    """

    def __init__(self, tol: float, n_iter_no_change: float, *, higher_is_better: bool):
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.higher_is_better = higher_is_better
        self.best = -np.inf if higher_is_better else np.inf
        self.count = 0

    def update(self, value: float) -> bool:
        """Record one epoch's score (or loss); True when it is a new best."""
        if self.higher_is_better:
            stale = value < self.best + self.tol
            gained = value > self.best
        else:
            stale = value > self.best - self.tol
            gained = value < self.best
        self.count = self.count + 1 if stale else 0
        if gained:
            self.best = value
        return gained

    @property
    def met(self) -> bool:
        return self.count > self.n_iter_no_change


class ProgressBar:
    """One line per training phase, redrawn after every epoch (``\\r``):
    phase, epochs done of the budget, loss, validation score, seconds.

    Written with no dependency; the stream is stderr. Used by the
    classifiers when ``verbose`` asks for it on a terminal, or when
    ``progress_bar=True`` (a notebook, a log file).
    """

    def __init__(self, stream=None, width=20):
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._phase = None

    def __call__(self, record, total):
        if record["phase"] != self._phase and self._phase is not None:
            self.stream.write("\n")
        self._phase = record["phase"]
        done = record["epoch"]
        filled = int(self.width * done / max(total, 1))
        text = (f"\r{record['phase']:<18} {done:>4}/{total:<4} "
                f"[{'#' * filled}{'.' * (self.width - filled)}] loss {record['train_loss']:.4f}")
        if record.get("valid_score") is not None:
            text += f" valid {record['valid_score']:.4f}"
        text += f" {record['elapsed']:.1f}s"
        self.stream.write(text)
        self.stream.flush()

    def close(self):
        if self._phase is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._phase = None


def wants_progress_bar(progress_bar, verbose, stream=None) -> bool:
    """``progress_bar="auto"``: a bar when ``verbose`` and stderr is a terminal."""
    if progress_bar == "auto":
        stream = stream if stream is not None else sys.stderr
        return bool(verbose) and hasattr(stream, "isatty") and stream.isatty()
    return bool(progress_bar)


def train_epochs(
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
    validation_score: Optional[Callable] = None,
    n_iter_no_change: int = 10,
    tol: float = 1e-4,
    verbose: int = 0,
    desc: str = "epoch",
    warn_not_converged: bool = True,
    catch_interrupt: bool = True,
    weights: Optional[torch.Tensor] = None,
    schedule: Optional[LearningRateSchedule] = None,
    phase: str = "fine-tune",
    progress: Optional[Callable] = None,
    dp=None,
    stopping_state: Optional[tuple] = None,
) -> TrainingResult:
    """Minibatch training for ``epochs`` epochs, with sklearn-style stopping.

    Parameters
    ----------
    module : nn.Module
        Its parameters are what ``optimizer`` updates; its state is saved and
        restored when early stopping picks the best epoch.
    batch_loss : callable
        ``batch_loss(X_batch, y_batch)`` returns the mean loss of the batch.
    X, y : tensors already on the training device (``y`` may be None).
    after_step : callable or None
        Called after every optimiser step (e.g. the max-norm constraint).
    validation_score : callable or None
        Early stopping on a held-out set: called after every epoch, returns
        the score (higher is better) or ``(score, loss)``; training stops
        when the score has not improved on the best by ``tol`` for more than
        ``n_iter_no_change`` epochs in a row, and the best epoch's weights
        are restored. Without it, the same rule applies to the training loss
        (scikit-learn's MLP semantics).
    weights : tensor or None
        Per-sample weights aligned with X: ``batch_loss(xb, yb, wb)`` is then
        called and must return the weighted mean ``sum(w l) / sum(w)`` of
        the batch; the epoch loss is ``sum(w l) / sum(w)`` over the epoch.
    schedule : LearningRateSchedule or None
        The learning-rate schedule (None: constant).
    phase : str
        Name of the phase in the history records ("fine-tune", "pretrain
        layer 1", ...).
    progress : callable or None
        ``progress(record, epochs)`` after every epoch (a progress bar).
    stopping_state : tuple (best, count) or None
        The stopping rule's state at the end of an earlier call
        (``result.stopping_state``), carried over as scikit-learn carries
        ``_no_improvement_count`` and the best loss across ``partial_fit``
        calls and warm starts; None starts afresh.
    dp : skpred._distributed.DataParallel or None
        Data-parallel training: every rank holds the same X and draws the
        same minibatch order; each computes its slice of every minibatch,
        scaled to its share of the minibatch's global mean, and the
        gradients of the learned parameters are summed over the ranks (one
        flat all-reduce per step) before the step. The epoch loss is summed
        over the ranks once per epoch.

    ``result.history`` holds one record per epoch: ``phase``, ``epoch``
    (1-based), ``train_loss``, ``valid_score`` and ``valid_loss`` (None
    without a validation set), ``learning_rate`` (at the end of the
    epoch), ``duration`` (seconds of the epoch, validation included) and
    ``elapsed`` (seconds since the call began).

    Ctrl-C stops training cleanly, with a warning, keeping the weights
    (``result.interrupted``); with ``catch_interrupt=False`` it propagates.
    A NaN or infinite loss is a ValueError, checked once per epoch.
    """
    enable_verbose_logging(verbose)
    if schedule is None:
        schedule = LearningRateSchedule("constant")
    result = TrainingResult()
    n = X.shape[0]
    weight_total = float(weights.sum()) if weights is not None else float(n)
    rule = StoppingRule(tol, n_iter_no_change, higher_is_better=validation_score is not None)
    if stopping_state is not None:  # a later partial_fit or warm start: as scikit-learn,
        rule.best, rule.count = stopping_state  # the count and best carry over
    best_state = None
    started = time.perf_counter()
    learned = [p for group in optimizer.param_groups for p in group["params"]]
    module.train()
    try:
        for epoch in range(epochs):
            epoch_start = time.perf_counter()
            if shuffle:
                order = torch.randperm(n, generator=generator).to(X.device)
            # The running loss stays on the device: no host sync per batch.
            total = torch.zeros((), device=X.device)
            for start in range(0, n, batch_size):
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
                optimizer.step()
                if after_step is not None:
                    after_step()
                schedule.after_batch(optimizer)
                total += loss.detach() * batch_weight
            if dp is not None:
                dp.sum_(total)  # the ranks' shares of the epoch's loss
            epoch_loss = total.item() / weight_total  # one sync per epoch
            if not math.isfinite(epoch_loss):
                raise ValueError(
                    "The training loss became NaN or infinite; lower the "
                    "learning rate or standardise the inputs."
                )
            result.losses.append(epoch_loss)
            result.n_epochs = epoch + 1
            valid_loss = score = None
            if validation_score is not None:
                module.eval()
                value = validation_score()
                module.train()
                score, valid_loss = (value if isinstance(value, tuple) else (value, None))
                score = float(score)
                valid_loss = None if valid_loss is None else float(valid_loss)
                result.validation_scores.append(score)
                current = score
                message = f"{desc} {epoch + 1}: loss {epoch_loss:.5f}, validation score {score:.4f}"
            else:
                current = epoch_loss
                message = f"{desc} {epoch + 1}: loss {epoch_loss:.5f}"
            if verbose:
                logger.info(message)
            schedule.after_epoch(optimizer, n)
            now = time.perf_counter()
            record = dict(phase=phase, epoch=epoch + 1, train_loss=epoch_loss,
                          valid_score=score, valid_loss=valid_loss,
                          learning_rate=float(optimizer.param_groups[0]["lr"]),
                          duration=now - epoch_start, elapsed=now - started)
            result.history.append(record)
            if progress is not None:
                progress(record, epochs)
            if rule.update(current) and validation_score is not None:
                best_state = learned_state(module)  # restored when training ends
            if rule.met:
                if schedule.on_plateau(optimizer):  # "adaptive": lower the rate, go on
                    rule.count = 0
                    continue
                result.converged = True
                break
    except KeyboardInterrupt:
        if not catch_interrupt:
            raise
        warnings.warn(
            "Training interrupted by the user; keeping the weights trained so far.",
            UserWarning,
        )
        result.interrupted = True
    result.stopping_state = (float(rule.best), int(rule.count))
    if best_state is not None:
        with torch.no_grad():
            for name, param in module.named_parameters():
                param.copy_(best_state[name])
    module.eval()
    if warn_not_converged and not result.converged and not result.interrupted and epochs > 0:
        warnings.warn(
            f"Stopped after max_iter={epochs} epochs before the stopping criterion "
            f"was met; the model may not have converged.",
            ConvergenceWarning,
        )
    return result
