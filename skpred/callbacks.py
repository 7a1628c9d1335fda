"""Callbacks: your code inside skpred's training loop.

Every estimator trained by minibatches (:class:`~skpred.PredictedMLPClassifier`,
:class:`~skpred.PredictedMLPRegressor`,
:class:`~skpred.PredictedConvNetClassifier`, and :class:`~skpred.PredictedRICA`
with ``solver="adam"``) takes ``callbacks=[...]``: instances of
:class:`Callback` subclasses whose hooks the loop calls with itself (the
``loop`` argument). A callback can log (read ``loop.record``), checkpoint
(save ``loop.module.state_dict()``) and stop training (``loop.stop()``)::

    class StopBelow(Callback):
        def __init__(self, loss):
            self.loss = loss

        def on_epoch_end(self, loop):
            if loop.record["train_loss"] < self.loss:
                loop.stop()

    PredictedMLPClassifier(callbacks=[StopBelow(0.05)]).fit(X, y)

What the loop offers a callback:

``loop.estimator``
    The estimator being fitted (None for a dictionary's autoencoder).
``loop.module``, ``loop.optimizer``
    The torch module being trained and its optimizer.
``loop.phase``
    ``"fine-tune"``, ``"pretrain layer k"`` (greedy pretraining, MLP
    only), or ``"rica"``: one loop runs per phase, and user callbacks see
    every phase.
``loop.epochs``, ``loop.epoch``
    The phase's epoch budget, and the current epoch (1-based).
``loop.batch``, ``loop.batch_loss``
    In ``on_batch_end``: the minibatch's index in the epoch and its mean
    loss as a tensor (reading it with ``.item()`` waits for the device).
``loop.record``
    In ``on_epoch_end``: the epoch's history record (``phase``, ``epoch``,
    ``train_loss``, ``valid_score``, ``valid_loss``, ``learning_rate``,
    ``duration``, ``elapsed``), the same dict that ends up in the
    estimator's ``history_``.
``loop.result``
    The phase's :class:`TrainingResult` so far.
``loop.error``
    In ``on_train_end``: the exception that ended training, or None.
``loop.stop(converged=False)``
    End the phase after the current epoch's callbacks.

Hooks run in list order, after the estimator's own callbacks (validation,
the learning-rate schedule, the history record, logging, the progress bar,
the stopping rule), so a user's ``on_epoch_end`` sees the complete record
and whether the stopping rule has ended the phase (``loop.stop_requested``).
Callbacks are parameters: ``clone`` (and so a grid search) gives every copy
of the estimator its own deep copy of them. Callbacks are code, which
model files never hold: ``save`` writes ``callbacks=None`` (with a
warning), and a callable ``learning_rate`` cannot be saved.
"""

import logging
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import torch

from ._device import learned_state
from ._stopping import StoppingRule

__all__ = ["Callback", "TrainingResult", "Validation", "LRSchedule", "History", "EpochLog",
           "IterationLog",
           "ProgressBar", "EarlyStopping", "CatchInterrupt", "StoppingRule"]

logger = logging.getLogger("skpred")


class Callback:
    """Base class: every hook does nothing. Override the ones you need."""

    def on_train_begin(self, loop):
        """Before the phase's first epoch."""

    def on_epoch_begin(self, loop):
        """Before each epoch (``loop.epoch`` is its number)."""

    def on_batch_end(self, loop):
        """After each optimiser step (and the layer constraints)."""

    def on_epoch_end(self, loop):
        """After each epoch; ``loop.record`` holds its numbers."""

    def on_interrupt(self, loop) -> bool:
        """Ctrl-C during the phase: return True to end it cleanly (then
        ``on_train_end`` runs as usual), False to let it propagate."""
        return False

    def on_train_end(self, loop):
        """After the phase, always: also when it failed (``loop.error``)."""


@dataclass
class TrainingResult:
    """What one phase of training produced."""

    losses: List[float] = field(default_factory=list)
    validation_scores: List[float] = field(default_factory=list)
    n_epochs: int = 0
    converged: bool = False
    interrupted: bool = False
    # the loss became NaN or infinite and the phase stopped there
    diverged: bool = False
    history: List[dict] = field(default_factory=list)
    # the stopping rule's (best, count) at the end, to carry into a later call
    stopping_state: Optional[tuple] = None


# ------------------------------------------------------------- built-ins


