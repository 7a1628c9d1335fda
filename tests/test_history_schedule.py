"""history_, plot_history, the progress bar, learning-rate schedules,
predict_proba's dtype, decision_function and torch.device (issue 14)."""

import io
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpred import PredictedMLPClassifier, PAPER_MLP_SETTINGS
from skpred.callbacks import wants_progress_bar


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32)[:500], y[:500]


def _fit(X, y, **kw):
    base = dict(hidden_layer_sizes=(32,), device="cpu", random_state=0, max_iter=6)
    base.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return PredictedMLPClassifier(**base).fit(X, y)


def test_history_records_every_phase_and_epoch(digits):
    """Breakage caught: pretraining curves thrown away, records out of
    step with loss_curve_ / validation_scores_, epochs renumbered wrongly
    by partial_fit."""
    X, y = digits
    est = _fit(X, y, hidden_layer_sizes=(32, 32), pretrain=True, pretrain_epochs=3,
               early_stopping=True, n_iter_no_change=50)
    phases = [r["phase"] for r in est.history_]
    assert phases == ["pretrain layer 1"] * 3 + ["pretrain layer 2"] * 3 + ["fine-tune"] * 6
    fine = [r for r in est.history_ if r["phase"] == "fine-tune"]
    assert [r["epoch"] for r in fine] == list(range(1, 7))
    assert [r["train_loss"] for r in fine] == est.loss_curve_
    assert [r["valid_score"] for r in fine] == est.validation_scores_
    assert all(r["valid_loss"] > 0 and r["duration"] > 0 and r["learning_rate"] == 1e-3
               for r in fine)
    elapsed = [r["elapsed"] for r in fine]
    assert elapsed == sorted(elapsed)
    # partial_fit refuses early stopping, as scikit-learn's
    est.set_params(early_stopping=False).partial_fit(X, y)
    assert est.history_[-1]["epoch"] == 7 and len(est.history_) == 13


def test_plot_history_draws_each_phase(digits):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from skpred.plotting import plot_history

    est = _fit(*digits, hidden_layer_sizes=(32, 32), pretrain=True, pretrain_epochs=2,
               early_stopping=True)
    # Catches: the reconstruction MSE on the same axis as the cross-
    # entropy, a legend drawn over the curves, or a label cut off by the
    # figure's edge (the notebook complaints).
    pretrain, tune = plot_history(est)
    assert [line.get_label() for line in pretrain.get_lines()] == [
        "pretrain layer 1: train loss", "pretrain layer 2: train loss"]
    assert [line.get_label() for line in tune.get_lines()] == [
        "fine-tune: train loss", "fine-tune: validation loss"]
    np.testing.assert_allclose(tune.get_lines()[0].get_ydata(), est.loss_curve_)
    fig = tune.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    for ax in (pretrain, tune):
        legend = ax.get_legend()
        box = legend.get_window_extent(renderer)
        assert box.x0 >= ax.get_window_extent(renderer).x1  # right of the curves
        for artist in (ax.xaxis.label, ax.yaxis.label, legend):
            extent = artist.get_window_extent(renderer)
            assert extent.width == 0 or (extent.x0 >= page.x0 - 1 and extent.y0 >= page.y0 - 1
                                         and extent.x1 <= page.x1 + 1)
    # the validation score's legend entry sits in the fine-tuning legend
    assert "validation score" in [t.get_text() for t in tune.get_legend().get_texts()]
    with pytest.raises(ValueError, match="history is empty"):
        plot_history([])


def test_progress_bar_only_when_asked_or_on_a_terminal(digits, capsys):
    """Breakage caught: output by default, a bar written to a file or pipe
    without being asked, or no bar when asked."""
    X, y = digits
    _fit(X, y, max_iter=2)
    assert capsys.readouterr().err == ""
    _fit(X, y, max_iter=2, verbose=1, progress_bar=False)  # log lines, no bar
    assert "\r" not in capsys.readouterr().err
    _fit(X, y, max_iter=3, progress_bar=True, early_stopping=True, n_iter_no_change=9)
    err = capsys.readouterr().err
    # tqdm redraws at most every 0.1 s; the last frame is the finished bar
    final = err.rstrip("\n").split("\r")[-1]
    assert final.startswith("fine-tune") and "3/3" in final and err.endswith("\n")
    assert "loss=" in final and "valid=" in final

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert wants_progress_bar("auto", 1, Terminal())
    assert not wants_progress_bar("auto", 0, Terminal())
    assert not wants_progress_bar("auto", 1, io.StringIO())


