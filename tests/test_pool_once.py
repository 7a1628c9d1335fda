"""Layer 1's fixed pooling of the training data, computed once per fit.

`PredictedLinear.pool` / `forward_pooled` split a predicted layer into its
fixed half (``x U``) and its learned half (``(x U) V + b``);
`PredictedMLP.forward_pooled` runs a network from the first half's output;
the MLP estimators pool their training data through layer 1 once when that
costs fewer multiply-adds over the epochs and no more memory than X
(`_MLPNetwork._training_feed`).
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skpred import _device, PredictedMLPClassifier, PredictedMLPRegressor
from skpred._base import TorchEstimatorBase
from skpred.nn import LowRankLinear, PredictedLinear, SEPredictedLinear
from skpred.nn._mlp import PredictedMLP


def _dicts(n_rows, n_atoms, n_columns, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_columns, n_rows, n_atoms))


# ------------------------------------------------------------------ the layer

@pytest.mark.parametrize("n_columns", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_pool_then_forward_pooled_equals_x_times_the_materialised_weight(n_columns, bias):
    # Catches: a column order mix-up between pool and forward_pooled, a lost
    # bias, V applied to the wrong slice.
    U = _dicts(12, 4, n_columns)
    layer = PredictedLinear(12, 6 * n_columns, U, bias=bias,
                            dtype=torch.float64)
    with torch.no_grad():
        layer.V.normal_()
        if bias:
            layer.bias.normal_()
    x = np.random.default_rng(1).normal(size=(5, 12))
    V = layer.V.detach().numpy()
    # References written here: per-column x U_c, and x W + b with W = [U_c V_c]_c
    pooled_ref = np.concatenate([x @ U[c] for c in range(n_columns)], axis=1)
    W = np.concatenate([U[c] @ V[c] for c in range(n_columns)], axis=1)
    out_ref = x @ W + (layer.bias.detach().numpy() if bias else 0.0)
    xt = torch.tensor(x)
    pooled = layer.pool(xt)
    np.testing.assert_allclose(pooled.detach().numpy(), pooled_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward_pooled(pooled).detach().numpy(), out_ref,
                               rtol=1e-12, atol=1e-12)
    # leading dimensions are kept, as by forward
    assert layer.pool(torch.randn(2, 3, 12, dtype=torch.float64)).shape == (2, 3, 4 * n_columns)
    assert layer.forward_pooled(torch.randn(2, 3, 4 * n_columns, dtype=torch.float64)).shape \
        == (2, 3, layer.out_features)


def test_pool_runs_the_blur_route_of_an_se_layer_and_stays_exact():
    # SEPredictedLinear's pool must honour path="blur" (its structured
    # route), and still equal x U with U materialised.
    layer = SEPredictedLinear(36, 4, (6, 6), 1.5, [[0, 7, 14, 35], [3, 9, 20, 30]],
                              dtype=torch.float64, path="blur")
    x = torch.randn(3, 36, dtype=torch.float64)
    calls = []
    original = SEPredictedLinear._pooled

    def spy(self, x, route):
        calls.append(route)
        return original(self, x, route)

    SEPredictedLinear._pooled = spy
    try:
        z = layer.pool(x)
    finally:
        SEPredictedLinear._pooled = original
    assert calls == ["blur"]
    U = layer.dictionaries.numpy()
    ref = np.concatenate([x.numpy() @ U[c] for c in range(2)], axis=1)
    np.testing.assert_allclose(z.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_pool_of_a_dense_routed_layer_still_pools():
    # A layer forced to path="dense" has no pooled output of its own; pool
    # must still return x U (not x W).
    U = _dicts(10, 3, 1)
    layer = PredictedLinear(10, 5, U, path="dense", dtype=torch.float64)
    x = torch.randn(4, 10, dtype=torch.float64)
    np.testing.assert_allclose(layer.pool(x).numpy(), x.numpy() @ U[0], rtol=1e-12)


def test_pool_and_forward_pooled_name_wrong_widths():
    layer = PredictedLinear(10, 6, _dicts(10, 3, 2))
    with pytest.raises(ValueError, match="in_features=10"):
        layer.pool(torch.randn(2, 9))
    with pytest.raises(ValueError, match="n_columns \\* n_atoms = 6"):
        layer.forward_pooled(torch.randn(2, 5))


def test_fixed_dictionary_is_false_only_when_u_is_learned():
    assert PredictedLinear(10, 4, _dicts(10, 2, 1)).fixed_dictionary
    assert not LowRankLinear(10, 4, 2).fixed_dictionary


def test_pool_once_cost_counts():
    # in=100, out=40, C=2, a=5; batch 10, training with an input that
    # needs no gradient: pool 2*5*100 + 2*5*40 = 1400, dense 100*40*2 +
    # 2*100*5*40/10 = 12000 per step. Over 3 epochs: per step 3 * 1400;
    # pool once 1000 + 3 * 400 (z V forward and V's gradient).
    layer = PredictedLinear(100, 40, _dicts(100, 5, 2))
    assert layer.pool_once_cost(3, 10) == {"per step": 4200, "pool once": 2200}
    assert layer.pool_once_cost(3, None)["per step"] == 4200  # a batch None is fine
    # one epoch: a tie (the pooling is done once either way)
    one = layer.pool_once_cost(1, 10)
    assert one["per step"] == one["pool once"]


def test_mlp_forward_pooled_equals_forward():
    torch.manual_seed(0)  # test-only: default init draws from torch's RNG
    hidden = [PredictedLinear(12, 6, _dicts(12, 3, 2), dtype=torch.float64),
              torch.nn.Linear(6, 5, dtype=torch.float64)]
    net = PredictedMLP(hidden, 3, "tanh", dtype=torch.float64)
    x = torch.randn(4, 12, dtype=torch.float64)
    torch.testing.assert_close(net.forward_pooled(hidden[0].pool(x)), net(x))
    dense_first = PredictedMLP([torch.nn.Linear(12, 6)], 3)
    with pytest.raises(ValueError, match="predicted first layer"):
        dense_first.forward_pooled(torch.randn(4, 6))


# ------------------------------------------------------------- the estimator

@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:600] / 16.0).astype(np.float32), y[:600]


class _RowSpy:
    """Records the rows every call of a PredictedLinear method receives."""

    def __init__(self, monkeypatch, method):
        self.rows = []
        original = getattr(PredictedLinear, method)

        def spy(layer, x):
            self.rows.append(x.shape[0])
            return original(layer, x)

        monkeypatch.setattr(PredictedLinear, method, spy)


def _est(**kw):
    params = dict(hidden_layer_sizes=(20,), max_iter=4, batch_size=50, random_state=0,
                  tol=0.0, n_iter_no_change=100)
    params.update(kw)
    return PredictedMLPClassifier(**params)


def test_training_data_is_pooled_once_per_fit(digits, monkeypatch):
    # Defaults otherwise (auto dictionary at alpha 0.25 with 4 columns:
    # C * a = 64 = n_in). Catches: pooling per step or per epoch (the
    # saving lost) and training that bypasses the pooled data.
    X, y = digits
    spy = _RowSpy(monkeypatch, "pool")
    forward = _RowSpy(monkeypatch, "forward")
    clf = _est().fit(X, y)
    layer = clf.module_.hidden[0]
    assert isinstance(layer, PredictedLinear)
    assert layer.n_columns * layer.n_atoms == X.shape[1]
    assert spy.rows == [len(X)]  # all rows, once (one chunk of 600)
    assert forward.rows == []  # layer 1's forward never ran in training
    assert clf.n_iter_ == 4


def test_sparse_training_data_is_pooled_once_too(digits, monkeypatch):
    # Digits as CSR: 12 bytes per stored value, about half the entries set,
    # hold more bytes than the pooled float32 rows: pooled, one chunk.
    X, y = digits
    spy = _RowSpy(monkeypatch, "pool")
    Xs = sp.csr_matrix(X)
    assert Xs.nnz * 12 > X.shape[0] * X.shape[1] * 4
    clf = _est().fit(Xs, y)
    assert spy.rows == [len(X)]
    # the same pooled rows as from the dense array: the same model
    np.testing.assert_array_equal(clf.predict_proba(X), _est().fit(X, y).predict_proba(X))


def test_pooled_training_equals_training_on_x(digits, monkeypatch):
    # The same fit with the loop reading X (the base class's feed) and the
    # layer forced onto its pooling ordering: the only difference is where
    # x U is computed, so the results agree to float32 rounding; a wrong
    # column order or a stale pooling would not.
    X, y = digits
    monkeypatch.setattr(PredictedLinear, "_route", lambda self, *args: "pool")
    pooled = _est(max_iter=6).fit(X, y)
    monkeypatch.setattr(PredictedMLPClassifier, "_training_feed",
                        TorchEstimatorBase._training_feed)
    spy = _RowSpy(monkeypatch, "pool")
    direct = _est(max_iter=6).fit(X, y)
    assert spy.rows == []  # pool() never called: the loop read X
    np.testing.assert_allclose(pooled.loss_curve_, direct.loss_curve_, rtol=1e-4)
    np.testing.assert_allclose(pooled.predict_proba(X), direct.predict_proba(X), atol=1e-4)
    assert not np.allclose(pooled.loss_curve_[0], pooled.loss_curve_[-1], rtol=1e-2)


def test_pooled_training_with_early_stopping_and_regression(digits):
    # Early stopping validates through the ordinary forward on X_val, the
    # regressor shares the network code: both must still learn.
    X, y = digits
    clf = _est(early_stopping=True, max_iter=15).fit(X, y)
    assert clf.score(X, y) > 0.8
    reg = PredictedMLPRegressor(hidden_layer_sizes=(20,), max_iter=200, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, (y == 3).astype(float))
    # training R^2 over seeds 0-3: 0.64-0.69 (Glorot's initialisation
    # needs more than the 30 epochs torch's default did)
    assert reg.score(X, (y == 3).astype(float)) > 0.3


@pytest.mark.parametrize("case", ["wider than X", "very sparse X", "lowrank", "dense layer",
                                  "one epoch", "no room"])
def test_training_reads_x_when_pooling_once_does_not_pay(digits, monkeypatch, case):
    X, y = digits
    kw = {}
    if case == "wider than X":
        # C * a = 20 * 16 = 320 > 4 * 64 inputs: more than four times X's
        # memory (over 20 epochs pooling once would pay in multiply-adds)
        kw = dict(n_columns=20, max_iter=20)
    elif case == "very sparse X":
        # 2 stored values per row (36 bytes of CSR arrays a row) against
        # 64 pooled float32 values (256 bytes): pooling would take more memory
        X = X * (np.arange(X.shape[1]) % 32 == 20)
        X = sp.csr_matrix(X)
        assert X.nnz <= 2 * X.shape[0]
    elif case == "lowrank":
        kw = dict(dictionary="lowrank")  # U learned: x U changes every step
    elif case == "dense layer":
        kw = dict(dictionary=None)
    elif case == "one epoch":
        kw = dict(max_iter=1)  # pooling once costs what one epoch does
    else:
        monkeypatch.setattr(_device, "has_room", lambda n_bytes, device: False)
    spy = _RowSpy(monkeypatch, "pool")
    clf = _est(**kw).fit(X, y)
    assert len(spy.rows) == 0 or max(spy.rows) < len(X)
    assert clf.n_iter_ == kw.get("max_iter", 4)


def test_has_room_leaves_half_the_available_memory(monkeypatch):
    """Breakage caught: the CPU never checked (a pooling larger than the
    machine's memory attempted), or the GPU's free memory misread.
    Reference: the numbers the fakes give."""
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 4000))
    assert _device.has_room(500, "cuda")
    assert not _device.has_room(501, "cuda")
    available = _device.available_memory("cpu")
    if available is not None:  # Linux: MemAvailable
        assert _device.has_room(available // 2, "cpu")
        assert not _device.has_room(available, "cpu")
    monkeypatch.setattr(_device, "available_memory", lambda device: None)
    assert _device.has_room(10 ** 15, "cpu")  # unknown: allowed


def test_a_pooling_up_to_four_times_x_is_computed_once(digits, monkeypatch):
    """Breakage caught: the memory rule refusing a pooling wider than X
    but within four times its memory (the paper's alpha 0.25 with 10
    columns holds 2.5 times X), which then runs x U on every step.
    Reference: the rows the pooling is asked for (all of X, once)."""
    X, y = digits
    spy = _RowSpy(monkeypatch, "pool")
    _est(n_columns=5).fit(X, y)  # C * a = 80 > 64 inputs
    assert spy.rows and max(spy.rows) == len(X)


def test_greedy_pretraining_pools_each_layer_input_once(digits, monkeypatch):
    # While a layer pretrains, the layers below are fixed: its input is
    # pooled once (layer 1 from X, layer 2 from layer 1's activations), then
    # fine-tuning pools X once more. Caught: pooling per step, pooling the
    # wrong layer's input, the autoencoder bypassing the pooled rows.
    X, y = digits
    spy = _RowSpy(monkeypatch, "pool")
    forward = _RowSpy(monkeypatch, "forward")
    clf = _est(hidden_layer_sizes=(20, 20), pretrain=True, pretrain_epochs=3).fit(X, y)
    assert [type(l).__name__ for l in clf.module_.hidden] == ["PredictedLinear"] * 2
    assert spy.rows == [len(X), len(X), len(X)]
    # forward ran once, on all rows: layer 1's activations, layer 2's input;
    # never on a minibatch (fine-tuning runs layer 2 on layer 1's output,
    # which changes, so its forward is expected there: 12 batches of 50)
    assert forward.rows == [len(X)] + [50] * 12 * 4
    phases = [r["phase"] for r in clf.history_]
    assert phases == ["pretrain layer 1"] * 3 + ["pretrain layer 2"] * 3 + ["fine-tune"] * 4


def test_pooled_pretraining_equals_pretraining_on_x(digits, monkeypatch):
    # Reference: the same fit with nothing pooled (pool_once returns None)
    # and the layers on their pooling ordering: equal to float32 rounding.
    from skpred import _mlp

    X, y = digits
    monkeypatch.setattr(PredictedLinear, "_route", lambda self, *args: "pool")
    kw = dict(hidden_layer_sizes=(20, 20), pretrain=True, pretrain_epochs=3)
    pooled = _est(**kw).fit(X, y)
    monkeypatch.setattr(_mlp, "pool_once", lambda *args: None)
    spy = _RowSpy(monkeypatch, "pool")
    direct = _est(**kw).fit(X, y)
    assert spy.rows == []
    losses = [[r["train_loss"] for r in est.history_] for est in (pooled, direct)]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    np.testing.assert_allclose(pooled.predict_proba(X), direct.predict_proba(X), atol=1e-4)
