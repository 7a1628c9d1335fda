"""Estimator state: seeded on the CPU, never touching torch's global RNG,
no stray device tensors, all-or-nothing fits, warm starts and partial fits
that behave as scikit-learn's, pickles that continue training exactly, one
Ctrl-C per fit."""

import functools
import os
import pickle
import sys
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import skpred
from skpred import (
    ImageEncoder,
    KernelDictionary,
    PredictedConvNetClassifier,
    PredictedMLPClassifier,
    PredictedMLPRegressor,
    PredictedRICA,
    ZCAWhitening,
)

pytestmark = pytest.mark.usefixtures("quiet_convergence")
CPU = dict(device="cpu", random_state=0)


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32)[:400], y[:400]


def _small_instances():
    """Default instances, shrunk (epochs, patches) never changed in kind."""
    return [
        KernelDictionary(random_state=0),
        KernelDictionary("ae", ae_max_iter=1, **CPU),
        PredictedMLPClassifier((16, 16), max_iter=2, pretrain_epochs=1, **CPU),
        PredictedMLPClassifier((16,), dictionary="lowrank", max_iter=2, **CPU),
        PredictedConvNetClassifier(max_iter=1, **CPU),
        PredictedRICA(n_components=8, max_iter=3, **CPU),
        ZCAWhitening(),
        ImageEncoder(PredictedRICA(n_components=4, max_iter=2), n_patches=300, **CPU),
    ]


def _use(est, X, y):
    if hasattr(est, "predict"):
        est.fit(X, y)
        est.predict(X[:7])
        est.predict_proba(X[:7])
    else:
        est.fit(X)
        est.transform(X[:7])


@pytest.mark.parametrize("est", _small_instances(), ids=lambda e: type(e).__name__)
def test_fit_transform_predict_never_touch_the_global_torch_rng(est, data):
    """Breakage caught: layer constructors (nn.Linear's default init) or any
    draw without the local generator advancing torch's global seed."""
    X, y = data
    before = torch.get_rng_state()
    _use(est, X, y)
    assert torch.equal(torch.get_rng_state(), before)


def _stray_tensors(obj, path="est"):
    """Paths of torch tensors held outside parameters and buffers."""
    found = []
    if isinstance(obj, torch.nn.Module):
        for name, sub in obj.named_modules():
            for key, value in vars(sub).items():
                if key in ("_parameters", "_buffers", "_modules"):
                    continue
                if torch.is_tensor(value):
                    found.append(f"{path}.{name}.{key}")
        return found
    for key, value in vars(obj).items():
        if torch.is_tensor(value):
            found.append(f"{path}.{key}")
        elif isinstance(value, torch.nn.Module):
            found += _stray_tensors(value, f"{path}.{key}")
        elif hasattr(value, "get_params") and hasattr(value, "__dict__"):
            found += _stray_tensors(value, f"{path}.{key}")
    return found


@pytest.mark.parametrize("est", _small_instances(), ids=lambda e: type(e).__name__)
def test_no_tensor_outside_parameters_and_buffers(est, data):
    """Breakage caught: a cache (max-norm's Gram matrices) as a plain tensor
    attribute, which .cpu() does not move and pickle carries to the GPU."""
    X, y = data
    _use(est, X, y)
    if hasattr(est, "module_"):
        from skpred.nn._mlp import max_norm_

        for layer in est.module_.weight_layers()[:-1]:
            max_norm_(layer, 1.0)  # fills the Gram cache
    assert _stray_tensors(est) == []


def test_gram_cache_is_a_non_persistent_buffer():
    from skpred.nn import PredictedLinear

    layer = PredictedLinear(10, 4, torch.randn(10, 3, dtype=torch.float64).float())
    layer.max_norm_(0.5)
    assert "_gram_cache" in dict(layer.named_buffers())
    assert "_gram_cache" not in layer.state_dict()


# ------------------------------------------------------------ training loop


@functools.lru_cache(maxsize=None)
def _real(path):
    return os.path.realpath(path)


