"""PredictedConvNetClassifier: convolutional parameter prediction (paper Fig. 5)."""

import functools
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ._validation import validate_floats
from . import _device, _feeds, _kernels
from ._kernels import hwc_to_chw_rows
from ._base import CLASSIFIER_CONSTRAINTS, TRAINING_CONSTRAINTS, TorchClassifierBase
from ._dictionary import layer_dictionary
from ._kinds import kind_names, needs_data, needs_grid
from ._layers import build_dictionaries, dense_layer, layer_record, resolve_layer_specs
from .nn import PredictedConv2d
from .nn._mlp import ACTIVATIONS
from .nn._convnet import PredictedConvNet

__all__ = ["PredictedConvNetClassifier", "PAPER_CONVNET_SETTINGS", "auto_conv_layers"]

# Conv filters are predicted from fixed filter banks that need no data (the
# registry's conv_ok kinds); dense layers take every kind, data-driven ones
# and the LowRank baseline included. Live views of the registry.
CONV_DICTIONARIES = kind_names(conv=True)
DENSE_DICTIONARIES = kind_names()

#: The paper's CIFAR-10 architecture (Denil et al. 2013, Figure 5): conv 48
#: 8x8, 64 8x8 and 64 5x5 filters, a dense layer of 500 units in 5 columns,
#: SE dictionaries everywhere. The rest is ours, since neither the paper nor
#: the authors' repository (which has no CIFAR-10 code) gives it: ReLU, 2x2
#: max pooling after each convolution, SGD with momentum 0.9 at 0.01, batches
#: of 128, weight decay 1e-4 on the batch-mean gradient (``alpha`` = 1e-4 x
#: 128 = 0.0128), 50 epochs. ``PredictedConvNetClassifier(
#: **PAPER_CONVNET_SETTINGS)`` is that network (for 32x32 colour images; it
#: does not fit 8x8 digits); the Figure 5 command starts from it.
PAPER_CONVNET_SETTINGS = dict(
    conv_layers=((48, 8, 2), (64, 8, 2), (64, 5, 2)),
    dense_layers=(500,),
    activation="relu",
    dictionary="se",
    n_columns=(1, 1, 1, 5),
    solver="sgd",
    learning_rate_init=0.01,
    learning_rate_decay=1.0,
    momentum=0.9,
    nesterovs_momentum=False,
    batch_size=128,
    max_iter=50,
    alpha=0.0128,
)

# conv_layers="auto": two blocks of 5x5 filters (16 then 32), each followed
# by 2x2 max pooling, shrunk to fit the image.
_AUTO_FILTERS = (16, 32)
_AUTO_KERNEL = 5
_AUTO_POOL = 2


def auto_conv_layers(image_shape, one_d=False):
    """The default convolutional blocks for an image of ``image_shape``.

    Two blocks of (16, then 32) filters of 5x5 with 2x2 max pooling. Each
    block's kernel is the largest odd size up to 5 that fits the smaller
    side of its feature map (the length, for a 1-D signal), and it pools
    only a side of at least 4 (pooling a smaller map would throw away most
    of what little there is). The second block is added only when the map
    left by the first still has a side of at least 2. On 28x28 MNIST that is
    ((16, 5, 2), (32, 5, 2)); on 8x8 digits ((16, 5, 2), (32, 3, 2)).
    """
    rows, cols = image_shape[:2]
    side = cols if one_d else min(rows, cols)
    blocks = []
    for filters in _AUTO_FILTERS:
        if blocks and side < 2:
            break
        k = min(_AUTO_KERNEL, side)
        k -= 1 - k % 2  # odd, so that "same" padding is symmetric
        pool = _AUTO_POOL if side >= 2 * _AUTO_POOL else 1
        blocks.append((filters, k, pool))
        side //= pool
    return tuple(blocks)


def _pair(v, one_d):
    v = int(v)
    return (1, v) if one_d else (v, v)