class Validation(Callback):
    """Scores a held-out set after every epoch (the network in eval mode):
    ``score()`` returns the score (higher is better) or ``(score, loss)``;
    they go to ``loop.record["valid_score"]`` and ``["valid_loss"]``."""

    def __init__(self, score: Callable):
        self.score = score

    def on_epoch_end(self, loop):
        if not math.isfinite(loop.record["train_loss"]):
            # diverged weights score NaN, as scikit-learn records them
            value = (math.nan, math.nan)
        else:
            loop.module.eval()
            value = self.score()
            loop.module.train()
        score, loss = value if isinstance(value, tuple) else (value, None)
        loop.record["valid_score"] = float(score)
        loop.record["valid_loss"] = None if loss is None else float(loss)
        loop.result.validation_scores.append(float(score))


class LRSchedule(Callback):
    """A ``torch.optim.lr_scheduler`` scheduler, built by
    ``factory(optimizer)`` when the phase begins and stepped:

    - ``every="epoch"``: after every epoch, before the record (a
      ``ReduceLROnPlateau`` is given the validation loss when there is a
      validation set, else the training loss);
    - ``every="batch"``: after every optimiser step;
    - ``every="plateau"``: only when the stopping rule is met
      (:meth:`on_plateau`); training then goes on with the stepped rate,
      unless the rate was already at most ``min_lr``.
    """

    def __init__(self, factory: Callable, every: str = "epoch", min_lr: float = 0.0):
        if every not in ("epoch", "batch", "plateau"):
            raise ValueError(f"every must be 'epoch', 'batch' or 'plateau', got {every!r}.")
        self.factory = factory
        self.every = every
        self.min_lr = min_lr
        self.scheduler = None

    def on_train_begin(self, loop):
        scheduler = self.factory(loop.optimizer)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau
        if not isinstance(scheduler, (torch.optim.lr_scheduler.LRScheduler, plateau)):
            raise ValueError(
                f"The learning-rate schedule factory must return a torch.optim.lr_scheduler "
                f"scheduler of the optimizer it is given, got {type(scheduler).__name__}.")
        if scheduler.optimizer is not loop.optimizer:
            raise ValueError("The learning-rate schedule factory returned a scheduler of "
                             "another optimizer than the one it was given.")
        self.scheduler = scheduler

    def on_batch_end(self, loop):
        if self.every == "batch":
            self.scheduler.step()

    def on_epoch_end(self, loop):
        if self.every != "epoch":
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            record = loop.record
            monitored = record["valid_loss"] if record.get("valid_loss") is not None \
                else record["train_loss"]
            self.scheduler.step(monitored)
        else:
            self.scheduler.step()

    def on_plateau(self, loop) -> bool:
        """The stopping rule was met: True when the rate was lowered and
        training goes on."""
        if self.every != "plateau" or loop.optimizer.param_groups[0]["lr"] <= self.min_lr:
            return False
        self.scheduler.step()
        return True

    def on_train_end(self, loop):
        self.scheduler = None


class History(Callback):
    """Completes ``loop.record`` (the learning rate at the end of the epoch,
    the epoch's seconds with validation, the seconds since the phase
    began) and appends it to ``loop.result.history``."""

    def on_train_begin(self, loop):
        self._started = time.perf_counter()

    def on_epoch_begin(self, loop):
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, loop):
        now = time.perf_counter()
        loop.record.update(learning_rate=float(loop.optimizer.param_groups[0]["lr"]),
                           duration=now - self._epoch_started, elapsed=now - self._started)
        loop.result.history.append(loop.record)


def enable_verbose_logging(verbose):
    """Make ``verbose`` visible without the user configuring logging."""
    if verbose and not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[skpred] %(message)s"))
        logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)


class EpochLog(Callback):
    """One line per epoch on the ``"skpred"`` logger (shown on stderr when
    logging is not configured): ``desc``, the epoch, its loss and
    validation score."""

    def __init__(self, desc: str = "epoch"):
        self.desc = desc

    def on_train_begin(self, loop):
        enable_verbose_logging(True)

    def on_epoch_end(self, loop):
        record = loop.record
        message = f"{self.desc} {record['epoch']}: loss {record['train_loss']:.5f}"
        if record.get("valid_score") is not None:
            message += f", validation score {record['valid_score']:.4f}"
        logger.info(message)


