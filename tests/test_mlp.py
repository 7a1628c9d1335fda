"""PredictedMLPClassifier: training, dictionaries, counts, persistence, bad input."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from skpred import PredictedMLPClassifier
from skpred.nn import LowRankLinear, PredictedLinear

pytestmark = pytest.mark.usefixtures("quiet_convergence")

# Cheap, fast settings shared by most tests (Adam converges in few epochs).
FAST = dict(solver="adam", learning_rate_init=0.01, pretrain_epochs=5, device="cpu")


@pytest.fixture(scope="module")
def split(digits):
    X, y = digits
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def two_layer(split):
    """The paper's (se, emp) sigmoid network, small; never mutated by tests."""
    X_tr, _, y_tr, _ = split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return PredictedMLPClassifier(
            (60, 40), activation="sigmoid", dictionary=("se", "emp"), n_columns=(2, 4),
            alpha_fraction=(0.25, 0.5), max_iter=40, random_state=0, **FAST
        ).fit(X_tr, y_tr)


# Accuracy floors on held-out digits (30%), one hidden layer of 64 units,
# alpha_fraction 0.25, 40 Adam epochs, seed 0. Measured accuracies at the
# time of writing (seeds 0 and 1): se .93/.92, emp .94/.94, emp2 .93/.92,
# ae .83 (seed 0), random .88/.83, randcon .80/.83, dct .78/.77, lowrank .95/.94,
# dense .98/.98. The floors leave room for BLAS differences between machines.
FLOORS = {
    "se": 0.88, "emp": 0.88, "emp2": 0.88, "ae": 0.78, "random": 0.78,
    "randcon": 0.74, "dct": 0.70, "lowrank": 0.88, None: 0.93,
}


@pytest.mark.parametrize("dictionary", list(FLOORS), ids=str)
def test_every_dictionary_trains_on_digits(split, dictionary):
    X_tr, X_te, y_tr, y_te = split
    clf = PredictedMLPClassifier(
        (64,), dictionary=dictionary, alpha_fraction=0.25, max_iter=40, random_state=0, **FAST
    ).fit(X_tr, y_tr)
    assert clf.score(X_te, y_te) > FLOORS[dictionary]
    layer = clf.module_.hidden[0]
    expected = {None: torch.nn.Linear, "lowrank": LowRankLinear}.get(dictionary, PredictedLinear)
    assert type(layer) is expected
    if dictionary not in (None, "lowrank"):
        assert clf.dictionaries_[0].kernel == dictionary
        assert clf.fraction_learned_ == pytest.approx(0.25)
    elif dictionary is None:
        assert clf.fraction_learned_ == 1.0 and clf.n_static_params_ == 0
    else:  # rank chosen so the learned share matches alpha_fraction
        assert clf.fraction_learned_ == pytest.approx(0.25, rel=0.1)


def test_default_se_emp_network_trains(split, two_layer):
    _, X_te, _, y_te = split
    assert two_layer.dictionaries_[0].kernel == "se"
    assert two_layer.dictionaries_[1].kernel == "emp"
    assert two_layer.score(X_te, y_te) > 0.85  # measured 0.91


