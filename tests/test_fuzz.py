"""Property-based contract for every public estimator (Hypothesis).

Inputs are generated valid or invalid *by construction*, and each kind has
its own property, so that neither half can pass vacuously:

- valid inputs always succeed: finite numbers within float32's range (any
  dtype that holds them: float16/32/64, int, bool, object; C, Fortran and
  strided layouts; magnitudes from 1e-30 up to float32's largest), the
  right shapes, enough samples and classes, and parameter values inside
  their documented ranges. ``fit`` and then every ``predict`` /
  ``predict_proba`` / ``decision_function`` or ``transform`` must run, and
  return an array of the right shape (rows *and* columns), the documented
  dtype (float32 for float32 X, else float64; labels drawn from
  ``classes_``) and finite values. An estimator that refuses everything
  fails here.
- invalid inputs always raise ValueError naming the problem: a valid case
  with exactly one defect planted (NaN, infinity, a value beyond float32's
  range, complex numbers, no rows, no columns, wrong dimensionality, a
  single class, non-class targets, a wrong feature count at predict time,
  too few samples, an out-of-range parameter). An estimator that accepts
  everything, or that fails with another exception or an unrelated
  message, fails here.

Examples are derandomized (fixed per test) and kept few, with small
estimators, so that the default run takes seconds; ``pytest -m slow
tests/test_fuzz.py`` runs the deeper variants.
"""

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import is_classifier

from skpred import (
    ImageEncoder,
    KernelDictionary,
    PredictedConvNetClassifier,
    PredictedMLPClassifier,
    PredictedRICA,
    ZCAWhitening,
)

CPU = dict(device="cpu", random_state=0)
F32_MAX = float(np.finfo(np.float32).max)


class Spec:
    """How to build a small instance of an estimator, and what it accepts."""

    def __init__(self, make, *, min_rows, max_magnitude=F32_MAX, n_out=None):
        self.make = make
        self.min_rows = min_rows  # fewest samples a fit accepts
        # Largest |value| of the valid inputs. PredictedRICA (standardize=False)
        # refuses data around 1e5 and more with "The RICA objective became NaN
        # or infinite": a documented refusal, so its valid data stays below.
        self.max_magnitude = max_magnitude
        # Expected transform width from the fitted estimator and n_features.
        self.n_out = n_out


SPECS = {
    "KernelDictionary": Spec(
        lambda **p: KernelDictionary(**{**dict(random_state=0), **p}),
        min_rows=2,  # the default kernel on non-image data is "emp" (a covariance)
        # n_columns blocks of round(alpha_fraction * n_features) atoms (at least 1).
        n_out=lambda est, d: est.n_columns * min(
            d, max(1, round(est.alpha_fraction * d)))),
    "PredictedMLPClassifier": Spec(
        lambda **p: PredictedMLPClassifier(
            **{**dict(hidden_layer_sizes=(8,), max_iter=2), **CPU, **p}),
        min_rows=2),
    "PredictedConvNetClassifier": Spec(
        lambda **p: PredictedConvNetClassifier(
            **{**dict(max_iter=1, dense_layers=(8,)), **CPU, **p}),
        min_rows=2),
    "PredictedRICA": Spec(
        lambda **p: PredictedRICA(**{**dict(n_components=4, max_iter=3), **CPU, **p}),
        min_rows=2, max_magnitude=3e3, n_out=lambda est, d: 4),
    "ZCAWhitening": Spec(
        lambda **p: ZCAWhitening(**p), min_rows=2, n_out=lambda est, d: d),
    "ImageEncoder": Spec(
        lambda **p: ImageEncoder(**{
            **dict(feature_learner=PredictedRICA(n_components=3, max_iter=2),
                   n_patches=30),
            **CPU, **p}),
        # 4 pooling quadrants x 3 features ("soft_threshold": one output each).
        min_rows=1, n_out=lambda est, d: 4 * 3),
}


def _supervised(est):
    return hasattr(est, "predict")


# ------------------------------------------------------------------ valid data

# Finite values float32 holds (1e-300 becomes 0 in float32, -0.0 is a zero).
_FINITE_EXTREMES = [0.0, -0.0, 1e-300, -1e-300, 1e-30, 1e3, -1e3, 1e30, 1e38, -1e38,
                    F32_MAX, -F32_MAX]
_SCALE_EXPONENTS = [0, 0, 0, -30, -5, 3, 5, 30]
_VALID_DTYPES = ["float64", "float64", "float32", "float32", "float16", "int64", "int8",
                 "bool", "object"]


