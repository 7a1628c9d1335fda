"""The stopping rule is scikit-learn's, tie for tie.

The reference is scikit-learn's own rule, ``BaseMultilayerPerceptron.
_update_no_improvement_count`` (and, for ``learning_rate="adaptive"``,
``SGDOptimizer.trigger_stopping``), replayed on the same sequence of
validation scores or training losses: not skpred's ``StoppingRule``.
"""
import inspect
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network._multilayer_perceptron import BaseMultilayerPerceptron
from sklearn.neural_network._stochastic_optimizers import SGDOptimizer

from skpred import PredictedMLPClassifier
from skpred._loop import train_epochs
from skpred._optim import schedule_callback
from skpred.callbacks import EarlyStopping, History, StoppingRule, Validation

_SKLEARN_UPDATE = BaseMultilayerPerceptron._update_no_improvement_count
_TAKES_WEIGHTS = "sample_weight" in inspect.signature(_SKLEARN_UPDATE).parameters


def sklearn_replay(values, *, early_stopping, tol, n_iter_no_change, adaptive_lr=None):
    """Run scikit-learn's rule on ``values`` (validation scores when
    ``early_stopping``, else training losses), epoch by epoch, as its
    ``_fit_stochastic`` loop does.

    Returns ``(n_epochs, stopped, best_epoch, learning_rates)``: the epochs
    run, whether the rule stopped training, the 1-based epoch whose weights
    scikit-learn keeps (its ``_best_coefs``), and the rate after each epoch
    when ``adaptive_lr`` (the initial rate) is given.
    """
    state = SimpleNamespace(
        tol=tol, verbose=False, validation_scores_=[], loss_curve_=[],
        best_validation_score_=-np.inf, best_loss_=np.inf,
        _no_improvement_count=0, coefs_=[], intercepts_=[])
    upcoming = iter(values)
    state._score = lambda X, y, sample_weight=None: next(upcoming)
    optimizer = (None if adaptive_lr is None else SGDOptimizer(
        [], learning_rate_init=adaptive_lr, lr_schedule="adaptive"))
    best_epoch, rates = None, []
    for epoch, value in enumerate(values, start=1):
        if not early_stopping:
            state.loss_curve_.append(value)
            next(upcoming)
        before = state.best_validation_score_
        args = (state, early_stopping, None, None) + ((None,) if _TAKES_WEIGHTS else ())
        _SKLEARN_UPDATE(*args)
        if state.best_validation_score_ != before:
            best_epoch = epoch
        if state._no_improvement_count > n_iter_no_change:
            if optimizer is None or optimizer.trigger_stopping("", False):
                return epoch, True, best_epoch, rates + [rates[-1] if rates else adaptive_lr]
            state._no_improvement_count = 0
        if optimizer is not None:
            rates.append(optimizer.learning_rate)
    return len(values), False, best_epoch, rates


