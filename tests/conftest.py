import gzip
import pickle
import struct
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits():
    """load_digits scaled to [0, 1] (8x8 grayscale, 1797 samples)."""
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


@pytest.fixture
def quiet_convergence():
    """Fixed-epoch test fits are meant to stop before converging."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# Small files in the formats of the full data sets (MNIST IDX, CIFAR-10's
# python batches, STL-10's binaries), for the loader tests. Handed to tests
# as the ``formats`` fixture: test modules do not import each other (that
# breaks under ``--import-mode=importlib``).

def write_idx(path, array, gz=False, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(payload)


def write_mnist(folder, n_train=12, n_test=5, gz=False):
    rng = np.random.default_rng(0)
    parts = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", labels, gz)
        parts[part] = (images, labels)
    return parts


def write_cifar(folder, n=4, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane", b"automobile"] + [b"x"] * 8}, f)
    return written


def write_stl(folder, n_train=10, n_test=4, n_unlabeled=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        imgs = rng.integers(0, 256, size=(n, 96, 96, 3), dtype=np.uint8)  # (row, col, ch)
        # the format: per image, per channel, column-major 96x96
        imgs.transpose(0, 3, 2, 1).tofile(folder / f"{split}_X.bin")
        images[split] = imgs
        if split != "unlabeled":
            labels = rng.integers(1, 11, size=n).astype(np.uint8)
            labels.tofile(folder / f"{split}_y.bin")
            images[split + "_y"] = labels
    with open(folder / "fold_indices.txt", "w") as f:
        for k in range(10):
            f.write(" ".join(str(i) for i in range(k % n_train, n_train, 3)) + "\n")
    return images


@pytest.fixture(scope="session")
def formats():
    """Writers of small data-set files: ``formats.idx``, ``formats.mnist``,
    ``formats.cifar``, ``formats.stl``."""
    return SimpleNamespace(idx=write_idx, mnist=write_mnist, cifar=write_cifar, stl=write_stl)
