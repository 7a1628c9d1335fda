"""skpred.nn: predicted torch layers."""

import numpy as np
import pytest
import torch

from skpred import _kernels
from skpred.nn import LowRankLinear, PredictedConv2d, PredictedLinear


def _dicts(n_rows, n_atoms, n_columns, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n_rows, n_atoms)) for _ in range(n_columns)]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("path", ["pool", "dense", "auto"])
@pytest.mark.parametrize("n_columns", [1, 4])
def test_predicted_linear_equals_its_dense_form(path, n_columns, bias):
    """The layer computes ``x W + b`` with ``W = [U_1 V_1, ..., U_C V_C]``.

    Reference: W assembled column by column in numpy (float64) from the
    dictionaries given and the layer's V and bias, not from ``to_dense`` or
    ``weight`` (which share the layer's own batched product). Breakage
    caught: columns of V swapped or given to the wrong units, U's atoms
    sliced to the wrong column, the bias dropped or added twice, in the pool
    path, the dense path or the route "auto" picks (training and eval)."""
    torch.manual_seed(0)  # test-only: the layer's default init uses torch's RNG
    dicts = _dicts(30, 6, n_columns)
    layer = PredictedLinear(30, 20, dicts, bias=bias, path=path, dtype=torch.float64)
    assert (layer.bias is not None) == bias
    x = torch.randn(7, 30, dtype=torch.float64)
    V = layer.V.detach().numpy()  # (C, n_atoms, 20 / C)
    m = 20 // n_columns
    W = np.zeros((30, 20))
    for c in range(n_columns):  # column c owns units c*m .. c*m + m - 1
        W[:, c * m:(c + 1) * m] = dicts[c] @ V[c]
    b = layer.bias.detach().numpy() if bias else np.zeros(20)
    expected = x.numpy() @ W + b
    for training in (True, False):  # "auto" may route a batch differently in each
        layer.train(training)
        with torch.no_grad():
            np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-10, atol=1e-12)
            # leading batch dimensions are kept, like nn.Linear
            np.testing.assert_allclose(layer(x.reshape(7, 1, 30)).numpy(), expected[:, None],
                                       rtol=1e-10, atol=1e-12)
    # the buffer holds the dictionaries given, column c in U[:, c*a:(c+1)*a]
    for c in range(n_columns):
        np.testing.assert_array_equal(layer.U[:, c * 6:(c + 1) * 6].numpy(), dicts[c])
    # the dense twin and the weight property agree with the same reference
    dense = layer.to_dense()
    assert isinstance(dense, torch.nn.Linear) and (dense.bias is not None) == bias
    with torch.no_grad():
        np.testing.assert_allclose(dense(x).numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.detach().numpy(), W.T, rtol=1e-10, atol=1e-12)


def test_pool_and_dense_paths_agree_and_auto_picks_the_cheaper():
    torch.manual_seed(0)
    d = _dicts(100, 10, 1)
    pool = PredictedLinear(100, 50, d, path="pool", dtype=torch.float64)
    dense = PredictedLinear(100, 50, d, path="dense", dtype=torch.float64)
    dense.load_state_dict(pool.state_dict())
    x = torch.randn(16, 100, dtype=torch.float64)
    torch.testing.assert_close(pool(x), dense(x))
    # one column, a = 0.1 n_in: pooling costs about a fifth of a dense layer
    assert PredictedLinear(100, 50, d)._route(16) == "pool"
    # many full-size columns: pooling costs more than the dense layer
    many = PredictedLinear(100, 50, _dicts(100, 100, 10))
    assert many._route(16) == "dense"


def test_counts_match_design_formulas():
    layer = PredictedLinear(784, 500, _dicts(784, 78, 5))
    assert layer.n_dynamic_params == 5 * 78 * 100  # sum_c n_atoms * n_out_c
    assert layer.n_static_params == 5 * 784 * 78  # sum_c n_in * n_atoms
    low = LowRankLinear(784, 500, rank=20, n_columns=5)
    assert low.n_dynamic_params == 5 * 20 * 100 + 5 * 784 * 20
    assert low.n_static_params == 0
    assert "n_columns=5" in repr(layer) and "n_atoms=78" in repr(layer)


def test_gradients_flow_to_v_only():
    layer = PredictedLinear(12, 6, _dicts(12, 3, 2))
    assert not layer.U.requires_grad
    assert [n for n, _ in layer.named_parameters()] == ["V", "bias"]
    assert "U" in dict(layer.named_buffers())
    layer(torch.randn(5, 12)).sum().backward()
    assert layer.V.grad is not None and layer.V.grad.abs().sum() > 0
    assert layer.U.grad is None
    U0 = layer.U.clone()
    opt = torch.optim.SGD(layer.parameters(), lr=1.0)
    opt.step()
    torch.testing.assert_close(layer.U, U0, rtol=0, atol=0)


def test_low_rank_learns_u_too():
    low = LowRankLinear(12, 6, rank=2, n_columns=2)
    assert {n for n, _ in low.named_parameters()} == {"U", "V", "bias"}
    low(torch.randn(5, 12)).sum().backward()
    assert low.U.grad is not None and low.U.grad.abs().sum() > 0
    x = torch.randn(3, 12)
    torch.testing.assert_close(low(x), low.to_dense()(x))


def test_full_rank_dictionary_matches_dense_layer():
    """alpha = 1 with raw se: U is invertible, so any dense W is reachable."""
    U = _kernels.se_kernel((4, 4), 1.0)
    layer = PredictedLinear(16, 5, U, dtype=torch.float64)
    target = torch.nn.Linear(16, 5, dtype=torch.float64)
    V = np.linalg.solve(U, target.weight.detach().numpy().T)
    with torch.no_grad():
        layer.V.copy_(torch.as_tensor(V)[None])
        layer.bias.copy_(target.bias)
    x = torch.randn(8, 16, dtype=torch.float64)
    torch.testing.assert_close(layer(x), target(x))


def test_init_gives_nn_linear_variance_for_any_dictionary():
    g = torch.Generator().manual_seed(0)
    for U in (_dicts(400, 40, 1)[0] * 7.0, _kernels.randcon_dictionary(400, np.arange(0, 400, 10))):
        layer = PredictedLinear(400, 300, U)
        layer.reset_parameters(generator=g)
        var = layer.weight.detach().var().item()
        # nn.Linear: uniform(-1/sqrt(400), 1/sqrt(400)) has variance 1/(3*400)
        assert var == pytest.approx(1 / 1200, rel=0.15)


def test_reset_parameters_is_reproducible_with_a_generator():
    layer = PredictedLinear(10, 4, _dicts(10, 3, 2))
    layer.reset_parameters(torch.Generator().manual_seed(5))
    v1 = layer.V.clone()
    layer.reset_parameters(torch.Generator().manual_seed(5))
    torch.testing.assert_close(layer.V, v1, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(out_features=2, dictionaries=_dicts(8, 2, 3)), "n_columns=3 exceeds out_features=2"),
        (dict(out_features=6, dictionaries=np.ones((7, 2))), r"dictionaries must have shape"),
        (dict(out_features=6, dictionaries=[np.ones((8, 2)), np.ones((8, 3))]), "same shape"),
        (dict(out_features=6, dictionaries=np.full((8, 2), np.nan)), "NaN"),
        (dict(out_features=6, dictionaries=np.ones((8, 2)), path="fast"), "path must be"),
    ],
)
def test_predicted_linear_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PredictedLinear(8, **kwargs)


