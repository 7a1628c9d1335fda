"""Data-parallel training state (core: no estimator imported here).

The public entry points are in :mod:`skpred.distributed`. While a
:func:`skpred.distributed.data_parallel` block is active, the networks'
``fit`` reads :func:`current` and hands the returned :class:`DataParallel`
to the training loop, the data kernels and pretraining:

- every rank holds the same data and draws the same minibatch order from
  the same seed; each computes the loss and gradients of its slice of
  every minibatch;
- the gradients of the learned tensors (V, biases, dense weights) are
  summed across ranks in one flat all-reduce per step; the fixed
  dictionaries U are buffers, rebuilt on every rank from ``random_state``
  and never sent;
- data kernels (``emp``, ``emp2``) sum their covariance statistics across
  ranks once, each rank reading its share of the rows.

Everything that travels is counted (:meth:`DataParallel.report`).
"""

import hashlib
import json
from contextlib import contextmanager

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["DataParallel", "current", "activated"]

_ACTIVE = []


def current():
    """The active :class:`DataParallel`, or None outside a data-parallel block."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def activated(dp):
    _ACTIVE.append(dp)
    try:
        yield dp
    finally:
        _ACTIVE.pop()


class DataParallel:
    """One rank's view of a data-parallel fit over a torch.distributed group."""

    def __init__(self, group=None):
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.backend = dist.get_backend(group)
        self.reset_counts()

    def reset_counts(self):
        self.gradient_bytes = 0  # all-reduced gradients, every step
        self.steps = 0
        self.bytes_per_step = 0
        self.once_bytes = 0  # data-kernel statistics, once per fit
        self.other_bytes = 0  # per-epoch loss sums and start-up checks

    # ------------------------------------------------------------ batches

    def my_rows(self, rows):
        """This rank's contiguous share of a minibatch's row indices."""
        return torch.tensor_split(rows, self.world_size)[self.rank]

    def my_chunks(self, n, chunk):
        """Starts of the row chunks this rank reads (round robin over chunks)."""
        return range(self.rank * chunk, n, self.world_size * chunk)

    # ---------------------------------------------------------- reductions

    def all_reduce_gradients(self, params):
        """Sum the gradients of ``params`` over the ranks: one flat all-reduce."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, group=self.group)
        nbytes = flat.numel() * flat.element_size()
        self.gradient_bytes += nbytes
        self.bytes_per_step = nbytes
        self.steps += 1
        offset = 0
        for p, g in zip(params, grads):
            size = g.numel()
            p.grad = flat[offset:offset + size].view_as(p)
            offset += size

    def sum_(self, tensor, once=False):
        """In-place sum over the ranks of a small statistic (counted)."""
        dist.all_reduce(tensor, group=self.group)
        nbytes = tensor.numel() * tensor.element_size()
        if once:
            self.once_bytes += nbytes
        else:
            self.other_bytes += nbytes
        return tensor

    def check_same(self, what, value, device):
        """ValueError on every rank unless ``value`` (any JSON-able) is the
        same on all ranks."""
        digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode())
        h = int.from_bytes(digest.digest()[:7], "little")
        t = torch.tensor([h, -h], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.group)
        self.other_bytes += 16
        if int(t[0]) != h or int(-t[1]) != h:
            raise ValueError(
                f"Data-parallel fit: {what} differ across the {self.world_size} ranks; every "
                f"rank must call fit with the same estimator parameters and the same data.")

    def check_same_tensors(self, what, tensors, device):
        """ValueError on every rank unless ``tensors`` agree across the ranks
        (their float64 sums and sums of squares, to 1e-9 relative: a cheap
        fingerprint that tolerates another summation order)."""
        stats = torch.stack([torch.stack([t.double().sum(), (t.double() ** 2).sum()])
                             for t in tensors]).reshape(-1).to(device)
        high, low = stats.clone(), stats.clone()
        dist.all_reduce(high, op=dist.ReduceOp.MAX, group=self.group)
        dist.all_reduce(low, op=dist.ReduceOp.MIN, group=self.group)
        self.other_bytes += 2 * stats.numel() * stats.element_size()
        if not bool(((high - low).abs() <= 1e-9 * high.abs().clamp_min(1.0)).all()):
            raise ValueError(
                f"Data-parallel fit: {what} differ across the {self.world_size} ranks; every "
                f"rank must call fit with the same estimator parameters and the same data.")

    def report(self, module, dense_scalars):
        """What travelled during the fit, and what a dense network would need."""
        learned = sum(p.numel() for p in module.parameters() if p.requires_grad)
        return dict(
            world_size=self.world_size,
            backend=self.backend,
            steps=self.steps,
            learned_scalars=int(learned),
            bytes_per_step=int(self.bytes_per_step or 4 * learned),
            gradient_bytes=int(self.gradient_bytes),
            once_bytes=int(self.once_bytes),
            other_bytes=int(self.other_bytes),
            dense_bytes_per_step=int(4 * dense_scalars),
        )


def fingerprint(X, y, sample_weight):
    """A cheap fingerprint of the training data (shape and sums)."""
    def stats(a):
        if a is None:
            return None
        if hasattr(a, "toarray"):  # sparse: the stored values
            return [list(a.shape), float(np.asarray(a.sum(), dtype=np.float64))]
        a = np.asarray(a)
        if a.dtype.kind in "biuf":
            return [list(a.shape), round(float(a.astype(np.float64).sum()), 6)]
        return [list(a.shape), hashlib.sha256(a.astype(str).tobytes()).hexdigest()]
    return [stats(X), stats(y), stats(sample_weight)]
