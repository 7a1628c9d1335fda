"""skpred.predict_parameters and skpred.parameter_report: parameter
prediction for any torch network (issue 28)."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from skpred import KernelDictionary, parameter_report, predict_parameters
from skpred.nn import PredictedConv2d, PredictedLinear


def _mlp():
    torch.manual_seed(0)  # test-only: torch's default init draws from its global RNG
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.Tanh(),
                         nn.Linear(16, 10))


@pytest.mark.parametrize("columns", [1, 4])
def test_a_full_rank_conversion_of_an_mlp_is_the_same_function(columns):
    """Breakage caught: V fitted to the wrong orientation of W (rows for
    columns), units assigned to the wrong column, the bias dropped, or the
    original model changed. Reference: the original network's outputs."""
    net = _mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(7, 64)
    converted = predict_parameters(net, alpha_fraction=1.0, n_columns=columns,
                                   input_shape=(8, 8), exclude=None, random_state=0)
    assert all(isinstance(converted[i], PredictedLinear) for i in (0, 2, 4))
    torch.testing.assert_close(converted(x), net(x), atol=1e-4, rtol=1e-4)
    for k, v in net.state_dict().items():  # the original is untouched
        torch.testing.assert_close(v, before[k])
    assert type(net[0]) is nn.Linear


@pytest.mark.parametrize("padding, stride, bias", [(1, 1, True), (0, 2, False),
                                                   ("same", 1, True)])
def test_a_full_rank_conversion_of_a_convolution_is_the_same_function(padding, stride, bias):
    """Breakage caught: the filter bank's rows in another order than the
    convolution's (channels-last against torch's channels-first), stride
    or padding not carried over, a missing or spurious bias. Reference:
    the original nn.Conv2d."""
    torch.manual_seed(1)  # test-only
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=padding, stride=stride, bias=bias),
                        nn.ReLU(), nn.Conv2d(6, 4, (3, 2), padding=padding, bias=bias))
    x = torch.randn(2, 3, 9, 9)
    converted = predict_parameters(net, alpha_fraction=1.0, n_columns=2, exclude=None,
                                   random_state=0)
    assert isinstance(converted[0], PredictedConv2d) and isinstance(converted[2], PredictedConv2d)
    assert (converted[0].bias is None) == (not bias)
    torch.testing.assert_close(converted(x), net(x), atol=1e-4, rtol=1e-4)


def test_ineligible_layers_are_kept_and_reported():
    """Breakage caught: a grouped convolution or a layer of a custom type
    converted (its weight layout is not W = U V's), or the report hiding
    that it was kept. Reference: the layers' own types."""
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(4))

        def forward(self, x):
            return x * self.weight

    net = nn.Sequential(nn.Conv2d(4, 8, 3, groups=2), nn.Flatten(), nn.Linear(8, 4), Scale(),
                        nn.Linear(4, 2))
    converted = predict_parameters(net, alpha_fraction=0.5, random_state=0)
    assert type(converted[0]) is nn.Conv2d and type(converted[3]) is Scale
    assert isinstance(converted[2], PredictedLinear) and type(converted[4]) is nn.Linear
    notes = {r["name"]: r.get("note", "") for r in parameter_report(converted).rows}
    assert "groups=2" in notes["0"] and "not an nn.Linear" in notes["3"]


def test_the_report_counts_what_the_layers_hold():
    """Breakage caught: U counted as trainable (it is a buffer), V or a
    bias missed, totals that are not the sums. Reference: the counts from
    the shapes, written out."""
    converted = predict_parameters(_mlp(), alpha_fraction=0.25, input_shape=(8, 8),
                                   random_state=0)
    report = parameter_report(converted)
    rows = {r["name"]: r for r in report.rows}
    a1 = 16  # 0.25 of 64 pixels
    assert rows["0"]["trainable"] == a1 * 32 + 32 and rows["0"]["fixed"] == 64 * a1
    a2 = 8  # 0.25 of 32 inputs
    assert rows["2"]["trainable"] == a2 * 16 + 16 and rows["2"]["fixed"] == 32 * a2
    assert rows["4"]["trainable"] == 16 * 10 + 10 and rows["4"]["fixed"] == 0
    assert report.trainable == sum(p.numel() for p in converted.parameters())
    assert report.fixed == 64 * a1 + 32 * a2
    assert "trainable%" in str(report)