def test_state_dict_round_trip_and_device_dtype():
    layer = PredictedLinear(8, 4, _dicts(8, 2, 2), dtype=torch.float64)
    assert layer.U.dtype == torch.float64 and layer.V.dtype == torch.float64
    other = PredictedLinear(8, 4, _dicts(8, 2, 2, seed=9), dtype=torch.float64)
    other.load_state_dict(layer.state_dict())
    x = torch.randn(3, 8, dtype=torch.float64)
    torch.testing.assert_close(other(x), layer(x))


# ---------------------------------------------------------------- conv


def _conv_dicts(in_ch, k, n_atoms, n_columns, seed=0):
    return _dicts(in_ch * k * k, n_atoms, n_columns, seed)


@pytest.mark.parametrize("path", ["pool", "dense", "auto"])
@pytest.mark.parametrize("n_columns", [1, 2])
def test_predicted_conv_equals_its_dense_form(path, n_columns):
    torch.manual_seed(0)
    conv = PredictedConv2d(3, 8, 3, _conv_dicts(3, 3, 5, n_columns), stride=2, padding=1,
                           path=path, dtype=torch.float64)
    dense = conv.to_dense()
    assert isinstance(dense, torch.nn.Conv2d)
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    torch.testing.assert_close(conv(x), dense(x))
    # filters of column c are U_c V_c, rows in Conv2d's (in, row, col) order
    U = np.stack(_conv_dicts(3, 3, 5, n_columns))
    V = conv.V.detach().numpy()
    m = 8 // n_columns
    for c in range(n_columns):
        Wc = (U[c] @ V[c]).T.reshape(m, 3, 3, 3)
        np.testing.assert_allclose(dense.weight.detach().numpy()[c * m:(c + 1) * m], Wc, rtol=1e-10)


def test_predicted_conv_counts_gradients_and_errors():
    conv = PredictedConv2d(3, 6, (3, 3), _conv_dicts(3, 3, 4, 3))
    assert conv.n_dynamic_params == 3 * 4 * 2
    assert conv.n_static_params == 3 * 27 * 4
    conv(torch.randn(1, 3, 5, 5)).sum().backward()
    assert conv.U.grad is None and conv.V.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="out_channels=6 is not divisible by n_columns=4"):
        PredictedConv2d(3, 6, 3, _conv_dicts(3, 3, 4, 4))
    with pytest.raises(ValueError, match="dictionaries must have shape"):
        PredictedConv2d(3, 6, 3, _dicts(10, 4, 1))


def test_predicted_conv_same_padding_with_even_kernel():
    torch.manual_seed(0)
    conv = PredictedConv2d(2, 4, 4, _conv_dicts(2, 4, 6, 2), padding="same", dtype=torch.float64)
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    out = conv(x)
    assert out.shape == (3, 4, 7, 7)
    torch.testing.assert_close(out, conv.to_dense()(x))
    with pytest.raises(ValueError, match="needs stride 1"):
        PredictedConv2d(2, 4, 4, _conv_dicts(2, 4, 6, 2), padding="same", stride=2)


@pytest.mark.parametrize("columns", [1, 2])
def test_max_norm_bounds_every_filter_of_a_predicted_convolution(columns):
    """Breakage caught: max_norm_ falling back to weight.renorm_, which
    renormalises a freshly materialised temporary and leaves the filters as
    they were. Reference: the norms of the materialised filters, computed
    here from U and V directly."""
    from skpred.nn import PredictedConv2d
    from skpred.nn._mlp import max_norm_

    rng = np.random.RandomState(0)
    banks = [rng.standard_normal((3 * 5 * 5, 6)) for _ in range(columns)]
    conv = PredictedConv2d(3, 8, 5, banks, padding="same")
    with torch.no_grad():
        conv.V.mul_(10.0)  # every filter far above the cap
    U = torch.stack([torch.as_tensor(b, dtype=torch.float32) for b in banks])  # (C, 75, 6)
    norms_before = torch.einsum("cka,cam->cmk", U, conv.V).flatten(0, 1).norm(dim=1)
    assert (norms_before > 1.0).all()
    max_norm_(conv, 1.0)
    filters = torch.einsum("cka,cam->cmk", U, conv.V).flatten(0, 1)
    assert filters.norm(dim=1).max() <= 1.0 + 1e-5
    torch.testing.assert_close(filters.reshape(conv.weight.shape), conv.weight)
    # a filter already under the cap is left alone
    small = PredictedConv2d(3, 8, 5, banks, padding="same")
    with torch.no_grad():
        small.V.mul_(1e-3)
    V = small.V.clone()
    max_norm_(small, 1.0)
    torch.testing.assert_close(small.V, V)


@pytest.mark.parametrize("square", [False, True])
def test_device_covariance_equals_numpy(square):
    """Breakage caught: the data kernel formed on the device diverging from
    the reference np.cov (e.g. a wrong shift or denominator)."""
    from skpred._pretrain import covariance

    X = np.random.RandomState(0).standard_normal((5000, 7)).astype(np.float32) * 3 + 5
    ref = np.cov((X.astype(np.float64) ** 2) if square else X.astype(np.float64), rowvar=False)
    np.testing.assert_allclose(covariance(torch.tensor(X), square, chunk=1000), ref,
                               rtol=1e-9, atol=1e-9)


def test_cpu_copy_moves_every_tensor_and_shares_no_storage():
    from skpred._device import cpu_copy, learned_state
    from skpred.nn import PredictedLinear

    layer = PredictedLinear(12, 6, np.random.RandomState(0).standard_normal((2, 12, 3)))
    layer.max_norm_(1.0)  # fills the Gram cache buffer
    copy_ = cpu_copy(layer)
    for (name, a), (_, b) in zip(layer.state_dict().items(), copy_.state_dict().items()):
        torch.testing.assert_close(a, b, msg=name)
        assert a.data_ptr() != b.data_ptr()
    assert isinstance(copy_.V, torch.nn.Parameter) and not isinstance(copy_.U, torch.nn.Parameter)
    # the early-stopping snapshot holds the learned tensors only, never U
    assert set(learned_state(layer)) == {"V", "bias"}


@pytest.mark.parametrize("shape", [(5, 7, 1), (4, 6, 3), (6, 6, 2)], ids=str)
@pytest.mark.parametrize("ridge", [None, 0.1])
@pytest.mark.parametrize("columns", [1, 3])
def test_se_structured_layer_is_exact_on_every_path(shape, ridge, columns):
    """Breakage caught: a blur that differs from x K_xa (wrong axis, channel
    mixing, truncated Gaussian, a gather in the wrong order) or an M that is
    not (K_aa + ridge I)^-1. Reference: numpy's se kernel and ridge solve
    (skpred._kernels, the formulas of the paper), x @ W in float64."""
    from skpred import _kernels
    from skpred.nn import SEPredictedLinear

    rows, cols, ch = shape
    n = rows * cols * ch
    rng = np.random.RandomState(0)
    alphas = _kernels.sample_alpha(n, ch * 6, rng, columns, ch)
    ls = (1.0, 1.7)
    layer = SEPredictedLinear(n, 12, shape, ls, np.stack(alphas), ridge=ridge,
                              dtype=torch.float64)
    Us = [_kernels.ridge_predictor(K[:, :], K[a], ridge) for a, K in
          ((a, _kernels.se_kernel(shape, ls, columns=a)) for a in alphas)]
    np.testing.assert_allclose(layer.dictionaries.numpy(), np.stack(Us), rtol=1e-10, atol=1e-12)
    x = torch.tensor(rng.standard_normal((9, n)))
    W = np.concatenate([U @ V for U, V in zip(Us, layer.V.detach().numpy())], axis=1)
    expected = x.numpy() @ W + layer.bias.detach().numpy()
    for path in ("pool", "dense", "blur"):
        layer.path = path
        np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-10, atol=1e-10,
                                   err_msg=path)