def test_full_raw_se_matches_dense(split):
    """alpha = 1, raw se: U is invertible, so the model class is the dense one.

    Breakage caught: a full-fraction se layer that cannot represent some
    dense weights (U singular, columns mixed up, the bias lost). Reference:
    a trained dense network; solving U_c V_c = W_c column by column with
    numpy and loading V into the se network must give the dense network's
    predictions (a comparison of trained accuracies would measure the
    optimiser, which U reshapes, not the model class).
    """
    X_tr, X_te, y_tr, y_te = split
    common = dict(alpha_fraction=1.0, max_norm=None, random_state=0, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        se = PredictedMLPClassifier((64,), dictionary="se", ridge=None, max_iter=1,
                                    **common).fit(X_tr, y_tr)
        dense = PredictedMLPClassifier((64,), dictionary=None, max_iter=60,
                                       **common).fit(X_tr, y_tr)
    layer = se.module_.hidden[0]
    Us = [U.astype(np.float64) for U in se.dictionaries_[0].dictionaries_]
    assert all(np.linalg.matrix_rank(U) == 64 for U in Us)
    W = dense.coefs_[0].astype(np.float64)  # (64 inputs, 64 units)
    starts = np.cumsum([0] + layer.column_sizes)
    V = np.stack([np.linalg.solve(U, W[:, a:b]) for U, a, b in zip(Us, starts, starts[1:])])
    with torch.no_grad():
        layer.V.copy_(torch.as_tensor(V, dtype=layer.V.dtype))
        layer.bias.copy_(dense.module_.hidden[0].bias)
        se.module_.output.load_state_dict(dense.module_.output.state_dict())
    np.testing.assert_allclose(se.predict_proba(X_te), dense.predict_proba(X_te), atol=1e-3)
    assert se.score(X_te, y_te) == dense.score(X_te, y_te)


def test_grid_search_in_pipeline_with_two_jobs(digits):
    X, y = digits
    pipe = make_pipeline(
        MinMaxScaler(),
        PredictedMLPClassifier((32,), dictionary="se", max_iter=10, random_state=0, **FAST),
    )
    grid = GridSearchCV(
        pipe,
        {"predictedmlpclassifier__alpha_fraction": [0.25, 0.5],
         "predictedmlpclassifier__n_columns": [1, 2]},
        cv=2, n_jobs=2,
    )
    grid.fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_score_ > 0.7  # measured 0.86 with 10 epochs
    # set_params reached the network: every cell's fitted layer has its own
    # fraction and columns (a no-op set_params would leave 0.25 / "auto")
    best, params = grid.best_estimator_[-1], grid.best_params_
    assert best.fraction_learned_ == params["predictedmlpclassifier__alpha_fraction"]
    assert best.layers_[0]["n_columns"] == params["predictedmlpclassifier__n_columns"]
    for cell in grid.cv_results_["params"]:
        est = make_pipeline(MinMaxScaler(), PredictedMLPClassifier(
            (32,), dictionary="se", max_iter=1, random_state=0, **FAST))
        est.set_params(**cell).fit(X[:200], y[:200])
        assert est[-1].fraction_learned_ == cell["predictedmlpclassifier__alpha_fraction"]
        assert est[-1].module_.hidden[0].n_columns == cell["predictedmlpclassifier__n_columns"]


def test_grid_search_in_worker_processes_gives_the_same_scores(digits):
    """Fits in joblib's worker processes (n_jobs=2) score as in this process:
    seeding flows from random_state alone, no global state. Breakage
    caught: a global torch seed or generator, or state shared between fits
    (either changes the initialisation, alpha or the batch order, and the
    log loss by far more than the tolerance below).

    The workers run with other thread limits than this process (joblib caps
    each at cores / n_jobs), and float32 sums in another order round
    differently, so the comparison is on a continuous score (log loss) at a
    float32-rounding tolerance, not on bit-equal accuracies."""
    X, y = digits
    grid = {"alpha_fraction": [0.25, 0.5], "n_columns": [1, 2]}
    est = PredictedMLPClassifier((16,), dictionary="se", max_iter=3, random_state=0, **FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        here = GridSearchCV(est, grid, cv=2, n_jobs=1, scoring="neg_log_loss").fit(X[:600], y[:600])
        there = GridSearchCV(est, grid, cv=2, n_jobs=2, scoring="neg_log_loss").fit(X[:600], y[:600])
    for k in range(2):
        np.testing.assert_allclose(here.cv_results_[f"split{k}_test_score"],
                                   there.cv_results_[f"split{k}_test_score"], rtol=1e-4)
    # and the cells differ from each other by far more than that tolerance
    scores = here.cv_results_["split0_test_score"]
    assert np.min(np.abs(np.subtract.outer(scores, scores))[~np.eye(len(scores), dtype=bool)]) > 1e-3


def test_layer2_emp_kernel_comes_from_layer1_activations(digits):
    """Layer 2's emp dictionaries are kernel ridge predictors over the
    covariance of the (pretrained) layer 1's activations on the training data.

    Reference, in numpy float64 only: H = relu(X W1 + b1) with W1 = [U_c V_c]
    assembled from layer 1's dictionaries and V; K = centred covariance of H
    over samples (denominator n - 1); ridge = 0.01 * mean(diag K) (the
    documented "auto" for data kernels); U_c = K[:, a] (K[a, a] + ridge I)^-1
    by np.linalg.solve, a = column c's sorted alpha. Breakage caught: the
    kernel taken from pre-activations, or from layer 1 before pretraining;
    an uncentred covariance, or one divided by n; an absolute (unscaled)
    ridge; U's atoms out of alpha's order; columns' alphas mixed up."""
    X, y = digits
    # A learning rate of 1e-12 leaves the pretrained layer 1 as it was when
    # layer 2's kernel was computed, so the kernel can be recomputed here.
    clf = PredictedMLPClassifier(
        (32, 16), dictionary=("se", "emp"), solver="sgd", learning_rate_init=1e-12,
        max_iter=1, pretrain_epochs=3, random_state=0, device="cpu",
    ).fit(X, y)
    assert clf.activation == "relu"
    layer1, layer2 = clf.module_.hidden
    V1 = layer1.V.detach().double().numpy()
    W1 = np.concatenate([np.asarray(U, dtype=np.float64) @ V1[c]
                         for c, U in enumerate(clf.dictionaries_[0].dictionaries_)], axis=1)
    H = np.maximum(X.astype(np.float64) @ W1 + layer1.bias.detach().double().numpy(), 0.0)
    Hc = H - H.mean(axis=0)
    K = Hc.T @ Hc / (len(H) - 1)
    ridge = 0.01 * np.mean(np.diag(K))
    kd = clf.dictionaries_[1]
    assert kd.ridge_ == pytest.approx(ridge, rel=1e-4)
    assert len(kd.dictionaries_) == 4  # n_columns="auto": largest divisor of 16 up to 4
    expected = []
    for c, alpha in enumerate(kd.alpha_indices_):
        # round(0.25 * 32) = 8 distinct sorted locations
        assert len(alpha) == 8 and np.all(np.diff(alpha) > 0) and 0 <= alpha[0] <= alpha[-1] < 32
        U = np.linalg.solve(K[np.ix_(alpha, alpha)] + ridge * np.eye(8), K[alpha, :]).T
        expected.append(U)
        np.testing.assert_allclose(kd.dictionaries_[c], U, rtol=1e-4, atol=1e-4 * np.abs(U).max())
        # and the layer computes with it
        np.testing.assert_allclose(layer2.dictionaries[c].double().numpy(), U, rtol=1e-4,
                                   atol=1e-4 * np.abs(U).max())
    # pretraining ran: layer 1 is marked pretrained, and layer 2's kernel
    # differs from the one the unpretrained (random) layer 1 gives
    assert clf.layers_[0]["pretrained"] and not clf.layers_[1]["pretrained"]
    raw = PredictedMLPClassifier(
        (32, 16), dictionary=("se", "emp"), solver="sgd", learning_rate_init=1e-12,
        max_iter=1, pretrain=False, random_state=0, device="cpu",
    ).fit(X, y)
    U_raw = raw.dictionaries_[1].dictionaries_[0]
    assert np.abs(U_raw - kd.dictionaries_[0]).max() > 0.1 * np.abs(expected[0]).max()


def test_dictionaries_stay_frozen_during_training(split, two_layer):
    X_tr, _, y_tr, _ = split
    clf = PredictedMLPClassifier((64,), dictionary="se", max_iter=3, random_state=0, **FAST)
    clf.fit(X_tr, y_tr)
    U_built = clf.dictionaries_[0].dictionaries_[0]
    V_before = clf.module_.hidden[0].V.detach().clone()
    clf.partial_fit(X_tr, y_tr)
    layer = clf.module_.hidden[0]
    np.testing.assert_allclose(layer.dictionaries[0].numpy(), U_built, rtol=1e-6, atol=1e-7)
    assert not torch.equal(layer.V, V_before)  # V did train
    for i, layer in enumerate(two_layer.module_.hidden):
        for c, U in enumerate(two_layer.dictionaries_[i].dictionaries_):
            np.testing.assert_allclose(layer.dictionaries[c].numpy(), U, rtol=1e-6, atol=1e-7)


def test_counts_and_fraction_learned_match_hand_computation(two_layer):
    # layer 1: 64 -> 60, 2 columns of 30 units, round(0.25 * 64) = 16 atoms
    # layer 2: 60 -> 40, 4 columns of 10 units, round(0.5 * 60) = 30 atoms
    dyn1, dyn2 = 2 * 16 * 30, 4 * 30 * 10
    assert two_layer.n_dynamic_params_ == dyn1 + dyn2
    assert two_layer.n_static_params_ == 2 * 64 * 16 + 4 * 60 * 30
    assert two_layer.fraction_learned_ == pytest.approx((dyn1 + dyn2) / (64 * 60 + 60 * 40))
    shapes = [c.shape for c in two_layer.coefs_]
    assert shapes == [(64, 60), (60, 40), (40, 10)]
    assert [b.shape for b in two_layer.intercepts_] == [(60,), (40,), (10,)]


def test_coefs_are_the_full_predicted_weights(split, two_layer):
    X_tr, X_te, *_ = split
    h = X_te.astype(np.float64)
    for W, b in zip(two_layer.coefs_[:-1], two_layer.intercepts_[:-1]):
        h = 1 / (1 + np.exp(-(h @ W + b)))
    logits = h @ two_layer.coefs_[-1] + two_layer.intercepts_[-1]
    np.testing.assert_allclose(
        two_layer.predict_log_proba(X_te),
        logits - np.log(np.exp(logits).sum(1, keepdims=True)), atol=1e-4,
    )


def test_same_seed_same_predictions(split):
    X_tr, X_te, y_tr, _ = split
    params = dict(dictionary=("se", "emp"), max_iter=3, **FAST)
    a = PredictedMLPClassifier((32, 16), random_state=3, **params).fit(X_tr, y_tr)
    b = PredictedMLPClassifier((32, 16), random_state=3, **params).fit(X_tr, y_tr)
    c = PredictedMLPClassifier((32, 16), random_state=4, **params).fit(X_tr, y_tr)
    np.testing.assert_array_equal(a.predict_proba(X_te), b.predict_proba(X_te))
    assert not np.array_equal(a.predict_proba(X_te), c.predict_proba(X_te))


def test_partial_fit_and_warm_start_continue_training(split):
    X_tr, _, y_tr, _ = split
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        PredictedMLPClassifier((16,), dictionary="se", **FAST).partial_fit(X_tr, y_tr)
    pf = PredictedMLPClassifier((32,), dictionary="se", random_state=0, **FAST)
    # first chunk lacks class 9: classes= still makes it a class
    first = y_tr != 9
    pf.partial_fit(X_tr[first], y_tr[first], classes=np.arange(10))
    assert list(pf.classes_) == list(range(10))
    for _ in range(4):
        pf.partial_fit(X_tr, y_tr)
    assert pf.n_iter_ == 5 and len(pf.loss_curve_) == 5
    assert pf.loss_curve_[-1] < pf.loss_curve_[1]

    ws = PredictedMLPClassifier((32,), dictionary="se", max_iter=3, warm_start=True,
                                random_state=0, **FAST).fit(X_tr, y_tr)
    U0 = ws.module_.hidden[0].U.clone()
    loss_after_first = ws.loss_curve_[-1]
    ws.fit(X_tr, y_tr)
    assert len(ws.loss_curve_) == 6 and ws.loss_curve_[-1] < loss_after_first
    assert torch.equal(ws.module_.hidden[0].U, U0)  # same dictionaries reused


def test_early_stopping_restores_best_epoch(split):
    X_tr, _, y_tr, _ = split
    clf = PredictedMLPClassifier(
        (32,), dictionary="se", early_stopping=True, n_iter_no_change=3, max_iter=60,
        learning_rate_init=0.05, solver="adam", device="cpu", random_state=0,
    ).fit(X_tr, y_tr)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ and clf.best_validation_score_ == max(scores)
    # early stopping fired (not max_iter), and the restored epoch is not the
    # last one: the best came more than n_iter_no_change epochs before it
    assert clf.n_iter_ < 60
    assert int(np.argmax(scores)) < len(scores) - 3
    # rebuild the same stratified split to score the restored weights
    from sklearn.model_selection import train_test_split as tts

    rng = np.random.RandomState(0)
    rng.randint(0, 2**31 - 1)  # the torch generator's seed is drawn first
    _, val_idx = tts(np.arange(len(y_tr)), test_size=0.1, stratify=np.searchsorted(clf.classes_, y_tr),
                     random_state=rng)
    assert clf.score(X_tr[val_idx], y_tr[val_idx]) == pytest.approx(clf.best_validation_score_)


def test_string_labels_float64_and_large_predict(split):
    X_tr, X_te, y_tr, y_te = split
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = PredictedMLPClassifier((32,), dictionary="se", max_iter=10, random_state=0, **FAST)
    clf.fit(X_tr.astype(np.float64), names[y_tr])
    assert set(clf.predict(X_te)) <= set(names)
    assert clf.score(X_te, names[y_te]) > 0.8
    big = np.tile(X_te, (10, 1))  # 5400 rows: more than one prediction chunk
    proba = clf.predict_proba(big)
    np.testing.assert_allclose(proba[:len(X_te)], clf.predict_proba(X_te), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_pickle_and_joblib_round_trip(tmp_path, split, two_layer):
    _, X_te, _, _ = split
    path = tmp_path / "model.joblib"
    joblib.dump(two_layer, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X_te), two_layer.predict_proba(X_te))
    # (a model fitted on a GPU loading where CUDA is hidden: tests/test_gpu.py)
    assert next(loaded.module_.parameters()).device.type == "cpu"
    again = pickle.loads(pickle.dumps(two_layer))
    np.testing.assert_array_equal(again.predict(X_te), two_layer.predict(X_te))


def test_fitted_model_does_not_hold_the_training_data(digits):
    X, y = digits
    sizes = []
    for n in (600, 1500):
        clf = PredictedMLPClassifier((16,), dictionary="emp", max_iter=1, random_state=0, **FAST)
        sizes.append(len(pickle.dumps(clf.fit(X[:n], y[:n]))))
    # 900 more samples would add 900*64*4 = 230 kB if X were kept
    assert abs(sizes[1] - sizes[0]) < 10_000


def test_verbose_prints_every_epoch(split, capsys):
    # scikit-learn's format on stdout (side by side in test_sklearn_parity)
    X_tr, _, y_tr, _ = split
    PredictedMLPClassifier((8,), dictionary="se", max_iter=2, verbose=1, progress_bar=False,
                           random_state=0, **FAST).fit(X_tr, y_tr)
    out = capsys.readouterr().out
    assert sum(line.startswith("Iteration ") and "loss = " in line
               for line in out.splitlines()) == 2


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(alpha_fraction=0.0), "alpha_fraction"),
        (dict(alpha_fraction=(0.5, 1.2)), r"alpha_fraction of hidden layer 2 must be in \(0, 1\]"),
        (dict(n_columns=(1, 40)), "n_columns=40 exceeds the 30 units of hidden layer 2"),
        (dict(dictionary=("se", "emp", "emp")), "dictionary has 3 entries but hidden_layer_sizes has 2 layer"),
        (dict(alpha_fraction=(0.5,)), "alpha_fraction has 1 entries but hidden_layer_sizes has 2 layer"),
        (dict(dictionary="bogus"), "dictionary"),
        (dict(dictionary=("se", "bogus")), "dictionary of hidden layer 2 must be one of"),
        (dict(device="gpu"), "device must be"),
    ],
)
def test_bad_parameters(digits, params, match):
    X, y = digits
    clf = PredictedMLPClassifier((20, 30), max_iter=1, **{**FAST, **params})
    with pytest.raises(ValueError, match=match):
        clf.fit(X[:100], y[:100])


