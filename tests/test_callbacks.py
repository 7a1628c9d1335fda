"""User callbacks on the training loop: they log, checkpoint and stop every
trained estimator; user learning-rate schedulers; and the loop's own
machinery (validation, schedule, history, progress, stopping, Ctrl-C) is
callbacks on the same hooks."""

import copy
import functools
import math
import warnings

import numpy as np
import pytest
import torch

import skpred
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpred import (PredictedConvNetClassifier, PredictedMLPClassifier, PredictedMLPRegressor,
                    PredictedRICA)
from skpred.callbacks import Callback

CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32)[:300], y[:300]


def _estimators():
    """One small instance of every estimator trained by minibatches, and
    how to fit it on the digits."""
    return {
        "mlp": (lambda **kw: PredictedMLPClassifier(**{"hidden_layer_sizes": (16,), "batch_size": 64,
                                                      **CPU, **kw}),
                lambda est, X, y: est.fit(X, y)),
        "regressor": (lambda **kw: PredictedMLPRegressor((16,), batch_size=64, **CPU, **kw),
                      lambda est, X, y: est.fit(X, y.astype(np.float32) / 9)),
        "convnet": (lambda **kw: PredictedConvNetClassifier(
            conv_layers=((4, 3, 2),), dense_layers=(16,), image_shape=(8, 8),
            batch_size=64, **CPU, **kw), lambda est, X, y: est.fit(X, y)),
        "rica": (lambda **kw: PredictedRICA(8, solver="adam", tol=0.0, batch_size=64,
                                            dictionary=None, **CPU, **kw),
                 lambda est, X, y: est.fit(X)),
    }


class Recorder(Callback):
    """Logs every hook call with what the loop offers there."""

    def __init__(self):
        self.calls = []
        self.records = []

    def on_train_begin(self, loop):
        self.calls.append(("begin", loop.phase, loop.epochs))

    def on_epoch_begin(self, loop):
        self.calls.append(("epoch_begin", loop.epoch))

    def on_batch_end(self, loop):
        self.calls.append(("batch", loop.epoch, loop.batch, float(loop.batch_loss)))

    def on_epoch_end(self, loop):
        self.calls.append(("epoch_end", loop.epoch))
        self.records.append(dict(loop.record))

    def on_train_end(self, loop):
        self.calls.append(("end", loop.phase, loop.error))


class StopAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, loop):
        if loop.epoch == self.epoch:
            loop.stop()


