"""Data feeds: training data on the device (dense or sparse rows), minibatch
rows, weighted means, and batched prediction.
"""

import scipy.sparse as sp
import torch

from .nn._linear import cached_weights


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


def to_device(X, device, dtype=torch.float32, order=None, chunk=8192):
    """Copy an array to the device once, converting straight to ``dtype``.

    A float64 array is never copied to float64 first: ``torch.tensor`` with a
    target dtype converts while copying. ``order`` (row indices, dense X
    only) copies the rows in that order, a chunk at a time into the one
    device tensor (no second copy of X, as ``X[order]`` would make). A scipy
    sparse matrix becomes a :class:`SparseRows` (its CSR arrays on the
    device, densified by batch; :meth:`SparseRows.take` selects rows).
    """
    if sp.issparse(X):
        if order is not None:
            raise ValueError("to_device: order is for dense X; take rows of the SparseRows.")
        return SparseRows.from_scipy(X, device, dtype)
    if order is None:
        return torch.tensor(X, dtype=dtype, device=device)
    out = torch.empty((len(order),) + tuple(X.shape[1:]), dtype=dtype, device=device)
    for start in range(0, len(order), chunk):
        out[start:start + chunk] = torch.tensor(X[order[start:start + chunk]], dtype=dtype,
                                                device=device)
    return out


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
    with cached_weights():  # W built once for all the chunks
        for start in range(0, X.shape[0], batch_size):
            outputs.append(_predict_chunk(fn, X[start:start + batch_size], device, batch_size,
                                          dtype, pad))
    if not outputs:
        raise ValueError("Cannot predict on an empty array.")
    return torch.cat(outputs).numpy()


def _predict_chunk(fn, chunk, device, batch_size, dtype, pad):
    if sp.issparse(chunk):
        chunk = chunk.toarray()  # one chunk dense at a time, never the whole matrix
    # torch.tensor copies the chunk: read-only input (memmaps) is fine.
    xb = torch.tensor(chunk, dtype=dtype, device=device)
    n = xb.shape[0]
    if pad and n < batch_size:
        xb = torch.cat([xb, xb.new_zeros((batch_size - n, *xb.shape[1:]))])
    return fn(xb)[:n].cpu()


@torch.no_grad()
def apply_in_batches(fn, X: torch.Tensor, batch_size=4096) -> torch.Tensor:
    """``fn`` over a device tensor in chunks, result kept on the device
    (predicted layers' W built once: :func:`skpred.nn._linear.cached_weights`)."""
    with cached_weights():
        return torch.cat([fn(X[s:s + batch_size]) for s in range(0, X.shape[0], batch_size)])
