"""Extreme inputs and wrong parameters: a clear error naming the problem,
never NaN predictions, never a crash deep in torch. Each test is a case an
adversarial battery found failing before."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpred import (
    ImageEncoder,
    KernelDictionary,
    PredictedConvNetClassifier,
    PredictedMLPClassifier,
    PredictedRICA,
    ZCAWhitening,
)
from skpred.nn import LowRankLinear, PredictedLinear

pytestmark = pytest.mark.usefixtures("quiet_convergence")
CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:200] / 16.0, y[:200]


# The seven fitted estimators, built on first use by the module-scoped
# fixture below (once each per module run), never at collection time.
_FITTED = {
    "PredictedMLPClassifier0": lambda X, y: PredictedMLPClassifier(
        (16,), max_iter=1, **CPU).fit(X, y),
    "PredictedMLPClassifier1": lambda X, y: PredictedMLPClassifier(
        (16,), dictionary=("se",), image_shape=(8, 8), max_iter=1, **CPU).fit(X, y),
    "PredictedConvNetClassifier": lambda X, y: PredictedConvNetClassifier(
        max_iter=1, **CPU).fit(X, y),
    "PredictedRICA": lambda X, y: PredictedRICA(
        n_components=8, max_iter=2, **CPU).fit(X),
    "KernelDictionary": lambda X, y: KernelDictionary(random_state=0).fit(X),
    "ZCAWhitening": lambda X, y: ZCAWhitening().fit(X),
    "ImageEncoder": lambda X, y: ImageEncoder(
        PredictedRICA(n_components=4, max_iter=2), n_patches=200, **CPU).fit(X),
}


@pytest.fixture(scope="module", params=list(_FITTED), ids=list(_FITTED))
def fitted(request, data):
    """One of the seven fitted estimators (fitted once per module run, after
    collection: ``pytest --collect-only`` fits nothing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 1-epoch fits
        return _FITTED[request.param](*data)


def test_values_beyond_float32_range_are_refused_at_predict_and_transform(fitted, data):
    """Breakage caught: 1e39 passes validation (finite in float64), overflows
    to inf in float32, and predict_proba returns NaN rows / predict class 0."""
    est = fitted
    X = data[0][:5].copy()
    X[2, 3] = 1e39
    method = est.predict_proba if hasattr(est, "predict_proba") else est.transform
    with pytest.raises(ValueError, match="beyond float32's range"):
        method(X)


@pytest.mark.parametrize("make", [
    lambda: PredictedMLPClassifier((16,), max_iter=1, **CPU),
    lambda: PredictedConvNetClassifier(max_iter=1, **CPU),
    lambda: PredictedRICA(n_components=4, max_iter=1, **CPU),
    lambda: KernelDictionary("emp"),
    lambda: KernelDictionary("emp2"),
    lambda: ZCAWhitening(),
    lambda: ImageEncoder(n_patches=100, **CPU),
], ids=["mlp", "conv", "rica", "emp", "emp2", "zca", "encoder"])
def test_values_beyond_float32_range_are_refused_at_fit(make, data):
    """Breakage caught: emp on data around 1e200 overflowing the covariance
    into scipy's 'array must not contain infs or NaNs'."""
    X, y = data
    X = X * 1e200
    est = make()
    with pytest.raises(ValueError, match="beyond float32's range"):
        est.fit(X, y) if hasattr(est, "predict") else est.fit(X)


def test_float32_extremes_that_fit_the_range_still_work(data):
    """The largest float32-representable magnitudes are not refused, and emp
    cannot overflow on them (their squares fit in float64)."""
    X, _ = data
    big = (X * 1e37).astype(np.float32)
    kd = KernelDictionary("emp").fit(big)
    assert np.isfinite(kd.components_).all()


def test_channels_first_4d_input_is_refused_with_the_fix(data):
    X, y = data
    imgs = X.reshape(-1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"looks channels-first.*transpose\(0, 2, 3, 1\)"):
        PredictedConvNetClassifier(max_iter=1, **CPU).fit(imgs, y)
    clf = PredictedConvNetClassifier(max_iter=1, **CPU).fit(imgs.transpose(0, 2, 3, 1), y)
    assert clf.image_shape_ == (8, 8, 1)


def test_rica_inverse_transform_refuses_complex_and_nan(data):
    X, _ = data
    rica = PredictedRICA(n_components=8, max_iter=2, **CPU).fit(X)
    Z = rica.transform(X[:3])
    with pytest.raises(ValueError, match="[Cc]omplex"):
        rica.inverse_transform(Z + 1j)
    Zn = Z.copy()
    Zn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rica.inverse_transform(Zn)


def test_conv_layers_not_nested_names_the_parameter(data):
    X, y = data
    with pytest.raises(ValueError, match=r"conv_layers entries must be \(n_filters"):
        PredictedConvNetClassifier(conv_layers=(4, 3, 2), max_iter=1, **CPU).fit(X, y)


def test_predicted_linear_names_both_widths():
    layer = PredictedLinear(64, 8, np.random.RandomState(0).standard_normal((64, 4)))
    with pytest.raises(ValueError, match=r"in_features=64.*\(5, 63\)"):
        layer(torch.zeros(5, 63))


def test_device_strings_are_validated_at_fit(data):
    X, _ = data
    with pytest.raises(ValueError, match="device must be"):
        KernelDictionary("se", device="nonsense").fit(X)
    with pytest.raises(ValueError, match="device must be"):
        ImageEncoder(device="nonsense", n_patches=100).fit(X)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            ImageEncoder(device="cuda", n_patches=100).fit(X)


def test_parameters_that_do_not_apply_are_still_validated(data):
    X, y = data
    with pytest.raises(ValueError, match="image_shape=\\(7, 9\\) holds 63 values"):
        PredictedMLPClassifier((8,), dictionary=None, image_shape=(7, 9), max_iter=1,
                               **CPU).fit(X, y)
    with pytest.raises(ValueError, match="length_scale"):
        KernelDictionary("emp", length_scale=(-1,)).fit(X)
    with pytest.raises(ValueError, match="length_scale of hidden layer 1"):
        PredictedMLPClassifier((8,), dictionary="emp", length_scale=(-1.0,), max_iter=1,
                               **CPU).fit(X, y)
    with pytest.raises(ValueError, match="holds 63 values"):
        PredictedRICA(dictionary=None, image_shape=(7, 9), **CPU).fit(X)


def test_lowrank_for_fraction_refuses_a_zero_fraction():
    with pytest.raises(ValueError, match="alpha_fraction must be in"):
        LowRankLinear.for_fraction(64, 8, alpha_fraction=0)


def test_zca_supports_feature_names_and_pandas_output(data):
    pd = pytest.importorskip("pandas")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, _ = data
    frame = pd.DataFrame(X[:, :5], columns=[f"f{i}" for i in range(5)])
    pipe = make_pipeline(StandardScaler(), ZCAWhitening()).set_output(transform="pandas")
    out = pipe.fit_transform(frame)
    assert list(out.columns) == list(frame.columns)


def test_read_only_input_gives_no_warning(data):
    X, y = data
    clf = PredictedMLPClassifier((8,), max_iter=1, **CPU).fit(X, y)
    enc = ImageEncoder(PredictedRICA(n_components=4, max_iter=2), n_patches=200, **CPU).fit(X)
    Xr = np.array(X)
    Xr.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.predict(Xr)
        enc.transform(Xr)
