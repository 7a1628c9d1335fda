"""Sparse CSR input for the MLP estimators and KernelDictionary (issue 14)."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpred import KernelDictionary, PredictedMLPClassifier, PredictedMLPRegressor
from skpred._feeds import SparseRows

CPU = dict(device="cpu", random_state=0)


def test_sparse_rows_against_scipy():
    """Breakage caught: values put in the wrong column or row, empty rows
    mishandled, take() losing rows. Reference: scipy's toarray()."""
    X = sp.random(50, 13, density=0.2, format="csr", random_state=0, dtype=np.float32)
    X = X.tolil()
    X[[3, 17, 49]] = 0  # empty rows, first and last included
    X = X.tocsr()
    X.eliminate_zeros()
    S = SparseRows.from_scipy(X, "cpu")
    dense = X.toarray()
    assert S.shape == (50, 13) and len(S) == 50
    np.testing.assert_array_equal(S[0:50].numpy(), dense)
    np.testing.assert_array_equal(S[10:20].numpy(), dense[10:20])
    idx = np.array([49, 3, 3, 0, 17, 25])
    np.testing.assert_array_equal(S[torch.tensor(idx)].numpy(), dense[idx])
    np.testing.assert_array_equal(S.take(idx)[0:6].numpy(), dense[idx])
    assert S[torch.tensor([], dtype=torch.long)].shape == (0, 13)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32)[:600], y[:600]


@pytest.mark.parametrize("kwargs", [dict(), dict(early_stopping=True),
                                    dict(hidden_layer_sizes=(32, 32), pretrain=True,
                                         pretrain_epochs=2),
                                    dict(dictionary="ae")], ids=str)
def test_sparse_fit_equals_dense_fit(kwargs, digits):
    """Breakage caught: batches densified in another order or with values
    misplaced, the validation split or the data kernel reading the sparse
    matrix wrongly. Reference: the same fit on the dense array; the
    arithmetic is the same, so the results are identical."""
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = PredictedMLPClassifier(max_iter=4, **CPU, **kwargs).fit(X, y)
        sparse = PredictedMLPClassifier(max_iter=4, **CPU, **kwargs).fit(sp.csr_matrix(X), y)
    np.testing.assert_array_equal(sparse.predict_proba(sp.csr_matrix(X)), dense.predict_proba(X))
    np.testing.assert_array_equal(sparse.predict_proba(X), dense.predict_proba(X))


def test_sparse_regressor_and_kernel_dictionary(digits):
    X, y = digits
    Xs = sp.csr_matrix(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = PredictedMLPRegressor(max_iter=3, **CPU).fit(X, y.astype(float))
        b = PredictedMLPRegressor(max_iter=3, **CPU).fit(Xs, y.astype(float))
    np.testing.assert_array_equal(a.predict(X), b.predict(Xs))
    for kernel in ("emp", "emp2", "se"):
        kd = KernelDictionary(kernel, image_shape=(8, 8) if kernel == "se" else None,
                              random_state=0)
        ref = kd.fit(X).transform(X)
        out = KernelDictionary(**kd.get_params()).fit(Xs).transform(Xs)
        assert isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="need dense X|dense array"):
        KernelDictionary(lambda Z: np.cov(Z, rowvar=False)).fit(Xs)
    # CSC and COO are converted, other formats too
    KernelDictionary(random_state=0).fit(sp.coo_matrix(X)).transform(sp.csc_matrix(X))


def test_sparse_data_is_never_densified_whole(monkeypatch):
    """Breakage caught: a code path that turns the whole sparse matrix
    dense (the point of accepting sparse input). Every densification goes
    through SparseRows.__getitem__ or a predict chunk; the largest block
    is recorded and must stay below the number of rows."""
    n = 5000
    X = sp.random(n, 40, density=0.05, format="csr", random_state=0, dtype=np.float32)
    y = np.arange(n) % 3
    largest = {"rows": 0}
    original = SparseRows.__getitem__

    def spy(self, key):
        out = original(self, key)
        largest["rows"] = max(largest["rows"], out.shape[0])
        return out

    monkeypatch.setattr(SparseRows, "__getitem__", spy)
    to_array = sp.csr_matrix.toarray

    def spy_array(self, *a, **k):
        largest["rows"] = max(largest["rows"], self.shape[0])
        return to_array(self, *a, **k)

    monkeypatch.setattr(sp.csr_matrix, "toarray", spy_array)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = PredictedMLPClassifier((32, 32), max_iter=1, pretrain=True, pretrain_epochs=1,
                                     early_stopping=True, **CPU).fit(X, y)
    clf.predict(X)
    assert 0 < largest["rows"] < n