class PredictedConvNetClassifier(TorchClassifierBase):
    """Convolutional network with predicted filters and dense layers.

    Every conv layer's filter bank is ``W = U V``: ``U`` holds ``n_atoms`` fixed
    dictionary filters per column (by default the ``se`` kernel over
    (channel, row, col), zero across channels, one spatial sample of alpha
    shared by all channels) and only the 1x1 combination ``V`` is learned.
    Dense hidden layers are predicted as in :class:`PredictedMLPClassifier`;
    the first one's ``se`` kernel is taken over the grid of the last conv
    output (rows, cols, channels), as in the paper. The softmax layer is
    never predicted. Training shares the loop of PredictedMLPClassifier.

    Architecture: each conv layer is a "same"-padded, stride-1 convolution,
    then the activation, then max pooling; then the dense layers with the
    activation; then the softmax layer.

    Parameters
    ----------
    conv_layers : "auto" or tuple of (n_filters, kernel_size, pool_size), default="auto"
        The conv blocks. "auto" fits any image: two blocks of 16 then 32
        filters of 5x5 with 2x2 max pooling, each kernel shrunk to the
        largest odd size that fits its feature map, no pooling of a side
        below 4, and the second block dropped on a map of side 1
        (:func:`auto_conv_layers`; the
        blocks used are in ``conv_layers_``). The paper's CIFAR-10 network
        is in :data:`PAPER_CONVNET_SETTINGS`. A given tuple is used as is,
        and a kernel or pool window larger than its feature map is an error.
    dense_layers : tuple of int, default=(128,)
        Hidden dense layers after the convolutions.
    image_shape : tuple of int, "1d" or None, default=None
        ``(rows, cols)`` or ``(rows, cols, channels)`` of the flattened,
        channels-last input. None takes the shape of 4-D input
        ``(n, rows, cols, channels)`` (4-D input shaped like torch's
        channels-first ``(n, 1 or 3, rows, cols)`` with more than 4 columns is
        refused: transpose it, or give ``image_shape`` to confirm the layout);
        for flat input it infers a square
        grayscale image when ``n_features`` is a perfect square, and a 1-D
        signal otherwise (a network of convolutions always needs a grid:
        tabular input is convolved along its feature order). "1d" treats
        each sample as a 1-D signal of ``n_features`` values: kernels are
        ``1 x k`` and pooling ``1 x p`` (e.g. spectra). The grid used is
        ``image_shape_``.
    activation : {"relu", "sigmoid", "tanh"}, default="relu"
    dictionary : "auto", str, None or tuple, default="auto"
        Per weight layer (the convs, then the dense layers; one value for all
        or a tuple of that length). Conv layers: ``"se"``, ``"dct"``,
        ``"random"``, ``"randcon"`` or None (ordinary conv). Dense layers also
        ``"emp"``/``"emp2"``/``"ae"`` (computed from the features of the
        training data below them, at initialisation) and ``"lowrank"``.
        ``"auto"`` is the paper's rule: ``"se"`` for every layer whose input
        is a grid (the convs, and the first dense layer, over the grid of the
        last conv map or of the image), ``"emp"`` for deeper dense layers.
        The resolved choices are in ``layers_``.
    alpha_fraction : float or tuple, default=0.25
        Share of each filter's (or unit's) weights that is learned, per layer.
        For conv layers it is the share of the filter's pixels; all channels
        of a chosen pixel are kept.
    n_columns : "auto", int or tuple, default="auto"
        Columns per layer. A conv layer's filters split equally (one
        grouped convolution mixes the columns: ``n_columns`` must divide
        them); a dense layer's units as evenly as ``np.array_split`` does.
        "auto" is the largest divisor of the layer's filters or units up to
        4. The paper's dense layer has 5 columns.
    length_scale : float or tuple, default=1.0
        ``se`` length scale in pixels, per layer.
    ridge : float, None, "auto" or tuple, default="auto"
        Kernel ridge of each layer's dictionary (see KernelDictionary).
    solver : {"adam", "sgd"}, default="adam"
    learning_rate_init : float, default=3e-3
        Higher than the MLP's 1e-3: predicted filter banks train slower than
        dense ones (measured with the defaults, 50 epochs: 0.88 test accuracy
        on digits at 1e-3, 0.93 at 3e-3; 0.971 on the bundled MNIST digits
        at 3e-3).
    learning_rate : {"constant", "invscaling", "adaptive", "decay"}, default="constant"
    power_t : float, default=0.5
    learning_rate_decay : float >= 1, default=1.0
        The schedule, as in :class:`PredictedMLPClassifier`.
    momentum, nesterovs_momentum, beta_1, beta_2, epsilon :
        As in :class:`PredictedMLPClassifier` (scikit-learn's meanings and
        defaults).
    batch_size : int or "auto", default="auto"
        "auto" is ``min(200, n_samples)``.
    max_iter : int, default=50
        Epochs at most. Lower than the MLP's 200: an epoch of a convolutional
        network costs far more on a CPU, and these networks reach their
        accuracy in fewer epochs.
    alpha : float, default=1e-4
        scikit-learn's L2 penalty, as in :class:`PredictedMLPClassifier`:
        on the learned weights (V of predicted filter banks and dense
        layers, W of ordinary ones), not on biases.
    shuffle, early_stopping, validation_fraction, n_iter_no_change, tol :
        As in :class:`PredictedMLPClassifier`.
    device : str or torch.device, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    progress_bar : "auto" or bool, default="auto"
    callbacks : list of skpred.callbacks.Callback or None, default=None
    compile : bool, default=False
        As in :class:`PredictedMLPClassifier` (off by default; the
        convolutions are compiled with the rest of the step).
    class_weight : dict, "balanced" or None, default=None
        As in :class:`PredictedMLPClassifier`.
    warm_start : bool, default=False
        As in :class:`PredictedMLPClassifier`: the network is kept, the
        optimizer rebuilt, and a changed architecture parameter is an error.

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, n_iter_, loss_curve_, history_,
    validation_scores_, best_validation_score_ :
        As in :class:`PredictedMLPClassifier`.
    image_shape_ : tuple of int
        ``(rows, cols, channels)`` used.
    conv_layers_ : tuple of (n_filters, kernel_size, pool_size)
        The conv blocks used ("auto" resolved).
    layers_ : list of dict
        Resolved settings of every weight layer below the output (convs,
        then dense layers), as in :class:`PredictedMLPClassifier`, with
        ``kind`` "conv" or "dense".
    dictionaries_ : list of KernelDictionary or None
        One per weight layer (convs then dense). For a conv layer its grid is
        the filter, ``(kh, kw, in_channels)`` channels-last; the module holds
        the same dictionary with rows in torch's ``(in_channels, kh, kw)``
        order.
    n_dynamic_params_, n_static_params_, fraction_learned_ :
        Learned and fixed weights of the hidden layers (convs and dense;
        softmax and biases excluded) and the share learned in the predicted
        ones.
    communication_ : dict
        After a data-parallel fit only; as in :class:`PredictedMLPClassifier`.
    module_ : skpred.nn.PredictedConvNet
    device_ : torch.device

    See Also
    --------
    PredictedMLPClassifier : The fully connected version.
    skpred.nn.PredictedConv2d : The predicted convolution layer.

    References
    ----------
    Denil, M., Shakibi, B., Dinh, L., Ranzato, M. and de Freitas, N. (2013).
    Predicting Parameters in Deep Learning. NIPS 26. arXiv:1306.0543.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skpred import PredictedConvNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = PredictedConvNetClassifier(max_iter=20, device="cpu", random_state=0)
    >>> clf.fit(X[:1500] / 16, y[:1500]).score(X[1500:] / 16, y[1500:]) > 0.8
    True
    >>> clf.image_shape_, clf.conv_layers_
    ((8, 8, 1), ((16, 5, 2), (32, 3, 2)))
    """

    _architecture_params = (
        "conv_layers", "dense_layers", "image_shape", "activation", "dictionary",
        "alpha_fraction", "n_columns", "length_scale", "ridge",
    )

    _parameter_constraints = {
        "conv_layers": [StrOptions({"auto"}), tuple, list],
        "dense_layers": [tuple, list],
        "image_shape": [tuple, list, StrOptions({"1d"}), None],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dictionary": [StrOptions(kind_names(extra={"auto"})), None, tuple, list],
        "alpha_fraction": [Interval(Real, 0, 1, closed="right"), tuple, list],
        "n_columns": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), tuple,
                      list],
        "length_scale": [Interval(Real, 0, None, closed="neither"), tuple, list],
        "ridge": [Interval(Real, 0, None, closed="neither"), None, StrOptions({"auto"}), tuple, list],
        **TRAINING_CONSTRAINTS,
        **CLASSIFIER_CONSTRAINTS,
    }

    def __init__(
        self,
        conv_layers="auto",
        dense_layers=(128,),
        *,
        image_shape=None,
        activation="relu",
        dictionary="auto",
        alpha_fraction=0.25,
        n_columns="auto",
        length_scale=1.0,
        ridge="auto",
        solver="adam",
        learning_rate_init=3e-3,
        learning_rate="constant",
        power_t=0.5,
        learning_rate_decay=1.0,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        batch_size="auto",
        max_iter=50,
        alpha=1e-4,
        shuffle=True,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        device="auto",
        random_state=None,
        verbose=0,
        progress_bar="auto",
        callbacks=None,
        class_weight=None,
        warm_start=False,
        compile=False,
    ):
        self.conv_layers = conv_layers
        self.dense_layers = dense_layers
        self.image_shape = image_shape
        self.activation = activation
        self.dictionary = dictionary
        self.alpha_fraction = alpha_fraction
        self.n_columns = n_columns
        self.length_scale = length_scale
        self.ridge = ridge
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.learning_rate_decay = learning_rate_decay
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.alpha = alpha
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.progress_bar = progress_bar
        self.callbacks = callbacks
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.compile = compile

    # ------------------------------------------------------------- inputs

    def _check_X(self, X, y="no_validation", reset=True):
        """Accept flat (n, rows*cols*channels) or 4-D (n, rows, cols, channels) X."""
        if getattr(X, "ndim", None) == 4:
            shape = tuple(X.shape[1:])
            if shape[0] in (1, 3) and shape[2] > 4 and self.image_shape is None:
                # (n, 1 or 3, H, W) is torch's layout, not skpred's: taken as
                # channels-last it would be 1 or 3 rows of W-channel pixels.
                raise ValueError(
                    f"4-D X of shape {tuple(X.shape)} looks channels-first (n, channels, "
                    f"rows, cols); skpred takes channels-last images (n, rows, cols, "
                    f"channels). Pass X.transpose(0, 2, 3, 1), or give image_shape to "
                    f"say the layout is meant.")
            expected = self._fit_image_shape() if not reset else self._declared_shape(shape)
            if shape != expected:
                raise ValueError(
                    f"4-D X has images of shape {shape} but image_shape is {expected}."
                )
            X = np.reshape(X, (X.shape[0], -1))
            if reset:
                self._input_image_shape = shape
        elif reset:
            self._input_image_shape = None
        if isinstance(y, str) and y == "no_validation":
            return validate_floats(self, X, reset=reset)
        return validate_floats(self, X, y, reset=reset, multi_output=True)

    def _declared_shape(self, shape_4d):
        if self.image_shape is None or self.image_shape == "1d":
            return shape_4d
        declared = tuple(int(s) for s in self.image_shape)
        return declared if len(declared) == 3 else declared + (1,)

    def _fit_image_shape(self):
        return getattr(self, "image_shape_", None)

    def _resolve_image_shape(self, n_features):
        """(rows, cols, channels) and whether the input is a 1-D signal."""
        if self.image_shape is None and getattr(self, "_input_image_shape", None) is not None:
            return self._input_image_shape, False
        return _kernels.grid_shape(n_features, self.image_shape)

    # -------------------------------------------------------------- specs

    def _specs(self, n_features):
        shape, one_d = self._resolve_image_shape(n_features)
        if isinstance(self.conv_layers, str):  # "auto"
            convs = list(auto_conv_layers(shape, one_d))
        else:
            convs = [tuple(c) if isinstance(c, (tuple, list)) else c for c in self.conv_layers]
        for c in convs:
            if (not isinstance(c, tuple) or len(c) != 3
                    or not all(isinstance(v, Integral) and v >= 1 for v in c)):
                raise ValueError(
                    f"conv_layers entries must be (n_filters, kernel_size, pool_size) of "
                    f"positive integers, got {c!r}."
                )
        dense = list(self.dense_layers)
        if not all(isinstance(d, Integral) and d >= 1 for d in dense):
            raise ValueError(f"dense_layers must be positive integers, got {self.dense_layers!r}.")
        if not convs and not dense:
            raise ValueError("The network needs at least one conv or dense layer.")
        rows, width, channels = shape
        layers = []
        for i, (n_filters, k, p) in enumerate(convs):
            where = f"conv layer {i + 1}"
            kh, kw = _pair(k, one_d)
            ph, pw = _pair(p, one_d)
            if kh > rows or kw > width:
                raise ValueError(
                    f"kernel_size={k} of {where} is larger than its {rows}x{width} feature map.")
            if rows // ph < 1 or width // pw < 1:
                raise ValueError(
                    f"pool_size={p} of {where} is larger than its {rows}x{width} feature map.")
            layers.append(dict(name=where, units=n_filters, unit_word="filters", has_grid=True,
                               allowed=CONV_DICTIONARIES, is_conv=True, equal_columns=True,
                               in_channels=channels,
                               kernel=(kh, kw), pool=(ph, pw)))
            rows, width, channels = rows // ph, width // pw, n_filters
        for j, units in enumerate(dense):
            # The first dense layer reads a grid (the last conv map, or the
            # image itself); deeper ones read hidden units, which have none.
            layers.append(dict(name=f"dense layer {j + 1}", units=int(units), has_grid=j == 0,
                               allowed=DENSE_DICTIONARIES, is_conv=False))
        specs = resolve_layer_specs(
            layers, dictionary=self.dictionary, alpha_fraction=self.alpha_fraction,
            n_columns=self.n_columns, length_scale=self.length_scale, ridge=self.ridge,
            what="conv_layers and dense_layers together")
        return shape, tuple(convs), specs, (rows, width, channels)

    # -------------------------------------------------------------- build

    def _build(self, X_t, n_classes, rng, generator, device, context):
        shape, conv_layers, specs, last_map = self._specs(X_t.shape[1])
        convs, pools, dictionaries, records = [], [], [], []

        def build(spec, n_in, data, grid):
            return build_dictionaries(
                spec["dictionary"], n_in, data, rng, alpha_fraction=spec["alpha_fraction"],
                n_columns=spec["n_columns"], length_scale=spec["length_scale"],
                ridge=spec["ridge"], image_shape=grid, device=device, weights=context["weights"],
                dp=context["dp"])

        def keep(spec, built, n_in):
            dictionaries.append(None if built is None else
                                layer_dictionary(built, spec, n_in, self.device))
            records.append(layer_record(spec, built, kind="conv" if spec["is_conv"] else "dense"))

        for spec in (s for s in specs if s["is_conv"]):
            kh, kw = spec["kernel"]
            c_in, c_out = spec["in_channels"], spec["units"]
            built = None
            if spec["dictionary"] is None:
                def make():
                    return torch.nn.Conv2d(c_in, c_out, (kh, kw), padding="same")
            else:
                grid = (kh, kw, c_in)
                built = build(spec, kh * kw * c_in, None, grid)
                banks = [hwc_to_chw_rows(U, grid) for U in built.dictionaries]

                def make():
                    return PredictedConv2d(c_in, c_out, (kh, kw), banks, padding="same")
            layer = _device.seeded(make, generator, device)
            convs.append(layer)
            pools.append(spec["pool"])
            keep(spec, built, kh * kw * c_in)
        dense_specs = [s for s in specs if not s["is_conv"]]
        with _device.untouched_global_rng():
            partial = PredictedConvNet(shape, convs, pools, [], n_classes, self.activation)
        # Features below a dense layer are computed only for data-driven dictionaries.
        reads_data = any(needs_data(s["dictionary"]) for s in dense_specs)
        inputs = _feeds.apply_in_batches(partial.conv_features, X_t) if reads_data else None
        n_in = partial.n_conv_features()
        act = ACTIVATIONS[self.activation]
        dense = []
        for j, spec in enumerate(dense_specs):
            # First dense layer: the grid of the last conv output (of the
            # image itself without convs); deeper: a 1-D grid.
            grid = None
            if needs_grid(spec["dictionary"]):
                grid = last_map if j == 0 else (1, n_in, 1)
            reorder = None
            if grid is not None and j == 0 and convs:
                reorder = functools.partial(hwc_to_chw_rows, shape=grid)
            make, built = dense_layer(spec, n_in, spec["units"], inputs, rng, image_shape=grid,
                                      reorder=reorder, device=device,
                                      weights=context["weights"], dp=context["dp"])
            out = spec["units"]
            layer = _device.seeded(make, generator, device)
            dense.append(layer)
            keep(spec, built, n_in)
            if inputs is not None and j + 1 < len(dense_specs):
                layer.eval()
                inputs = _feeds.apply_in_batches(lambda z: act(layer(z)), inputs)
            n_in = out
        module = _device.seeded_network(
            lambda: PredictedConvNet(shape, convs, pools, dense, n_classes, self.activation),
            generator, device)
        return module, dictionaries, dict(image_shape_=shape, conv_layers_=conv_layers,
                                          layers_=records)