def test_se_structured_blur_has_fewer_multiply_adds_but_auto_keeps_pool_or_dense():
    """For the paper's first layer (28x28, 10 columns at alpha 0.1) the blur
    needs ~0.14M multiply-adds per sample against ~0.65M pooling; measured
    slower on a CPU all the same, so "auto" does not pick it (documented)."""
    from skpred import _kernels
    from skpred.nn import SEPredictedLinear

    alphas = _kernels.sample_alpha(784, 78, np.random.RandomState(0), 10)
    layer = SEPredictedLinear(784, 500, (28, 28, 1), 1.0, np.stack(alphas))
    costs = layer._costs(100, training=True, input_grad=False)
    assert layer.blur_cost() < costs["pool"] < costs["dense"]
    assert layer._route(100, True, False) == "pool"
    assert layer._route(None) in ("pool", "dense")


@pytest.mark.parametrize("path", ["pool", "dense", "auto"])
@pytest.mark.parametrize("columns", [1, 3])
def test_predicted_linear_every_path_against_an_einsum_reference(path, columns):
    """Breakage caught: a column's V applied to another column's atoms, a
    wrong (C, a, m) layout, or the pooling route untested because the
    default batch always picked "dense". Reference: the dictionaries as
    given, an einsum in float64, no code of the layer."""
    rng = np.random.RandomState(1)
    banks = rng.standard_normal((columns, 20, 4))
    layer = PredictedLinear(20, 6 * columns, banks, path=path, dtype=torch.float64)
    x = rng.standard_normal((5, 20))
    V = layer.V.detach().numpy()
    expected = np.einsum("bi,cia,cam->bcm", x, banks, V).reshape(5, -1) + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(torch.tensor(x)).detach().numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("path", ["pool", "dense"])
@pytest.mark.parametrize("kernel, padding, stride, dilation", [
    (3, "same", 1, 1), (4, "same", 1, 1), (3, 0, 1, 1), (5, 2, 2, 1), (3, "valid", 1, 1),
    (3, 1, 1, 2), (3, "same", 1, 2)])
def test_predicted_conv_every_path_against_f_conv2d(path, kernel, padding, stride, dilation):
    """Breakage caught: the bank-then-mix route disagreeing with the
    materialised filters (e.g. with "same" padding and even kernels, or
    grouped mixing across columns). Reference: F.conv2d with filters built
    here from the banks and V, in float64."""
    from torch.nn import functional as F

    from skpred.nn import PredictedConv2d

    rng = np.random.RandomState(2)
    C, a, c_in, m = 2, 5, 3, 4
    banks = rng.standard_normal((C, c_in * kernel * kernel, a))
    conv = PredictedConv2d(c_in, C * m, kernel, banks, stride=stride, padding=padding,
                           dilation=dilation, path=path, dtype=torch.float64)
    V = conv.V.detach().numpy()
    filters = np.einsum("cka,cam->cmk", banks, V).reshape(C * m, c_in, kernel, kernel)
    x = torch.tensor(rng.standard_normal((2, c_in, 9, 9)))
    expected = F.conv2d(x, torch.tensor(filters), conv.bias.detach(), stride=stride,
                        padding=padding, dilation=dilation)
    torch.testing.assert_close(conv(x), expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(conv.to_dense()(x), expected, rtol=1e-9, atol=1e-9)


# ------------------------------------------- mutation-survivor triage (issue 16)
# Each test below was written against a group of surviving mutants of
# skpred/nn (mutmut): it names the breakage it catches and computes its
# reference here, from the formula, never from the layer's own helpers.


def _se_dictionary_numpy(shape, ls, alpha, ridge):
    """U = K_xa (K_aa + ridge I)^-1 for the se kernel, written out directly."""
    rows, cols, ch = shape
    idx = np.arange(rows * cols * ch)
    r, c, k = idx // (cols * ch), idx // ch % cols, idx % ch
    d2 = ((r[:, None] - r[None, alpha]) / ls[0]) ** 2 + ((c[:, None] - c[None, alpha]) / ls[1]) ** 2
    K = np.exp(-0.5 * d2) * (k[:, None] == k[None, alpha])
    if ridge is None:
        return K
    return K @ np.linalg.inv(K[alpha] + ridge * np.eye(len(alpha)))


@pytest.mark.parametrize("path", ["pool", "blur"])
def test_se_layer_accepts_a_2d_shape_1d_alphas_and_one_length_scale(path):
    """Breakage caught: a 2-D image_shape not read as (rows, cols, 1), a
    single column's alphas given as a 1-D array not promoted to (1, a), or
    a scalar length scale not used on both axes."""
    from skpred.nn import SEPredictedLinear

    alpha = np.array([0, 5, 9, 13, 22, 30])
    layer = SEPredictedLinear(35, 4, (5, 7), 1.3, alpha, ridge=0.2, dtype=torch.float64,
                              path=path)
    assert layer.image_shape == (5, 7, 1) and layer.n_columns == 1 and layer.n_atoms == 6
    U = _se_dictionary_numpy((5, 7, 1), (1.3, 1.3), alpha, 0.2)
    np.testing.assert_allclose(layer.dictionaries[0].numpy(), U, rtol=1e-10, atol=1e-12)
    x = np.random.RandomState(3).standard_normal((4, 35))
    expected = x @ U @ layer.V[0].detach().numpy() + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(torch.tensor(x)).detach().numpy(), expected, rtol=1e-10)
    assert "image_shape=(5, 7, 1)" in repr(layer)
    # the blur path's multiply-add count, from the docstring's formula
    assert layer.blur_cost() == 1 * 5 * 7 * (5 + 7) + 1 * 6 * 6 + 6 * 4


def test_se_layer_rejects_a_shape_that_does_not_hold_the_features():
    from skpred.nn import SEPredictedLinear

    with pytest.raises(ValueError, match=r"image_shape=\(5, 7\) does not hold in_features=36"):
        SEPredictedLinear(36, 4, (5, 7), 1.0, np.arange(4))
    with pytest.raises(ValueError, match="path must be one of"):
        SEPredictedLinear(35, 4, (5, 7), 1.0, np.arange(4), path="fft")


def test_predicted_linear_costs_are_the_documented_multiply_add_counts():
    """Breakage caught: a wrong term in the pool or dense cost (so "auto"
    takes the dearer route), training costed as a forward pass only (the
    two wrong choices of issue 26), ties not going to pool, or the
    evaluation route depending on the batch. Reference: the counts written
    out by hand."""
    layer = PredictedLinear(100, 60, _dicts(100, 10, 3))
    # evaluation, W cached: pool C*a*in + a*out = 3*10*100 + 10*60; dense in*out
    assert layer._costs(None) == {"pool": 3600, "dense": 6000}
    assert layer._costs(50) == layer._costs(None)  # the batch does not matter
    # training, input with a gradient (g = 1): pool C*a*in*2 + 3*a*out;
    # dense in*out*3 + 2*in*a*out/B
    assert layer._costs(50, training=True) == {
        "pool": 3 * 10 * 100 * 2 + 3 * 10 * 60, "dense": 100 * 60 * 3 + 2 * 100 * 10 * 60 / 50}
    # the input without a gradient (g = 0): x U's transpose and z's
    # gradient not computed (pool), x's gradient not (dense)
    assert layer._costs(50, training=True, input_grad=False) == {
        "pool": 3 * 10 * 100 + 2 * 10 * 60, "dense": 100 * 60 * 2 + 2 * 100 * 10 * 60 / 50}
    # batch None: W's materialisation amortised away
    assert layer._costs(None, training=True)["dense"] == 100 * 60 * 3
    # a batch of 0 counts as 1
    assert layer._costs(0, training=True)["dense"] == 100 * 60 * 3 + 2 * 100 * 10 * 60
    # a tie goes to pool: in*out == C*a*in + a*out for in=out=20, C=1, a=10
    tie = PredictedLinear(20, 20, _dicts(20, 10, 1))
    assert tie._costs(None)["pool"] == tie._costs(None)["dense"] == 400
    assert tie._route(None) == "pool"
    # dear pooling (many big columns): dense at any batch, pool never
    dear = PredictedLinear(100, 60, _dicts(100, 50, 3))
    assert dear._route(1000, True) == "dense" and dear._route(None) == "dense"
    # a forced path ignores the costs
    for path in ("pool", "dense"):
        forced = PredictedLinear(100, 60, _dicts(100, 50, 3), path=path)
        assert forced._route(7, True) == path


