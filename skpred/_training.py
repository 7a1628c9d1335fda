"""The one minibatch training loop, and device, dtype and seed handling.

Every estimator trains through :func:`train_epochs`; nothing else in skpred
loops over minibatches for training.
"""

import copy
import logging
import math
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, List, Optional

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

logger = logging.getLogger("skpred")

_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def resolve_device(device):
    """Turn the ``device`` parameter into a ``torch.device``.

    ``"auto"`` is the first CUDA GPU when one is present, else the CPU.
    Asking for CUDA on a machine without it is a ValueError, not a crash.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}."
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available.")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} "
                f"CUDA device(s) exist."
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was requested but MPS is not available.")
    return torch.device(device)


def torch_generator(rng: np.random.RandomState) -> torch.Generator:
    """A local CPU ``torch.Generator`` seeded from a numpy RandomState.

    Library code never touches torch's global seed.
    """
    return torch.Generator().manual_seed(int(rng.randint(0, 2**31 - 1)))


class SparseRows:
    """A CSR matrix held on a torch device, read as dense blocks of rows.

    ``X[rows]`` (an index tensor or a slice) returns a dense
    ``(len(rows), n_features)`` tensor built on the device from the CSR
    arrays, so training and prediction densify one minibatch at a time and
    never the whole matrix; ``take(idx)`` selects rows and stays sparse.
    It offers what the training code reads of a tensor: ``shape``,
    ``device``, ``dtype``, ``len``.
    """

    ndim = 2

    def __init__(self, indptr, indices, values, n_features):
        self.indptr, self.indices, self.values = indptr, indices, values
        self.shape = (indptr.shape[0] - 1, int(n_features))
        self.device, self.dtype = values.device, values.dtype

    @classmethod
    def from_scipy(cls, X, device, dtype=torch.float32):
        X = X.tocsr()
        return cls(torch.as_tensor(X.indptr, dtype=torch.long, device=device),
                   torch.as_tensor(X.indices, dtype=torch.long, device=device),
                   torch.tensor(X.data, dtype=dtype, device=device), X.shape[1])

    def __len__(self):
        return self.shape[0]

    def detach(self):
        return self

    def _rows(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            return torch.arange(start, stop, step, device=self.device)
        return torch.as_tensor(key, dtype=torch.long, device=self.device)

    def _gather(self, rows):
        """Positions of the stored values of ``rows``, and each one's row."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        counts = ends - starts
        row_of = torch.repeat_interleave(torch.arange(len(rows), device=self.device), counts)
        first = torch.cumsum(counts, 0) - counts
        offsets = torch.arange(len(row_of), device=self.device) - first[row_of]
        return starts[row_of] + offsets, row_of, counts

    def __getitem__(self, key):
        rows = self._rows(key)
        pos, row_of, _ = self._gather(rows)
        out = torch.zeros(len(rows), self.shape[1], dtype=self.dtype, device=self.device)
        out[row_of, self.indices[pos]] = self.values[pos]
        return out

    @property
    def nbytes(self) -> int:
        """Bytes of the CSR arrays (as ``Tensor.nbytes``)."""
        return self.indptr.nbytes + self.indices.nbytes + self.values.nbytes

    def take(self, idx):
        """The rows ``idx`` as a new SparseRows (on the same device)."""
        rows = self._rows(idx)
        pos, _, counts = self._gather(rows)
        indptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        return SparseRows(indptr, self.indices[pos], self.values[pos], self.shape[1])


def weighted_mean(values, weights=None):
    """``values.mean()``, or ``sum(w v) / sum(w)`` with per-sample weights
    (0 when the weights are all zero)."""
    if weights is None:
        return values.mean()
    return values @ weights / weights.sum().clamp_min(1e-12)


def take_rows(X, idx):
    """Rows ``idx`` of a device tensor or of a :class:`SparseRows` (kept sparse)."""
    return X.take(idx) if isinstance(X, SparseRows) else X[idx]


def to_device(X, device, dtype=torch.float32):
    """Copy an array to the device once, converting straight to ``dtype``.

    A float64 array is never copied to float64 first: ``torch.tensor`` with a
    target dtype converts while copying. A scipy sparse matrix becomes a
    :class:`SparseRows` (its CSR arrays on the device, densified by batch).
    """
    if sp.issparse(X):
        return SparseRows.from_scipy(X, device, dtype)
    return torch.tensor(X, dtype=dtype, device=device)