def test_training_loop_syncs_with_the_host_once_per_epoch(data, monkeypatch):
    """Breakage caught: loss.item() / isfinite(loss) per minibatch."""
    X, y = data
    calls = {"item": 0}
    original = torch.Tensor.item
    # skpred's own frames, found by the package's real location (a substring
    # such as "skpred" also matches torch's frames in a checkout or virtual
    # environment whose path contains that word)
    package = os.path.join(os.path.realpath(os.path.dirname(skpred.__file__)), "")

    def item(self):
        # skpred's own calls only (torch's optimizers read CPU step counters)
        if _real(sys._getframe(1).f_code.co_filename).startswith(package):
            calls["item"] += 1
        return original(self)

    clf = PredictedMLPClassifier((16,), batch_size=20, max_iter=3, dictionary=None, **CPU)
    monkeypatch.setattr(torch.Tensor, "item", item)
    clf.fit(X, y)  # 20 batches per epoch
    assert clf.n_iter_ == 3
    assert calls["item"] == 3  # one per epoch (the epoch's loss)


def test_nan_loss_is_still_a_clear_error_and_leaves_the_model_as_it_was(data):
    X, y = data
    clf = PredictedMLPClassifier((16,), max_iter=2, **CPU).fit(X, y)
    before = clf.predict_proba(X)
    clf.set_params(learning_rate_init=1e30, solver="sgd", warm_start=True)
    with pytest.raises(ValueError, match="NaN or infinite"):
        clf.fit(X * 1e6, y)
    np.testing.assert_array_equal(clf.predict_proba(X), before)


# -------------------------------------------------------- all-or-nothing fits


def test_failed_refit_leaves_the_fitted_model_unchanged(data):
    """The issue's scenario: 10 classes, then n_columns=3 and 3 string classes."""
    X, y = data
    clf = PredictedMLPClassifier((24,), max_iter=2, **CPU).fit(X, y)
    before = (clf.classes_.copy(), clf.n_features_in_, clf.predict_proba(X), clf.module_)
    clf.set_params(n_columns=25)  # more columns than the 24 units
    labels = np.array(["a", "b", "c"])[y % 3]
    with pytest.raises(ValueError, match="n_columns=25 exceeds"):
        clf.fit(X[:, :30], labels)
    np.testing.assert_array_equal(clf.classes_, before[0])
    assert clf.n_features_in_ == before[1] and clf.module_ is before[3]
    np.testing.assert_array_equal(clf.predict_proba(X), before[2])


@pytest.mark.parametrize("cls", [PredictedMLPClassifier, PredictedConvNetClassifier])
def test_predict_after_a_failed_first_fit_is_not_fitted_error(cls, data):
    X, y = data
    # more columns than the MLP's 100 units; 101 divides no conv layer's filters
    clf = cls(n_columns=101, max_iter=1, **CPU)
    with pytest.raises(ValueError):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_") and not hasattr(clf, "n_features_in_")
    with pytest.raises(NotFittedError):
        clf.predict(X)


@pytest.mark.parametrize("est, bad", [
    (KernelDictionary(random_state=0), dict(n_atoms=500)),
    (PredictedRICA(n_components=8, max_iter=2, **CPU), dict(n_columns=3)),
    (ZCAWhitening(), dict(epsilon=0.0)),
], ids=lambda v: type(v).__name__ if hasattr(v, "fit") else "")
def test_failed_refit_of_transformers_keeps_the_fitted_state(est, bad, data):
    X, _ = data
    est.fit(X)
    before = est.transform(X[:5]).copy()
    est.set_params(**bad)
    with pytest.raises(ValueError):
        # ZCA with epsilon=0 fails on a rank-deficient covariance (constant pixels)
        est.fit(X[:, :40] if not isinstance(est, ZCAWhitening) else X)
    assert est.n_features_in_ == 64
    np.testing.assert_array_equal(est.transform(X[:5]), before)


# ---------------------------------------------------------- warm start, partial


def test_warm_start_rebuilds_the_optimizer_from_current_parameters(data):
    X, y = data
    clf = PredictedMLPClassifier((16,), max_iter=2, warm_start=True, **CPU).fit(X, y)
    module = clf.module_
    clf.set_params(learning_rate_init=0.05, solver="sgd")
    clf.fit(X, y)
    assert clf.module_ is module  # the weights are kept
    assert isinstance(clf._optimizer, torch.optim.SGD)
    assert clf._optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize("change", [dict(hidden_layer_sizes=(8,)), dict(alpha_fraction=0.5),
                                    dict(dictionary="se")])