def test_training_costs_fix_the_two_wrong_choices_of_the_paper_layers():
    """Breakage caught: the route chosen from forward multiply-adds alone,
    which sent the paper's layer 1 (784 -> 500, 10 columns of 78 atoms, its
    input needing no gradient) to the dense route from batch 119 and its
    layer 2 (500 -> 500, 10 columns of 50) to it above batch 500, though
    pooling is cheaper for training at batch 128 and 4,096. Reference: the
    issue's hand counts, written out."""
    layer1 = PredictedLinear(784, 500, _dicts(784, 78, 10))
    costs = layer1._costs(128, training=True, input_grad=False)
    # (the issue counted 3 a out for pooling, 729k; without the input's
    # gradient z's is not computed either: 2 a out)
    assert costs["pool"] == 10 * 78 * 784 + 2 * 78 * 500 == 689_520
    assert costs["dense"] == 784 * 500 * 2 + 2 * 784 * 78 * 500 / 128  # 1.26M
    assert layer1._route(128, True, False) == "pool"
    layer2 = PredictedLinear(500, 500, _dicts(500, 50, 10))
    costs = layer2._costs(4096, training=True, input_grad=True)
    assert costs["pool"] == 10 * 50 * 500 * 2 + 3 * 50 * 500 == 575_000
    assert costs["dense"] == pytest.approx(500 * 500 * 3 + 2 * 500 * 50 * 500 / 4096)  # 756k
    assert layer2._route(4096, True, True) == "pool"
    # evaluation, W cached: the dense product for both (layer 1: 392k
    # against 651k pooling; layer 2: 250k against 275k)
    assert layer2._route(None) == "dense" and layer1._route(None) == "dense"


def test_predicted_linear_forward_takes_the_route_it_costs(monkeypatch):
    """Breakage caught: forward ignoring _route (or the train/eval switch):
    training uses the batch, evaluation the batch-free choice."""
    layer = PredictedLinear(100, 60, _dicts(100, 10, 1))
    seen = []
    original = layer._route
    monkeypatch.setattr(layer, "_route",
                        lambda *args: seen.append(args) or original(*args))
    layer.train()(torch.randn(4, 100))
    layer.train()(torch.randn(4, 100, requires_grad=True))
    layer.eval()(torch.randn(4, 100))
    assert seen == [(4, True, False), (4, True, True), (None,)]
    with pytest.raises(ValueError, match="in_features=100 values in the last dimension"):
        layer(torch.randn(4, 99))


def test_as_dictionary_tensor_validation_and_dtype():
    """Breakage caught: an empty list, zero atoms or a 4-D array accepted;
    the default dtype ignored; the result sharing memory with the input."""
    from skpred.nn._linear import as_dictionary_tensor

    with pytest.raises(ValueError, match="dictionaries is empty"):
        as_dictionary_tensor([], 5)
    with pytest.raises(ValueError, match="must have shape"):
        as_dictionary_tensor(np.ones((5, 0)), 5)
    with pytest.raises(ValueError, match="must have shape"):
        as_dictionary_tensor(np.ones((1, 2, 5, 3)), 5)
    src = torch.ones(5, 3, dtype=torch.float64)
    U = as_dictionary_tensor(src, 5)
    assert U.shape == (1, 5, 3) and U.dtype == torch.get_default_dtype()
    U64 = as_dictionary_tensor(src, 5, dtype=torch.float64)
    assert U64.dtype == torch.float64 and U64.data_ptr() != src.data_ptr()
    with pytest.raises(ValueError, match="NaN or infinity"):
        as_dictionary_tensor(np.array([[1.0], [np.inf]]), 2)


def test_init_with_an_all_zero_column_and_no_fan_in():
    """Breakage caught: a column whose U is zero giving V = inf/NaN (division
    by a zero row energy), or fan_in 0 dividing by zero."""
    from skpred.nn._linear import init_factored_

    U = torch.zeros(2, 6, 3)
    U[1] = 1.0
    V, bias = torch.empty(2, 3, 4), torch.empty(8)
    init_factored_(V, bias, U, 6, torch.Generator().manual_seed(0))
    assert torch.isfinite(V).all()
    assert V[0].abs().max() <= 1 / np.sqrt(6) and V[0].abs().max() > 0.1 / np.sqrt(6)
    # column 1: row energy 3, so the bound is 1/sqrt(6)/sqrt(3)
    assert V[1].abs().max() <= 1 / np.sqrt(18) + 1e-7
    assert bias.abs().max() <= 1 / np.sqrt(6)
    init_factored_(V, bias, U, 0, torch.Generator().manual_seed(0))
    assert (V == 0).all() and (bias == 0).all()


@pytest.mark.parametrize("columns", [1, 3])
def test_max_norm_of_a_predicted_linear_layer_against_the_materialised_rows(columns):
    """Breakage caught: norms taken over the wrong axis of V/U (a unit's
    incoming weights are a column of U_c V_c), the scale applied to the
    wrong units, or units under the cap changed. Reference: W from the
    banks and V by einsum."""
    rng = np.random.RandomState(4)
    banks = rng.standard_normal((columns, 15, 4))
    layer = PredictedLinear(15, 4 * columns, banks, dtype=torch.float64)
    W = lambda: np.einsum("cia,cam->cim", banks, layer.V.detach().numpy())  # noqa: E731
    targets = np.tile([0.5, 2.0, 0.3, 3.0], (columns, 1))  # units under and over the cap
    with torch.no_grad():
        layer.V.mul_(torch.tensor(targets / np.linalg.norm(W(), axis=1))[:, None, :])
    before = np.linalg.norm(W(), axis=1)
    np.testing.assert_allclose(before, targets)
    layer.max_norm_(1.0)
    after = np.linalg.norm(W(), axis=1)
    np.testing.assert_allclose(after, np.minimum(before, 1.0), rtol=1e-9)


def test_norm_factor_cache_follows_in_place_changes_of_u_and_is_never_used_for_learned_u():
    """Breakage caught: a stale factor after U is edited in place (or
    moved), a learned U (LowRank) whose cached factor goes stale on every
    step, or a factor that is not one of U^T U. Reference: the Gram matrix
    by einsum (R^T R must equal it)."""
    rng = np.random.RandomState(5)
    layer = PredictedLinear(10, 4, rng.standard_normal((2, 10, 3)), dtype=torch.float64)

    def check(layer):
        Uc, R = layer.dictionaries, layer._norm_factor()
        torch.testing.assert_close(R.transpose(1, 2) @ R, torch.einsum("cia,cib->cab", Uc, Uc))

    check(layer)
    with torch.no_grad():
        layer.U.mul_(2.0)
    check(layer)
    low = LowRankLinear(10, 4, rank=3, n_columns=2, dtype=torch.float64)
    low._norm_factor()
    with torch.no_grad():
        low.U.add_(1.0)
    check(low)
    assert low._gram_cache is None