def test_data_driven_dictionaries_equal_kernel_dictionary_on_the_layer_inputs():
    """Breakage caught: the layer's inputs recorded at the wrong place (the
    model's input, or the layer's output), in training mode, or only
    partly. Reference: KernelDictionary("emp") fitted on the layer's
    inputs computed by hand (ReLU of the first layer)."""
    net = _mlp()
    X = np.random.RandomState(0).rand(300, 64).astype(np.float32)
    converted = predict_parameters(net, alpha_fraction=0.25, dictionary="emp", data=X,
                                   exclude=["0", "4"], random_state=0, batch_size=128)
    with torch.no_grad():
        H = torch.relu(net[0](torch.as_tensor(X))).numpy()
    kd = KernelDictionary("emp", alpha_fraction=0.25, random_state=0).fit(H)
    np.testing.assert_allclose(converted[2].dictionaries[0].numpy(), kd.components_.T,
                               rtol=1e-4, atol=1e-5)


def test_bad_arguments_are_value_errors():
    """Breakage caught: a crash deep in torch or numpy for a wrong
    argument."""
    net = _mlp()
    for kwargs, match in [(dict(alpha_fraction=0), "alpha_fraction"),
                          (dict(n_columns=0), "n_columns"),
                          (dict(dictionary="nope"), "dictionary"),
                          (dict(dictionary="emp"), "give data"),
                          (dict(exclude=["nope"]), "exclude")]:
        with pytest.raises(ValueError, match=match):
            predict_parameters(net, **kwargs)
    with pytest.raises(ValueError, match="torch.nn.Module"):
        predict_parameters(np.zeros(3))
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="convolution"):
        predict_parameters(conv, dictionary="emp", data=np.zeros((4, 1, 3, 3), np.float32))


def _train(model, X, y, epochs=10):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for s in range(0, len(X), 64):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(X[s:s + 64]), y[s:s + 64])
            loss.backward()
            optimizer.step()
    return loss.item()


def test_a_converted_network_trains_in_a_plain_torch_loop(digits):
    """Breakage caught: U receiving gradient or changing, V frozen, or a
    converted network that cannot learn. Reference: the loss before and
    U's values before."""
    X, y = digits
    X, y = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    converted = predict_parameters(_mlp(), alpha_fraction=0.25, input_shape=(8, 8),
                                   random_state=0)
    U0, V0 = converted[0].U.clone(), converted[0].V.detach().clone()
    before = nn.functional.cross_entropy(converted(X), y).item()
    _train(converted, X, y)
    after = nn.functional.cross_entropy(converted(X), y).item()
    assert after < 0.5 * before
    torch.testing.assert_close(converted[0].U, U0)
    assert not torch.equal(converted[0].V.detach(), V0)