def test_progress_bar_auto_in_a_jupyter_kernel(monkeypatch):
    """Breakage caught: "auto" giving no bar in a notebook, whose stderr is
    not a terminal (tqdm.auto then draws a widget)."""
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert wants_progress_bar("auto", 1, io.StringIO())
    assert not wants_progress_bar("auto", 0, io.StringIO())


def _lrs(est):
    return [r["learning_rate"] for r in est.history_ if r["phase"] == "fine-tune"]


def test_learning_rate_schedules_follow_their_formulas(digits):
    """Breakage caught: a schedule that is not applied, or applied with
    another formula. References: scikit-learn's invscaling formula with t
    the samples seen, the paper's per-minibatch division, written here."""
    X, y = digits
    n = len(y)
    inv = _fit(X, y, learning_rate="invscaling", power_t=0.5, learning_rate_init=0.01,
               solver="sgd", max_iter=4)
    np.testing.assert_allclose(_lrs(inv), [0.01 / (n * k + 1) ** 0.5 for k in range(1, 5)])
    decay = _fit(X, y, learning_rate="decay", learning_rate_decay=1.01, batch_size=100,
                 max_iter=3)
    np.testing.assert_allclose(_lrs(decay), [1e-3 / 1.01 ** (5 * k) for k in range(1, 4)])
    constant = _fit(X, y, max_iter=3)
    assert _lrs(constant) == [1e-3] * 3
    with pytest.raises(ValueError, match="learning_rate_decay=1.01 is used only with"):
        _fit(X, y, learning_rate_decay=1.01)
    assert PAPER_MLP_SETTINGS["learning_rate"] == "decay"


def test_adaptive_divides_by_five_instead_of_stopping(digits):
    """Breakage caught: "adaptive" stopping like "constant" when the
    stopping rule is met, or lowering the rate by another factor."""
    X, y = digits
    # tol so large that no epoch counts as an improvement: the rule is met
    # after n_iter_no_change + 1 epochs
    est = _fit(X, y, learning_rate="adaptive", tol=1e3, n_iter_no_change=1, max_iter=8)
    # the rule is met after epochs 3, 5 and 7 (the rate is recorded at the
    # end of each epoch, before the division)
    np.testing.assert_allclose(_lrs(est), [1e-3, 1e-3, 1e-3, 2e-4, 2e-4, 4e-5, 4e-5, 8e-6])
    const = _fit(X, y, tol=1e3, n_iter_no_change=1, max_iter=8)
    assert const.n_iter_ == 3  # stopped where adaptive went on


def test_predict_proba_dtype_decision_function_and_torch_device(digits):
    """Breakage caught: float64 probabilities for float32 input (and the
    reverse), decision_function not the logits (its softmax must give
    predict_proba; two classes give the log-odds as scikit-learn's linear
    models), a torch.device rejected by validation."""
    X, y = digits
    est = _fit(X, y, device=torch.device("cpu"))
    assert est.predict_proba(X).dtype == np.float32
    assert est.predict_proba(X.astype(np.float64)).dtype == np.float64
    assert est.predict_log_proba(X).dtype == np.float32
    logits = est.decision_function(X.astype(np.float64))
    assert logits.shape == (len(y), 10)
    e = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(1, keepdims=True), est.predict_proba(X.astype(np.float64)),
                               rtol=1e-6, atol=1e-9)
    binary = _fit(X[y < 2], y[y < 2])
    scores = binary.decision_function(X[y < 2])
    proba = binary.predict_proba(X[y < 2].astype(np.float64))
    assert scores.shape == ((y < 2).sum(),)
    np.testing.assert_allclose(scores, np.log(proba[:, 1] / proba[:, 0]), rtol=1e-4, atol=1e-4)
    assert est.device_ == torch.device("cpu")