def test_warm_start_with_a_different_architecture_names_the_parameter(change, data):
    X, y = data
    clf = PredictedMLPClassifier((16,), max_iter=1, warm_start=True, **CPU).fit(X, y)
    clf.set_params(**change)
    (name,) = change
    with pytest.raises(ValueError, match=f"{name} changed"):
        clf.fit(X, y)
    # an equal value given in another form is no change
    clf.set_params(**{name: getattr(clf, "_built_architecture")[name]})
    clf.set_params(hidden_layer_sizes=[16])
    clf.fit(X, y)


def test_partial_fit_rejects_different_classes(data):
    X, y = data
    clf = PredictedMLPClassifier((16,), **CPU).partial_fit(X, y, classes=np.arange(10))
    clf.partial_fit(X, y, classes=np.arange(10))  # the same: fine
    clf.partial_fit(X, y)  # omitted: fine
    with pytest.raises(ValueError, match="not the same as on the first call"):
        clf.partial_fit(X, y, classes=np.arange(11))


@pytest.mark.parametrize("solver, decay", [("sgd", 1.001), ("adam", 1.0)])
def test_pickling_between_partial_fits_does_not_change_training(solver, decay, data):
    """Optimizer moments, step counts and the decayed learning rate travel."""
    X, y = data
    params = dict(hidden_layer_sizes=(16,), solver=solver, learning_rate_decay=decay,
                  learning_rate="decay" if decay != 1.0 else "constant",
                  learning_rate_init=0.05, **CPU)
    a = PredictedMLPClassifier(**params)
    b = PredictedMLPClassifier(**params)
    for est in (a, b):
        est.partial_fit(X, y, classes=np.arange(10))
        est.partial_fit(X, y)
    b = pickle.loads(pickle.dumps(b))
    for est in (a, b):
        est.partial_fit(X, y)
        est.partial_fit(X, y)
    assert a._optimizer.param_groups[0]["lr"] == b._optimizer.param_groups[0]["lr"]
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


# --------------------------------------------------------------- Ctrl-C


def test_one_keyboard_interrupt_stops_pretraining_and_fine_tuning(data, monkeypatch):
    X, y = data
    clf = PredictedMLPClassifier((16, 16, 16), max_iter=50, pretrain_epochs=20, **CPU)
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # inside the pretraining of layer 1
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    interrupts = [w for w in caught if "interrupted" in str(w.message)]
    assert len(interrupts) == 1
    assert not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    assert calls["n"] == 5  # nothing trained after the interrupt
    assert clf.n_iter_ == 0 and clf.loss_curve_ == []
    assert [l["pretrained"] for l in clf.layers_] == [True, False, False]
    assert clf.predict(X).shape == (len(X),)  # usable


def test_interrupt_while_building_an_ae_dictionary_leaves_the_estimator_unfitted(
        data, monkeypatch):
    X, y = data
    clf = PredictedMLPClassifier((16,), dictionary="ae", **CPU)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.optim.Adam, "step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


# ------------------------------------------------ partial_fit after set_params


@pytest.mark.parametrize("param, value", [
    ("hidden_layer_sizes", (8,)), ("activation", "tanh"), ("dictionary", "se"),
    ("alpha_fraction", 0.5), ("n_columns", 2),
])
def test_partial_fit_refuses_a_change_of_the_networks_shape(param, value, data):
    # Catches: partial_fit silently training the old network after
    # set_params changed its shape (fit with warm_start refuses it).
    X, y = data
    est = PredictedMLPClassifier((16,), max_iter=2, **CPU).fit(X, y)
    before = est.predict_proba(X)
    est.set_params(**{param: value})
    with pytest.raises(ValueError, match=f"partial_fit keeps the fitted network, but {param}"):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), before)


def test_regressor_partial_fit_refuses_another_loss(data):
    # Catches: the Poisson loss applied to a network with an identity
    # output (its predictions would be read through exp).
    X, y = data
    reg = PredictedMLPRegressor((8,), max_iter=2, **CPU).fit(X, y / 10.0)
    reg.set_params(loss="poisson")
    with pytest.raises(ValueError, match="but loss changed"):
        reg.partial_fit(X, y / 10.0)