def test_a_converted_network_trains_inside_skorch(digits):
    """Breakage caught: a converted module that skorch cannot fit, clone or
    predict with (skorch re-initialises a module given as an instance only
    when asked; U must stay a buffer through its parameter handling).
    Reference: the accuracy of a constant prediction."""
    from skorch import NeuralNetClassifier

    X, y = digits
    X = X.astype(np.float32)
    converted = predict_parameters(_mlp(), alpha_fraction=0.25, input_shape=(8, 8),
                                   random_state=0)
    U0 = converted[0].U.clone()
    net = NeuralNetClassifier(converted, criterion=nn.CrossEntropyLoss,
                              optimizer=torch.optim.Adam, lr=1e-2, max_epochs=10,
                              batch_size=64, train_split=None, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.fit(X, y.astype(np.int64))
    assert (net.predict(X) == y).mean() > 0.5  # constant prediction: 0.10
    torch.testing.assert_close(net.module_[0].U, U0)


# ------------------------------------------------------- from_trained

@pytest.fixture(scope="module")
def trained_mlps():
    """scikit-learn MLPs on the digits, one per activation (tanh also with
    two hidden layers)."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return X, y, {act: MLPClassifier((24, 12), activation=act, max_iter=30,
                                         random_state=0).fit(X, y)
                      for act in ("relu", "logistic", "tanh", "identity")}


@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh", "identity"])
def test_from_trained_at_alpha_one_reproduces_the_sklearn_mlp(trained_mlps, activation):
    """Breakage caught: an activation mapped to another (sklearn's
    "logistic" is skpred's sigmoid), coefs_ taken untransposed, the output
    layer or a bias not copied, columns fitted to the wrong units.
    Reference: scikit-learn's own predict_proba."""
    from skpred import PredictedMLPClassifier

    X, y, mlps = trained_mlps
    est = PredictedMLPClassifier.from_trained(mlps[activation], X, y, alpha_fraction=1.0,
                                              dictionary="se", n_columns=(3, 2),
                                              random_state=0)
    np.testing.assert_allclose(est.predict_proba(X), mlps[activation].predict_proba(X),
                               atol=1e-5)
    assert est.n_iter_ == 0 and est.activation == activation


def test_from_trained_binary_multilabel_and_regression():
    """Breakage caught: the single logistic output of a binary or
    multilabel scikit-learn MLP, or a regressor's identity output, mapped
    to another layout. Reference: scikit-learn's predictions."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    from skpred import PredictedMLPClassifier, PredictedMLPRegressor

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    Y = np.stack([y == 1, y == 7], 1).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for target in (y == 3, Y):
            mlp = MLPClassifier((16,), max_iter=20, random_state=0).fit(X, target)
            est = PredictedMLPClassifier.from_trained(mlp, X, target, alpha_fraction=1.0,
                                                      dictionary="se", random_state=0)
            np.testing.assert_allclose(est.predict_proba(X), mlp.predict_proba(X), atol=1e-5)
        reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=50, random_state=0).fit(X, y)
    est = PredictedMLPRegressor.from_trained(reg, X, y, alpha_fraction=1.0, dictionary="se",
                                             random_state=0)
    np.testing.assert_allclose(est.predict(X), reg.predict(X), rtol=1e-5, atol=1e-4)


def test_from_trained_compresses_then_fine_tunes(trained_mlps):
    """Breakage caught: fine-tuning that does not run (n_iter_), restarts
    from scratch instead of from the fitted V, or a compressed network
    worse than chance. Reference: the accuracy before fine-tuning, and
    chance (0.1)."""
    from skpred import PredictedMLPClassifier

    X, y, mlps = trained_mlps
    kw = dict(alpha_fraction=0.25, random_state=0, learning_rate_init=1e-3)
    start = PredictedMLPClassifier.from_trained(mlps["relu"], X, y, **kw)
    tuned = PredictedMLPClassifier.from_trained(mlps["relu"], X, y, fine_tune_epochs=5, **kw)
    assert tuned.n_iter_ == 5 and abs(start.fraction_learned_ - 0.25) < 0.02
    # seeds 0-3: 0.19-0.29 before fine-tuning (chance 0.10, one standard
    # error 0.007), 0.41-0.64 after five epochs
    assert start.score(X, y) > 0.15
    assert tuned.score(X, y) > start.score(X, y) + 0.05


def test_from_trained_refuses_what_it_cannot_map(trained_mlps):
    """Breakage caught: an unfitted network, a mismatched X or classes, a
    lowrank dictionary or an overridden architecture silently accepted."""
    from sklearn.neural_network import MLPClassifier

    from skpred import PredictedMLPClassifier

    X, y, mlps = trained_mlps
    cases = [((MLPClassifier(), X, y), {}, "fitted MLP"),
             ((mlps["relu"], X[:, :10], y), {}, "features"),
             ((mlps["relu"], X, y % 3), {}, "outputs"),
             ((mlps["relu"], X, y), dict(dictionary="lowrank"), "lowrank"),
             ((mlps["relu"], X, y), dict(activation="tanh"), "activation"),
             ((mlps["relu"], X, y), dict(fine_tune_epochs=-1), "fine_tune_epochs")]
    for args, kw, match in cases:
        with pytest.raises(ValueError, match=match):
            PredictedMLPClassifier.from_trained(*args, **kw)


# ---------------------------------------------------------- redundancy

def _smooth_features(shape, n, rng, length_scale=2.0):
    """Features exactly smooth on the grid: se kernel times random weights
    (no noise), one per column."""
    from skpred.kernels import se_kernel

    K = se_kernel(shape, length_scale)
    return K @ rng.standard_normal((K.shape[0], n))


def test_redundancy_tells_smooth_features_from_noise():
    """Breakage caught: features predicted from the wrong locations (alpha
    against another grid order), the noise baseline computed on the
    features themselves, or errors not relative. Reference: features built
    smooth on the grid (near 0) and white noise (near 1, what predicting
    zeros scores)."""
    from skpred import redundancy

    rng = np.random.RandomState(0)
    W = _smooth_features((8, 8), 20, rng)
    rows = redundancy(W, (0.25, 0.5), image_shape=(8, 8), random_state=0)
    assert [r["kept_fraction"] for r in rows] == [0.25, 0.5]
    assert all(r["mean_relative_error"] < 0.1 for r in rows), rows
    assert all(r["noise_mean_relative_error"] > 0.9 for r in rows), rows
    noise = redundancy(rng.standard_normal((64, 20)), (0.5,), image_shape=(8, 8),
                       random_state=0)
    assert noise[0]["mean_relative_error"] > 0.9


def test_redundancy_reads_sklearn_mlps_and_torch_convolutions_in_their_layouts():
    """Breakage caught: scikit-learn's output layer analysed as features,
    or a convolution's filters read channels-first on a channels-last grid
    (smooth filters would then look like noise). Reference: filters built
    smooth per channel on their 5x5 grid, and a fitted MLP's layer count."""
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    from skpred import redundancy

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((16,), max_iter=5, random_state=0).fit(X / 16, y)
    rows = redundancy(mlp, (0.5,), image_shape=(8, 8), random_state=0)
    assert [r["layer"] for r in rows] == ["0"] and rows[0]["n_features"] == 16
    rng = np.random.RandomState(1)
    smooth = _smooth_features((5, 5, 3), 4, rng)  # (75 channels-last, 4 filters)
    conv = nn.Conv2d(3, 4, 5)
    with torch.no_grad():
        conv.weight.copy_(torch.as_tensor(smooth.T.reshape(4, 5, 5, 3)).permute(0, 3, 1, 2))
    rows = redundancy(nn.Sequential(conv), (0.5,), random_state=0)
    assert rows[0]["n_inputs"] == 75 and rows[0]["mean_relative_error"] < 0.1, rows


def test_redundancy_and_its_plot_refuse_bad_input():
    from skpred import redundancy
    from skpred.plotting import plot_redundancy

    with pytest.raises(ValueError, match="fractions"):
        redundancy(np.ones((4, 2)), (0.0, 0.5))
    with pytest.raises(ValueError, match="NaN"):
        redundancy(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="2-D"):
        redundancy(np.ones(4))
    with pytest.raises(ValueError, match="Linear or Conv2d"):
        redundancy(nn.ReLU())
    with pytest.raises(ValueError, match="redundancy's result"):
        plot_redundancy([])


def test_plot_redundancy_draws_each_layer_and_its_noise():
    """Breakage caught: a layer or its noise baseline missing from the
    plot. Reference: the rows given."""
    import matplotlib
    matplotlib.use("Agg")
    from skpred import redundancy
    from skpred.plotting import plot_redundancy

    rows = redundancy([np.random.RandomState(0).standard_normal((16, 3))] * 2, (0.25, 0.5),
                      random_state=0)
    ax = plot_redundancy(rows)
    assert len(ax.get_lines()) == 2 * 2 + 1  # two per layer, and the line at 1


def _ddp_step(rank, model, X, y):
    """One SGD step of a converted model under DistributedDataParallel,
    each rank on half of the batch; rank 0 returns the weights, the names
    DDP reduces and whether every rank ended with the same V."""
    import torch.distributed as dist

    ddp = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.5)
    half = len(X) // 2
    rows = slice(rank * half, (rank + 1) * half)
    nn.functional.cross_entropy(ddp(X[rows]), y[rows]).backward()
    opt.step()
    V = model[0].V.detach().clone()
    gathered = [torch.zeros_like(V) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, V)
    same = all(torch.equal(g, gathered[0]) for g in gathered)
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [n for n, _ in ddp.module.named_parameters()], same)