class IterationLog(Callback):
    """scikit-learn's ``verbose`` output, on stdout: ``Iteration N, loss =
    ...`` per epoch (and ``Validation score: ...`` with a validation set).
    ``prefix`` goes before each line (the pretraining phases name
    themselves); ``offset`` is added to the epoch (iterations run before,
    counted as scikit-learn's ``n_iter_``)."""

    def __init__(self, prefix: str = "", offset: int = 0):
        self.prefix = prefix
        self.offset = offset

    @staticmethod
    def line(iteration, loss, prefix=""):
        """One iteration's line, as scikit-learn's MLPs print it."""
        return f"{prefix}Iteration {iteration}, loss = {loss:.8f}"

    def on_epoch_end(self, loop):
        record = loop.record
        print(self.line(record["epoch"] + self.offset, record["train_loss"], self.prefix),
              flush=True)
        if record.get("valid_score") is not None:
            print(f"Validation score: {record['valid_score']:.6f}", flush=True)


def wants_progress_bar(progress_bar, verbose, stream=None) -> bool:
    """``progress_bar="auto"``: a bar when ``verbose`` and stderr is a
    terminal or the code runs in a Jupyter kernel."""
    if progress_bar == "auto":
        stream = stream if stream is not None else sys.stderr
        interactive = (hasattr(stream, "isatty") and stream.isatty()) or "ipykernel" in sys.modules
        return bool(verbose) and interactive
    return bool(progress_bar)


class ProgressBar(Callback):
    """A ``tqdm.auto`` bar per phase (a widget in notebooks), counting
    epochs, with the loss and validation score; on stderr unless ``file``."""

    def __init__(self, file=None):
        self.file = file
        self.bar = None

    def on_train_begin(self, loop):
        if loop.epochs == 0:  # a phase with nothing to run draws no bar
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=loop.epochs, desc=loop.phase, unit="epoch", leave=True,
                        file=self.file if self.file is not None else sys.stderr)

    def on_epoch_end(self, loop):
        if self.bar is None:
            return
        record = loop.record
        postfix = {"loss": f"{record['train_loss']:.4f}"}
        if record.get("valid_score") is not None:
            postfix["valid"] = f"{record['valid_score']:.4f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def on_train_end(self, loop):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class EarlyStopping(Callback):
    """scikit-learn's stopping rule (:class:`StoppingRule`) on the
    validation score when the record has one, else on the training loss.

    When the rule is met, ``plateau(loop)`` (the ``"adaptive"`` schedule's
    :meth:`LRSchedule.on_plateau`) may lower the rate and go on; otherwise
    the phase ends, converged. With a validation set the best epoch's
    weights are restored at the end. ``state`` is a ``(best, count)`` from
    an earlier call (``partial_fit``, warm starts carry it as scikit-learn
    does); the state at the end goes to ``loop.result.stopping_state``.
    """

    def __init__(self, tol: float, n_iter_no_change: float, *, validation: bool,
                 plateau: Optional[Callable] = None, state: Optional[tuple] = None):
        self.rule = StoppingRule(tol, n_iter_no_change, higher_is_better=validation)
        if state is not None:
            self.rule.best, self.rule.count = state
        self.validation = validation
        self.plateau = plateau
        self.best_state = None

    def on_epoch_end(self, loop):
        current = loop.record["valid_score"] if self.validation else loop.record["train_loss"]
        if self.rule.update(current) and self.validation:
            self.best_state = learned_state(loop.module)
        if self.rule.met:
            if self.plateau is not None and self.plateau(loop):
                self.rule.count = 0
            else:
                loop.stop(converged=True)

    def on_train_end(self, loop):
        loop.result.stopping_state = (float(self.rule.best), int(self.rule.count))
        if self.best_state is not None and loop.error is None:
            with torch.no_grad():
                for name, param in loop.module.named_parameters():
                    param.copy_(self.best_state[name])
        self.best_state = None


class CatchInterrupt(Callback):
    """Ctrl-C ends the phase cleanly, with a warning, keeping the weights
    trained so far (``loop.result.interrupted``)."""

    def on_interrupt(self, loop) -> bool:
        warnings.warn("Training interrupted by the user; keeping the weights trained so far.",
                      UserWarning)
        return True


def check_callbacks(callbacks, name="callbacks"):
    """The ``callbacks`` parameter as a list (ValueError for anything but
    Callback instances)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback) or not isinstance(callbacks, (list, tuple)):
        raise ValueError(f"{name} must be a list of skpred.callbacks.Callback instances, got "
                         f"{type(callbacks).__name__}.")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise ValueError(f"{name} must hold skpred.callbacks.Callback instances, got "
                             f"{type(cb).__name__}.")
    return list(callbacks)