def has_room(n_bytes: int, device) -> bool:
    """Whether an optional tensor of ``n_bytes`` may be allocated on
    ``device``: always on the CPU; on a GPU when it takes at most half of
    the free memory (room is left for the training step itself)."""
    device = torch.device(device)
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return n_bytes <= free // 2


def reset_linear_(layer: nn.Module, generator: torch.Generator) -> None:
    """Torch's default initialisation of ``nn.Linear``/``nn.Conv2d``, drawn
    from a local generator: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and
    bias (what kaiming_uniform_ with a=sqrt(5) amounts to)."""
    bound = 1.0 / math.sqrt(layer.weight[0].numel())
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)


def reset_layer_(layer: nn.Module, generator: torch.Generator) -> None:
    if isinstance(layer, (nn.Linear, nn.Conv2d)):
        reset_linear_(layer, generator)
    else:
        layer.reset_parameters(generator=generator)


def untouched_global_rng():
    """A context in which torch's global CPU random state is saved and
    restored: module constructors initialise their weights from it, and
    library code must not consume it."""
    return torch.random.fork_rng(devices=[])


def seeded(make: Callable[[], nn.Module], generator: torch.Generator, device) -> nn.Module:
    """``make()`` a layer on the CPU, draw its weights from ``generator``, move it.

    The local generator is a CPU one, so weights are always drawn on the CPU:
    the same seed gives the same initial weights on every device, and a
    CUDA tensor never meets a CPU generator. The constructor's own default
    initialisation runs with the global random state saved and restored.
    """
    with untouched_global_rng():
        layer = make()
    reset_layer_(layer, generator)
    return layer.to(device)


def param_groups(module: nn.Module, weight_decay: float):
    """Weight decay on weights (W, V, learned U), none on biases."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(module, solver, learning_rate, momentum=0.0, weight_decay=0.0):
    groups = param_groups(module, weight_decay)
    if solver == "sgd":
        return torch.optim.SGD(groups, lr=learning_rate, momentum=momentum)
    if solver == "adam":
        return torch.optim.Adam(groups, lr=learning_rate)
    raise ValueError(f"solver must be 'sgd' or 'adam', got {solver!r}.")


def enable_verbose_logging(verbose):
    """Make ``verbose`` visible without the user configuring logging."""
    if verbose and not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[skpred] %(message)s"))
        logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)


def seeded_network(make: Callable[[], nn.Module], generator: torch.Generator,
                   device) -> nn.Module:
    """``make()`` a network around layers already built (and seeded), draw
    its output layer from ``generator`` on the CPU, move it to ``device``."""
    with untouched_global_rng():
        module = make()
    reset_linear_(module.output, generator)
    return module.to(device)


def learned_state(module: nn.Module) -> dict:
    """Copies of the module's parameters only: the fixed dictionaries (U,
    buffers that training never changes) are not copied."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


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