@pytest.mark.parametrize("in_f, out_f, fraction, columns, rank", [
    (784, 500, 0.1, 1, 31),   # 0.1 * 784 * 500 / 1284 = 30.5 -> 31
    (784, 500, 0.1, 10, 5),   # m = 50: 0.1 * 784 * 50 / 834 = 4.7 -> 5
    (20, 10, 0.01, 1, 1),     # below one: at least 1
    (30, 30, 1.0, 3, 8),      # m = 10: 30 * 10 / 40 = 7.5 -> 8
])
def test_low_rank_for_fraction_matches_the_learned_share(in_f, out_f, fraction, columns, rank):
    """Breakage caught: the rank formula (learned rank*(in+m) per column
    against in*m dense) losing a term, the per-column width m, or the floor
    of one. Reference: ranks computed by hand in the parameters."""
    low = LowRankLinear.for_fraction(in_f, out_f, fraction, n_columns=columns)
    assert low.n_atoms == rank
    assert low.n_columns == columns and low.out_features == out_f
    assert low.n_dynamic_params == columns * rank * (in_f + out_f // columns)
    with pytest.raises(ValueError, match="alpha_fraction must be in"):
        LowRankLinear.for_fraction(in_f, out_f, 0.0)
    with pytest.raises(ValueError, match="alpha_fraction must be in"):
        LowRankLinear.for_fraction(in_f, out_f, 1.5)
    with pytest.raises(ValueError, match="n_columns must be >= 1"):
        LowRankLinear.for_fraction(in_f, out_f, 0.5, n_columns=0)
    with pytest.raises(ValueError, match="rank and n_columns must be >= 1"):
        LowRankLinear(in_f, out_f, rank=0)


def test_low_rank_u_is_drawn_with_variance_one_over_fan_in():
    """Breakage caught: U left at its placeholder of ones, or drawn with the
    wrong scale (the init then misses nn.Linear's variance)."""
    low = LowRankLinear(400, 300, rank=50)
    low.reset_parameters(torch.Generator().manual_seed(0))
    assert low.U.std().item() == pytest.approx(1 / 20, rel=0.05)
    assert low.weight.var().item() == pytest.approx(1 / 1200, rel=0.15)


@pytest.mark.parametrize("padding, stride, dilation, size", [
    ("same", 1, 1, (9, 9)), ("valid", 1, 1, (9, 7)), (0, 2, 1, (9, 9)), (2, 2, 1, (8, 11)),
    ((1, 0), (1, 2), 1, (7, 9)), (1, 1, 2, (9, 9)), (0, 1, 1, (2, 2)),
    (0, 2, 1, (9, 8)), (0, 1, 1, (2, 5)), (0, 1, 1, (5, 2)),
])
def test_conv_out_positions_match_torch(padding, stride, dilation, size):
    """Breakage caught: the output-size formula (padding, dilation, stride
    per axis) or the batch factor wrong, so "auto" costs another layer.
    Reference: the shape F.conv2d itself returns (0 where the map is empty)."""
    from torch.nn import functional as F

    from skpred.nn import PredictedConv2d

    conv = PredictedConv2d(2, 4, 3, _conv_dicts(2, 3, 3, 1), stride=stride, padding=padding,
                           dilation=dilation)
    for x in (torch.randn(3, 2, *size), torch.randn(2, *size)):
        try:
            out = F.conv2d(x, torch.zeros(4, 2, 3, 3), stride=stride, padding=padding,
                           dilation=dilation)
            expected = out.numel() // 4
        except RuntimeError:  # the kernel does not fit: no output position
            expected = 0
        assert conv._out_positions(x) == expected


def test_conv_pool_choice_is_the_documented_multiply_add_count(monkeypatch):
    """Breakage caught: a wrong cost term (so "auto" runs the dearer
    ordering), ties not going to pool, or forward not consulting the choice
    (training by output positions, evaluation batch-free)."""
    from skpred.nn import PredictedConv2d

    # C=1, a=4, out=8, k=2*3*3=18: pool 1*4*18 + 4*8 = 104, dense 8*18 + 18*4*8/n
    conv = PredictedConv2d(2, 8, 3, _conv_dicts(2, 3, 4, 1))
    assert conv._pool_is_cheaper(None)  # 104 <= 144
    # with n positions dense costs 144 + 576/n, always above 104: pool everywhere
    assert conv._pool_is_cheaper(1) and conv._pool_is_cheaper(10 ** 6)
    # C=2, a=9, out=8, k=18: pool 2*9*18 + 9*8 = 396; dense 144 + 1296/n
    dear = PredictedConv2d(2, 8, 3, _conv_dicts(2, 3, 9, 2))
    assert not dear._pool_is_cheaper(None)
    assert dear._pool_is_cheaper(5)  # 144 + 259.2 = 403.2 >= 396
    assert not dear._pool_is_cheaper(6)  # 144 + 216 = 360 < 396
    assert dear._pool_is_cheaper(0)  # n clamped to 1: 144 + 1296 >= 396
    # one position against two: C=8, a=2, out=8, k=18: pool 8*2*18 + 2*8 = 304,
    # dense 144 + 288/n: 432 at n=1 (pool), 288 at n=2 (dense)
    edge = PredictedConv2d(2, 8, 3, _conv_dicts(2, 3, 2, 8))
    assert edge._pool_is_cheaper(1) and not edge._pool_is_cheaper(2)
    # a tie goes to pool: C=1, a=9, out=18, k=18: pool 9*18 + 9*18 = 324 = dense 18*18
    tie = PredictedConv2d(2, 18, 3, _conv_dicts(2, 3, 9, 1))
    assert tie._pool_is_cheaper(None)
    for path in ("pool", "dense"):
        forced = PredictedConv2d(2, 8, 3, _conv_dicts(2, 3, 9, 2), path=path)
        assert forced._pool_is_cheaper(None) == (path == "pool")
        assert forced._pool_is_cheaper(5) == (path == "pool")
    seen = []
    original = dear._pool_is_cheaper
    monkeypatch.setattr(dear, "_pool_is_cheaper", lambda n: seen.append(n) or original(n))
    dear.train()(torch.randn(2, 2, 6, 6))
    dear.eval()(torch.randn(2, 2, 6, 6))
    assert seen == [2 * 4 * 4, None]


def test_conv_repr_and_pair_validation():
    from skpred.nn import PredictedConv2d

    conv = PredictedConv2d(2, 4, (3, 5), [np.ones((30, 3))] * 2, padding=(1, 2), path="pool")
    text = repr(conv)
    for piece in ("2, 4, kernel_size=(3, 5)", "stride=(1, 1)", "padding=(1, 2)",
                  "n_columns=2", "n_atoms=3", "bias=True", "path='pool'"):
        assert piece in text
    with pytest.raises(ValueError, match="an int or a pair"):
        PredictedConv2d(2, 4, (3, 3, 3), [np.ones((54, 3))])
    with pytest.raises(ValueError, match="padding must be 'same', 'valid'"):
        PredictedConv2d(2, 4, 3, [np.ones((18, 3))], padding="full")
    with pytest.raises(ValueError, match="path must be one of"):
        PredictedConv2d(2, 4, 3, [np.ones((18, 3))], path="fast")
    no_bias = PredictedConv2d(2, 4, 3, [np.ones((18, 3))], bias=False)
    assert no_bias.bias is None and no_bias.to_dense().bias is None


def _reference_convnet(net, x, act):
    """The conv net's forward written with F.conv2d on materialised filters."""
    from torch.nn import functional as F

    rows, cols, ch = net.image_shape
    z = x.reshape(-1, rows, cols, ch).permute(0, 3, 1, 2)
    for conv, pool in zip(net.convs, net.pools):
        z = act(F.conv2d(z, conv.weight, conv.bias, padding="same"))
        z = F.max_pool2d(z, pool) if pool != (1, 1) else z
    features = z.flatten(1)
    for layer in net.dense:
        z = act(z.flatten(1) @ layer.weight.T + layer.bias)
    out = (z.flatten(1) if net.dense else features) @ net.output.weight.T + net.output.bias
    return features, out


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("with_dense", [True, False])
def test_predicted_convnet_against_a_functional_reference(activation, with_dense):
    """Breakage caught: the channels-last input read in another order, the
    activation or a pooling skipped (or applied where the pool is (1, 1)),
    the feature count or the output layer's width wrong, layers missing
    from weight_layers. Reference: F.conv2d / max_pool2d written here."""
    from skpred.nn import PredictedConv2d, PredictedConvNet

    torch.manual_seed(0)
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    image_shape = (8, 6, 3)
    convs = [PredictedConv2d(3, 4, 3, _conv_dicts(3, 3, 5, 2), padding="same",
                             dtype=torch.float64),
             torch.nn.Conv2d(4, 6, 3, padding="same", dtype=torch.float64)]
    pools = [(2, 3), (1, 1)]
    dense = [PredictedLinear(6 * 4 * 2, 10, _dicts(48, 7, 2), dtype=torch.float64)] \
        if with_dense else []
    net = PredictedConvNet(image_shape, convs, pools, dense, 5, activation=activation,
                           dtype=torch.float64)
    assert net.feature_map_shape() == (6, 4, 2) and net.feature_map_shape(1) == (4, 4, 2)
    assert net.feature_map_shape(0) == (3, 8, 6)
    assert net.n_conv_features() == 48
    assert net.output.in_features == (10 if with_dense else 48)
    assert net.weight_layers() == [*convs, *dense, net.output]
    x = torch.randn(3, 8 * 6 * 3, dtype=torch.float64)
    features, expected = _reference_convnet(net, x, act)
    torch.testing.assert_close(net.conv_features(x), features)
    torch.testing.assert_close(net(x), expected)
    torch.testing.assert_close(net(x.reshape(3, 8, 6, 3)), expected)  # 4-D input too
    assert f"activation={activation!r}" in repr(net) and "image_shape=(8, 6, 3)" in repr(net)


def test_predicted_convnet_and_mlp_reject_bad_configuration():
    from skpred.nn import PredictedConvNet, PredictedMLP

    conv = torch.nn.Conv2d(1, 2, 3, padding="same")
    with pytest.raises(ValueError, match="activation must be one of"):
        PredictedConvNet((4, 4, 1), [conv], [(1, 1)], [], 2, activation="gelu")
    with pytest.raises(ValueError, match="one entry per conv layer"):
        PredictedConvNet((4, 4, 1), [conv], [], [], 2)
    with pytest.raises(ValueError, match="activation must be one of"):
        PredictedMLP([torch.nn.Linear(3, 2)], 2, activation="gelu")
    with pytest.raises(ValueError, match="at least one hidden layer"):
        PredictedMLP([], 2)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_predicted_mlp_features_at_each_depth(activation):
    """Breakage caught: features stopping one layer early or late, the
    activation skipped, or the output layer not reading the last hidden
    layer. Reference: the layers applied by hand."""
    from skpred.nn import PredictedMLP

    torch.manual_seed(0)
    act = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    hidden = [PredictedLinear(6, 8, _dicts(6, 3, 2)), torch.nn.Linear(8, 4)]
    net = PredictedMLP(hidden, 3, activation=activation)
    assert net.activation == activation  # no other default sneaks in
    x = torch.randn(5, 6)
    h1 = act(hidden[0](x))
    h2 = act(hidden[1](h1))
    torch.testing.assert_close(net.features(x, 1), h1)
    torch.testing.assert_close(net.features(x), h2)
    torch.testing.assert_close(net(x), net.output(h2))
    assert net.output.out_features == 3 and net.weight_layers() == [*hidden, net.output]
    assert repr(net).count(f"activation={activation!r}") == 1
    assert PredictedMLP([torch.nn.Linear(2, 2)], 2).activation == "sigmoid"


@pytest.mark.parametrize("path", ["pool", "dense", "blur"])
def test_each_forced_path_runs_its_own_arithmetic(path, monkeypatch):
    """Breakage caught: forward running another ordering than the one it
    chose (results agree, the cost does not), e.g. "pool" materialising W
    or "blur" falling back to x @ U. Observed by spying on the pieces each
    ordering needs."""
    from skpred.nn import SEPredictedLinear

    layer = SEPredictedLinear(36, 6, (6, 6), 1.0, np.arange(0, 36, 4), path=path)
    calls = {"W": 0, "einsum": 0}
    build, einsum = layer._build_weight, torch.einsum
    monkeypatch.setattr(layer, "_build_weight",
                        lambda: calls.__setitem__("W", calls["W"] + 1) or build())
    monkeypatch.setattr(torch, "einsum",
                        lambda *a: calls.__setitem__("einsum", calls["einsum"] + 1) or einsum(*a))
    layer(torch.randn(3, 36))
    assert calls == {"pool": {"W": 0, "einsum": 0}, "dense": {"W": 1, "einsum": 0},
                     "blur": {"W": 0, "einsum": 2}}[path]


def test_layers_without_bias_and_their_description():
    """Breakage caught: bias=False still registering (or drawing) a bias,
    the dense twin getting one, or repr reporting the opposite."""
    from torch.nn import functional as F

    from skpred.nn import PredictedConv2d

    banks = np.random.RandomState(6).standard_normal((2, 10, 3))
    layer = PredictedLinear(10, 4, banks, bias=False, dtype=torch.float64)
    assert layer.bias is None and [n for n, _ in layer.named_parameters()] == ["V"]
    x = torch.randn(5, 10, dtype=torch.float64)
    W = torch.einsum("cia,cam->icm", torch.tensor(banks), layer.V).reshape(10, 4)
    torch.testing.assert_close(layer(x), x @ W)
    assert layer.to_dense().bias is None and "bias=False" in repr(layer)
    assert "bias=True" in repr(PredictedLinear(10, 4, banks))
    conv = PredictedConv2d(1, 4, 3, np.random.RandomState(7).standard_normal((2, 9, 3)),
                           bias=False, dtype=torch.float64)
    xc = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(conv(xc), F.conv2d(xc, conv.weight))
    assert "bias=False" in repr(conv)


def test_one_unit_per_column_is_allowed():
    """Breakage caught: n_columns == out_features rejected (each column
    then owns one unit; only more columns than units is an error)."""
    layer = PredictedLinear(10, 3, _dicts(10, 2, 3))
    assert layer.units_per_column == 1 and layer(torch.randn(2, 10)).shape == (2, 3)


def test_state_dict_holds_u_v_and_bias_never_the_gram_cache():
    """Breakage caught: the Gram cache saved with the weights (a file that
    a fresh layer cannot load, or a stale cache loaded with new U)."""
    from skpred.nn import PredictedConv2d

    layer = PredictedLinear(10, 4, _dicts(10, 2, 2))
    conv = PredictedConv2d(1, 4, 3, _conv_dicts(1, 3, 2, 2))
    for module in (layer, conv):
        module.max_norm_(1.0)  # fills the cache
        assert module._gram_cache is not None
        assert set(module.state_dict()) == {"U", "V", "bias"}


def test_reset_parameters_with_a_generator_redraws_everything_learned():
    """Breakage caught: reset_parameters ignoring its generator (so a seed
    does not reproduce the layer) or leaving the bias (or LowRank's U)
    as it was."""
    from skpred.nn import PredictedConv2d

    for make in (lambda: PredictedLinear(10, 4, _dicts(10, 2, 2)),
                 lambda: LowRankLinear(10, 4, rank=2),
                 lambda: LowRankLinear.for_fraction(10, 4, 0.5, bias=False),
                 lambda: PredictedConv2d(1, 4, 3, _conv_dicts(1, 3, 2, 2))):
        a, b = make(), make()
        with torch.no_grad():
            for p in b.parameters():
                p.fill_(7.0)
        a.reset_parameters(torch.Generator().manual_seed(3))
        b.reset_parameters(torch.Generator().manual_seed(3))
        for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
            torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)
            assert (pb != 7.0).all(), name
    assert LowRankLinear(10, 4, rank=2).n_columns == 1
    assert LowRankLinear.for_fraction(10, 4, 0.5, bias=False).bias is None


