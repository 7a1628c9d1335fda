"""est.summary(): the parameter report, against torch's own counts."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError

from skpred import PredictedConvNetClassifier, PredictedMLPClassifier, PredictedMLPRegressor

CPU = dict(device="cpu")


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _torch_counts(module):
    """Independent reference: torch's parameters, and the fixed U buffers."""
    trainable = sum(p.numel() for p in module.parameters())
    fixed = sum(b.numel() for name, b in module.named_buffers() if name.endswith(".U"))
    return trainable, fixed


@pytest.mark.parametrize("est", [
    PredictedMLPClassifier((40, 30), n_columns=(3, 1), dictionary=("emp", "lowrank"),
                           max_iter=2, **CPU),
    PredictedMLPClassifier(dictionary=None, max_iter=2, **CPU),
    PredictedMLPRegressor((20,), dictionary="se", image_shape=(8, 8), max_iter=2, **CPU),
    PredictedConvNetClassifier(max_iter=1, **CPU),
], ids=["emp+lowrank uneven", "dense", "regressor se", "convnet"])
def test_summary_totals_are_torchs_counts(est, digits):
    # Catches: a report whose "dynamic" count disagrees with what torch
    # trains (biases and the output layer left out), a fixed U counted as
    # trainable, uneven columns' second V group missed, or "auto" left
    # unresolved in the table.
    X, y = digits
    X, y = X[:300], y[:300]
    _fit(est, X, y)
    summary = est.summary()
    trainable, fixed = _torch_counts(est.module_)
    assert summary.totals["trainable"] == trainable
    assert summary.totals["static"] == fixed
    assert summary.totals["total"] == trainable + fixed
    layers = est.module_.weight_layers()
    assert len(summary.rows) == len(layers) and summary.rows[-1]["kind"] == "output"
    for row, layer in zip(summary.rows, layers):
        own = sum(p.numel() for p in layer.parameters())
        assert row["trainable"] == own
        assert row["bias"] == layer.bias.numel()
        assert "auto" not in {row["dictionary"], row["n_columns"]}
        if row["kind"] == "predicted":
            # the share learned: whole atoms over the inputs
            assert row["alpha_learned"] == pytest.approx(row["n_atoms"] / row["inputs"])
    for row, record in zip(summary.rows, est.layers_):
        assert row["dictionary"] == record["dictionary"]
        if record["dictionary"] not in (None, "lowrank"):
            assert row["n_columns"] == record["n_columns"]
    text = repr(summary)
    assert all(row["layer"] in text for row in summary.rows) and f"{trainable:,}" in text
    assert "<table>" in summary._repr_html_()


def test_summary_before_fit_is_not_fitted_error():
    # Catches: an AttributeError from deep inside on an unfitted estimator.
    with pytest.raises(NotFittedError):
        PredictedMLPClassifier().summary()


def test_summary_shows_the_learned_fraction_not_just_the_asked_one(digits):
    # Catches: alpha_fraction reported as learned when the atoms round
    # (0.05 of 64 inputs is 3 atoms: 0.047).
    X, y = digits
    est = _fit(PredictedMLPClassifier((20,), dictionary="emp", alpha_fraction=0.05,
                                      n_columns=1, max_iter=1, **CPU), X[:200], y[:200])
    row = est.summary().rows[0]
    assert row["alpha_fraction"] == 0.05
    assert row["n_atoms"] == round(0.05 * 64)
    assert np.isclose(row["alpha_learned"], 3 / 64)
