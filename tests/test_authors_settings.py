"""PAPER_MLP_SETTINGS against the authors' released code, one setting at a time.

Sources (github.com/mdenil/parameter_prediction, examples/multijob/mnist_0001;
the file and line of each value are in docs/authors_settings.md):
max_col_norm 1.9365 on the learned matrix of the layer after the fixed
dictionary layer; pylearn2's WeightDecay ``5e-5 * sum(W^2)`` on every layer,
softmax included; pretraining by SGD with a sigmoid decoder tied to the
encoder, no decoder bias, each column reconstructing the input; the
dictionary layer ``U = K[:, alpha]`` with no ridge; ``irange`` 0.1 for the
hidden layers and 0.02 for the softmax layer.

Each test checks the behaviour against a reference computed here from those
formulas (numpy, or torch autograd of the formula written out), not through
the helpers the estimator calls.
"""
import numpy as np
import pytest
import torch

from skpred import PAPER_MLP_SETTINGS, PredictedMLPClassifier
from skpred._pretrain import fit_tied_autoencoder
from skpred.nn import PredictedLinear


def _data(n=100, d=64, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.rand(n, d).astype(np.float32)
    y = np.arange(n) % 3
    return X, y


def _small_paper(**kw):
    params = dict(PAPER_MLP_SETTINGS, hidden_layer_sizes=(20, 20), image_shape=(8, 8),
                  dictionary=("se", "emp"), alpha_fraction=0.25, n_columns=2,
                  pretrain_epochs=1, max_iter=1, device="cpu", random_state=0)
    params.update(kw)
    return PredictedMLPClassifier(**params)


def test_the_named_setting_is_the_authors():
    """Breakage caught: a value of the named setting drifting from the
    authors' files (the issue's table)."""
    p = PAPER_MLP_SETTINGS
    assert p["hidden_layer_sizes"] == (500, 500) and p["activation"] == "logistic"
    assert p["max_norm"] == 1.9365 and p["max_norm_on"] == "V"
    # WeightDecay coeff 5e-5 on sum(W^2): gradient 1e-4 W on the batch-mean
    # loss; scikit-learn's alpha penalises 0.5 * alpha * ||W||^2 / batch
    assert p["alpha"] / p["batch_size"] == pytest.approx(2 * 5e-5)
    assert (p["solver"], p["learning_rate_init"], p["momentum"], p["nesterovs_momentum"]) == \
        ("sgd", 0.01, 0.7, False)
    assert (p["learning_rate"], p["learning_rate_decay"], p["batch_size"]) == ("decay", 1.00004, 100)
    assert p["max_iter"] == 100 and p["n_iter_no_change"] == np.inf  # all 100 epochs
    assert (p["pretrain"], p["pretrain_epochs"], p["pretrain_learning_rate"],
            p["pretrain_recipe"]) == (True, 50, 0.1, "authors")
    assert p["init"] == "authors" and p["ridge"] is None


@pytest.mark.parametrize("on", ["V", "W"])
def test_max_norm_caps_what_it_names(on):
    """Breakage caught: the cap applied to W = U V where the authors cap V
    (a tighter bound, since ||U v|| exceeds ||v|| for se), or the reverse."""
    clf = _small_paper(max_norm=0.5, max_norm_on=on, pretrain=False, max_iter=3,
                       learning_rate_init=0.5)
    X, y = _data()
    clf.fit(X, y)
    layer = clf.module_.hidden[0]
    V = layer.V.detach().numpy()                     # (C, a, m)
    U = layer.dictionaries.detach().numpy()          # (C, n_in, a)
    W = np.concatenate([U[c] @ V[c] for c in range(V.shape[0])], axis=1)  # (n_in, out)
    v_norms = np.linalg.norm(V, axis=1).ravel()
    w_norms = np.linalg.norm(W, axis=0)
    if on == "V":
        assert v_norms.max() <= 0.5 * (1 + 1e-5)
        assert w_norms.max() > 0.5 * 1.05  # W is not what is capped
    else:
        assert w_norms.max() <= 0.5 * (1 + 1e-5)
    # the second layer (emp) and a dense layer obey the same rule
    assert np.linalg.norm(clf.module_.hidden[1].V.detach().numpy(), axis=1).max() <= (
        0.5 * (1 + 1e-5) if on == "V" else np.inf)


def test_max_norm_on_is_validated():
    with pytest.raises(ValueError, match="max_norm_on"):
        _small_paper(max_norm_on="U").fit(*_data())


def test_weight_decay_gradient_is_1e_4_W():
    """One SGD step on one batch of 100 with the setting's alpha, against the
    same step without it: the difference is lr * 1e-4 * W on every learned
    matrix (V of both predicted layers and the softmax W), none on biases
    (pylearn2's WeightDecay: d/dW 5e-5 sum(W^2) = 1e-4 W).

    Breakage caught: the decay halved (torch's weight_decay=5e-5) or not
    applied to the output layer."""
    X, y = _data(100)
    lr = 0.5
    fits = {}
    for alpha in (0.0, PAPER_MLP_SETTINGS["alpha"]):
        clf = _small_paper(alpha=alpha, pretrain=False, max_norm=None, momentum=0.0,
                           learning_rate="constant", learning_rate_decay=1.0,
                           learning_rate_init=lr, shuffle=False)
        clf.partial_fit(X, y, classes=np.arange(3))
        fits[alpha] = clf
    a, b = fits[0.0].module_, fits[PAPER_MLP_SETTINGS["alpha"]].module_
    # the initial weights (same seed): a step of size ~0
    init = _small_paper(pretrain=False, max_norm=None, momentum=0.0, learning_rate="constant",
                        learning_rate_decay=1.0, learning_rate_init=1e-30, alpha=0.0)
    init.partial_fit(X, y, classes=np.arange(3))
    c = init.module_
    for (name, pa), (_, pb), (_, p0) in zip(a.named_parameters(), b.named_parameters(),
                                            c.named_parameters()):
        if not pa.requires_grad:
            continue
        diff = (pa - pb).detach().numpy()
        expected = 0.0 if name.endswith("bias") else lr * 1e-4 * p0.detach().numpy()
        np.testing.assert_allclose(diff, expected, rtol=2e-3, atol=1e-8, err_msg=name)


def _reference_authors_loss(x, U, V, b):
    """sum_c sum_i (sigmoid(sigmoid(x U_c V_c + b_c) (U_c V_c)^T)_i - x_i)^2,
    mean over the batch: each column reconstructs x alone, no decoder bias."""
    total = 0.0
    for c in range(V.shape[0]):
        W_c = U[c] @ V[c]                                  # (n_in, m)
        h = torch.sigmoid(x @ W_c + b[c])
        total = total + ((torch.sigmoid(h @ W_c.T) - x) ** 2).sum(1)
    return total.mean()


def test_authors_pretraining_step_is_the_formula():
    """One step of the authors' recipe (SGD, first step = lr * gradient) moves
    V and the bias by the gradient of the loss written out above.

    Breakage caught: a decoder bias, a linear decoder, one joint
    reconstruction over all columns, or a mean instead of a sum over inputs."""
    torch.manual_seed(0)
    n_in, C, a, m = 16, 2, 4, 3
    U = torch.rand(C, n_in, a, dtype=torch.float64)
    layer = PredictedLinear(n_in, C * m, U, dtype=torch.float64)
    with torch.no_grad():
        layer.V.uniform_(-0.1, 0.1)
        layer.bias.uniform_(-0.1, 0.1)
    V0, b0 = layer.V.detach().clone(), layer.bias.detach().clone()
    x = torch.rand(10, n_in, dtype=torch.float64)
    lr = 0.1
    fit_tied_autoencoder(layer, x, torch.sigmoid, epochs=1, batch_size=10, learning_rate=lr,
                         generator=torch.Generator().manual_seed(0), recipe="authors",
                         momentum=0.7, learning_rate_decay=1.00004)
    V, b = V0.clone().requires_grad_(), b0.clone().requires_grad_()
    loss = _reference_authors_loss(x, U, V, b.view(C, m))
    gV, gb = torch.autograd.grad(loss, (V, b))
    torch.testing.assert_close(layer.V.detach(), V0 - lr * gV)
    torch.testing.assert_close(layer.bias.detach(), b0 - lr * gb)


def test_authors_pretraining_rate_decays_per_minibatch():
    """The second step's rate is lr / 1.00004 (their ExponentialDecay per
    minibatch): two steps of SGD with momentum 0.7 written out."""
    torch.manual_seed(1)
    n_in, a, m = 9, 3, 2
    U = torch.rand(1, n_in, a, dtype=torch.float64)
    layer = PredictedLinear(n_in, m, U, dtype=torch.float64)
    x = torch.rand(8, n_in, dtype=torch.float64)
    V, b = layer.V.detach().clone(), layer.bias.detach().clone()
    lr, mu, decay = 0.1, 0.7, 1.5
    fit_tied_autoencoder(layer, x, torch.sigmoid, epochs=1, batch_size=4, learning_rate=lr,
                         generator=torch.Generator().manual_seed(3), recipe="authors",
                         momentum=mu, learning_rate_decay=decay)
    # the batches the loop drew: same generator, same permutation
    order = torch.randperm(8, generator=torch.Generator().manual_seed(3))
    buf = None
    for step, rows in enumerate((order[:4], order[4:])):
        Vg, bg = V.clone().requires_grad_(), b.clone().requires_grad_()
        gV, gb = torch.autograd.grad(_reference_authors_loss(x[rows], U, Vg, bg.view(1, m)),
                                     (Vg, bg))
        buf = (gV, gb) if buf is None else (mu * buf[0] + gV, mu * buf[1] + gb)
        rate = lr / decay ** step
        V, b = V - rate * buf[0], b - rate * buf[1]
    torch.testing.assert_close(layer.V.detach(), V)
    torch.testing.assert_close(layer.bias.detach(), b)


def test_se_dictionary_without_ridge_is_kernel_columns():
    """ridge=None on se: U = K[:, alpha] (the authors' SubsampledDictionaryLayer),
    K(i, j) = exp(-||p_i - p_j||^2 / 2) on pixel coordinates (length scale 1),
    computed here from the coordinates.

    Breakage caught: a kernel ridge solve where the setting has none."""
    clf = _small_paper(pretrain=False, max_iter=1)
    clf.fit(*_data())
    layer = clf.module_.hidden[0]
    U = layer.dictionaries.detach().numpy()
    rows, cols = np.divmod(np.arange(64), 8)
    for c, alpha in enumerate(clf.dictionaries_[0].alpha_indices_):
        d2 = (rows[:, None] - rows[alpha][None]) ** 2 + (cols[:, None] - cols[alpha][None]) ** 2
        np.testing.assert_allclose(U[c], np.exp(-d2 / 2.0), atol=1e-6)
    assert clf.layers_[0]["ridge"] is None


def test_authors_initialisation():
    """init="authors": V, the dense W and the softmax W uniform on (-0.1, 0.1)
    and (-0.02, 0.02), unscaled by the dictionary; biases zero.

    Breakage caught: V rescaled for W's variance (the Glorot rule) under the
    authors' setting, or nonzero initial biases."""
    clf = _small_paper(hidden_layer_sizes=(200, 200), dictionary=("se", None), pretrain=False,
                       max_iter=1, learning_rate_init=1e-30)
    X, y = _data(100)
    clf.partial_fit(X, y, classes=np.arange(3))
    hidden0, hidden1, out = clf.module_.hidden[0], clf.module_.hidden[1], clf.module_.output
    for p, r in ((hidden0.V, 0.1), (hidden1.weight, 0.1), (out.weight, 0.02)):
        w = p.detach().numpy().ravel()
        assert np.abs(w).max() <= r
        # a uniform's standard deviation r / sqrt(3); thousands of draws
        assert abs(w.std() - r / np.sqrt(3)) < 0.05 * r
    for p in (hidden0.bias, hidden1.bias, out.bias):
        assert np.abs(p.detach().numpy()).max() < 1e-20


def test_uniform_kind_is_the_authors_randfixu():
    """``dictionary="uniform"``: U fixed, entries uniform on (-0.1, 0.1)
    (their low_rank_mlp.py, irange 0.1); the paper's Gaussian stays "random".

    Breakage caught: RandFixU's U drawn Gaussian under the authors' name."""
    from skpred import KernelDictionary

    X = np.random.RandomState(0).rand(50, 400)
    U = KernelDictionary("uniform", alpha_fraction=0.5, random_state=0).fit(X).dictionaries_[0]
    assert U.shape == (400, 200)
    assert np.abs(U).max() <= 0.1 and np.abs(U).max() > 0.099
    # a uniform, not a Gaussian: kurtosis 1.8 (a Gaussian's is 3)
    kurtosis = np.mean(U ** 4) / np.mean(U ** 2) ** 2
    assert abs(kurtosis - 1.8) < 0.05


def test_authors_ae_dictionary_atoms_are_raw_and_start_at_irange_0_001():
    """The SE-AE dictionary under the authors' recipe: the encoder's weights
    as they are (not normalised), initialised uniform(-0.001, 0.001)
    (learn_dict_layer2.yaml); the default recipe's atoms have unit norm."""
    from skpred._pretrain import autoencoder_atoms

    X = np.random.RandomState(0).rand(200, 30).astype(np.float32)
    start = autoencoder_atoms(X, 8, epochs=0, random_state=np.random.RandomState(0),
                              device="cpu", recipe="authors")
    assert np.abs(start).max() <= 0.001 and np.abs(start).max() > 0.0009
    trained = autoencoder_atoms(X, 8, epochs=2, random_state=np.random.RandomState(0),
                                device="cpu", recipe="authors")
    norms = np.linalg.norm(trained, axis=0)
    assert not np.allclose(norms, 1.0) and not np.allclose(trained, start)
    ours = autoencoder_atoms(X, 8, epochs=2, random_state=np.random.RandomState(0), device="cpu")
    np.testing.assert_allclose(np.linalg.norm(ours, axis=0), 1.0, rtol=1e-6)


def test_momentum_rises_as_pylearn2s_momentum_adjustor():
    """MomentumAdjustor(start=1, saturate=250, final=0.7) from 0.5: linear in
    the epoch, 0.5 at epoch 1, 0.7 from epoch 250 (pylearn2's rule, written
    out here)."""
    from types import SimpleNamespace

    from skpred._pretrain import MomentumRamp

    ramp = MomentumRamp(0.5, 0.7, 1, 250)
    group = {"momentum": 0.0}
    loop = SimpleNamespace(optimizer=SimpleNamespace(param_groups=[group]), epoch=0)
    for epoch, expected in ((1, 0.5), (2, 0.5 + 0.2 / 249), (50, 0.5 + 0.2 * 49 / 249),
                            (250, 0.7), (400, 0.7)):
        loop.epoch = epoch
        ramp.on_epoch_begin(loop)
        assert group["momentum"] == pytest.approx(expected)


def test_pretrain_recipe_is_validated():
    with pytest.raises(ValueError, match="pretrain_recipe"):
        _small_paper(pretrain_recipe="sgd").fit(*_data())
    with pytest.raises(ValueError, match="init"):
        _small_paper(init="he").fit(*_data())


def test_authors_pretraining_uneven_columns_is_the_formula():
    """Columns of unequal size (7 units in 2 columns: 4 and 3) take the
    per-column path; the step is the written-out formula's too."""
    torch.manual_seed(2)
    n_in, a = 12, 3
    U = torch.rand(2, n_in, a, dtype=torch.float64)
    layer = PredictedLinear(n_in, 7, U, dtype=torch.float64)
    assert layer.column_sizes == [4, 3]
    Vs = [V.detach().clone() for V, _, _ in layer._groups()]
    b0 = layer.bias.detach().clone()
    x = torch.rand(6, n_in, dtype=torch.float64)
    fit_tied_autoencoder(layer, x, torch.sigmoid, epochs=1, batch_size=6, learning_rate=0.1,
                         generator=torch.Generator().manual_seed(0), recipe="authors")
    V0, V1 = (V.clone().requires_grad_() for V in Vs)
    b = b0.clone().requires_grad_()
    total = 0.0
    for c, (Vc, bc) in enumerate(((V0[0], b[:4]), (V1[0], b[4:]))):
        W_c = U[c] @ Vc
        h = torch.sigmoid(x @ W_c + bc)
        total = total + ((torch.sigmoid(h @ W_c.T) - x) ** 2).sum(1)
    grads = torch.autograd.grad(total.mean(), (V0, V1, b))
    for (V, _, _), V_start, g in zip(layer._groups(), (V0, V1), grads):
        torch.testing.assert_close(V.detach(), V_start.detach() - 0.1 * g)
    torch.testing.assert_close(layer.bias.detach(), b0 - 0.1 * grads[2])