@st.composite
def valid_arrays(draw, n_rows, n_cols, max_magnitude):
    """Finite numbers within float32's range (and within ``max_magnitude``):
    scaled anywhere from 1e-30 to 1e30, sometimes with one extreme value
    planted; every dtype that holds them (ints and bools get them clipped to
    +-100 and rounded; float16 only below its largest value), every layout."""
    X = draw(hnp.arrays(np.float64, (n_rows, n_cols), elements=st.floats(-3, 3)))
    exps = [e for e in _SCALE_EXPONENTS if 3 * 10.0 ** e <= max_magnitude]
    X = X * 10.0 ** draw(st.sampled_from(exps))
    if draw(st.booleans()):
        extreme = [v for v in _FINITE_EXTREMES if abs(v) <= max_magnitude]
        X[draw(st.integers(0, n_rows - 1)), draw(st.integers(0, n_cols - 1))] = \
            draw(st.sampled_from(extreme))
    dtype = draw(st.sampled_from(_VALID_DTYPES))
    if dtype == "float16" and np.abs(X).max() > float(np.finfo(np.float16).max):
        dtype = "float32"  # float16 would turn these into inf: not a valid input
    if dtype == "object":
        X = X.astype(object)
    elif dtype in ("int64", "int8", "bool"):
        X = np.round(np.clip(X, -100, 100)).astype(dtype)
    else:
        X = X.astype(dtype)
    layout = draw(st.sampled_from(["C", "F", "strided"]))
    if layout == "F":
        X = np.asfortranarray(X)
    elif layout == "strided":
        X = np.repeat(X, 2, axis=1)[:, ::2]
    return X


_LABEL_SETS = [np.array([0, 1, 2]), np.array([-7, 3, 40]), np.array(["a", "b", "c"])]


@st.composite
def valid_cases(draw, name):
    """(X, y, X_new): a valid training set (at least ``min_rows`` samples, 1 to
    9 features, 2 or 3 classes present) and 1 to 5 valid new rows of the
    same width (magnitudes up to 1e30)."""
    spec = SPECS[name]
    n = draw(st.integers(spec.min_rows, 14), label="n_samples")
    d = draw(st.integers(1, 9), label="n_features")
    X = draw(valid_arrays(n, d, spec.max_magnitude), label="X")
    # New rows stay below 1e31: a fitted transformation may amplify them (ZCA
    # by up to 1/sqrt(epsilon)), and ZCAWhitening's float32 transform of
    # float32 values near 3.4e38 overflows to inf (a known limitation).
    m = draw(st.integers(1, 5), label="new rows")
    X_new = draw(valid_arrays(m, d, min(spec.max_magnitude, 1e31)), label="X_new")
    labels = _LABEL_SETS[draw(st.integers(0, len(_LABEL_SETS) - 1))]
    n_classes = draw(st.integers(2, 3))
    y = labels[np.arange(n) % n_classes]  # every class present once n >= n_classes
    return X, y, X_new


def _methods(est):
    if _supervised(est):
        return ("predict", "predict_proba", "decision_function")
    return ("transform",)


def _expected_float(X_new):
    """The documented output dtype: float32 stays float32, anything else
    (float16, int, bool, object, float64) computes in float64."""
    return np.float32 if X_new.dtype == np.float32 else np.float64


def _check_output(name, est, method, out, X_new):
    """Shape (rows and columns), dtype and finiteness of one method's output."""
    n, d = X_new.shape
    assert isinstance(out, np.ndarray), type(out)
    if method == "predict":
        assert out.shape == (n,), out.shape
        assert out.dtype == est.classes_.dtype, (out.dtype, est.classes_.dtype)
        assert np.isin(out, est.classes_).all(), (out, est.classes_)
        return
    assert out.dtype == _expected_float(X_new), (method, out.dtype, X_new.dtype)
    assert np.isfinite(out).all(), f"non-finite {method} output"
    k = len(est.classes_) if _supervised(est) else None
    if method == "predict_proba":
        assert out.shape == (n, k), out.shape
        assert (out >= 0).all() and (out <= 1).all()
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=0, atol=1e-4)
    elif method == "decision_function":
        assert out.shape == ((n,) if k == 2 else (n, k)), out.shape
    else:
        assert out.shape == (n, SPECS[name].n_out(est, d)), out.shape


def _fit(est, X, y):
    return est.fit(X, y) if _supervised(est) else est.fit(X)


