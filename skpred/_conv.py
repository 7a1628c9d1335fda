"""PredictedConvNetClassifier: convolutional parameter prediction (paper Fig. 5)."""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import validate_data

from . import _kernels, _training
from ._kernels import hwc_to_chw_rows
from ._base import TRAINING_CONSTRAINTS, TorchClassifierBase, per_layer
from ._dictionary import DATA_KERNELS, fit_layer_dictionary
from .nn import LowRankLinear, PredictedConv2d, PredictedLinear
from .nn._mlp import ACTIVATIONS
from .nn._convnet import PredictedConvNet

__all__ = ["PredictedConvNetClassifier"]

# Conv filters are predicted from fixed filter banks that need no data.
CONV_DICTIONARIES = frozenset({"se", "dct", "random", "randcon"})
# Dense layers may also use data-driven kernels and the LowRank baseline.
DENSE_DICTIONARIES = CONV_DICTIONARIES | DATA_KERNELS | {"lowrank"}


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
    conv_layers : tuple of (n_filters, kernel_size, pool_size), default=((48, 8, 2), (64, 8, 2), (64, 5, 2))
        The paper's CIFAR-10 network (48 8x8, 64 8x8 and 64 5x5 filters),
        each followed by 2x2 max pooling.
    dense_layers : tuple of int, default=(500,)
        Hidden dense layers after the convolutions.
    image_shape : tuple of int, "1d" or None, default=None
        ``(rows, cols)`` or ``(rows, cols, channels)`` of the flattened,
        channels-last input. None takes the shape of 4-D input
        ``(n, rows, cols, channels)``, or infers a square grayscale image.
        "1d" treats each sample as a 1-D signal of ``n_features`` values:
        kernels are ``1 x k`` and pooling ``1 x p`` (e.g. spectra).
    activation : {"relu", "sigmoid", "tanh"}, default="relu"
    dictionary : str, None or tuple, default="se"
        Per weight layer (the convs, then the dense layers; one value for all
        or a tuple of that length). Conv layers: ``"se"``, ``"dct"``,
        ``"random"``, ``"randcon"`` or None (ordinary conv). Dense layers also
        ``"emp"``/``"emp2"``/``"ae"`` (computed from the conv features of the
        training data at initialisation) and ``"lowrank"``.
    alpha_fraction : float or tuple, default=0.25
        Share of each filter's (or unit's) weights that is learned, per layer.
        For conv layers it is the share of the filter's pixels; all channels
        of a chosen pixel are kept.
    n_columns : int or tuple, default=(1, 1, 1, 5)
        Columns per layer; they split the filters (or units). The paper's
        dense layer has 5 columns.
    length_scale : float or tuple, default=1.0
        ``se`` length scale in pixels, per layer.
    ridge : float, None, "auto" or tuple, default="auto"
        Kernel ridge of each layer's dictionary (see KernelDictionary).
    solver : {"sgd", "adam"}, default="sgd"
    learning_rate_init : float, default=0.01
    learning_rate_decay : float >= 1, default=1.0
        The learning rate is divided by this after every minibatch.
    momentum : float, default=0.9
    batch_size : int, default=128
    max_iter : int, default=50
    weight_decay : float, default=1e-4
        L2 penalty on the learned weights, not on biases.
    shuffle, early_stopping, validation_fraction, n_iter_no_change, tol :
        As in :class:`PredictedMLPClassifier`.
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    warm_start : bool, default=False

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, n_iter_, loss_curve_,
    validation_scores_, best_validation_score_ :
        As in :class:`PredictedMLPClassifier`.
    image_shape_ : tuple of int
        ``(rows, cols, channels)`` used.
    dictionaries_ : list of KernelDictionary or None
        One per weight layer (convs then dense). For a conv layer its grid is
        the filter, ``(kh, kw, in_channels)`` channels-last; the module holds
        the same dictionary with rows in torch's ``(in_channels, kh, kw)``
        order.
    n_dynamic_params_, n_static_params_, fraction_learned_ :
        Learned and fixed weights of the hidden layers (convs and dense;
        softmax and biases excluded) and the share learned in the predicted
        ones.
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
    >>> clf = PredictedConvNetClassifier(
    ...     conv_layers=((16, 3, 2),), dense_layers=(), n_columns=1, alpha_fraction=0.5,
    ...     solver="adam", learning_rate_init=0.01, max_iter=10, device="cpu", random_state=0)
    >>> clf.fit(X[:1500] / 16, y[:1500]).score(X[1500:] / 16, y[1500:]) > 0.85
    True
    """

    _parameter_constraints = {
        "conv_layers": [tuple, list],
        "dense_layers": [tuple, list],
        "image_shape": [tuple, list, StrOptions({"1d"}), None],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dictionary": [StrOptions(set(DENSE_DICTIONARIES)), None, tuple, list],
        "alpha_fraction": [Interval(Real, 0, 1, closed="right"), tuple, list],
        "n_columns": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "length_scale": [Interval(Real, 0, None, closed="neither"), tuple, list],
        "ridge": [Interval(Real, 0, None, closed="neither"), None, StrOptions({"auto"}), tuple, list],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        conv_layers=((48, 8, 2), (64, 8, 2), (64, 5, 2)),
        dense_layers=(500,),
        *,
        image_shape=None,
        activation="relu",
        dictionary="se",
        alpha_fraction=0.25,
        n_columns=(1, 1, 1, 5),
        length_scale=1.0,
        ridge="auto",
        solver="sgd",
        learning_rate_init=0.01,
        learning_rate_decay=1.0,
        momentum=0.9,
        batch_size=128,
        max_iter=50,
        weight_decay=1e-4,
        shuffle=True,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
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
        self.learning_rate_decay = learning_rate_decay
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.weight_decay = weight_decay
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------- inputs

    def _check_X(self, X, y="no_validation", reset=True):
        """Accept flat (n, rows*cols*channels) or 4-D (n, rows, cols, channels) X."""
        if getattr(X, "ndim", None) == 4:
            shape = tuple(X.shape[1:])
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
        return validate_data(self, X, y, reset=reset, dtype=[np.float32, np.float64])

    def _declared_shape(self, shape_4d):
        if self.image_shape is None or self.image_shape == "1d":
            return shape_4d
        declared = tuple(int(s) for s in self.image_shape)
        return declared if len(declared) == 3 else declared + (1,)

    def _fit_image_shape(self):
        return getattr(self, "image_shape_", None)

    def _resolve_image_shape(self, n_features):
        if self.image_shape == "1d":
            return (1, n_features, 1)
        if self.image_shape is None and getattr(self, "_input_image_shape", None) is not None:
            return self._input_image_shape
        return _kernels.infer_image_shape(n_features, self.image_shape)

    # -------------------------------------------------------------- specs

    def _specs(self, n_features):
        shape = self._resolve_image_shape(n_features)
        one_d = self.image_shape == "1d"
        convs = [tuple(c) for c in self.conv_layers]
        for c in convs:
            if len(c) != 3 or not all(isinstance(v, Integral) and v >= 1 for v in c):
                raise ValueError(
                    f"conv_layers entries must be (n_filters, kernel_size, pool_size) of "
                    f"positive integers, got {c!r}."
                )
        dense = list(self.dense_layers)
        if not all(isinstance(d, Integral) and d >= 1 for d in dense):
            raise ValueError(f"dense_layers must be positive integers, got {self.dense_layers!r}.")
        n_layers = len(convs) + len(dense)
        if n_layers == 0:
            raise ValueError("The network needs at least one conv or dense layer.")
        what = "conv_layers and dense_layers together"
        dicts = per_layer("dictionary", self.dictionary, n_layers, what,
                          is_scalar=lambda v: v is None or isinstance(v, str))
        fracs = per_layer("alpha_fraction", self.alpha_fraction, n_layers, what)
        cols = per_layer("n_columns", self.n_columns, n_layers, what)
        scales = per_layer("length_scale", self.length_scale, n_layers, what,
                           is_scalar=lambda v: isinstance(v, Real))
        ridges = per_layer("ridge", self.ridge, n_layers, what)
        specs = []
        rows, width, channels = shape
        for i in range(n_layers):
            is_conv = i < len(convs)
            where = f"conv layer {i + 1}" if is_conv else f"dense layer {i - len(convs) + 1}"
            d, f, c = dicts[i], fracs[i], cols[i]
            allowed = CONV_DICTIONARIES if is_conv else DENSE_DICTIONARIES
            if d is not None and d not in allowed:
                raise ValueError(f"dictionary of {where} must be one of {sorted(allowed)} or None, got {d!r}.")
            if not isinstance(f, Real) or not 0 < f <= 1:
                raise ValueError(f"alpha_fraction of {where} must be in (0, 1], got {f!r}.")
            if not isinstance(c, Integral) or c < 1:
                raise ValueError(f"n_columns of {where} must be a positive integer, got {c!r}.")
            spec = dict(dictionary=d, alpha_fraction=float(f), n_columns=int(c),
                        length_scale=scales[i], ridge=ridges[i], is_conv=is_conv)
            if is_conv:
                n_filters, k, p = convs[i]
                kh, kw = _pair(k, one_d)
                ph, pw = _pair(p, one_d)
                if kh > rows or kw > width:
                    raise ValueError(
                        f"kernel_size={k} of {where} is larger than its {rows}x{width} "
                        f"feature map."
                    )
                if rows // ph < 1 or width // pw < 1:
                    raise ValueError(
                        f"pool_size={p} of {where} is larger than its {rows}x{width} feature map."
                    )
                units, what_units = n_filters, "filters"
                spec.update(in_channels=channels, out=n_filters, kernel=(kh, kw), pool=(ph, pw))
                rows, width, channels = rows // ph, width // pw, n_filters
            else:
                units, what_units = dense[i - len(convs)], "units"
                spec.update(out=units)
            if d is not None and c > units:
                raise ValueError(f"n_columns={c} exceeds the {units} {what_units} of {where}.")
            if d is not None and units % c:
                raise ValueError(
                    f"n_columns={c} does not divide the {units} {what_units} of {where}: "
                    f"they are split equally among columns."
                )
            specs.append(spec)
        return shape, specs, (rows, width, channels)

    # -------------------------------------------------------------- build

    def _build(self, X_t, n_classes, rng, generator, device):
        shape, specs, last_map = self._specs(X_t.shape[1])
        self.image_shape_ = shape
        convs, pools, dictionaries = [], [], []
        for spec in (s for s in specs if s["is_conv"]):
            kh, kw = spec["kernel"]
            c_in, c_out = spec["in_channels"], spec["out"]
            if spec["dictionary"] is None:
                layer = torch.nn.Conv2d(c_in, c_out, (kh, kw), padding="same", device=device)
                kd = None
            else:
                grid = (kh, kw, c_in)
                kd = fit_layer_dictionary(spec, kh * kw * c_in, None, rng, device, grid)
                banks = [hwc_to_chw_rows(U, grid) for U in kd.dictionaries_]
                layer = PredictedConv2d(c_in, c_out, (kh, kw), banks, padding="same", device=device)
            _training.reset_layer_(layer, generator)
            convs.append(layer)
            pools.append(spec["pool"])
            dictionaries.append(kd)
        # Conv features are needed only by data-driven dense dictionaries.
        dense_specs = [s for s in specs if not s["is_conv"]]
        partial = PredictedConvNet(shape, convs, pools, [], n_classes, self.activation, device=device)
        needs_data = any(s["dictionary"] in DATA_KERNELS for s in dense_specs)
        inputs = _training.apply_in_batches(partial.conv_features, X_t) if needs_data else None
        n_in = partial.n_conv_features()
        act = ACTIVATIONS[self.activation]
        dense = []
        for j, spec in enumerate(dense_specs):
            kind, out = spec["dictionary"], spec["out"]
            kd = None
            if kind is None:
                layer = torch.nn.Linear(n_in, out, device=device)
            elif kind == "lowrank":
                layer = LowRankLinear.for_fraction(n_in, out, spec["alpha_fraction"],
                                                   spec["n_columns"], device=device)
            else:
                grid = None
                if kind in ("se", "dct"):
                    # First dense layer: the grid of the last conv output.
                    grid = (last_map if j == 0 and convs else (1, n_in, 1))
                kd = fit_layer_dictionary(spec, n_in, inputs, rng, device, grid)
                Us = kd.dictionaries_
                if grid is not None and j == 0 and convs:
                    Us = [hwc_to_chw_rows(U, grid) for U in Us]
                layer = PredictedLinear(n_in, out, Us, device=device)
            _training.reset_layer_(layer, generator)
            dense.append(layer)
            dictionaries.append(kd)
            if inputs is not None and j + 1 < len(dense_specs):
                layer.eval()
                inputs = _training.apply_in_batches(lambda z: act(layer(z)), inputs)
            n_in = out
        module = PredictedConvNet(shape, convs, pools, dense, n_classes, self.activation, device=device)
        _training.reset_linear_(module.output, generator)
        return module, dictionaries