def test_se_layer_default_ridge_is_a_tenth():
    """Breakage caught: the documented default ridge (0.1) changed."""
    from skpred.nn import SEPredictedLinear

    alpha = np.array([0, 7, 14, 21])
    layer = SEPredictedLinear(25, 2, (5, 5), 1.0, alpha, dtype=torch.float64)
    np.testing.assert_allclose(layer.dictionaries[0].numpy(),
                               _se_dictionary_numpy((5, 5, 1), (1.0, 1.0), alpha, 0.1),
                               rtol=1e-10, atol=1e-12)


def test_dtype_and_options_reach_every_part():
    """Breakage caught: the output layer of a float64 network (or LowRank's
    U, or an se layer's bias option) left at the defaults: float32 output
    on float64 features fails or silently loses precision."""
    from skpred.nn import PredictedConvNet, PredictedMLP, SEPredictedLinear

    f64 = dict(dtype=torch.float64)
    mlp = PredictedMLP([torch.nn.Linear(4, 3, **f64)], 2, **f64)
    conv = PredictedConvNet((4, 4, 1), [torch.nn.Conv2d(1, 2, 3, padding="same", **f64)],
                            [(2, 2)], [], 3, **f64)
    low = LowRankLinear(6, 4, rank=2, **f64)
    for module in (mlp, conv, low):
        assert {p.dtype for p in module.parameters()} == {torch.float64}
    assert mlp(torch.randn(2, 4, **f64)).dtype == torch.float64
    assert LowRankLinear.for_fraction(10, 4, 0.5).n_columns == 1
    se = SEPredictedLinear(16, 2, (4, 4), 1.0, np.arange(0, 16, 4), bias=False)
    assert se.bias is None


