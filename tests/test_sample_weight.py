"""sample_weight and class_weight of the skpred networks (issue 14)."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpred import PredictedConvNetClassifier, PredictedMLPClassifier, PredictedMLPRegressor


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32), y


def _small(cls, **kw):
    base = dict(device="cpu", random_state=0, max_iter=15)
    if cls is PredictedConvNetClassifier:
        base.update(conv_layers=((4, 3, 2),), dense_layers=(16,), max_iter=5)
    else:
        base.update(hidden_layer_sizes=(32,))
    base.update(kw)
    return cls(**base)


@pytest.mark.parametrize("cls", [PredictedMLPClassifier, PredictedConvNetClassifier])
def test_integer_weights_equal_repeated_rows(cls, digits):
    """Breakage caught: weights ignored, applied to the wrong rows, or
    averaged with the wrong normaliser (a batch mean over rows instead of
    sum(w l) / sum(w)). Reference: the same fit on the rows repeated; one
    batch holds all the data, so the only differences are float32 sums in
    another order. The default emp dictionary is built from data, so its
    covariance must weigh rows too."""
    X, y = digits[0][:120], digits[1][:120]
    w = np.random.RandomState(0).randint(1, 4, size=len(y))
    Xr, yr = np.repeat(X, w, axis=0), np.repeat(y, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = _small(cls, batch_size=400, shuffle=False).fit(X, y, sample_weight=w)
        b = _small(cls, batch_size=400, shuffle=False).fit(Xr, yr)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-4)
    # and the weights matter: unweighted, the model differs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        c = _small(cls, batch_size=400, shuffle=False).fit(X, y)
    # (ten times the tolerance above: 4e-3 for the 5-epoch conv net, more for the MLP)
    assert np.abs(c.predict_proba(X) - b.predict_proba(X)).max() > 1e-3


def test_zero_weight_on_a_class_means_it_is_never_needed(digits):
    """Breakage caught: zero-weight samples still pulling the loss. With
    class 3 weighted 0 the model has no reason to predict 3; with its
    weight kept it predicts 3 on most 3s."""
    X, y = digits
    w = np.where(y == 3, 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        zero = _small(PredictedMLPClassifier, max_iter=40).fit(X, y, sample_weight=w)
        full = _small(PredictedMLPClassifier, max_iter=40).fit(X, y)
    threes = y == 3
    assert (full.predict(X[threes]) == 3).mean() > 0.8
    assert (zero.predict(X) == 3).mean() < 0.01
    assert list(zero.classes_) == list(range(10))  # still a class


def test_class_weight_balanced_and_dict_match_sample_weights(digits):
    """Breakage caught: class_weight not applied, or applied as something
    else than scikit-learn's definition (balanced: n / (k * count)).
    Reference: the same weights given as sample_weight."""
    X, y = digits[0][:300], digits[1][:300]
    keep = (y != 1) | (np.arange(len(y)) % 4 == 0)  # make class 1 rare
    X, y = X[keep], y[keep]
    counts = np.bincount(y)
    balanced = len(y) / (len(counts) * counts)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = _small(PredictedMLPClassifier, class_weight="balanced").fit(X, y)
        b = _small(PredictedMLPClassifier).fit(X, y, sample_weight=balanced[y])
        weights = {k: float(k + 1) for k in range(10)}
        c = _small(PredictedMLPClassifier, class_weight=weights).fit(X, y, sample_weight=np.full(len(y), 2.0))
        d = _small(PredictedMLPClassifier).fit(X, y, sample_weight=2.0 * (y + 1.0))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c.predict_proba(X), d.predict_proba(X), rtol=1e-4, atol=1e-5)


def test_weighted_validation_score_and_bad_weights(digits):
    """Breakage caught: the early-stopping score ignoring the weights, or
    bad weights accepted (negative, wrong length, all zero, NaN), or
    'balanced' in partial_fit (the class frequencies are unknown there)."""
    X, y = digits[0][:400], digits[1][:400]
    w = np.where(y < 5, 1.0, 1e-6)
    est = _small(PredictedMLPClassifier, early_stopping=True, max_iter=8).fit(X, y, sample_weight=w)
    assert est.history_[-1]["valid_score"] == est.validation_scores_[-1]
    assert est.history_[-1]["valid_loss"] is not None
    for bad, match in [(-w, "(?i)negative"), (w[:-1], "shape"), (0 * w, "non-zero|sum to zero"),
                       (np.where(y == 0, np.nan, 1.0), "NaN")]:
        fresh = _small(PredictedMLPClassifier, max_iter=1)
        with pytest.raises(ValueError, match=match):
            fresh.fit(X, y, sample_weight=bad)
        assert not hasattr(fresh, "module_")
    with pytest.raises(ValueError, match="not supported by partial_fit"):
        _small(PredictedMLPClassifier, class_weight="balanced").partial_fit(X, y, classes=range(10))
    with pytest.raises(ValueError, match="labels that are not classes"):
        _small(PredictedMLPClassifier, class_weight={11: 2.0}).fit(X, y)


def test_regressor_weights_equal_repeated_rows():
    """As for the classifiers, with the squared error."""
    rng = np.random.RandomState(0)
    X = rng.standard_normal((80, 20)).astype(np.float32)
    y = X[:, :3].sum(1) + 0.1 * rng.standard_normal(80)
    w = rng.randint(1, 4, size=80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = PredictedMLPRegressor((16,), max_iter=20, device="cpu", random_state=0,
                                  shuffle=False).fit(X, y, sample_weight=w)
        b = PredictedMLPRegressor((16,), max_iter=20, device="cpu", random_state=0,
                                  shuffle=False).fit(np.repeat(X, w, 0), np.repeat(y, w))
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-3, atol=1e-4)