def cpu_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every parameter and buffer on the CPU,
    made without a copy on the module's own device (each tensor is copied
    straight to the host, then the module structure around it)."""
    memo = {}
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in memo:
            continue
        host = t.detach().to("cpu", copy=True)
        memo[id(t)] = nn.Parameter(host, requires_grad=t.requires_grad) \
            if isinstance(t, nn.Parameter) else host
    return copy.deepcopy(module, memo)


@dataclass
class TrainingResult:
    losses: List[float] = field(default_factory=list)
    validation_scores: List[float] = field(default_factory=list)
    n_epochs: int = 0
    converged: bool = False
    interrupted: bool = False
    best_epoch: Optional[int] = None
    history: List[dict] = field(default_factory=list)


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


LEARNING_RATES = ("constant", "invscaling", "adaptive", "decay")


class LearningRateSchedule:
    """The ``learning_rate`` option of the classifiers, applied to any torch
    optimizer through its ``param_groups``.

    - ``"constant"``: ``learning_rate_init`` throughout.
    - ``"invscaling"``: ``learning_rate_init / (t + 1) ** power_t`` after
      every epoch, ``t`` the samples seen so far (scikit-learn's rule).
    - ``"adaptive"``: constant while the stopping rule is not met; each time
      it is, the rate is divided by 5 and training goes on, unless the rate
      is already at most 1e-6 (scikit-learn's rule).
    - ``"decay"``: divided by ``learning_rate_decay`` after every minibatch
      (the authors' schedule).

    ``samples_seen`` carries over between calls (``partial_fit``, warm
    starts), as scikit-learn's ``t_``.
    """

    def __init__(self, kind="constant", learning_rate_init=1e-3, power_t=0.5,
                 learning_rate_decay=1.0, samples_seen=0):
        if kind not in LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {LEARNING_RATES}, got {kind!r}.")
        self.kind = kind
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.learning_rate_decay = learning_rate_decay
        self.samples_seen = samples_seen

    @staticmethod
    def _set(optimizer, lr):
        for group in optimizer.param_groups:
            group["lr"] = lr

    def after_batch(self, optimizer):
        if self.kind == "decay" and self.learning_rate_decay != 1.0:
            for group in optimizer.param_groups:
                group["lr"] /= self.learning_rate_decay

    def after_epoch(self, optimizer, n_samples):
        self.samples_seen += n_samples
        if self.kind == "invscaling":
            self._set(optimizer, self.learning_rate_init / (self.samples_seen + 1) ** self.power_t)

    def on_plateau(self, optimizer) -> bool:
        """The stopping rule was met: True to keep training (rate divided)."""
        if self.kind != "adaptive":
            return False
        lr = optimizer.param_groups[0]["lr"]
        if lr <= 1e-6:
            return False
        self._set(optimizer, lr / 5.0)
        return True


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
                result.best_epoch = epoch
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


@torch.no_grad()
def predict_in_batches(fn, X, device, batch_size=4096, dtype=torch.float32, pad=False):
    """Apply ``fn`` to X in chunks on ``device``; return one CPU numpy array.

    Memory on the device stays bounded by the chunk size, whatever len(X).
    With ``pad``, every chunk is padded with zero rows to ``batch_size``, so
    each row goes through the same kernels whatever the number of rows
    predicted with it: BLAS and oneDNN pick their algorithms (and summation
    orders) by batch size, which otherwise changes results at 1e-7.
    """
    outputs = []
    for start in range(0, X.shape[0], batch_size):
        chunk = X[start:start + batch_size]
        if sp.issparse(chunk):
            chunk = chunk.toarray()  # one chunk dense at a time, never the whole matrix
        # torch.tensor copies the chunk: read-only input (memmaps) is fine.
        xb = torch.tensor(chunk, dtype=dtype, device=device)
        n = xb.shape[0]
        if pad and n < batch_size:
            xb = torch.cat([xb, xb.new_zeros((batch_size - n, *xb.shape[1:]))])
        outputs.append(fn(xb)[:n].cpu())
    if not outputs:
        raise ValueError("Cannot predict on an empty array.")
    return torch.cat(outputs).numpy()


@torch.no_grad()
def apply_in_batches(fn, X: torch.Tensor, batch_size=4096) -> torch.Tensor:
    """``fn`` over a device tensor in chunks, result kept on the device."""
    return torch.cat([fn(X[s:s + batch_size]) for s in range(0, X.shape[0], batch_size)])


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
    verbose: int = 0,
    desc: str = "autoencoder",
    catch_interrupt: bool = True,
    weights: Optional[torch.Tensor] = None,
    phase: str = "pretrain",
    progress: Optional[Callable] = None,
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
        after_step=after_step, n_iter_no_change=epochs + 1, verbose=verbose, desc=desc,
        warn_not_converged=False, catch_interrupt=catch_interrupt, weights=weights,
        phase=phase, progress=progress, dp=dp,
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
        learning_rate=learning_rate, generator=generator,
        verbose=verbose, desc="ae dictionary epoch", catch_interrupt=False, weights=weights,
        phase="ae dictionary", dp=dp,
    )
    atoms = layer.weight.detach().cpu().numpy().T.astype(np.float64)
    norms = np.linalg.norm(atoms, axis=0)
    return atoms / np.where(norms > 0, norms, 1.0)