def test_a_converted_network_trains_data_parallel_with_only_v_reduced(digits):
    """Breakage caught: U registered as a parameter (DDP would all-reduce
    its gradient and the optimiser step it), or a converted module that
    DistributedDataParallel cannot wrap. Reference: the same step in one
    process on the whole batch (mean of the two halves' mean losses)."""
    from skpred import distributed

    X, y = digits
    X, y = torch.as_tensor(X[:128]), torch.as_tensor(y[:128])
    model = predict_parameters(_mlp(), alpha_fraction=0.25, input_shape=(8, 8),
                               random_state=0)
    state, reduced, same = distributed.run_workers(_ddp_step, (model, X, y), n_workers=2,
                                                   timeout=120)
    assert same and not any(name.endswith(".U") or name == "U" for name in reduced)
    assert "0.V" in reduced
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    nn.functional.cross_entropy(model(X), y).backward()
    opt.step()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(state[k], v, atol=1e-6, rtol=1e-5)


def test_redundancy_with_the_empirical_kernel_reads_each_layers_inputs():
    """Breakage caught: kernel="emp" built from the wrong inputs (the
    network's input for a deeper layer, pre-activation values), or a
    predictor that cannot reproduce features lying in the covariance's
    span. Reference: features built in that span (error near 0), and the
    same analysis on the layer's weights with its inputs computed by hand."""
    from sklearn.neural_network import MLPClassifier

    from skpred import redundancy

    rng = np.random.RandomState(0)
    X = rng.standard_normal((500, 5)) @ rng.standard_normal((5, 40))  # covariance of rank 5
    K = np.cov(X.T)
    W = K @ rng.standard_normal((40, 12))
    rows = redundancy(W, (0.5,), kernel="emp", data=X, random_state=0)
    assert rows[0]["mean_relative_error"] < 0.05 and rows[0]["noise_mean_relative_error"] > 0.9
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((12, 6), activation="tanh", max_iter=20, random_state=0).fit(X, y)
    rows = redundancy(mlp, (0.5,), kernel="emp", data=X, random_state=0)
    H = np.tanh(X @ mlp.coefs_[0] + mlp.intercepts_[0])
    by_hand = redundancy([mlp.coefs_[0]], (0.5,), kernel="emp", data=X, random_state=0)
    assert rows[0]["mean_relative_error"] == pytest.approx(by_hand[0]["mean_relative_error"])
    rng_state = np.random.RandomState(0)
    redundancy([mlp.coefs_[0]], (0.5,), kernel="emp", data=X, random_state=rng_state)
    second = redundancy([mlp.coefs_[1]], (0.5,), kernel="emp", data=H, random_state=rng_state)
    assert rows[1]["mean_relative_error"] == pytest.approx(second[0]["mean_relative_error"])
    # a torch module: the inputs recorded by hooks (after the ReLU for layer 2)
    net = nn.Sequential(nn.Linear(40, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.as_tensor(W.T))
    rows = redundancy(net, (0.5,), kernel="emp", data=X, random_state=0)
    assert rows[0]["mean_relative_error"] < 0.05
    # an image_shape for the first Linear does not make it a convolution
    assert redundancy(net, (0.5,), kernel="emp", data=X, image_shape=(5, 8),
                      random_state=0) == rows
    with pytest.raises(ValueError, match="give data"):
        redundancy(W, kernel="emp")


def test_data_may_come_from_a_dataloader():
    """Breakage caught: a DataLoader's (inputs, targets) batches recorded
    as one tensor, or refused. Reference: the same conversion from the
    array."""
    net = _mlp()
    X = np.random.RandomState(0).rand(200, 64).astype(np.float32)
    y = np.arange(200) % 10
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y)), batch_size=64)
    a = predict_parameters(net, dictionary="emp", data=X, exclude=["0", "4"], random_state=0)
    b = predict_parameters(net, dictionary="emp", data=loader, exclude=["0", "4"],
                           random_state=0)
    torch.testing.assert_close(a[2].U, b[2].U)