@pytest.mark.parametrize("bad, name", [
    (dict(learning_rate_init=-1.0), "learning_rate_init"), (dict(batch_size=0), "batch_size"),
    (dict(solver="rmsprop"), "solver"), (dict(momentum=2.0), "momentum"),
])
def test_partial_fit_validates_every_call(bad, name, data):
    # Catches: scikit-learn's skipping of validation on later partial_fit
    # calls letting an invalid value into the loop (batch_size=0 crashed with
    # "range() arg 3 must not be zero"; a negative rate trained silently).
    X, y = data
    est = PredictedMLPClassifier((16,), max_iter=2, **CPU).fit(X, y)
    before = est.predict_proba(X)
    est.set_params(**bad)
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        est.partial_fit(X, y)
    np.testing.assert_array_equal(est.predict_proba(X), before)


def test_partial_fit_applies_new_optimiser_settings(data):
    # Catches: a new learning rate, momentum or solver ignored by partial_fit
    # (the optimizer built on the first call kept its settings). Reference:
    # the same partial_fit on a copy whose optimizer was rebuilt with the new
    # settings and given the old one's state (what "takes effect, state
    # kept" means), compared weight for weight.
    import copy

    X, y = data
    est = PredictedMLPClassifier((16,), solver="sgd", max_iter=2, shuffle=False,
                                 **CPU).fit(X, y)
    est.set_params(learning_rate_init=0.5, momentum=0.5, nesterovs_momentum=False)
    twin = copy.deepcopy(est)
    state = twin._optimizer.state_dict()
    twin._optimizer = torch.optim.SGD(
        [{"params": g["params"]} for g in twin._optimizer.param_groups], lr=0.5, momentum=0.5)
    twin._optimizer.load_state_dict({**state, "param_groups": [
        {**g, "lr": 0.5, "momentum": 0.5, "nesterov": False}
        for g in state["param_groups"]]})
    twin._optimizer_built_with = twin._optimizer_settings()
    est.partial_fit(X, y)
    twin.partial_fit(X, y)
    assert est._optimizer.param_groups[0]["lr"] == 0.5
    for a, b in zip(est.module_.parameters(), twin.module_.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # another solver: a new optimizer of that kind
    est.set_params(solver="adam", learning_rate_init=1e-3).partial_fit(X, y)
    assert isinstance(est._optimizer, torch.optim.Adam)


# ------------------------------------------------------------ class weights


@pytest.mark.parametrize("weights, match", [
    ({0: -5.0}, "class_weight of class 0 is -5.0"),
    ({1: float("nan")}, "class_weight of class 1 is nan"),
    ({2: float("inf")}, "class_weight of class 2 is inf"),
    ({0: "a"}, "class_weight of class 0"),
    ({c: 0.0 for c in range(10)}, "weight 0 to every class"),
])
def test_class_weights_must_be_finite_non_negative_and_not_all_zero(weights, match, data):
    # Catches: a negative weight accepted (the loss went to -18.2 and class
    # 0's recall to 0), a NaN reported as "sample weights sum to zero".
    X, y = data
    est = PredictedMLPClassifier((16,), max_iter=2, class_weight=weights, **CPU)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "module_")


# ---------------------------------------------------------------- Ctrl-C


class _Interrupt(skpred.callbacks.Callback):
    """Raises KeyboardInterrupt at one hook of one phase (a user's Ctrl-C)."""

    def __init__(self, phase, hook):
        self.phase, self.hook = phase, hook

    def _maybe(self, loop, hook):
        if loop.phase == self.phase and hook == self.hook:
            raise KeyboardInterrupt

    def on_epoch_begin(self, loop):
        self._maybe(loop, "on_epoch_begin")

    def on_batch_end(self, loop):
        self._maybe(loop, "on_batch_end")

    def on_epoch_end(self, loop):
        self._maybe(loop, "on_epoch_end")


_PHASES = ["pretrain layer 1", "pretrain layer 2", "fine-tune"]
_HOOKS = ["on_epoch_begin", "on_batch_end", "on_epoch_end"]


# every phase and every hook in the default run; the other 6 pairs are slow
@pytest.mark.parametrize("phase, hook", [
    pytest.param(p, h, marks=() if i == j else pytest.mark.slow)
    for i, p in enumerate(_PHASES) for j, h in enumerate(_HOOKS)])