class Checkpoint(Callback):
    """Keeps a copy of the network's state after the chosen epoch."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.state = None

    def on_epoch_end(self, loop):
        if loop.epoch == self.epoch:
            self.state = copy.deepcopy(loop.module.state_dict())


def _fit(name, X, y, **kw):
    make, fit = _estimators()[name]
    est = make(**kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit(est, X, y)
    return est


def _weights(est):
    module = est.layer_ if isinstance(est, PredictedRICA) else est.module_
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", ["mlp", "regressor", "convnet", "rica"])
def test_a_callback_logs_every_hook_in_order(name, digits):
    # Catches: a hook not called, called out of order or a wrong number of
    # times (batches per epoch: ceil(300 / 64) = 5), a record that is not
    # the one that reaches history_ / the loss curve, a per-batch loss
    # that is not the batch's.
    X, y = digits
    rec = Recorder()
    est = _fit(name, X, y, max_iter=3, callbacks=[rec])
    n_batches = math.ceil(len(X) / 64)
    expected = [("begin", rec.calls[0][1], 3)]
    for epoch in (1, 2, 3):
        expected.append(("epoch_begin", epoch))
        expected += [("batch", epoch, b) for b in range(n_batches)]
        expected.append(("epoch_end", epoch))
    expected.append(("end", rec.calls[0][1], None))
    assert [c[:3] if c[0] == "batch" else c for c in rec.calls] == expected
    assert all(np.isfinite(c[3]) for c in rec.calls if c[0] == "batch")
    if name == "rica":
        assert rec.calls[0][1] == "rica"
        assert [r["objective"] for r in rec.records] == est.objective_curve_[1:]
    else:
        assert rec.calls[0][1] == "fine-tune"
        assert rec.records == est.history_
        assert [r["train_loss"] for r in rec.records] == est.loss_curve_


@pytest.mark.parametrize("name", ["mlp", "regressor", "convnet", "rica"])
def test_a_callback_stops_training(name, digits):
    # Catches: loop.stop() ignored, acted on an epoch late, or reported as
    # the stopping rule's convergence. Reference: the same estimator fitted
    # with max_iter=2 (same seed, same minibatches) ends with the same
    # weights, to float32 rounding: the MLP pools layer 1 once or per step
    # depending on the epoch budget (``pool_once``), which reorders sums
    # (1e-8 here; one epoch more or less moves weights by about 1e-3).
    X, y = digits
    stopped = _fit(name, X, y, max_iter=6, callbacks=[StopAt(2)])
    short = _fit(name, X, y, max_iter=2)
    assert stopped.n_iter_ == 2
    for key, value in _weights(short).items():
        torch.testing.assert_close(_weights(stopped)[key], value, rtol=1e-5, atol=1e-6)
    if name != "rica":
        assert len(stopped.loss_curve_) == 2
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)  # a user stop is no failure
            _estimators()[name][1](_estimators()[name][0](max_iter=6, callbacks=[StopAt(2)]),
                                   X, y)


@pytest.mark.parametrize("name", ["mlp", "regressor", "convnet", "rica"])
def test_a_callback_checkpoints_the_network(name, digits):
    # Catches: the loop handing callbacks another module than the one it
    # trains, or the epoch's hook running before the epoch's steps.
    # Reference: a separate fit of 2 epochs (to float32 rounding, as above).
    X, y = digits
    checkpoint = Checkpoint(2)
    _fit(name, X, y, max_iter=4, callbacks=[checkpoint])
    short = _weights(_fit(name, X, y, max_iter=2))
    assert checkpoint.state.keys() == short.keys()
    for key, value in short.items():
        torch.testing.assert_close(checkpoint.state[key], value, rtol=1e-5, atol=1e-6)


def test_callbacks_see_pretraining_and_stop_only_that_phase(digits):
    # Catches: user callbacks skipped during greedy pretraining, or a stop
    # there ending the whole fit instead of the phase.
    X, y = digits
    rec = Recorder()
    est = _fit("mlp", X, y, hidden_layer_sizes=(16, 16), pretrain=True, pretrain_epochs=3,
               max_iter=2, callbacks=[rec, StopAt(1)])
    begins = [c[1] for c in rec.calls if c[0] == "begin"]
    assert begins == ["pretrain layer 1", "pretrain layer 2", "fine-tune"]
    phases = [r["phase"] for r in est.history_]
    assert phases == ["pretrain layer 1", "pretrain layer 2", "fine-tune"]
    assert est.n_iter_ == 1


def test_early_stopping_state_is_visible_and_user_callbacks_see_restored_weights(digits):
    # Catches: user callbacks running before the stopping rule (they would
    # not know the phase ends), or on_train_end before the best epoch's
    # weights are restored.
    X, y = digits

    class Watch(Callback):
        def on_epoch_end(self, loop):
            self.last_stop = loop.stop_requested

        def on_train_end(self, loop):
            self.final = copy.deepcopy(loop.module.state_dict())

    watch = Watch()
    est = _fit("mlp", X, y, early_stopping=True, n_iter_no_change=1, tol=0.5, max_iter=50,
               callbacks=[watch])
    assert est.n_iter_ < 50 and watch.last_stop
    for key, value in est.module_.state_dict().items():
        torch.testing.assert_close(watch.final[key], value, rtol=0, atol=0)


def test_a_user_scheduler_factory(digits):
    # Catches: a callable learning_rate rejected, not stepped once per
    # epoch, or ReduceLROnPlateau stepped without the monitored loss.
    # Reference: StepLR's rule written out by hand.
    X, y = digits
    step = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=2, gamma=0.5)
    est = _fit("mlp", X, y, max_iter=5, learning_rate=step, learning_rate_init=0.01)
    rates = [r["learning_rate"] for r in est.history_]
    np.testing.assert_allclose(rates, [0.01 * 0.5 ** ((k + 1) // 2) for k in range(5)])

    seen = []

    class Plateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metrics):
            seen.append(metrics)
            super().step(metrics)

    est = _fit("mlp", X, y, max_iter=3, learning_rate=lambda opt: Plateau(opt),
               early_stopping=True, n_iter_no_change=10)
    assert seen == [r["valid_loss"] for r in est.history_]


def test_bad_callbacks_and_factories_are_clear_errors(digits):
    # Catches: a crash deep in the loop (or silence) for a callback of the
    # wrong type, a factory that returns no scheduler, or callbacks that
    # L-BFGS could not run.
    X, y = digits
    for bad in ([object()], Callback()):
        with pytest.raises(ValueError, match="callbacks"):
            PredictedMLPClassifier((8,), max_iter=1, callbacks=bad, **CPU).fit(X, y)
    clf = PredictedMLPClassifier((8,), max_iter=1, learning_rate=lambda opt: 3, **CPU)
    with pytest.raises(ValueError, match="must return a torch.optim.lr_scheduler"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")  # a failed fit leaves it unfitted
    with pytest.raises(ValueError, match="L-BFGS"):
        PredictedRICA(4, callbacks=[Recorder()], **CPU).fit(X)


def test_a_failing_callback_leaves_the_estimator_as_it_was(digits):
    # Catches: on_train_end not told of the error, or a fit that failed in
    # a callback leaving a half-trained network behind.
    X, y = digits
    clf = _fit("mlp", X, y, max_iter=2)
    before = _weights(clf)

    class Boom(Recorder):
        def on_epoch_end(self, loop):
            raise RuntimeError("boom")

    boom = Boom()
    clf.set_params(warm_start=True, callbacks=[boom])
    with pytest.raises(RuntimeError, match="boom"):
        clf.fit(X, y)
    assert isinstance(boom.calls[-1][2], RuntimeError)
    for key, value in before.items():
        torch.testing.assert_close(clf.module_.state_dict()[key], value, rtol=0, atol=0)


def test_ctrl_c_in_a_callback_ends_training_cleanly(digits):
    # Catches: Ctrl-C handling lost when it moved into a callback (the fit
    # must end with a warning, keeping the epochs done).
    X, y = digits

    class Interrupt(Callback):
        def on_epoch_end(self, loop):
            if loop.epoch == 2:
                raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted"):
        clf = PredictedMLPClassifier((8,), max_iter=5, callbacks=[Interrupt()], **CPU).fit(X, y)
    assert clf.n_iter_ == 2


def test_callbacks_clone_save_and_schedulers_leave_the_optimizer_clean(digits, tmp_path):
    # Catches: grid-search clones sharing one callback object; a save that
    # writes (or crashes on) callbacks; torch's scheduler patch left on the
    # optimizer, where a deep copy (a failed fit's undo) would step the
    # original network.
    X, y = digits
    rec = Recorder()
    clf = PredictedMLPClassifier((8,), max_iter=2, callbacks=[rec], learning_rate="decay",
                                 learning_rate_decay=1.01, **CPU)
    assert clone(clf).callbacks[0] is not rec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert "step" not in vars(clf._optimizer)
    with pytest.warns(UserWarning, match="callbacks are code"):
        clf.save(tmp_path / "m.skpred")
    loaded = skpred.load(tmp_path / "m.skpred")
    assert loaded.callbacks is None and clf.callbacks[0] is rec
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    step_lr = functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1)
    schedule = clone(clf).set_params(callbacks=None, learning_rate_decay=1.0,
                                     learning_rate=step_lr).fit(X, y)
    with pytest.raises(ValueError, match="learning_rate is a callable"):
        schedule.save(tmp_path / "s.skpred")
    assert not (tmp_path / "s.skpred").exists()
    twin = copy.deepcopy(clf)
    original = _weights(clf)
    twin.partial_fit(X, y)
    for key, value in original.items():
        torch.testing.assert_close(clf.module_.state_dict()[key], value, rtol=0, atol=0)
    assert not torch.equal(twin.module_.state_dict()["output.weight"], original["output.weight"])