def test_bad_data(digits):
    X, y = digits
    clf = PredictedMLPClassifier((16,), dictionary="se", max_iter=1, **FAST)
    Xn = X[:50].copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(Xn, y[:50])
    Xn[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        clf.fit(Xn, y[:50])
    # one class is fitted, as scikit-learn's MLPClassifier does
    assert (clone(clf).fit(X[:50], np.zeros(50)).predict(X[:5]) == 0).all()
    with pytest.raises(ValueError, match="0 sample"):
        clf.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="not a perfect square"):
        clf.fit(X[:50, :60], y[:50])
    clf.fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="X has 60 features, but PredictedMLPClassifier is expecting 64"):
        clf.predict(X[:5, :60])
    # a CUDA device that does not exist, on any machine: "cuda" without a
    # GPU, or one index past the last GPU where there are some
    if torch.cuda.is_available():
        bad, match = f"cuda:{torch.cuda.device_count()}", "CUDA device"
    else:
        bad, match = "cuda", "CUDA is not available"
    with pytest.raises(ValueError, match=match):
        PredictedMLPClassifier((16,), dictionary="se", device=bad).fit(X[:50], y[:50])


def test_keyboard_interrupt_keeps_the_weights(split, monkeypatch):
    X_tr, _, y_tr, _ = split
    clf = PredictedMLPClassifier((16,), dictionary="se", max_iter=50, batch_size=100,
                                 random_state=0, **FAST)
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 30:  # inside the third epoch (13 batches per epoch)
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(X_tr, y_tr)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    assert clf.score(X_tr, y_tr) > 0.3  # trained weights kept, usable model