def _se_conv_banks(kernel, c_in, columns, alpha_fraction, ridge, seed=0):
    """se dictionaries on a (kh, kw, c_in) patch grid, rows in Conv2d's
    (channel, row, col) order, built with the kernel formula (numpy)."""
    from skpred import _kernels

    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    n = kh * kw * c_in
    rng = np.random.RandomState(seed)
    atoms = c_in * max(1, round(alpha_fraction * kh * kw))
    banks = []
    for alpha in _kernels.sample_alpha(n, atoms, rng, columns, c_in):
        U = _se_dictionary_numpy((kh, kw, c_in), (1.0, 1.0), alpha, ridge)
        banks.append(_kernels.hwc_to_chw_rows(U, (kh, kw, c_in)))
    return np.stack(banks)


@pytest.mark.parametrize("columns", [1, 3])
@pytest.mark.parametrize("kernel, padding, stride, dilation", [
    (3, "same", 1, 1), (4, "same", 1, 1), (5, 0, 2, 1), (3, "valid", 1, 2), ((3, 4), 1, 1, 1)])
@pytest.mark.parametrize("ridge", [None, 0.1])
def test_separable_path_is_exact_for_se_banks(columns, kernel, padding, stride, dilation, ridge):
    """Breakage caught: a filter put in the wrong channel group or the
    wrong place after grouping, the mix applied to the padding filters, a
    stride/padding/dilation not passed to the grouped convolution.
    Reference: F.conv2d with the filters materialised here from the banks
    and V (float64), colour input (3 channels)."""
    from torch.nn import functional as F

    from skpred.nn import PredictedConv2d

    c_in, m = 3, 4
    banks = _se_conv_banks(kernel, c_in, columns, 0.3, ridge)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    conv = PredictedConv2d(c_in, columns * m, kernel, banks, stride=stride, padding=padding,
                           dilation=dilation, path="separable", dtype=torch.float64)
    assert conv.channel_separable()
    V = conv.V.detach().numpy()
    filters = np.einsum("cka,cam->cmk", banks, V).reshape(columns * m, c_in, kh, kw)
    x = torch.tensor(np.random.RandomState(1).standard_normal((2, c_in, 11, 10)))
    expected = F.conv2d(x, torch.tensor(filters), conv.bias.detach(), stride=stride,
                        padding=padding, dilation=dilation)
    torch.testing.assert_close(conv(x), expected, rtol=1e-9, atol=1e-9)
    # gradients reach V through the separable route too
    conv(x).sum().backward()
    assert conv.V.grad.abs().sum() > 0
    # fewer multiply-adds than pooling: each filter reads one channel
    a = conv.n_atoms
    assert conv.separable_cost() < columns * a * c_in * kh * kw + a * columns * m
    # counted by hand: every channel's group padded to the largest, each
    # padded filter a kh x kw pass; the mix reads every padded filter for
    # one column, the column's a atoms for several
    U = np.concatenate(banks, axis=1).T.reshape(columns * a, c_in, kh * kw)
    channel = np.abs(U).sum(2).argmax(1)
    padded = c_in * np.bincount(channel, minlength=c_in).max()
    mix = padded * columns * m if columns == 1 else a * columns * m
    assert conv.separable_cost() == padded * kh * kw + mix


def test_separable_path_refuses_a_bank_that_mixes_channels_and_follows_u():
    from skpred.nn import PredictedConv2d

    mixed = PredictedConv2d(2, 4, 3, np.random.RandomState(0).standard_normal((18, 3)),
                            path="separable")
    assert not mixed.channel_separable()
    with pytest.raises(ValueError, match="each live in one input channel"):
        mixed(torch.randn(1, 2, 5, 5))
    conv = PredictedConv2d(2, 4, 3, _se_conv_banks(3, 2, 1, 0.5, 0.1), path="separable",
                           dtype=torch.float64)
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    conv(x)
    with torch.no_grad():
        conv.U.mul_(2.0)  # the cached grouped bank must follow
    conv.path = "dense"
    expected = conv(x)
    conv.path = "separable"
    torch.testing.assert_close(conv(x), expected)
    assert set(conv.state_dict()) == {"U", "V", "bias"}  # the grouped bank is never saved