def test_ctrl_c_at_any_hook_leaves_a_usable_model(phase, hook, data):
    # Catches: a KeyboardInterrupt escaping fit, or an estimator left
    # half-built, when the user presses Ctrl-C in any phase. One warning,
    # a model that predicts.
    X, y = data
    est = PredictedMLPClassifier((16, 16), dictionary=("se", "emp"), pretrain=True,
                                 pretrain_epochs=2, max_iter=3, callbacks=[_Interrupt(phase, hook)],
                                 **CPU)
    with pytest.warns(UserWarning, match="interrupted by the user") as caught:
        est.fit(X, y)
    assert sum("interrupted" in str(w.message) for w in caught) == 1
    assert est.predict_proba(X).shape == (len(X), 10)
    assert np.isfinite(est.predict_proba(X)).all()


def test_ctrl_c_during_validation_keeps_the_best_epoch(data, monkeypatch):
    # Catches: Ctrl-C while the held-out set is scored (early stopping)
    # escaping fit, or leaving the weights of an unscored epoch: the fit
    # ends with one warning and the best scored epoch's weights.
    from skpred.callbacks import Validation

    X, y = data
    real = Validation.on_epoch_end
    calls = {"n": 0}

    def interrupted_third(self, loop):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, loop)

    monkeypatch.setattr(Validation, "on_epoch_end", interrupted_third)
    est = PredictedMLPClassifier((16,), early_stopping=True, max_iter=20, **CPU)
    with pytest.warns(UserWarning, match="interrupted by the user"):
        est.fit(X, y)
    # three epochs trained, two scored (the restore of the best scored
    # epoch's weights is tested in test_stopping.py)
    assert len(est.validation_scores_) == 2 and est.n_iter_ == 3
    assert np.isfinite(est.predict_proba(X)).all()


def test_ctrl_c_between_pretrained_layers_leaves_a_usable_model(data, monkeypatch):
    # Catches: Ctrl-C during the activation pass between two pretrained
    # layers escaping fit and leaving the estimator unfitted (the docs
    # promise a usable model with one warning).
    from skpred import _feeds

    X, y = data
    real = _feeds.apply_in_batches
    calls = {"n": 0}

    def interrupted_once(fn, X_t, *args, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        return real(fn, X_t, *args, **kw)

    monkeypatch.setattr(_feeds, "apply_in_batches", interrupted_once)
    est = PredictedMLPClassifier((16, 16), dictionary=("se", "emp"), pretrain=True,
                                 pretrain_epochs=2, max_iter=3, **CPU)
    with pytest.warns(UserWarning, match="interrupted by the user"):
        est.fit(X, y)
    assert calls["n"] >= 2 and est.n_iter_ == 0  # fine-tuning skipped, as documented
    assert [r["pretrained"] for r in est.layers_] == [True, False]
    assert np.isfinite(est.predict_proba(X)).all()


def test_a_real_sigint_in_a_child_process_leaves_a_usable_model(tmp_path):
    # Catches: a real SIGINT (not a simulated exception) escaping fit: the
    # child sends itself SIGINT in its third fine-tuning epoch, then must
    # print its predictions' shape and exit 0.
    import subprocess
    import textwrap

    script = textwrap.dedent("""
        import os, signal, warnings
        import numpy as np
        from sklearn.datasets import load_digits
        from skpred import PredictedMLPClassifier
        from skpred.callbacks import Callback

        class SigInt(Callback):
            def on_epoch_end(self, loop):
                if loop.phase == "fine-tune" and loop.epoch == 3:
                    os.kill(os.getpid(), signal.SIGINT)

        X, y = load_digits(return_X_y=True)
        est = PredictedMLPClassifier((16,), max_iter=50, device="cpu", random_state=0,
                                     callbacks=[SigInt()])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.fit(X / 16, y)
        print(est.n_iter_, est.predict_proba(X).shape,
              sum("interrupted" in str(w.message) for w in caught))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    n_iter, *_, warned = done.stdout.split()
    assert int(n_iter) in (3, 4) and int(warned) == 1
    assert "(1797, 10)" in done.stdout