# Constructed sequences: exact ties at tol=0, plateaus exactly tol above the
# best at tol>0, gains smaller than tol (the best must still move), and
# sequences that never stop. Every value and tol is a dyadic fraction, so
# that float32 and float64 hold them exactly and the ties are real ties.
SCORE_CASES = [
    # tie at tol=0: 0.5 == best + 0 is an improvement, never stale
    ([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 0.0, 2),
    # ties after a drop: the drop epochs are stale, the tie resets
    ([0.5, 0.25, 0.25, 0.5, 0.25, 0.25, 0.25, 0.25], 0.0, 2),
    # a score exactly best + tol is an improvement (0.625 == 0.5 + 0.125)
    ([0.5, 0.625, 0.75, 0.875, 0.875, 0.875, 0.875, 0.875], 0.125, 2),
    # gains below tol: stale, but the best moves, so 0.75 is then stale too
    ([0.5, 0.5625, 0.625, 0.6875, 0.75, 0.8125, 0.875], 0.125, 2),
    # a gain below tol followed by one that beats the *old* best by tol only
    ([0.5, 0.5625, 0.625, 0.625, 0.625, 0.625], 0.125, 3),
    ([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], 0.0, 1),
    ([1.0, 0.5, 0.5, 0.5, 0.5], 0.0, 10),  # never stops within the budget
]


def _losses(scores):
    """The same shapes on the training loss (lower is better)."""
    return [2.0 - s for s in scores]


def _case(values, tol, patience, early_stopping):
    """The sequence the rule sees (scores, or the same shape as losses) and
    scikit-learn's verdict on it: (epochs, stopped, best epoch, rates)."""
    seq = values if early_stopping else _losses(values)
    return seq, sklearn_replay(seq, early_stopping=early_stopping, tol=tol,
                               n_iter_no_change=patience)


@pytest.mark.parametrize("values, tol, patience", SCORE_CASES)
@pytest.mark.parametrize("early_stopping", [True, False])
def test_stopping_rule_matches_sklearn_on_constructed_sequences(values, tol, patience, early_stopping):
    # Catches: a tie counted as stale (``>`` for ``>=``), the best updated only
    # on gains above tol, a stop one epoch early or late (``>=`` patience).
    seq, (expected_epochs, expected_stop, _, _) = _case(values, tol, patience, early_stopping)
    rule = StoppingRule(tol, patience, higher_is_better=early_stopping)
    epochs = len(seq)
    for epoch, value in enumerate(seq, start=1):
        rule.update(value)
        if rule.met:
            epochs = epoch
            break
    assert (epochs, rule.met) == (expected_epochs, expected_stop)


def test_the_constructed_sequences_tell_the_rules_apart():
    # Guards the cases above: a tie counted as stale, and the best updated only
    # on gains above tol, each change the stopping epoch of at least one case
    # (or the cases would not catch those mutations).
    def stop(values, tol, patience, tie_is_stale=False, best_on_tol_only=False):
        best, count = -np.inf, 0
        for epoch, v in enumerate(values, start=1):
            stale = v <= best + tol if tie_is_stale else v < best + tol
            count = count + 1 if stale else 0
            if (v >= best + tol) if best_on_tol_only else (v > best):
                best = v
            if count > patience:
                return epoch
        return None

    def differs(**mutation):
        return any(stop(v, t, p) != stop(v, t, p, **mutation) for v, t, p in SCORE_CASES)

    assert differs(tie_is_stale=True)
    assert differs(best_on_tol_only=True)
    for values, tol, patience in SCORE_CASES:  # and the plain rule is sklearn's
        epochs, stopped, _, _ = sklearn_replay(values, early_stopping=True, tol=tol,
                                               n_iter_no_change=patience)
        assert stop(values, tol, patience) == (epochs if stopped else None)


class _EpochStamp(torch.nn.Module):
    """A one-parameter module whose weight is set to the current epoch number
    after every step, so that the restored weights tell which epoch was kept."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))


def _run_train_epochs(values, *, early_stopping, tol, patience, schedule=None, lr=0.1):
    """train_epochs on one sample (one step per epoch) whose epoch k yields
    ``values[k-1]``: as the validation score, or as the training loss. After
    every step the weight is set to the epoch's number."""
    module = _EpochStamp()
    X = torch.zeros(1, 1, dtype=torch.float64)
    upcoming = iter(values)
    epoch = {"now": 0}

    def batch_loss(xb, yb):
        epoch["now"] += 1
        value = 1.0 if early_stopping else next(upcoming)
        return module.w.sum() * 0 + value

    def after_step():
        with torch.no_grad():
            module.w.fill_(epoch["now"])

    optimizer = torch.optim.SGD(module.parameters(), lr=lr)
    # the callbacks the estimators build, in their order
    callbacks = [Validation(lambda: next(upcoming))] if early_stopping else []
    callbacks += [schedule] if schedule is not None else []
    callbacks += [History(), EarlyStopping(
        tol, patience, validation=early_stopping,
        plateau=schedule.on_plateau if schedule is not None else None)]
    result = train_epochs(
        module, batch_loss, X, None, optimizer, epochs=len(values), batch_size=1,
        shuffle=False, after_step=after_step, callbacks=callbacks)
    return result, module, optimizer


@pytest.mark.parametrize("values, tol, patience", SCORE_CASES)
@pytest.mark.parametrize("early_stopping", [True, False])
def test_training_loop_stops_and_restores_as_sklearn(values, tol, patience, early_stopping):
    # Catches: the loop not using the rule as scikit-learn's loop does (epoch
    # count, stop flag), and early stopping restoring another epoch's weights
    # than scikit-learn's best (its last strict gain in validation score).
    seq, (epochs, stopped, best_epoch, _) = _case(values, tol, patience, early_stopping)
    result, module, _ = _run_train_epochs(seq, early_stopping=early_stopping, tol=tol,
                                          patience=patience)
    assert (result.n_epochs, result.converged) == (epochs, stopped)
    if early_stopping:
        assert result.validation_scores == list(seq[:epochs])
        assert module.w.item() == best_epoch
    else:
        assert result.losses == list(seq[:epochs])
        assert module.w.item() == epochs  # no restore without a validation set


def test_adaptive_rate_divides_and_stops_as_sklearn():
    # Catches: the adaptive schedule not dividing by 5 when the rule is met,
    # the count not reset after a division, or stopping before the rate
    # reaches scikit-learn's 1e-6 floor.
    values = [1.0] + [0.5] * 60  # a plateau: the rule is met every 3 epochs
    lr = 1e-4
    epochs, stopped, _, rates = sklearn_replay(values, early_stopping=True, tol=0.0,
                                               n_iter_no_change=2, adaptive_lr=lr)
    schedule = schedule_callback("adaptive", learning_rate_init=lr)
    result, _, _ = _run_train_epochs(values, early_stopping=True, tol=0.0,
                                             patience=2, schedule=schedule, lr=lr)
    assert stopped and (result.n_epochs, result.converged) == (epochs, True)
    # history records the rate an epoch trained with (the division happens
    # after the record); scikit-learn's after each epoch's division: epoch
    # k + 1 trains with the rate scikit-learn holds after epoch k
    ours = [record["learning_rate"] for record in result.history]
    assert len(ours) == epochs
    np.testing.assert_allclose(ours[1:], rates[:epochs - 1], rtol=1e-12)


@pytest.fixture(scope="module")
def recorded_curves(digits):
    """Real fits on the digits, as the review reproduced them: early stopping
    at tol=0 (validation-accuracy ties are common), and the training-loss
    rule at tol=1e-2."""
    X, y = digits
    fits = []
    for seed in (0, 1):
        fits.append(("early", PredictedMLPClassifier(
            (32,), early_stopping=True, tol=0.0, n_iter_no_change=3, max_iter=60,
            random_state=seed).fit(X, y)))
    fits.append(("loss", PredictedMLPClassifier(
        (32,), tol=1e-2, n_iter_no_change=3, max_iter=60, random_state=0).fit(X, y)))
    return fits


def test_real_fits_stop_where_sklearns_rule_stops(recorded_curves):
    # Catches: stopping on a tie of validation accuracy (the review saw
    # skpred stop at epochs 25 and 33 where scikit-learn's rule, replayed on
    # the same scores, had not stopped), and the loss rule's best not moving
    # on gains smaller than tol (n_iter_ 88 -> 162 on the digits at tol=1e-2).
    for kind, est in recorded_curves:
        early = kind == "early"
        values = est.validation_scores_ if early else est.loss_curve_
        assert len(values) == est.n_iter_
        epochs, stopped, _, _ = sklearn_replay(
            list(values), early_stopping=early, tol=est.tol,
            n_iter_no_change=est.n_iter_no_change)
        # scikit-learn, fed the same curve, stops exactly at our last epoch
        # (or not at all when we ran out of max_iter)
        assert epochs == est.n_iter_
        assert stopped == (est.n_iter_ < est.max_iter)


def test_the_rule_carries_over_partial_fit_calls_as_sklearn(digits):
    # Catches: the stopping rule restarted on every partial_fit call (as it
    # was): with learning_rate="adaptive", one epoch per call never counts
    # more than one stale epoch, so the rate never dropped, where
    # scikit-learn (whose count and best loss live on the estimator) divides
    # it by 5 after n_iter_no_change + 1 stale calls. tol=10 makes every
    # epoch stale, so the divisions come every 3 calls.
    X, y = digits
    est = PredictedMLPClassifier((16,), dictionary=None, solver="sgd", learning_rate="adaptive",
                                 learning_rate_init=0.1, tol=10.0, n_iter_no_change=2,
                                 device="cpu", random_state=0)
    for _ in range(8):
        est.partial_fit(X[:300], y[:300], classes=np.unique(y))
    epochs, _, _, rates = sklearn_replay(list(est.loss_curve_), early_stopping=False, tol=10.0,
                                         n_iter_no_change=2, adaptive_lr=0.1)
    ours = [record["learning_rate"] for record in est.history_]
    assert len(ours) == epochs == 8
    np.testing.assert_allclose(ours[1:], rates[:7], rtol=1e-12)
    assert ours[-1] == pytest.approx(0.1 / 25)  # divided twice, after calls 3 and 6


def test_early_stopping_keeps_one_copy_of_x(monkeypatch):
    # Catches: the validation split copied out of X on the device (peak
    # memory 2x X, measured 2.01x before; benchmarks/
    # bench_early_stopping_memory.py measures it): the training and
    # validation rows must be two views of one tensor, holding exactly the
    # rows train_test_split chose (training rows in their original order).
    from skpred._base import TorchEstimatorBase

    X, y = load_digits(return_X_y=True)
    X, y = (X[:300] / 16).astype(np.float32), y[:300]
    X[:, 0] = np.arange(300) / 300  # a row id (the first pixel is always 0)
    seen = {}
    prepare = TorchEstimatorBase._prepare

    def spy(self, *args, **kw):
        data = prepare(self, *args, **kw)
        seen["data"] = data
        return data

    monkeypatch.setattr(TorchEstimatorBase, "_prepare", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        PredictedMLPClassifier((8,), early_stopping=True, max_iter=2, random_state=0,
                               device="cpu").fit(X, y)
    data = seen["data"]
    assert data.X_t.untyped_storage().data_ptr() == data.X_val.untyped_storage().data_ptr()
    train = np.rint(data.X_t[:, 0].numpy() * 300).astype(int)
    val = np.rint(data.X_val[:, 0].numpy() * 300).astype(int)
    assert len(val) == 30 and np.all(np.diff(train) > 0)  # training rows in X's order
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(300))
    np.testing.assert_array_equal(data.X_t.numpy(), X[train])
    np.testing.assert_array_equal(data.X_val.numpy(), X[val])
    np.testing.assert_array_equal(data.y_val.numpy(), y[val])