def test_no_subnormal_numbers_reach_the_fixed_buffers():
    """Breakage caught: se dictionaries stored with float32 subnormals
    (entries of exp(-d^2 / 2) below 1.2e-38 for distant pixels), which made
    every product with U tens of times slower on a CPU (measured: 5.2 ms
    per step instead of 0.6 for 10 columns on 28x28). Zeroing them changes
    no result: they are below float32's resolution next to the entries
    that matter (reference: the layer against x @ W in float64)."""
    from skpred import _kernels
    from skpred.nn import PredictedConv2d, SEPredictedLinear

    alphas = np.stack(_kernels.sample_alpha(784, 39, np.random.RandomState(0), 10))
    se = SEPredictedLinear(784, 500, (28, 28, 1), 1.0, alphas)
    K = _kernels.se_kernel((28, 28), 1.0)
    raw = PredictedLinear(784, 20, K[:, alphas[0]])
    conv = PredictedConv2d(1, 4, 9, _se_conv_banks(9, 1, 1, 0.5, None))
    tiny = torch.finfo(torch.float32).tiny
    for t in (se.U, se.G_rows, se.G_cols, se.M, raw.U, conv.U):
        assert not ((t != 0) & (t.abs() < tiny)).any()
    # the se kernel does have entries in float32's subnormal range
    K32 = K.astype(np.float32)
    assert ((K32 != 0) & (np.abs(K32) < tiny)).any()
    x = torch.randn(3, 784, dtype=torch.float64)
    W = K[:, alphas[0]] @ raw.V[0].detach().double().numpy()
    # U was stored in float32: entries near zero differ by its resolution
    # (3e-9 measured), so the tolerance is absolute as well as relative.
    np.testing.assert_allclose(raw.double()(x).detach().numpy(),
                               x.numpy() @ W + raw.bias.detach().double().numpy(), rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("n_out, C", [(10, 3), (7, 7), (100, 7), (5, 2)])
def test_uneven_columns_split_as_array_split_on_every_path(n_out, C):
    # Catches: columns that must divide the units (n_columns=3 with 100
    # units failing), a split other than np.array_split's, a path (pool,
    # dense, pool once) that mixes up the columns of the two groups, the
    # max-norm cap or the parameter count missing the second group.
    # Reference: numpy, column by column: W = [U_0 V_0, ..., U_{C-1} V_{C-1}]
    # with V_c's width taken from np.array_split.
    n_in, a = 9, 4
    Us = [np.random.RandomState(c).randn(n_in, a) for c in range(C)]
    layer = PredictedLinear(n_in, n_out, Us, dtype=torch.float64)
    widths = [len(part) for part in np.array_split(np.arange(n_out), C)]
    assert layer.column_sizes == widths
    assert layer.n_dynamic_params == a * n_out
    learned = [p for name, p in layer.named_parameters() if name != "bias"]
    assert sum(p.numel() for p in learned) == a * n_out
    # each column's V, in order, from the parameters (V, then V_rest)
    Vs = [v.detach().numpy() for p in learned for v in p]
    assert [V.shape[1] for V in Vs] == widths
    W = np.concatenate([U @ V for U, V in zip(Us, Vs)], axis=1)
    x = torch.randn(6, n_in, dtype=torch.float64)
    expected = x.numpy() @ W + layer.bias.detach().numpy()
    for path in ("pool", "dense"):
        layer.path = path
        np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.forward_pooled(layer.pool(x)).detach().numpy(), expected,
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.weight.detach().numpy(), W.T, rtol=1e-10, atol=1e-10)
    layer(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in learned)
    with torch.no_grad():
        for p in learned:
            p.mul_(10.0)
    layer.max_norm_(0.5)
    norms = np.linalg.norm(layer.weight.detach().numpy(), axis=1)
    assert norms.max() <= 0.5 + 1e-9 and norms.min() > 0



@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("path", ["pool", "dense", "auto"])
@pytest.mark.parametrize("out_features, n_columns", [(6, 1), (6, 3), (7, 3)],
                         ids=["one column", "equal columns", "uneven columns"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_every_path_gives_the_einsum_references_gradients(path, out_features, n_columns,
                                                         bias, mode):
    """Breakage caught: a hand-written backward (the columns' product, the
    materialised W, issue 26) with a wrong layout or a transposed factor, a
    missing bias gradient, an input gradient lost (layer 2 of a network),
    or one group of uneven columns left without gradient. Reference:
    autograd through an einsum of the same U and V, in float64; the
    input is a transposed (non-contiguous) tensor, as a layer's previous
    output can be."""
    torch.manual_seed(0)  # test-only: the default init draws from torch's RNG
    layer = PredictedLinear(10, out_features, torch.randn(n_columns, 10, 4), bias=bias,
                            dtype=torch.float64, path=path)
    layer.train(mode == "train")
    x = torch.randn(10, 5, dtype=torch.float64).t().requires_grad_()
    out = layer(x)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    # the reference: each unit's weights U_c v from V (and V_rest), by einsum
    Vs = [V.detach().clone().requires_grad_() for V, _, _ in layer._groups()]
    b = layer.bias.detach().clone().requires_grad_() if bias else None
    xr = x.detach().clone().requires_grad_()
    U = layer.dictionaries
    W = torch.cat([torch.einsum("cia,cam->icm", U[c0:c1], V).reshape(10, -1)
                   for V, (_, c0, c1) in zip(Vs, layer._groups())], dim=1)
    ref = xr @ W + (b if bias else 0)
    (ref * weights).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, xr.grad)
    for (V, _, _), Vr in zip(layer._groups(), Vs):
        torch.testing.assert_close(V.grad, Vr.grad)
    if bias:
        torch.testing.assert_close(layer.bias.grad, b.grad)


def test_the_hand_written_backwards_pass_gradcheck():
    """Breakage caught: a wrong formula in _ColumnProduct's or
    _Materialise's backward, for any input that needs a gradient (U of the
    LowRank baseline included). Reference: torch.autograd.gradcheck's
    finite differences, in float64."""
    from skpred.nn._linear import _ColumnProduct, _Materialise

    torch.manual_seed(0)  # test-only
    C, a, m, n, B = 3, 4, 2, 7, 5
    V = torch.randn(C, a, m, dtype=torch.float64, requires_grad=True)
    b = torch.randn(C * m, dtype=torch.float64, requires_grad=True)
    x = torch.randn(B, n, dtype=torch.float64, requires_grad=True)
    U = torch.randn(n, C * a, dtype=torch.float64)
    z = torch.randn(B, C * a, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, V, b: _ColumnProduct.apply(x, U, V, b), (x, V, b))
    assert torch.autograd.gradcheck(lambda z, V: _ColumnProduct.apply(z, None, V, None), (z, V))
    Ut = torch.randn(C, a, n, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_Materialise.apply, (V, Ut))


@pytest.mark.parametrize("path", ["pool", "dense"])
def test_predicted_layers_work_with_inplace_ops_autocast_and_refuse_second_derivatives(path):
    """Breakage caught: the columns' product returning a view made inside
    a custom Function (an in-place ReLU after it raises), backward passes
    that mix autocast's dtype with the parameters' (bfloat16 against
    float32: a dtype error), gradients in the wrong dtype, a silently wrong
    second derivative, or an input changed in place before the backward
    pass read as if unchanged. References: the float32 layer's gradients,
    and the errors torch raises."""
    torch.manual_seed(0)  # test-only
    layer = PredictedLinear(12, 6, torch.randn(3, 12, 4), path=path)
    x = torch.randn(5, 12, requires_grad=True)
    out = torch.nn.ReLU(inplace=True)(layer(x))
    out.sum().backward()
    grad32 = layer.V.grad.clone()
    layer.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer(x)
    assert low.dtype == torch.bfloat16
    torch.nn.functional.relu(low).float().sum().backward()
    assert layer.V.grad.dtype == torch.float32
    torch.testing.assert_close(layer.V.grad, grad32, atol=0.1, rtol=0.05)
    layer.zero_grad()
    y = layer(x).pow(2).sum()
    (g,) = torch.autograd.grad(y, x, create_graph=True)
    if path == "pool":
        # the columns' product gives first derivatives only, and says so
        with pytest.raises(RuntimeError, match="once_differentiable"):
            g.sum().backward()
    else:
        # W's materialisation is differentiated once in a second-order pass:
        # exact, against the same through an einsum W
        g.sum().backward()
        V = layer.V.detach().clone().requires_grad_()
        W = torch.einsum("cia,cam->icm", layer.dictionaries, V).reshape(12, 6)
        xr = x.detach().clone().requires_grad_()
        (gr,) = torch.autograd.grad((xr @ W + layer.bias).pow(2).sum(), xr, create_graph=True)
        gr.sum().backward()
        torch.testing.assert_close(layer.V.grad, V.grad)
    if path == "pool":
        z = layer.pool(x.detach()).requires_grad_(False)
        out = layer.forward_pooled(z)
        z.mul_(2.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()
