"""Loaders given hostile or corrupt files: no code runs, no silent garbage,
every failure a ValueError that names the file."""

import pickle
import struct

import numpy as np
import pytest

from skpred.datasets import load_cifar10, load_mnist, load_stl10



class _WritesAFile:
    """Unpickling this calls open(path, 'w'): proof that code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _dump(path, obj, protocol=pickle.DEFAULT_PROTOCOL):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


@pytest.mark.parametrize("where", ["extra key in a batch", "inside batches.meta",
                                   "top-level object of a batch"])
def test_malicious_cifar_files_run_no_code(where, tmp_path, formats):
    """Breakage caught: plain pickle.load on a user-given file (code execution)."""
    folder = tmp_path / "cifar"
    formats.cifar(folder)
    proof = tmp_path / "pwned"
    payload = _WritesAFile(proof)
    if where == "extra key in a batch":
        data = np.zeros((4, 3072), np.uint8)
        _dump(folder / "data_batch_2", {b"data": data, b"labels": [0] * 4, b"x": payload})
        bad = "data_batch_2"
    elif where == "inside batches.meta":
        _dump(folder / "batches.meta", {b"label_names": [b"a"] * 10, b"x": payload})
        bad = "batches.meta"
    else:
        _dump(folder / "test_batch", payload)
        bad = "test_batch"
    with pytest.raises(ValueError, match=rf"{bad}.*io\.open.*refused"):
        load_cifar10(str(folder))
    assert not proof.exists()


def test_cifar_files_in_the_original_protocol_2_still_load(tmp_path, formats):
    folder = tmp_path / "cifar"
    written = formats.cifar(folder)
    data, labels = written["data_batch_1"]
    _dump(folder / "data_batch_1", {b"batch_label": b"b1", b"data": data, b"labels": labels},
          protocol=2)
    bunch = load_cifar10(str(folder))
    assert bunch.target[:4].tolist() == labels
    np.testing.assert_array_equal(
        bunch.data[:1].reshape(32, 32, 3)[..., 0] * 255,
        data[0, :1024].reshape(32, 32).astype(np.float32))


@pytest.mark.parametrize("meta, match", [
    ([b"a"] * 10, "not a CIFAR-10 meta file"),
    ({b"label_names": [None] * 10}, "list of strings"),
])
def test_cifar_meta_of_the_wrong_shape(meta, match, tmp_path, formats):
    folder = tmp_path / "cifar"
    formats.cifar(folder)
    _dump(folder / "batches.meta", meta)
    with pytest.raises(ValueError, match=rf"batches\.meta.*{match}|{match}"):
        load_cifar10(str(folder))


def test_truncated_cifar_batch_names_the_file(tmp_path, formats):
    folder = tmp_path / "cifar"
    formats.cifar(folder)
    raw = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="data_batch_3.*corrupt or truncated"):
        load_cifar10(str(folder))


@pytest.mark.parametrize("labels", [[42, 0, 0, 0], [-1, 0, 0, 0], ["cat", "x", "y", "z"],
                                    [None] * 4, [0.5, 1, 2, 3]], ids=str)
def test_cifar_labels_must_be_integers_0_to_9(labels, tmp_path, formats):
    folder = tmp_path / "cifar"
    formats.cifar(folder)
    _dump(folder / "data_batch_1", {b"data": np.zeros((4, 3072), np.uint8), b"labels": labels})
    with pytest.raises(ValueError, match="data_batch_1.*labels"):
        load_cifar10(str(folder))


# ----------------------------------------------------------------------- MNIST


def test_mnist_label_out_of_range_names_the_file(tmp_path, formats):
    formats.mnist(tmp_path)
    formats.idx(tmp_path / "train-labels-idx1-ubyte", np.array([200] + [0] * 11, np.uint8))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*0..9"):
        load_mnist(str(tmp_path))


def test_mnist_header_claiming_4_billion_images_is_checked_before_reading(tmp_path, formats):
    formats.mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[4:8] = struct.pack(">I", 2**32 - 1)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*header claims"):
        load_mnist(str(tmp_path))


def test_gzipped_mnist_with_a_lying_header_is_a_clear_truncation(tmp_path, formats):
    import gzip

    formats.mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[4:8] = struct.pack(">I", 2**32 - 1)
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz is truncated"):
        load_mnist(str(tmp_path))


@pytest.mark.parametrize("as_uint8", [True, False])
def test_mnist_images_that_are_not_bytes_are_refused(as_uint8, tmp_path, formats):
    formats.mnist(tmp_path)
    images = np.full((12, 28, 28), 1000.0, dtype=">f4")
    header = bytes([0, 0, 0x0D, 3]) + struct.pack(">3I", 12, 28, 28)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + images.tobytes())
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*unsigned bytes"):
        load_mnist(str(tmp_path), as_uint8=as_uint8)


# ----------------------------------------------------------------------- STL-10


def test_stl10_accepts_numpy_integer_downsample(tmp_path, formats):
    formats.stl(tmp_path)
    b = load_stl10(str(tmp_path), downsample=np.int64(2))
    assert b.image_shape == (48, 48, 3)
    with pytest.raises(ValueError, match="downsample must be a positive integer"):
        load_stl10(str(tmp_path), downsample=True)
