"""Property-based contract for every public estimator (Hypothesis).

For generated arrays (0 to many rows and columns; int, bool, float16/32/64,
complex and object dtypes; NaN, inf, huge and tiny magnitudes; C, Fortran
and non-contiguous layouts) and generated parameter values, every fit,
predict and transform either

- raises ValueError or TypeError with a message (what scikit-learn users
  catch), or
- returns an array of the right shape holding only finite values.

Anything else (another exception, a NaN in the output, a wrong shape) is a
defect. The default run keeps each test to a few dozen examples (well under
a minute in all); ``pytest -m slow tests/test_fuzz.py`` runs the deeper one.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skpred import (
    ImageEncoder,
    KernelDictionary,
    PredictedConvNetClassifier,
    PredictedMLPClassifier,
    PredictedRICA,
    ZCAWhitening,
)

CPU = dict(device="cpu", random_state=0)

# Small instances of the defaults (fewer epochs, patches, features).
MAKERS = {
    "KernelDictionary": lambda **p: KernelDictionary(**p),
    "PredictedMLPClassifier": lambda **p: PredictedMLPClassifier(
        **{**dict(hidden_layer_sizes=(8,), max_iter=2), **CPU, **p}),
    "PredictedConvNetClassifier": lambda **p: PredictedConvNetClassifier(
        **{**dict(max_iter=1, dense_layers=(8,)), **CPU, **p}),
    "PredictedRICA": lambda **p: PredictedRICA(**{**dict(n_components=4, max_iter=3), **CPU, **p}),
    "ZCAWhitening": lambda **p: ZCAWhitening(**p),
    "ImageEncoder": lambda **p: ImageEncoder(**{**dict(
        feature_learner=PredictedRICA(n_components=3, max_iter=2), n_patches=30), **CPU, **p}),
}

_SPECIAL = st.sampled_from([0.0, -0.0, 1e-300, -1e-300, 1e-30, 1e30, 1e38, -1e38, 1e39, 1e300,
                            -1e300, np.nan, np.inf, -np.inf])
_DTYPES = st.sampled_from(["float64"] * 4 + ["float32"] * 2 + [
    "float16", "int64", "int8", "bool", "complex128", "object"])


@st.composite
def arrays(draw, min_rows=0, max_rows=14, max_cols=9, n_cols=None):
    """Mostly well-formed numbers, scaled anywhere from 1e-30 to 1e30, with
    (sometimes) one extreme or non-finite value planted; every dtype and
    layout."""
    n = draw(st.one_of(st.integers(min_rows, max_rows), st.integers(max(min_rows, 2), max_rows)))
    d = draw(st.integers(0, max_cols)) if n_cols is None else n_cols
    X = draw(hnp.arrays(np.float64, (n, d), elements=st.floats(-3, 3)))
    X = X * 10.0 ** draw(st.sampled_from([0, 0, 0, -30, -5, 5, 30]))
    if X.size and draw(st.booleans()):
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))
        X[i, j] = draw(_SPECIAL)
    dtype = draw(_DTYPES)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dtype == "object":
            X = X.astype(object)
        elif dtype in ("int64", "int8", "bool"):
            X = np.nan_to_num(np.clip(X, -100, 100)).astype(dtype)
        else:
            X = X.astype(dtype)
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "strided" and d:
        wide = np.repeat(X, 2, axis=1)
        X = wide[:, ::2]
    return X


def _check_output(out, n_rows):
    assert isinstance(out, np.ndarray), type(out)
    assert out.shape[0] == n_rows
    assert np.isfinite(out.astype(np.float64)).all(), "non-finite output"


def _contract(call):
    """Run ``call``; a ValueError/TypeError with a message is a pass."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call(), None
    except (ValueError, TypeError) as exc:
        assert len(str(exc)) > 10, f"uninformative error: {exc!r}"
        return None, exc


def _exercise(est, X, y, X_new):
    supervised = hasattr(est, "predict")
    fitted, err = _contract(lambda: est.fit(X, y) if supervised else est.fit(X))
    event("fit refused" if err is not None else "fit ran")
    if err is not None:
        return
    if supervised:
        for method in ("predict", "predict_proba"):
            out, err = _contract(lambda: getattr(est, method)(X_new))
            if err is None:
                _check_output(out, len(X_new))
                if method == "predict":
                    assert set(np.unique(out)) <= set(est.classes_)
    else:
        out, err = _contract(lambda: est.transform(X_new))
        if err is None:
            _check_output(out, len(X_new))


def _labels(draw_n, n):
    return np.arange(n) % max(1, draw_n)


FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
DEEP = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


def _data_test(name):
    @given(data=st.data(), n_classes=st.integers(1, 3))
    def test(data, n_classes):
        X = data.draw(arrays(), label="X")
        # New data mostly of the fitted width (so that predict and transform
        # are reached), sometimes of any width.
        same = data.draw(st.integers(0, 3), label="same width") > 0
        X_new = data.draw(arrays(max_rows=5, n_cols=X.shape[1] if same else None), label="X_new")
        y = _labels(n_classes, len(X))
        _exercise(MAKERS[name](), X, y, X_new)
    return test


_PARAMS = {
    "alpha_fraction": st.one_of(st.floats(allow_nan=True), st.sampled_from([0, 1, 0.5, -1, 2])),
    "n_columns": st.one_of(st.integers(-2, 12), st.sampled_from(["auto", 0.5, None])),
    "length_scale": st.one_of(st.floats(allow_nan=True), st.tuples(st.floats(-2, 3)),
                              st.tuples(st.floats(-2, 3), st.floats(-2, 3))),
    "ridge": st.one_of(st.floats(allow_nan=True), st.sampled_from(["auto", None, 0])),
}
_PARAMS_FOR = {
    "KernelDictionary": ["alpha_fraction", "n_columns", "length_scale", "ridge"],
    "PredictedMLPClassifier": ["alpha_fraction", "n_columns", "length_scale", "ridge"],
    "PredictedConvNetClassifier": ["alpha_fraction", "n_columns", "length_scale", "ridge"],
    "PredictedRICA": ["alpha_fraction", "n_columns", "length_scale", "ridge"],
}


def _param_test(name):
    keys = _PARAMS_FOR[name]

    @given(params=st.fixed_dictionaries({}, optional={k: _PARAMS[k] for k in keys}),
           seed=st.integers(0, 3))
    def test(params, seed):
        X, y = np.random.RandomState(seed).rand(30, 16), np.arange(30) % 3
        if name == "PredictedRICA" and params.get("n_columns") not in (None, "auto"):
            pass  # n_columns must divide n_components: an error is the contract
        _exercise(MAKERS[name](**params), X, y, X[:4])
    return test


for _name in MAKERS:
    globals()[f"test_fuzz_data_{_name}"] = FAST(_data_test(_name))
    globals()[f"test_fuzz_data_deep_{_name}"] = pytest.mark.slow(DEEP(_data_test(_name)))
for _name in _PARAMS_FOR:
    globals()[f"test_fuzz_params_{_name}"] = FAST(_param_test(_name))
    globals()[f"test_fuzz_params_deep_{_name}"] = pytest.mark.slow(DEEP(_param_test(_name)))
