"""CIFAR-10 ("python version" batches) and STL-10 (binary files) from a path."""

import os
import pickle
from numbers import Integral

import numpy as np
from sklearn.utils import Bunch

__all__ = ["load_cifar10", "load_stl10"]

_CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR_TEST = "test_batch"
_STL_SIDE, _STL_CHANNELS = 96, 3
_STL_IMAGE_BYTES = _STL_SIDE * _STL_SIDE * _STL_CHANNELS


def _pixels(images_nhwc, as_uint8):
    flat = images_nhwc.reshape(len(images_nhwc), -1)
    return flat if as_uint8 else flat.astype(np.float32) / np.float32(255.0)


# ----------------------------------------------------------------- CIFAR-10


def _cifar_folder(path):
    for folder in (path, os.path.join(path, "cifar-10-batches-py")):
        if os.path.exists(os.path.join(folder, _CIFAR_TEST)):
            return folder
    raise FileNotFoundError(
        f"No CIFAR-10 batches in {path!r}: expected data_batch_1..5 and test_batch "
        f"(the 'python version'), there or in its cifar-10-batches-py folder."
    )


# What a CIFAR-10 "python version" file may name when unpickled: numpy's
# array and scalar reconstruction (under numpy 1's and numpy 2's module
# names) and the codec Python 3 uses for bytes in protocol 2. Dicts, lists,
# strings, bytes and numbers need no global at all. Anything else (a class,
# os.system, builtins.eval, ...) is refused before it is ever called.
_CIFAR_GLOBALS = frozenset(
    [(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
     for n in ("_reconstruct", "scalar")]
    + [(m, "_frombuffer") for m in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]
)


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that admits only what CIFAR-10 files contain."""

    def find_class(self, module, name):
        if (module, name) in _CIFAR_GLOBALS:
            return super().find_class(module, name)
        raise _RefusedGlobal(f"{module}.{name}")


def _unpickle(file, what):
    """Load a CIFAR-10 pickle through the restricted unpickler.

    Every failure is a ValueError naming the file; a refused global is named
    too. Nothing in the file can run code.
    """
    try:
        with open(file, "rb") as f:
            return _CifarUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise
    except _RefusedGlobal as exc:
        raise ValueError(
            f"{file} is not a CIFAR-10 {what}: it asks to load {exc}, which the CIFAR-10 "
            f"format never holds (only dicts, lists, strings, numbers and numpy arrays "
            f"are admitted); refused without running it."
        ) from None
    except Exception as exc:  # truncated or not a pickle at all
        raise ValueError(
            f"{file} is not a readable CIFAR-10 {what} (corrupt or truncated): "
            f"{type(exc).__name__}: {exc}") from exc


def _read_cifar_batch(file):
    batch = _unpickle(file, "batch")
    if not isinstance(batch, dict):
        raise ValueError(f"{file} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict.")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{file} is not a CIFAR-10 batch: keys 'data' and 'labels' are missing.")
    data = np.asarray(batch["data"])
    labels = batch["labels"]
    if not isinstance(labels, (list, np.ndarray)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        raise ValueError(f"{file}: CIFAR-10 'labels' must be a list of integers 0..9.")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(
            f"{file}: CIFAR-10 labels must be 0..9, found {labels.min()}..{labels.max()}.")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{file}: 'data' must be uint8 of shape (n, 3072), got {data.dtype} {data.shape}."
        )
    if len(data) != len(labels):
        raise ValueError(f"{file}: {len(data)} images but {len(labels)} labels.")
    # Stored channel-first (1024 red, 1024 green, 1024 blue, each row-major).
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_cifar10(path, *, return_X_y=False, as_uint8=False):
    """Load CIFAR-10 from the standard "python version" batch files.

    Parameters
    ----------
    path : str
        Folder holding ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``
        (pickled dicts with ``data`` and ``labels``), or its parent.

        The "python version" is a pickle format, and a pickle can run code.
        These files are read with a restricted unpickler that admits only
        what the format holds (dicts, lists, strings, bytes, numbers and
        numpy arrays); a file naming anything else (a class, a function) is
        refused with a ValueError naming the file and what it asked for,
        before anything in it runs. Labels must be integers 0..9.
    return_X_y : bool, default=False
        Return ``(data, target)`` of the training set.
    as_uint8 : bool, default=False
        Pixels as uint8 in [0, 255] instead of float32 in [0, 1].

    Returns
    -------
    data : Bunch
        ``data`` (50000, 3072) and ``data_test`` (10000, 3072): each row a
        32x32x3 image in channels-last order, ``image.reshape(32, 32, 3)``
        (row, col, RGB); ``target``, ``target_test`` int64; ``image_shape``
        ``(32, 32, 3)``; ``target_names`` when ``batches.meta`` is present.
    """
    folder = _cifar_folder(path)
    parts = [_read_cifar_batch(os.path.join(folder, name)) for name in _CIFAR_TRAIN]
    X_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    X_test, y_test = _read_cifar_batch(os.path.join(folder, _CIFAR_TEST))
    names = None
    meta = os.path.join(folder, "batches.meta")
    if os.path.exists(meta):
        content = _unpickle(meta, "meta file")
        raw = content.get(b"label_names", content.get("label_names", [])) \
            if isinstance(content, dict) else None
        if not isinstance(raw, list) or not all(isinstance(n, (str, bytes)) for n in raw):
            raise ValueError(
                f"{meta} is not a CIFAR-10 meta file: expected a dict whose 'label_names' "
                f"is a list of strings.")
        names = [n.decode() if isinstance(n, bytes) else n for n in raw] or None
    data, data_test = _pixels(X_train, as_uint8), _pixels(X_test, as_uint8)
    if return_X_y:
        return data, y_train
    return Bunch(data=data, target=y_train, data_test=data_test, target_test=y_test,
                 image_shape=(32, 32, 3), target_names=names,
                 DESCR=f"CIFAR-10 from {folder}: {len(data)} train, {len(data_test)} test images.")


# ------------------------------------------------------------------- STL-10


def _stl_images(file, mmap=False):
    """(n, 96, 96, 3) uint8 view of an STL-10 image file (column-major images)."""
    size = os.path.getsize(file)
    if size == 0 or size % _STL_IMAGE_BYTES:
        raise ValueError(
            f"{file} is not a whole number of 96x96x3 images ({size} bytes is not a "
            f"multiple of {_STL_IMAGE_BYTES}): the file is truncated or not STL-10."
        )
    n = size // _STL_IMAGE_BYTES
    if mmap:
        raw = np.memmap(file, dtype=np.uint8, mode="r", shape=(n, 3, 96, 96))
    else:
        raw = np.fromfile(file, dtype=np.uint8).reshape(n, 3, 96, 96)
    # Each channel is stored column-major: axes (n, channel, col, row).
    return raw.transpose(0, 3, 2, 1)


def _stl_labels(file, n_images):
    labels = np.fromfile(file, dtype=np.uint8).astype(np.int64)
    if len(labels) != n_images:
        raise ValueError(f"{file} holds {len(labels)} labels for {n_images} images.")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise ValueError(f"{file}: STL-10 labels must be 1..10, found {labels.min()}..{labels.max()}.")
    return labels - 1  # 0..9


def _downsample(images, factor):
    if factor == 1:
        return images
    n, h, w, c = images.shape
    if h % factor or w % factor:
        raise ValueError(f"downsample={factor} must divide the image side {h}.")
    blocks = images.reshape(n, h // factor, factor, w // factor, factor, c)
    return blocks.mean(axis=(2, 4), dtype=np.float32)


def load_stl10(path, *, downsample=1, as_uint8=False, unlabeled=False):
    """Load STL-10 from its standard binary files.

    Parameters
    ----------
    path : str
        Folder holding ``train_X.bin``, ``train_y.bin``, ``test_X.bin``,
        ``test_y.bin``, ``fold_indices.txt`` and optionally ``unlabeled_X.bin``
        (or its ``stl10_binary`` subfolder).
    downsample : int, default=1
        Average pooling factor for the labelled images (2 gives 48x48, 3 gives
        32x32). Down-sampled pixels are float32 whatever ``as_uint8``.
    as_uint8 : bool, default=False
        Labelled pixels as uint8 in [0, 255] instead of float32 in [0, 1]
        (only with ``downsample=1``).
    unlabeled : bool, default=False
        Also open the 100,000 unlabelled images, memory-mapped (nothing is
        read until indexed).

    Returns
    -------
    data : Bunch
        ``data`` (5000, side*side*3), ``target`` (0..9), ``data_test``,
        ``target_test``: channels-last rows (``image.reshape(side, side, 3)``);
        ``folds``: list of 10 arrays of indices into ``data``, the predefined
        training folds; ``image_shape``; ``unlabeled`` (when asked): a
        read-only ``(100000, 96, 96, 3)`` uint8 view of the memory map, not
        down-sampled (index it in chunks); ``target_names``.
    """
    folder = path if os.path.exists(os.path.join(path, "train_X.bin")) else os.path.join(path, "stl10_binary")
    def file(name):
        full = os.path.join(folder, name)
        if not os.path.exists(full):
            raise FileNotFoundError(f"No STL-10 file {name!r} in {path!r}.")
        return full

    if isinstance(downsample, bool) or not isinstance(downsample, Integral) or downsample < 1:
        raise ValueError(f"downsample must be a positive integer, got {downsample!r}.")
    downsample = int(downsample)
    parts = {}
    for split in ("train", "test"):
        images = _stl_images(file(f"{split}_X.bin"))
        labels = _stl_labels(file(f"{split}_y.bin"), len(images))
        images = _downsample(images, downsample)
        if downsample == 1:
            images = _pixels(images, as_uint8)
        else:
            images = images.reshape(len(images), -1) / np.float32(255.0)
        parts[split] = (images, labels)
    folds = []
    with open(file("fold_indices.txt")) as f:
        for line in f:
            if line.strip():
                try:
                    folds.append(np.array(line.split(), dtype=np.int64))
                except ValueError as exc:
                    raise ValueError(f"fold_indices.txt has a non-integer entry: {exc}") from exc
    n_train = len(parts["train"][1])
    if len(folds) != 10 or any(f.size and (f.min() < 0 or f.max() >= n_train) for f in folds):
        raise ValueError(
            f"fold_indices.txt must hold 10 lines of 0-based indices below {n_train}, "
            f"got {len(folds)} lines."
        )
    side = _STL_SIDE // downsample
    names = None
    names_file = os.path.join(folder, "class_names.txt")
    if os.path.exists(names_file):
        with open(names_file) as f:
            names = [line.strip() for line in f if line.strip()] or None
    bunch = Bunch(data=parts["train"][0], target=parts["train"][1], data_test=parts["test"][0],
                  target_test=parts["test"][1], folds=folds, image_shape=(side, side, 3),
                  target_names=names, DESCR=f"STL-10 from {folder}, {side}x{side}x3.")
    if unlabeled:
        bunch.unlabeled = _stl_images(file("unlabeled_X.bin"), mmap=True)
    return bunch