@pytest.mark.gpu
def test_a_conversion_stays_on_the_gpu_and_trains_there():
    """Breakage caught: predicted layers built on the CPU for a model on
    the GPU (U or V on another device than the input), or a conversion
    that differs from the CPU one. Reference: the CPU conversion of the
    same model."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    net = _mlp()
    cpu = predict_parameters(net, alpha_fraction=0.25, input_shape=(8, 8), random_state=0)
    gpu = predict_parameters(net.cuda(), alpha_fraction=0.25, input_shape=(8, 8),
                             random_state=0)
    assert gpu[0].U.is_cuda and gpu[0].V.is_cuda
    x = torch.randn(5, 64)
    torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), atol=1e-5, rtol=1e-4)
    _train(gpu, x.cuda(), torch.arange(5).cuda(), epochs=1)


def test_a_layer_shared_under_two_names_stays_shared():
    """Breakage caught: a tied layer (one module under two names) converted
    under one name only, silently untying the weights. Reference: module
    identity before and after."""
    torch.manual_seed(0)  # test-only
    shared = nn.Linear(16, 16)
    net = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), shared, nn.Tanh(), shared,
                        nn.Linear(16, 4))
    converted = predict_parameters(net, alpha_fraction=0.5, random_state=0)
    assert isinstance(converted[2], PredictedLinear) and converted[2] is converted[4]
    x = torch.randn(3, 16)
    full = predict_parameters(net, alpha_fraction=1.0, random_state=0)
    torch.testing.assert_close(full(x), net(x), atol=1e-4, rtol=1e-4)