@pytest.mark.parametrize(
    "dictionary, pretrain",
    [((None, None), "auto"), (("se", "se"), "auto"), (("lowrank", "dct"), True),
     (("se", "randcon", "emp"), False), (("emp", None, "emp2"), "auto")],
    ids=str,
)
def test_deep_networks_of_mixed_layers(split, dictionary, pretrain):
    X_tr, X_te, y_tr, y_te = split
    sizes = (48, 32, 24)[: len(dictionary)]
    # relu: deep sigmoid stacks need far more epochs than a test can afford
    clf = PredictedMLPClassifier(sizes, dictionary=dictionary, pretrain=pretrain,
                                 activation="relu", alpha_fraction=0.5, max_iter=30,
                                 random_state=0, **FAST).fit(X_tr, y_tr)
    assert [c.shape for c in clf.coefs_][:-1] == list(zip((64,) + sizes[:-1], sizes))
    assert clf.score(X_te, y_te) > 0.9  # measured 0.95 to 0.97


@pytest.fixture(scope="module")
def central_claim_hits():
    """``hits(fold)``: per dictionary, whether each held-out digit of that
    fold is classified right (a boolean array of 599). At equal fraction
    learned (10%, 4 columns, defaults otherwise), one hidden layer of 64
    units, trained on the other two folds of a stratified 3-fold split of
    the 1797 digits (the held-out sets of folds 0 and 1 are disjoint:
    together 1198 independent test digits). Fitted once per module."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import StratifiedKFold

    X, y = load_digits(return_X_y=True)
    X = X / 16
    folds = list(StratifiedKFold(n_splits=3, shuffle=True, random_state=0).split(X, y))
    cache = {}

    def hits(fold):
        if fold not in cache:
            train, test = folds[fold]
            cache[fold] = {
                d: PredictedMLPClassifier((64,), dictionary=d, alpha_fraction=0.1,
                                          image_shape=(8, 8), random_state=fold, device="cpu")
                .fit(X[train], y[train]).predict(X[test]) == y[test]
                for d in ("se", "emp", "random", "randcon", None)}
        return cache[fold]

    return hits


# Held-out accuracies of the central-claim networks (folds 0 / 1, 599 test
# digits each; measured after the Glorot initialisation):
# emp .955 / .938, random .908 / .897, randcon .887 / .820, se .937 / .915,
# dense .975 / .970. Margins below are set so that the measured gap exceeds
# the margin by at least 3 standard errors of the gap, SE = sqrt(pA(1-pA)/n
# + pB(1-pB)/n) (the unpaired SE, larger than the paired one here).


@pytest.mark.parametrize("seed", [0, 1])
def test_the_papers_central_claim_at_tiny_scale(central_claim_hits, seed):
    """On each fold alone (n=599) the data-driven emp dictionary beats the
    random connections (randcon) at equal fraction learned. Breakage caught:
    dictionaries that stop mattering (e.g. U ignored, or every kind building
    the same U)."""
    acc = {d: hit.mean() for d, hit in central_claim_hits(seed).items()}
    # emp - randcon measured .0684 (fold 0) / .1185 (fold 1); SE .0155 /
    # .0185; margin .015 leaves 3.5 / 5.6 SE
    assert acc["emp"] >= acc["randcon"] + 0.015


def test_the_papers_central_claim_on_both_folds(central_claim_hits):
    """On both folds' held-out digits together (n=1198): emp beats the random
    dictionary and comes close to dense; se beats randcon (on 8x8 images se
    does not beat random: too small a grid for smoothness to matter, so se
    is only held to randcon). Breakage caught: as above, and a data-driven
    (emp) or smooth (se) dictionary that no longer helps."""
    hits = [central_claim_hits(fold) for fold in (0, 1)]
    acc = {d: np.mean(np.concatenate([h[d] for h in hits])) for d in hits[0]}
    assert len(np.concatenate([h["emp"] for h in hits])) == 1198
    # emp .9466, random .9023: gap .0442, SE .0108; margin .01 leaves 3.2 SE
    assert acc["emp"] >= acc["random"] + 0.01
    # se .9257, randcon .8531: gap .0726, SE .0127; margin .02 leaves 4.1 SE
    assert acc["se"] >= acc["randcon"] + 0.02
    # dense .9725, emp .9466: gap .0259, SE .0080; bound .06 leaves 4.2 SE
    assert acc["emp"] >= acc[None] - 0.06


def test_max_norm_caps_every_hidden_units_weights(split):
    """Breakage caught: the max-norm constraint not applied (or applied to
    V's columns instead of W's). Reference: the norms of coefs_ columns."""
    X_tr, _, y_tr, _ = split
    for dictionary in ("se", None, "lowrank"):
        clf = PredictedMLPClassifier((32, 16), dictionary=dictionary, max_norm=0.5,
                                     learning_rate_init=0.05, max_iter=5, random_state=0,
                                     **{k: v for k, v in FAST.items() if k != "learning_rate_init"}
                                     ).fit(X_tr, y_tr)
        for W in clf.coefs_[:-1]:
            assert np.linalg.norm(W, axis=0).max() <= 0.5 + 1e-4, dictionary
        free = PredictedMLPClassifier((32, 16), dictionary=dictionary, learning_rate_init=0.05,
                                      max_iter=5, random_state=0,
                                      **{k: v for k, v in FAST.items()
                                         if k != "learning_rate_init"}).fit(X_tr, y_tr)
        assert max(np.linalg.norm(W, axis=0).max() for W in free.coefs_[:-1]) > 0.5
