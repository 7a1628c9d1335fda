"""Data-parallel training of the skpred networks on torch.distributed.

The paper's motivation for predicting parameters is distributed training:
the fixed dictionaries U are computed once on every machine and never
need synchronising; only the learned V travel. Here:

- Every rank builds the same U from ``random_state`` (``se``, ``random``,
  ``randcon``, ``dct``: zero bytes exchanged). Data kernels (``emp``,
  ``emp2``) sum their covariance statistics over the ranks once, each rank
  reading its share of the rows, so every rank gets the U one process
  would build on the whole data; ``ae`` dictionaries and pretraining train
  data-parallel like fine-tuning.
- Every rank holds the same data and draws the same minibatch order (the
  same seed); each computes the loss and gradients of its slice of every
  minibatch, and the gradients of the learned tensors (V, biases, dense
  weights, the output layer) are summed in one flat all-reduce per step.
  The result is the model one process would train with the same global
  minibatches, up to float32 summation order.
- ``est.communication_`` reports what travelled: bytes per step, in total,
  once per fit (data-kernel statistics), and the bytes per step a dense
  network of the same shape would have needed.

Two ways in:

- Under ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
  ``MASTER_ADDR`` and ``MASTER_PORT``), every rank runs the same script and
  calls ``fit`` inside :func:`data_parallel`.
- On one machine, :func:`fit` starts the worker processes itself and
  returns an ordinary fitted estimator.

Outside these, nothing changes: a plain ``fit`` is single-process.
"""

import datetime
import os
import pickle
import socket
import tempfile
import warnings
from contextlib import contextmanager

import torch
import torch.distributed as dist
from sklearn.base import clone

from . import _distributed

__all__ = ["data_parallel", "fit"]


@contextmanager
def data_parallel(backend=None, timeout=300.0):
    """Make ``fit`` of the skpred networks data-parallel over the ranks.

    Initialises the default process group from the environment (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, as ``torchrun`` sets
    them) unless one is already initialised, and destroys it on exit if it
    made it. Every rank must call ``fit`` with the same estimator
    parameters and the same data (checked: a mismatch is a ValueError on
    every rank, not a hang).

    Parameters
    ----------
    backend : {"gloo", "nccl"} or None, default=None
        None: "nccl" when CUDA is available, else "gloo". With "nccl",
        ``LOCAL_RANK`` selects the GPU (``device="auto"`` then uses it).
    timeout : float, default=300.0
        Seconds a collective waits for the other ranks before failing: a
        rank that dies makes the others fail with an error, not hang.

    Examples
    --------
    Saved as ``train.py`` and run on two machines with
    ``torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d
    --rdzv-endpoint HOST:29500 train.py``::

        from skpred import PredictedMLPClassifier
        from skpred.distributed import data_parallel

        with data_parallel():
            clf = PredictedMLPClassifier(random_state=0).fit(X, y)
        print(clf.communication_)
    """
    made = False
    if not dist.is_initialized():
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                   if k not in os.environ]
        if missing:
            raise ValueError(f"data_parallel() needs a process group or the environment of a "
                             f"launcher such as torchrun; {missing} are not set.")
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl" and "LOCAL_RANK" in os.environ:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        made = True
    try:
        with _distributed.activated(_distributed.DataParallel()):
            yield
        if made:
            # Every rank done with its collectives before any tears the group
            # down (a rank leaving early is the suspected cause of a worker
            # ending with SIGABRT, seen once in about 20 test runs).
            dist.barrier()
    finally:
        if made:
            dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, backend, timeout, threads, payload, result, target):
    """Body of one worker process (module level, so that spawn can find it)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size))
    torch.set_num_threads(threads)
    if rank != 0:  # the ranks train in lock-step: warn once, from rank 0
        warnings.simplefilter("ignore")
    with open(payload, "rb") as f:  # written by this package a moment ago
        args = pickle.load(f)
    with data_parallel(backend=backend, timeout=timeout):
        out = target(rank, *args)
    if rank == 0:
        with open(result, "wb") as f:
            pickle.dump(out, f)


def _fit_target(rank, estimator, X, y, fit_params):
    return estimator.fit(X, y, **fit_params)


def run_workers(target, args, n_workers=2, backend="gloo", timeout=300.0):
    """Run ``target(rank, *args)`` in ``n_workers`` spawned processes inside
    :func:`data_parallel`; return rank 0's result.

    ``target`` must be importable by name (a module-level function). When a
    worker fails, the others are stopped and a RuntimeError carries the
    failed worker's traceback. Used by :func:`fit`; public for custom
    per-rank work (and the tests).
    """
    if n_workers < 1:
        raise ValueError(f"n_workers must be >= 1, got {n_workers}.")
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    with tempfile.TemporaryDirectory(prefix="skpred-dp-") as tmp:
        payload, result = os.path.join(tmp, "args"), os.path.join(tmp, "result")
        with open(payload, "wb") as f:  # the data pickled once, not once per worker
            pickle.dump(args, f)
        # torch's launcher: it stops the other workers when one fails and
        # hands the failed worker's traceback back.
        workers = torch.multiprocessing.spawn(
            _worker, args=(n_workers, _free_port(), backend, timeout, threads, payload, result,
                           target), nprocs=n_workers, join=False)
        try:
            while not workers.join():
                pass
        except (torch.multiprocessing.ProcessRaisedException,
                torch.multiprocessing.ProcessExitedException) as exc:
            # A worker that died without a Python error (killed, os._exit, a
            # segfault) is the cause; the others then fail in a collective.
            codes = [p.exitcode for p in workers.processes]
            # (a Python error exits with 1; a signal gives a negative code)
            crashed = [r for r, code in enumerate(codes) if code is not None and code > 1]
            if crashed:
                rank, message = crashed[0], (f"exit code {codes[crashed[0]]} (no Python error: "
                                             f"it was killed or crashed).")
            else:
                rank, message = exc.error_index, str(exc)
            raise RuntimeError(f"Data-parallel worker {rank} of {n_workers} failed; the other "
                               f"workers were stopped.\n{message}") from None
        with open(result, "rb") as f:  # written by our worker 0
            return pickle.load(f)


def fit(estimator, X, y=None, *, n_workers=2, backend="gloo", timeout=300.0, **fit_params):
    """Fit a clone of ``estimator`` data-parallel on ``n_workers`` processes
    of this machine (gloo over loopback), and return it fitted.

    Every worker receives the data, trains on its share of every minibatch
    and all-reduces the learned tensors' gradients; the estimator returned
    is rank 0's, an ordinary fitted estimator (it pickles, saves and
    predicts like any other) with ``communication_`` set.

    Parameters
    ----------
    estimator : PredictedMLPClassifier, PredictedMLPRegressor or PredictedConvNetClassifier
    X, y : the training data, as for ``fit``
    n_workers : int, default=2
        Processes; each uses ``cpu_count // n_workers`` torch threads.
    backend : {"gloo", "nccl"}, default="gloo"
    timeout : float, default=300.0
        Seconds a worker waits for the others in a collective.
    **fit_params : passed to ``fit`` (``sample_weight``).

    Returns
    -------
    estimator : the fitted clone
    """
    from ._base import TorchEstimatorBase

    if not isinstance(estimator, TorchEstimatorBase):
        raise ValueError(f"Data-parallel fitting is for the skpred networks, not "
                         f"{type(estimator).__name__}.")
    return run_workers(_fit_target, (clone(estimator), X, y, fit_params), n_workers=n_workers,
                       backend=backend, timeout=timeout)
