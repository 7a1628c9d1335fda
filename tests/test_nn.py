"""skpred.nn: predicted torch layers."""

import numpy as np
import pytest
import torch

from skpred import _kernels
from skpred.nn import LowRankLinear, PredictedConv2d, PredictedLinear


def _dicts(n_rows, n_atoms, n_columns, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n_rows, n_atoms)) for _ in range(n_columns)]


@pytest.mark.parametrize("path", ["pool", "dense", "auto"])
@pytest.mark.parametrize("n_columns", [1, 4])
def test_predicted_linear_equals_its_dense_form(path, n_columns):
    torch.manual_seed(0)  # test-only: the layer's default init uses torch's RNG
    layer = PredictedLinear(30, 20, _dicts(30, 6, n_columns), path=path, dtype=torch.float64)
    x = torch.randn(7, 30, dtype=torch.float64)
    dense = layer.to_dense()
    assert isinstance(dense, torch.nn.Linear)
    expected = x @ dense.weight.T + dense.bias
    torch.testing.assert_close(layer(x), expected)
    # weight property is U V per column, concatenated in column order
    U = np.stack(_dicts(30, 6, n_columns))
    V = layer.V.detach().numpy()
    W = np.concatenate([U[c] @ V[c] for c in range(n_columns)], axis=1)
    np.testing.assert_allclose(layer.weight.detach().numpy(), W.T, rtol=1e-10)
    # leading batch dimensions are kept, like nn.Linear
    assert layer(torch.randn(2, 3, 30, dtype=torch.float64)).shape == (2, 3, 20)


def test_pool_and_dense_paths_agree_and_auto_picks_the_cheaper():
    torch.manual_seed(0)
    d = _dicts(100, 10, 1)
    pool = PredictedLinear(100, 50, d, path="pool", dtype=torch.float64)
    dense = PredictedLinear(100, 50, d, path="dense", dtype=torch.float64)
    dense.load_state_dict(pool.state_dict())
    x = torch.randn(16, 100, dtype=torch.float64)
    torch.testing.assert_close(pool(x), dense(x))
    # one column, a = 0.1 n_in: pooling costs about a fifth of a dense layer
    assert PredictedLinear(100, 50, d)._pool_is_cheaper(16)
    # many full-size columns: pooling costs more than the dense layer
    many = PredictedLinear(100, 50, _dicts(100, 100, 10))
    assert not many._pool_is_cheaper(16)


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
        (dict(out_features=10, dictionaries=_dicts(8, 2, 3)), "not divisible by n_columns=3"),
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
    from skpred._training import covariance

    X = np.random.RandomState(0).standard_normal((5000, 7)).astype(np.float32) * 3 + 5
    ref = np.cov((X.astype(np.float64) ** 2) if square else X.astype(np.float64), rowvar=False)
    np.testing.assert_allclose(covariance(torch.tensor(X), square, chunk=1000), ref,
                               rtol=1e-9, atol=1e-9)


def test_cpu_copy_moves_every_tensor_and_shares_no_storage():
    from skpred._training import cpu_copy, learned_state
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
    costs = layer._costs(100)
    assert layer.blur_cost() < costs["pool"] < costs["dense"]
    assert layer._route(100) == "pool" and layer._route(None) in ("pool", "dense")


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
@pytest.mark.parametrize("kernel, padding, stride", [(3, "same", 1), (4, "same", 1),
                                                     (3, 0, 1), (5, 2, 2), (3, "valid", 1)])
def test_predicted_conv_every_path_against_f_conv2d(path, kernel, padding, stride):
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
                           path=path, dtype=torch.float64)
    V = conv.V.detach().numpy()
    filters = np.einsum("cka,cam->cmk", banks, V).reshape(C * m, c_in, kernel, kernel)
    x = torch.tensor(rng.standard_normal((2, c_in, 9, 9)))
    expected = F.conv2d(x, torch.tensor(filters), conv.bias.detach(), stride=stride,
                        padding=padding)
    torch.testing.assert_close(conv(x), expected, rtol=1e-9, atol=1e-9)
