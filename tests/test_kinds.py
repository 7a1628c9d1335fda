"""The dictionary registry: a kind is one record and one function, and
every estimator accepts a kind added at run time (``skpred._kinds``)."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skpred import (KernelDictionary, PredictedConvNetClassifier, PredictedMLPClassifier,
                    PredictedMLPRegressor, PredictedRICA)
from skpred._kinds import (DICTIONARY_KINDS, kind_names, register_dictionary,
                           unregister_dictionary)

CPU = dict(device="cpu", random_state=0)


def _shifted_identity(request):
    """The toy data-free kind: column c keeps inputs c, c+1, ..., c+a-1
    (mod n_in), so each column's U is known in closed form."""
    n, a = request.n_in, request.n_atoms
    alphas = [np.sort((c + np.arange(a)) % n) for c in range(request.n_columns)]
    return [np.eye(n)[:, alpha] for alpha in alphas], alphas


def _principal(request):
    """The toy data kind: the top principal directions of the layer's input."""
    X = np.asarray(request.data, dtype=np.float64)
    _, _, Vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    U = Vt[:request.n_atoms].T
    return [U] * request.n_columns, [np.arange(request.n_atoms)] * request.n_columns


@pytest.fixture
def toy_kinds():
    """Two kinds, each one record and one function; removed afterwards."""
    register_dictionary("shifted", _shifted_identity, conv_ok=True, doc="toy: shifted identity")
    register_dictionary("principal", _principal, needs_data=True, doc="toy: principal axes")
    yield
    unregister_dictionary("shifted")
    unregister_dictionary("principal")


def _expected_shifted(n, a, c):
    U = np.zeros((n, a))
    for k, i in enumerate(np.sort((c + np.arange(a)) % n)):
        U[i, k] = 1.0
    return U


def _quiet(est, X, y=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def test_a_registered_kind_reaches_every_estimator(toy_kinds, digits):
    # Breakage caught: an estimator whose options or dispatch do not read
    # the registry (a literal set of names, a frozen copy of it), or a
    # network layer that builds another dictionary than the kind's.
    X, y = digits
    X, y = X[:200], y[:200]
    kd = KernelDictionary("shifted", alpha_fraction=0.25, n_columns=2, **CPU).fit(X)
    for c in range(2):
        np.testing.assert_array_equal(kd.dictionaries_[c], _expected_shifted(64, 16, c))

    mlp = _quiet(PredictedMLPClassifier((8,), dictionary="shifted", n_columns=2, max_iter=2,
                                        **CPU), X, y)
    for c in range(2):
        np.testing.assert_array_equal(mlp.dictionaries_[0].dictionaries_[c],
                                      _expected_shifted(64, 16, c))
    assert mlp.layers_[0]["dictionary"] == "shifted"
    reg = _quiet(PredictedMLPRegressor((8,), dictionary="shifted", max_iter=2, **CPU),
                 X, y.astype(float))
    assert reg.layers_[0]["dictionary"] == "shifted"

    conv = _quiet(PredictedConvNetClassifier(((4, 3, 2),), (8,), dictionary="shifted",
                                             image_shape=(8, 8), max_iter=1, **CPU), X, y)
    assert [r["dictionary"] for r in conv.layers_] == ["shifted", "shifted"]

    rica = _quiet(PredictedRICA(8, dictionary="shifted", alpha_fraction=0.25, n_columns=1,
                                max_iter=2, **CPU), X)
    np.testing.assert_array_equal(rica.dictionary_.dictionaries_[0], _expected_shifted(64, 16, 0))


def test_a_registered_data_kind_reads_the_layers_input(toy_kinds, digits):
    # Breakage caught: a data kind not given the data (or given the wrong
    # layer's input). Reference: principal axes from numpy's eigh of the
    # covariance (another route than the toy's SVD), up to sign.
    X, _ = digits
    kd = KernelDictionary("principal", alpha_fraction=0.125, **CPU).fit(X)
    evals, evecs = np.linalg.eigh(np.cov(X, rowvar=False))
    top = evecs[:, np.argsort(evals)[::-1][:8]]
    np.testing.assert_allclose(np.abs(top.T @ kd.dictionaries_[0]), np.eye(8), atol=1e-6)


def test_data_kinds_are_refused_for_conv_filters_and_accepted_for_dense_layers(toy_kinds, digits):
    # Breakage caught: the conv_ok flag ignored (a data kind cannot build a
    # filter bank before any data is seen).
    X, y = digits
    with pytest.raises(ValueError, match="conv layer 1"):
        PredictedConvNetClassifier(((4, 3, 2),), (8,), dictionary="principal",
                                   image_shape=(8, 8), max_iter=1, **CPU).fit(X[:100], y[:100])
    conv = _quiet(PredictedConvNetClassifier(((4, 3, 2),), (8,), dictionary=("se", "principal"),
                                             image_shape=(8, 8), max_iter=1, **CPU),
                  X[:100], y[:100])
    assert conv.layers_[1]["dictionary"] == "principal"


def test_unregistered_and_learned_kinds_are_refused_where_they_do_not_apply():
    # Breakage caught: a kind left behind after unregistering; lowrank (U
    # learned) offered to KernelDictionary, which only builds fixed U.
    register_dictionary("gone", _shifted_identity)
    assert "gone" in kind_names()
    unregister_dictionary("gone")
    assert "gone" not in kind_names()
    with pytest.raises(ValueError, match="kernel"):
        KernelDictionary("gone").fit(np.ones((3, 4)))
    assert "lowrank" in kind_names() and "lowrank" not in kind_names(fixed=True)
    with pytest.raises(ValueError, match="kernel"):
        KernelDictionary("lowrank").fit(np.ones((3, 4)))


def test_registration_is_checked():
    # Breakage caught: a name that shadows another kind or "auto", or a
    # data kind offered to convolutions.
    for name in ("se", "auto", "", None):
        with pytest.raises(ValueError):
            register_dictionary(name, _shifted_identity)
    with pytest.raises(ValueError, match="conv_ok"):
        register_dictionary("bad", _principal, needs_data=True, conv_ok=True)
    assert "bad" not in DICTIONARY_KINDS


def test_a_kind_that_builds_the_wrong_shape_is_a_clear_error():
    # Breakage caught: a user's build function returning arrays of the wrong
    # shape reaching torch (a crash deep in a matmul) instead of a message.
    register_dictionary("wrong", lambda r: ([np.ones((r.n_in, r.n_atoms + 1))] * r.n_columns,
                                            [None] * r.n_columns))
    try:
        with pytest.raises(ValueError, match="'wrong' dictionary must build"):
            KernelDictionary("wrong").fit(np.ones((3, 4)))
    finally:
        unregister_dictionary("wrong")


def test_the_built_in_kinds_are_the_documented_ones():
    # Breakage caught: a kind dropped from or added to the registry without
    # the documentation (DESIGN table / KernelDictionary docstring) noticing.
    assert set(kind_names()) == {"se", "emp", "emp2", "dct", "ae", "random", "uniform",
                                 "randcon", "lowrank"}
    assert set(kind_names(conv=True)) == {"se", "dct", "random", "uniform", "randcon"}
    assert set(kind_names(needs_data=True)) == {"emp", "emp2", "ae"}
    assert all(DICTIONARY_KINDS[k].doc for k in kind_names())