def _variants(X):
    """X in every valid dtype that holds its values, and every layout."""
    out = [X]  # the original first
    for dtype in ("float64", "float32", "float16", "int8", "bool", "object"):
        if dtype == "float16" and np.abs(X.astype(np.float64)).max() > 6e4:
            continue
        Xd = X.astype(np.float64)
        if dtype in ("int8", "bool"):
            Xd = np.round(np.clip(Xd, -100, 100))
        out.append(Xd.astype(dtype))
    out.append(np.asfortranarray(X))
    out.append(np.repeat(X, 2, axis=1)[:, ::2])
    return out


def _fit_and_check_all(name, est, X, y, X_new, variants=True):
    """Fit, then run and check every prediction method on X_new (and, with
    ``variants``, the main one on X_new in every other dtype and layout):
    any exception fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning of the short fits
        assert _fit(est, X, y) is est
        if _supervised(est):
            assert set(est.classes_.tolist()) == set(np.unique(y).tolist())
        for method in _methods(est):
            _check_output(name, est, method, getattr(est, method)(X_new), X_new)
        main = "predict_proba" if _supervised(est) else "transform"
        for Xv in _variants(X_new)[1:] if variants else ():
            _check_output(name, est, main, getattr(est, main)(Xv), Xv)


def _valid_data_test(name):
    @given(case=valid_cases(name))
    def test(case):
        """Breakage caught: a valid input (some dtype, layout, magnitude or
        shape) refused or crashing, or an output of the wrong shape, dtype or
        with NaN/inf (e.g. float32 overflow in the forward pass)."""
        X, y, X_new = case
        event(f"dtype {X.dtype}")
        _fit_and_check_all(name, SPECS[name].make(), X, y, X_new)
    return test


# ---------------------------------------------------------------- invalid data

def _as_float64(X):
    return np.array(X, dtype=np.float64)  # a writable float copy of any valid X


def _plant(value):
    def corrupt(X, y, rng):
        X = _as_float64(X)
        X[rng.integers(0, X.shape[0]), rng.integers(0, X.shape[1])] = value
        return X, y
    return corrupt


# name -> (applies to: "any", "supervised", "min2", "conv"), corruption of
# (X or X_new, y), and the message that must name the problem.
_FIT_DEFECTS = {
    "NaN": ("any", _plant(np.nan), r"NaN"),
    "+inf": ("any", _plant(np.inf), r"infinity"),
    "-inf": ("any", _plant(-np.inf), r"infinity"),
    "1e39": ("any", _plant(1e39), r"beyond float32's range"),
    "-1e300": ("any", _plant(-1e300), r"beyond float32's range"),
    "complex": ("any", lambda X, y, rng: (_as_float64(X) + 1j, y), r"[Cc]omplex"),
    "no rows": ("any", lambda X, y, rng: (X[:0], y[:0]), r"0 sample"),
    "no columns": ("any", lambda X, y, rng: (X[:, :0], y), r"0 feature"),
    "1-D X": ("any", lambda X, y, rng: (X[:, 0], y), r"2D array"),
    "3-D X": ("any", lambda X, y, rng: (X[:, :, None], y), r"dim 3"),
    "one sample": ("min2", lambda X, y, rng: (X[:1], y[:1]),
                   r"at least 2 (samples|classes)"),
    # (one class is valid data: the classifiers fit it and predict that
    # class, as scikit-learn's MLPClassifier; tests/test_sklearn_parity.py)
    "y NaN": ("supervised",
              lambda X, y, rng: (X, np.where(np.arange(len(y)) == 0, np.nan, 1.0)),
              r"y contains NaN"),
    "continuous y": ("supervised", lambda X, y, rng: (X, np.linspace(0.1, 0.9, len(y))),
                     r"Unknown label type"),
    "y too short": ("supervised", lambda X, y, rng: (X, y[:-1]),
                    r"inconsistent numbers of samples"),
    "channels-first 4-D": ("conv", lambda X, y, rng: (X.reshape(len(X), 1, 1, -1), y),
                           r"looks channels-first.*transpose\(0, 2, 3, 1\)"),
}
_PREDICT_DEFECTS = {
    "NaN": (_plant(np.nan), r"NaN"),
    "inf": (_plant(-np.inf), r"infinity"),
    "1e39": (_plant(1e39), r"beyond float32's range"),
    "complex": (lambda X, y, rng: (_as_float64(X) + 1j, y), r"[Cc]omplex"),
    "no rows": (lambda X, y, rng: (X[:0], y), r"0 sample"),
    "one more column": (lambda X, y, rng: (np.hstack([_as_float64(X), X[:, :1]]), y),
                        r"has \d+ features, but \w+ is expecting \d+ features"),
    "one column fewer": (
        lambda X, y, rng: (X[:, 1:], y),
        r"has \d+ features, but \w+ is expecting \d+ features|0 feature"),
    "1-D X": (lambda X, y, rng: (X[0], y), r"2D array"),
}


def _fit_defects(name):
    est = SPECS[name].make()
    applies = {"any": True, "supervised": _supervised(est),
               # a classifier fits one sample (one class), as scikit-learn's
               # MLPClassifier does; the others need two
               "min2": SPECS[name].min_rows >= 2 and not is_classifier(est),
               "conv": isinstance(est, PredictedConvNetClassifier)}
    return sorted(k for k, (where, _, _) in _FIT_DEFECTS.items() if applies[where])


def _assert_refused(what, message, call):
    """``call()`` must raise ValueError with a message matching ``message``."""
    try:
        call()
    except ValueError as exc:
        assert re.search(message, str(exc)), \
            f"{what}: the ValueError does not name the problem ({message!r}): {exc}"
    else:
        raise AssertionError(f"{what}: accepted, no ValueError")


def _invalid_data_test(name):
    @given(case=valid_cases(name), seed=st.integers(0, 2**16))
    def test(case, seed):
        """Breakage caught: an invalid input accepted (silently producing NaN
        or garbage), or refused with another exception or a message that does
        not name the problem (e.g. a crash deep in torch or scipy). Every
        defect is planted, one at a time, into each generated valid case."""
        X, y, X_new = case
        rng = np.random.default_rng(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for defect in _fit_defects(name):
                _, corrupt, message = _FIT_DEFECTS[defect]
                # channels-first needs a width > 4 to look like torch's layout
                Xd = np.hstack([X] * 5) if defect == "channels-first 4-D" else X
                X_bad, y_bad = corrupt(Xd, y, rng)
                _assert_refused(f"fit with {defect}", message,
                                lambda: _fit(SPECS[name].make(), X_bad, y_bad))
            est = _fit(SPECS[name].make(), X, y)  # valid: must succeed
            for defect, (corrupt, message) in _PREDICT_DEFECTS.items():
                X_bad, _ = corrupt(X_new, y, rng)
                for method in _methods(est):
                    _assert_refused(f"{method} with {defect}", message,
                                    lambda: getattr(est, method)(X_bad))
    return test


# ------------------------------------------------------------------ parameters

# Valid values stay inside each parameter's documented range. length_scale
# stays within [1e-3, 1e3]: below about 1e-154 the conv net's se kernel
# overflows (1 / length_scale**2) into scipy's "array must not contain infs
# or NaNs", a known defect this property does not cover.
_LENGTH_SCALE = st.floats(1e-3, 1e3)
_RIDGE = st.one_of(st.just("auto"), st.none(), st.floats(1e-12, 1e3))
_ALPHA = st.floats(0, 1, exclude_min=True)


def _positive_tuple(n):
    return st.tuples(*[_LENGTH_SCALE] * n)


# The param-test networks: MLP with one hidden layer of 8 units, conv net
# with one conv layer of 4 filters and one dense layer of 8 units; RICA with
# 4 components. n_columns must divide each conv layer's filters, and be at
# most each layer's units.
_PARAM_MAKERS = {
    "KernelDictionary": lambda **p: SPECS["KernelDictionary"].make(**p),
    "PredictedMLPClassifier": lambda **p: SPECS["PredictedMLPClassifier"].make(**p),
    "PredictedConvNetClassifier": lambda **p: SPECS["PredictedConvNetClassifier"].make(
        **{**dict(conv_layers=((4, 3, 2),)), **p}),
    "PredictedRICA": lambda **p: SPECS["PredictedRICA"].make(**p),
}
_VALID_PARAMS = {
    "KernelDictionary": dict(
        alpha_fraction=_ALPHA, n_columns=st.integers(1, 12), ridge=_RIDGE,
        length_scale=st.one_of(_LENGTH_SCALE, _positive_tuple(1), _positive_tuple(2))),
    "PredictedRICA": dict(
        alpha_fraction=_ALPHA, n_columns=st.sampled_from([None, 1, 2, 4]), ridge=_RIDGE,
        length_scale=st.one_of(_LENGTH_SCALE, _positive_tuple(1), _positive_tuple(2))),
    "PredictedMLPClassifier": dict(
        alpha_fraction=_ALPHA, ridge=_RIDGE,
        n_columns=st.sampled_from(["auto", 1, 2, 4, 8]),
        length_scale=st.one_of(_LENGTH_SCALE, _positive_tuple(1))),  # one per layer
    "PredictedConvNetClassifier": dict(
        alpha_fraction=_ALPHA, ridge=_RIDGE,
        n_columns=st.sampled_from(["auto", 1, 2, 4]),
        length_scale=st.one_of(_LENGTH_SCALE, _positive_tuple(2))),  # one per layer
}

_NOT_POSITIVE = st.one_of(st.floats(max_value=0), st.just(math.nan), st.just(math.inf))
_INVALID_PARAMS = {
    "alpha_fraction": lambda name: st.one_of(
        st.floats(max_value=0), st.floats(min_value=1, exclude_min=True),
        st.just(math.nan)),
    "ridge": lambda name: st.one_of(_NOT_POSITIVE, st.just("bogus")),
    "length_scale": lambda name: st.one_of(
        _NOT_POSITIVE,
        st.tuples(_NOT_POSITIVE),  # non-positive entry
        st.tuples(_LENGTH_SCALE, _NOT_POSITIVE),
        st.tuples(*[_LENGTH_SCALE] * 3)),  # more entries than axes or layers
    "n_columns": lambda name: st.one_of(
        st.integers(-3, 0), st.just(0.5), st.just("bogus"),
        {"KernelDictionary": st.sampled_from(["auto", None]),
         "PredictedRICA": st.sampled_from([3, 5, 8, "auto"]),  # must divide 4
         "PredictedMLPClassifier": st.sampled_from([9, 16, None]),  # at most 8 units
         # must divide the conv net's 4 filters and 8 dense units
         "PredictedConvNetClassifier": st.sampled_from([3, 8, None]),
         }[name]),
}


def _param_data(seed):
    return np.random.RandomState(seed).rand(30, 16), np.arange(30) % 3


def _valid_param_test(name):
    @given(params=st.fixed_dictionaries({}, optional=_VALID_PARAMS[name]),
           seed=st.integers(0, 3))
    def test(params, seed):
        """Breakage caught: a parameter value inside its documented range
        refused or crashing, or giving non-finite / misshapen output."""
        X, y = _param_data(seed)
        _fit_and_check_all(name, _PARAM_MAKERS[name](**params), X, y, X[:4],
                           variants=False)
    return test


def _invalid_param_test(name):
    @given(data=st.data(), seed=st.integers(0, 3))
    def test(data, seed):
        """Breakage caught: an out-of-range parameter (e.g. RICA's n_columns not
        dividing n_components, a NaN ridge) accepted, or refused with an error
        that does not name the parameter. Each parameter in turn is the one
        invalid value, the others valid or left at their defaults."""
        X, y = _param_data(seed)
        for bad in sorted(_INVALID_PARAMS):
            others = {k: v for k, v in _VALID_PARAMS[name].items() if k != bad}
            one_bad = {bad: _INVALID_PARAMS[bad](name)}
            params = data.draw(st.fixed_dictionaries(one_bad, optional=others),
                               label=f"invalid {bad}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _assert_refused(f"{bad}={params[bad]!r}", re.escape(bad),
                                lambda: _fit(_PARAM_MAKERS[name](**params), X, y))
    return test


# ------------------------------------------------------------------- settings

# Fixed examples (derandomize, no example database): the same run in any test
# order, on any machine.
_COMMON = dict(deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow])


def _fast(n):
    return settings(max_examples=n, **_COMMON)


DEEP = settings(max_examples=200, **_COMMON)

for _name in SPECS:
    # The conv net is the slowest fit: fewer examples (the deep run has 200).
    _n_valid = 6 if _name == "PredictedConvNetClassifier" else 8
    globals()[f"test_fuzz_valid_data_{_name}"] = _fast(_n_valid)(
        _valid_data_test(_name))
    globals()[f"test_fuzz_invalid_data_{_name}"] = _fast(5)(_invalid_data_test(_name))
    globals()[f"test_fuzz_valid_data_deep_{_name}"] = pytest.mark.slow(
        DEEP(_valid_data_test(_name)))
    globals()[f"test_fuzz_invalid_data_deep_{_name}"] = pytest.mark.slow(
        DEEP(_invalid_data_test(_name)))
for _name in _VALID_PARAMS:
    globals()[f"test_fuzz_valid_params_{_name}"] = _fast(6)(_valid_param_test(_name))
    globals()[f"test_fuzz_invalid_params_{_name}"] = _fast(8)(
        _invalid_param_test(_name))
    globals()[f"test_fuzz_valid_params_deep_{_name}"] = pytest.mark.slow(
        DEEP(_valid_param_test(_name)))
    globals()[f"test_fuzz_invalid_params_deep_{_name}"] = pytest.mark.slow(
        DEEP(_invalid_param_test(_name)))
