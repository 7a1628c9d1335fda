"""PredictedMLPClassifier: the paper's MLP with predicted hidden layers."""

import functools
import warnings
from numbers import Integral, Real

import numpy as np
import torch

from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions

from . import _device, _feeds, _kernels, _pretrain
from ._base import (CLASSIFIER_CONSTRAINTS, TRAINING_CONSTRAINTS, TorchClassifierBase,
                    TorchRegressorBase, resolve_batch_size)
from ._dictionary import layer_dictionary
from ._kinds import kind_names, needs_data, needs_grid
from ._layers import AUTO_MIN_INPUTS, dense_layer, layer_record, per_layer, resolve_layer_specs
from .nn._linear import FactoredLayer
from .nn._mlp import ACTIVATIONS, PredictedMLP, glorot_bound, max_norm_

__all__ = ["PredictedMLPClassifier", "PredictedMLPRegressor", "PAPER_MLP_SETTINGS"]

# The string options of `dictionary`: every registered kind (a live view of
# the registry), the LowRank baseline included. None is a dense layer.
DICTIONARIES = kind_names()

#: ``init="authors"``: pylearn2's ``irange`` of the hidden layers' learned
#: matrices and of the softmax layer in the authors' MNIST templates.
AUTHORS_IRANGE = (0.1, 0.02)

#: The authors' MNIST setting (Denil et al. 2013, as released in
#: github.com/mdenil/parameter_prediction, ``examples/multijob/mnist_0001``;
#: docs/authors_settings.md lists every value with its file and line): a
#: 784-500-500-10 sigmoid network, SE on layer 1 as their
#: ``SubsampledDictionaryLayer`` (U = K[:, alpha], no ridge) and Emp on
#: layer 2 (their ``CovarianceDictionary`` in the same layer: U = the
#: covariance's columns alpha, no ridge; ``ridge=1e-3`` is their earlier
#: kernel-ridge code); greedy
#: pretraining of every layer by their recipe (SGD at 0.1, momentum 0.7,
#: sigmoid tied decoder, one reconstruction per column, 50 epochs);
#: fine-tuning by plain SGD at 0.01 with classical momentum 0.7, the rate
#: divided by 1.00004 after every minibatch, batches of 100, all 100 epochs
#: (no stopping rule); weight decay ``5e-5 * sum(W^2)`` on every learned
#: matrix, softmax included (gradient 1e-4 W: scikit-learn's ``alpha`` = 1e-4
#: x 100 = 1e-2); max column norm 1.9365 on V; their initialisation.
#: ``PredictedMLPClassifier(**PAPER_MLP_SETTINGS)`` is that network; the
#: figure commands start from it and set the alpha fraction and the columns
#: per experiment. Tuned for the 60,000 MNIST training images: on other data
#: start from the estimator's defaults instead.
PAPER_MLP_SETTINGS = dict(
    hidden_layer_sizes=(500, 500),
    activation="logistic",
    dictionary=("se", "emp"),
    ridge=None,
    pretrain=True,
    pretrain_epochs=50,
    pretrain_learning_rate=0.1,
    pretrain_recipe="authors",
    init="authors",
    solver="sgd",
    learning_rate_init=0.01,
    learning_rate="decay",
    learning_rate_decay=1.00004,
    momentum=0.7,
    nesterovs_momentum=False,
    batch_size=100,
    max_iter=100,
    n_iter_no_change=np.inf,
    alpha=1e-2,
    max_norm=1.9365,
    max_norm_on="V",
)


#: Pooling once may hold at most this many times the memory of its input.
MAX_POOLED_RATIO = 4


def pool_once(layer, X_t, epochs, batch_size):
    """``layer.pool(X)`` for the whole training set, or None where it does
    not pay.

    A predicted layer reads its input through a fixed U; while the input
    does not change (layer 1 on X during fine-tuning; every layer during
    its greedy pretraining), ``X U`` is the same on every epoch. When
    computing it once and running only ``(X U) V`` per step costs fewer
    multiply-adds over the epochs than running the layer on every step
    (training: forward and backward), training reads ``X U`` instead of
    X, provided it takes at most :data:`MAX_POOLED_RATIO` times X's memory
    (dense X: ``C * a <= 4 n_in``; sparse X: four times its CSR arrays)
    and at most half of the memory still available on X's device. The
    result equals the per-step computation up to rounding.
    """
    if epochs < 1 or not getattr(layer, "fixed_dictionary", False):
        return None
    costs = layer.pool_once_cost(epochs, batch_size)
    pooled_bytes = X_t.shape[0] * layer.n_columns * layer.n_atoms * X_t.dtype.itemsize
    if (costs["pool once"] >= costs["per step"] or pooled_bytes > MAX_POOLED_RATIO * X_t.nbytes
            or not _device.has_room(pooled_bytes, X_t.device)):
        return None
    return _feeds.apply_in_batches(layer.pool, X_t)


class _MLPNetwork:
    """The MLP's layers, dictionaries and pretraining, shared by the
    classifier and the regressor (the task comes from the other base)."""

    _accept_sparse = "csr"

    # The network's parameters, the classifier's and the regressor's alike.
    _network_constraints = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dictionary": [StrOptions(kind_names(extra={"auto"})), None, tuple, list],
        "alpha_fraction": [Interval(Real, 0, 1, closed="right"), tuple, list],
        "n_columns": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), tuple, list],
        "length_scale": [Interval(Real, 0, None, closed="neither"), tuple, list],
        "ridge": [Interval(Real, 0, None, closed="neither"), None, StrOptions({"auto"}), tuple, list],
        "image_shape": [tuple, list, None],
        "ae_n_components": [Interval(Integral, 1, None, closed="left"), None],
        "pretrain": [StrOptions({"auto"}), "boolean"],
        "pretrain_epochs": [Interval(Integral, 0, None, closed="left")],
        "pretrain_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "pretrain_recipe": [StrOptions({"adam", "authors"})],
        "init": [StrOptions({"glorot", "authors"})],
        "max_norm": [Interval(Real, 0, None, closed="neither"), None],
        "max_norm_on": [StrOptions({"W", "V"})],
        "solver": [StrOptions({"sgd", "adam", "lbfgs"})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
    }

    _architecture_params = (
        "hidden_layer_sizes", "activation", "dictionary", "alpha_fraction", "n_columns",
        "length_scale", "ridge", "image_shape", "ae_n_components",
    )

    # ------------------------------------------------------------------ specs

    def _layer_specs(self):
        """Validated per-layer settings ("auto" resolved): one dict per hidden layer."""
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if isinstance(sizes, Integral) else list(sizes)
        if not sizes or not all(isinstance(s, Integral) and s >= 1 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be a non-empty sequence of positive "
                f"integers, got {self.hidden_layer_sizes!r}."
            )
        layers = [dict(name=f"hidden layer {i + 1}", units=int(size),
                       has_grid=i == 0 and self.image_shape is not None, allowed=DICTIONARIES)
                  for i, size in enumerate(sizes)]
        return resolve_layer_specs(
            layers, dictionary=self.dictionary, alpha_fraction=self.alpha_fraction,
            n_columns=self.n_columns, length_scale=self.length_scale, ridge=self.ridge,
            what="hidden_layer_sizes")

    def _pretrained_layers(self, specs):
        """Indices of hidden layers to pretrain as autoencoders."""
        if self.pretrain is True:
            return set(range(len(specs)))
        if self.pretrain is False:
            return set()
        needs = [i for i, s in enumerate(specs) if i >= 1 and needs_data(s["dictionary"])]
        return set(range(max(needs))) if needs else set()

    # ----------------------------------------------------------------- build

    def _make_layer(self, i, spec, n_in, inputs, rng, device, weights=None, dp=None):
        """A constructor of one hidden layer (on the CPU), and its dictionaries
        (a LayerDictionaries, or None).

        ``inputs`` (the layer's input on the training data) is read only by
        data-driven dictionaries; it is None when no layer needs it.
        """
        if needs_grid(spec["dictionary"]):
            # Layer 1 uses the image grid; higher layers a 1-D grid over units.
            image_shape = self.image_shape if i == 0 else (1, n_in)
        else:
            image_shape = self.image_shape if i == 0 else None
        return dense_layer(spec, n_in, spec["units"], inputs, rng, image_shape=image_shape,
                           ae_n_components=self.ae_n_components,
                           ae_max_iter=self.pretrain_epochs, ae_recipe=self.pretrain_recipe,
                           device=device, weights=weights,
                           dp=dp)

    def _max_norm_step(self, layers):
        """The max-norm constraint as an after-step hook (None when disabled)."""
        if self.max_norm is None:
            return None

        def after_step():
            max_norm_(layers, self.max_norm, on=self.max_norm_on)

        return after_step

    def _build(self, X_t, n_outputs, rng, generator, device, context):
        if self.image_shape is not None:
            # Checked even where no layer reads it (dictionary=None, emp).
            _kernels.infer_image_shape(X_t.shape[1], self.image_shape)
        specs = self._layer_specs()
        # "auto" on a layer with few inputs: an ordinary dense layer.
        n_in = X_t.shape[1]
        for spec, asked in zip(specs, per_layer("dictionary", self.dictionary, len(specs))):
            if asked == "auto" and n_in < AUTO_MIN_INPUTS:
                spec["dictionary"] = None
            n_in = spec["units"]
        pretrained = self._pretrained_layers(specs)
        act = ACTIVATIONS[self.activation]
        batch_size = resolve_batch_size(self.batch_size, X_t.shape[0])
        hidden, dictionaries, layers, history = [], [], [], []
        # The highest layer that reads its input data (to pretrain on it or to
        # build a data-driven dictionary); activations are computed up to it.
        last_reader = max(
            (j for j, s in enumerate(specs) if j in pretrained or needs_data(s["dictionary"])),
            default=-1,
        )
        inputs_t = X_t
        n_in = X_t.shape[1]
        interrupted = False
        for i, spec in enumerate(specs):
            make, built = self._make_layer(i, spec, n_in, inputs_t, rng, device,
                                           context["weights"], context["dp"])
            # scikit-learn's Glorot initialisation (V scaled for W = U V)
            layer = _device.seeded(make, generator, device,
                                   bound=glorot_bound(n_in, spec["units"], self.activation),
                                   irange=AUTHORS_IRANGE[0] if self.init == "authors" else None)
            was_pretrained = i in pretrained and not interrupted
            if was_pretrained:
                # Ctrl-C (warned once, in the loop) ends pretraining here and
                # skips fine-tuning; the layers above are still built.
                result = _pretrain.fit_tied_autoencoder(
                    layer, inputs_t, act, epochs=self.pretrain_epochs,
                    # its input is fixed while it pretrains (greedy): pooled once
                    pooled=pool_once(layer, inputs_t, self.pretrain_epochs, batch_size),
                    batch_size=batch_size, learning_rate=self.pretrain_learning_rate,
                    generator=generator, after_step=self._max_norm_step([layer]),
                    weights=context["weights"], phase=f"pretrain layer {i + 1}",
                    callbacks=context["callbacks"](f"pretrain layer {i + 1}"),
                    estimator=self, dp=context["dp"], recipe=self.pretrain_recipe,
                    momentum=self.momentum, learning_rate_decay=self.learning_rate_decay,
                )
                interrupted = result.interrupted
                history.extend(result.history)
            hidden.append(layer)
            dictionaries.append(None if built is None else
                                layer_dictionary(built, spec, n_in, self.device))
            layers.append(layer_record(spec, built, pretrained=was_pretrained))
            n_in = spec["units"]
            if i + 1 <= last_reader:
                layer.eval()
                activations = functools.partial(_feeds.apply_in_batches,
                                                lambda x, layer=layer: act(layer(x)), inputs_t)
                try:
                    outputs = activations()
                except KeyboardInterrupt:
                    # Ctrl-C between two layers ends pretraining as it does
                    # inside one; the layers above are built from this pass,
                    # so it is run to its end (one forward pass; a second
                    # Ctrl-C cancels the fit and leaves the estimator as it was).
                    if not interrupted:
                        warnings.warn("Training interrupted by the user; keeping the weights "
                                      "trained so far.", UserWarning)
                    interrupted = True
                    outputs = activations()
                inputs_t = outputs
            else:
                inputs_t = None  # nothing above reads this layer's activations
        module = _device.seeded_network(
            lambda: PredictedMLP(hidden, n_outputs, self.activation), generator, device,
            output_bound=glorot_bound(n_in, n_outputs, self.activation),
            output_irange=AUTHORS_IRANGE[1] if self.init == "authors" else None)
        return module, dictionaries, dict(layers_=layers, _interrupted=interrupted,
                                          _history=history)

    # ------------------------------------------------------ compression

    @classmethod
    def from_trained(cls, trained, X, y, *, fine_tune_epochs=0, **params):
        """A predicted network compressed from a trained dense MLP.

        The network has ``trained``'s layer sizes and activation; each
        predicted layer's V is the least-squares fit of the trained weights
        (per column, ``min ||U_c V_c - W_c||``: exact where U_c has full
        rank, e.g. ``alpha_fraction=1``), dense layers and the output layer
        take the trained weights as they are, and every bias is copied. The
        dictionaries are built as :meth:`fit` builds them (data-driven
        kinds from ``X``); nothing is pretrained. Then ``fine_tune_epochs``
        calls of :meth:`partial_fit` on ``(X, y)`` train V.

        Parameters
        ----------
        trained : fitted scikit-learn ``MLPClassifier`` / ``MLPRegressor``,
            or a fitted skpred MLP estimator (any object with ``coefs_``,
            ``intercepts_`` and ``activation``).
        X, y : the training data (or a sample of it): the estimator's
            checks, classes and data-driven dictionaries read it.
        fine_tune_epochs : int, default=0
        **params : this estimator's parameters (``alpha_fraction``,
            ``dictionary``, ``n_columns``, the optimiser's, ...);
            ``hidden_layer_sizes`` and ``activation`` come from ``trained``.

        Returns
        -------
        estimator : fitted, with ``n_iter_`` the fine-tuning epochs. A later
            :meth:`fit` builds a new network from scratch, as always;
            :meth:`partial_fit` continues from this one.
        """
        from ._convert import fit_to_weights_

        coefs = getattr(trained, "coefs_", None)
        intercepts = getattr(trained, "intercepts_", None)
        if coefs is None or intercepts is None or len(coefs) < 2:
            raise ValueError("from_trained needs a fitted MLP with at least one hidden layer "
                             "(coefs_ and intercepts_).")
        for name in ("hidden_layer_sizes", "activation", "pretrain"):
            if name in params:
                raise ValueError(f"from_trained takes {name} from the trained network "
                                 f"(no pretraining); do not pass it.")
        if (not isinstance(fine_tune_epochs, Integral) or isinstance(fine_tune_epochs, bool)
                or fine_tune_epochs < 0):
            raise ValueError(f"fine_tune_epochs must be a non-negative integer, got "
                             f"{fine_tune_epochs!r}.")
        activation = getattr(trained, "activation", None)
        if activation not in ACTIVATIONS:
            raise ValueError(f"The trained network's activation {activation!r} is not one of "
                             f"{sorted(ACTIVATIONS)}.")
        est = cls(hidden_layer_sizes=tuple(int(c.shape[1]) for c in coefs[:-1]),
                  activation=activation, pretrain=False, **params)
        est._validate_params()
        X, y = est._validate_fit_data(X, y, reset=True)
        if est.n_features_in_ != coefs[0].shape[0]:
            raise ValueError(f"X has {est.n_features_in_} features; the trained network "
                             f"takes {coefs[0].shape[0]}.")
        with warnings.catch_warnings():
            # the network is built, not trained: no convergence to report
            warnings.simplefilter("ignore", ConvergenceWarning)
            est._fit(X, y, None, epochs=0, incremental=False)
        layers = est.module_.weight_layers()
        if layers[-1].weight.shape != (coefs[-1].shape[1], coefs[-1].shape[0]):
            raise ValueError(f"The trained network has {coefs[-1].shape[1]} outputs; this "
                             f"data gives {layers[-1].weight.shape[0]}.")
        with torch.no_grad():
            for layer, W, b in zip(layers, coefs, intercepts):
                W, b = np.asarray(W, dtype=np.float64).T, np.asarray(b, dtype=np.float64)
                if isinstance(layer, FactoredLayer):
                    if not layer.fixed_dictionary:
                        raise ValueError("from_trained fits V to fixed dictionaries; the "
                                         "lowrank baseline learns U as well.")
                    fit_to_weights_(layer, W, b)
                else:
                    layer.weight.copy_(torch.as_tensor(W).to(layer.weight))
                    layer.bias.copy_(torch.as_tensor(b).to(layer.bias))
        est._set_weight_attributes()
        for _ in range(fine_tune_epochs):
            est.partial_fit(X, y)
        return est

    # ------------------------------------------------------------- hooks

    def _training_feed(self, module, X_t, epochs, batch_size):
        """Fine-tuning reads layer 1's pooling of X when :func:`pool_once`
        computes it (and runs the network from it), else X."""
        pooled = pool_once(module.hidden[0], X_t, epochs, batch_size)
        if pooled is None:
            return X_t, module
        return pooled, module.forward_pooled

    def _after_step(self, module):
        return self._max_norm_step(list(module.hidden))

    def _set_weight_attributes(self):
        super()._set_weight_attributes()
        layers = self.module_.weight_layers()
        # in the input's float dtype, as scikit-learn's
        dtype = np.dtype(getattr(self, "_fit_dtype", "float32"))
        self.coefs_ = [l.weight.detach().t().cpu().numpy().astype(dtype) for l in layers]
        self.intercepts_ = [l.bias.detach().cpu().numpy().astype(dtype) for l in layers]


class PredictedMLPClassifier(_MLPNetwork, TorchClassifierBase):
    """Multilayer perceptron with predicted hidden layers (Denil et al. 2013).

    Each hidden layer's weights are factored as ``W = U V``: ``U`` is a fixed
    dictionary built by :class:`KernelDictionary` (kernel ridge regression
    from a random subset alpha of the layer's inputs, or another dictionary)
    and only ``V`` is learned. The output softmax layer is an ordinary dense
    layer. Trained with PyTorch on a GPU when one is present.

    Dictionaries that need data (``emp``, ``emp2``, ``ae``) on layer 2 and
    above are computed from the activations of the layer below, which is
    first pretrained greedily as a tied-weight autoencoder (in its predicted
    form); the whole network is then fine-tuned by backpropagation with every
    ``U`` frozen.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Units per hidden layer (any depth).
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Hidden-layer nonlinearity, scikit-learn's names (the paper uses
        "logistic"; "sigmoid" is accepted as its other name).
    dictionary : "auto", str, None or tuple, default="auto"
        Per hidden layer, ``"auto"``, one of ``"se"``, ``"emp"``, ``"emp2"``,
        ``"ae"``, ``"random"``, ``"randcon"``, ``"dct"`` (see
        :class:`KernelDictionary`), ``"lowrank"`` (U learned too; the rank
        per column is chosen so that the fraction learned matches
        ``alpha_fraction``) or None (an ordinary dense layer). A single value
        applies to every hidden layer. ``"auto"`` follows the paper's rule:
        ``"se"`` on layer 1 when ``image_shape`` is given (an image input has
        a pixel grid), ``"emp"`` everywhere else (tabular input, and the
        hidden units of deeper layers, which have no order), except that a
        layer with fewer than 16 inputs is an ordinary dense layer (at the
        default alpha it would predict its weights from 3 values or fewer).
        The number of features alone never makes the input an image. On hidden layers
        above the first, an explicit ``"se"`` or ``"dct"`` uses a 1-D grid
        over the index of the units below (a weak prior). The resolved
        choice of every layer is in ``layers_``.
    alpha_fraction : float in (0, 1] or tuple, default=0.25
        Share of each hidden unit's weights that is learned, per layer.
    n_columns : "auto", int or tuple, default="auto"
        Columns per hidden layer, from 1 to the layer's units; they split
        the units as evenly as ``np.array_split`` does (3 columns of 100
        units: 34, 33, 33), each with its own alpha. ``"auto"`` is the
        largest divisor of the layer's units up to 4 (4 for 100 or 500
        units). Columns add fixed weights,
        not learned ones, and are what keeps small fractions accurate.
    length_scale : float or tuple, default=1.0
        ``se`` length scale per hidden layer (a scalar for all layers, or a
        tuple with one entry per layer; an entry may itself be a
        ``(rows, cols)`` pair for the first layer).
    ridge : float, None, "auto" or tuple, default="auto"
        Ridge of the kernel ridge predictor per layer (see
        :class:`KernelDictionary`): "auto" is 0.1 for ``se`` and 0.01 times
        the kernel's mean diagonal (the mean variance of the layer's inputs)
        for ``emp``/``emp2``.
    image_shape : tuple of int or None, default=None
        ``(rows, cols)`` or ``(rows, cols, channels)`` of the input: give it
        to treat the input as an image (``"auto"`` then uses ``se`` on layer
        1). With None, an explicit ``"se"``/``"dct"`` on layer 1 infers a
        square grayscale image.
    ae_n_components : int or None, default=None
        Atoms of the ``ae`` dictionaries; None means twice the layer's input
        width.
    pretrain : "auto" or bool, default="auto"
        Greedy layer-wise autoencoder pretraining. "auto" pretrains the layers
        below the highest layer (from 2 up) whose dictionary needs data (the
        data kernel of layer k is the covariance of layer k-1's activations,
        which pretraining makes meaningful); True pretrains every hidden
        layer; False none (data dictionaries above layer 1 then come from the
        activations of the randomly initialised layer below). With the
        defaults, a one-layer network is not pretrained.
    pretrain_epochs : int, default=10
        Autoencoder epochs per pretrained layer (and for ``ae`` dictionaries).
    pretrain_learning_rate : float, default=1e-3
        Learning rate of pretraining (Adam's, or SGD's with
        ``pretrain_recipe="authors"``, whose rate was 0.1).
    pretrain_recipe : {"adam", "authors"}, default="adam"
        How each layer is pretrained as a tied autoencoder. "adam": Adam, a
        linear decoder with a bias of its own, one reconstruction from all
        units, the mean squared error per input value. With predicted layers
        SGD's step depends on the scale of U and drove sigmoid units into
        saturation in our runs on small data, hence Adam by default.
        "authors" (their ``pretrain_layer*.yaml``): SGD with classical
        ``momentum``, the rate divided by ``learning_rate_decay`` after every
        minibatch, a sigmoid decoder without bias (inputs in [0, 1]), every
        column reconstructing the whole input from its own units, the
        squared error summed over input values and columns.
    init : {"glorot", "authors"}, default="glorot"
        Initial weights. "glorot": scikit-learn's Glorot uniform (for a
        predicted layer, V scaled so that W = U V has that variance).
        "authors" (pylearn2's ``irange``): every learned hidden matrix (V of
        a predicted layer, W of a dense one, U and V of a lowrank one)
        uniform on (-0.1, 0.1) whatever the dictionary's scale, the output
        layer on (-0.02, 0.02), biases zero.
    solver : {"adam", "sgd", "lbfgs"}, default="adam"
        Fine-tuning optimiser; "sgd" uses ``momentum``. "lbfgs" is full-batch
        ``torch.optim.LBFGS`` with a strong-Wolfe line search, as scikit-
        learn's: at most ``max_iter`` iterations, ``max_fun`` loss
        evaluations, stopping once no gradient entry exceeds ``tol``; it
        ignores ``batch_size``, ``shuffle``, ``early_stopping`` and the
        learning-rate parameters, offers no ``partial_fit``, and refuses
        ``max_norm`` and ``callbacks`` (its steps run inside one torch
        call). Pretraining follows ``pretrain_recipe`` whatever the solver.
    learning_rate_init : float, default=1e-3
        Initial fine-tuning learning rate.
    learning_rate : {"constant", "invscaling", "adaptive", "decay"} or callable, default="constant"
        Learning-rate schedule of fine-tuning, for either solver (unlike
        scikit-learn, where only "sgd" uses it): "constant";
        "invscaling", ``learning_rate_init / (t + 1) ** power_t`` after
        every epoch, ``t`` the samples seen; "adaptive", divided by 5 each
        time the stopping rule is met instead of stopping, unless it is
        already at most 1e-6; "decay", divided by ``learning_rate_decay`` after
        every minibatch (the authors' schedule). Each is a
        ``torch.optim.lr_scheduler`` scheduler. A callable
        ``learning_rate(optimizer)`` returns a scheduler of your own (e.g.
        ``functools.partial(torch.optim.lr_scheduler.StepLR, step_size=10)``),
        stepped after every epoch (a ``ReduceLROnPlateau`` with the
        validation loss under early stopping, else the training loss). The
        rate of every epoch is in ``history_``.
    power_t : float, default=0.5
        Exponent of "invscaling".
    learning_rate_decay : float >= 1, default=1.0
        Divisor of "decay" (the authors' 1.00004 is in
        :data:`PAPER_MLP_SETTINGS`); a value other than 1 with another
        schedule is a ValueError.
    momentum : float in [0, 1], default=0.9
        Momentum of "sgd".
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for "sgd" (scikit-learn's default); False is
        classical momentum (the authors').
    beta_1, beta_2 : float in [0, 1), default=0.9, 0.999
        Adam's decay rates of the first and second moment estimates.
    epsilon : float, default=1e-8
        Adam's value for numerical stability.
    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" is ``min(200, n_samples)`` as in scikit-learn.
    max_iter : int, default=200
        Fine-tuning epochs at most (L-BFGS iterations with "lbfgs").
    max_fun : int, default=15000
        With "lbfgs", no new iteration starts once this many loss
        evaluations were spent (an iteration's line search may pass it
        slightly, as scipy's does); other solvers ignore it.
    alpha : float, default=1e-4
        Strength of the L2 penalty, scikit-learn's: ``0.5 * alpha * sum
        ||w||^2`` divided by the minibatch's size (its sum of sample
        weights) is added to every minibatch's loss. It applies to what the
        network learns: V of a predicted layer (not the fixed U), W of a
        dense layer and of the output layer, U and V of a lowrank layer;
        never to biases. Not related to ``alpha_fraction`` (the share of
        each feature that is learned).
    max_norm : float or None, default=None
        Cap on the norm of every hidden unit's incoming weight vector,
        applied after each step of pretraining and fine-tuning; None
        disables it. The output layer is not constrained.
    max_norm_on : {"W", "V"}, default="W"
        What ``max_norm`` caps: "W", the weights W = U v a unit applies to
        its input (V is rescaled); "V", the unit's learned vector v (the
        authors' ``max_col_norm``, set on the layer that follows their fixed
        dictionary layer). Equal for dense layers.
    shuffle : bool, default=True
    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction`` of the training data,
        stop when its accuracy has not improved by ``tol`` for more than
        ``n_iter_no_change`` epochs, and restore the best epoch's weights.
        A loss that becomes NaN or infinite then ends training at that
        epoch (its score recorded as NaN) and keeps the best epoch; without
        early stopping it is a ValueError.
    validation_fraction : float, default=0.1
    n_iter_no_change : int or np.inf, default=10
        Without early stopping, training stops when the training loss has
        not improved by ``tol`` for more than this many epochs in a row
        (scikit-learn's rule); ``np.inf`` switches the rule off.
    tol : float, default=1e-4
    device : str or torch.device, default="auto"
        "auto" (a CUDA GPU when present), "cpu", "cuda" or "cuda:N".
    random_state : int, RandomState instance or None, default=None
        Seeds the alpha draws, initialisation and shuffling (numpy and a local
        ``torch.Generator``; the global torch seed is never touched). The same
        seed gives identical predictions on the CPU.
    verbose : int, default=0
        Report every epoch (pretraining and fine-tuning): a progress bar on
        stderr when it is a terminal (see ``progress_bar``), else a log line
        per epoch (logger "skpred"). 0 is silent.
    progress_bar : "auto" or bool, default="auto"
        "auto": a progress bar (``tqdm.auto``: a widget in notebooks) when
        ``verbose`` and stderr is a terminal or the code runs in a Jupyter
        kernel; True: always; False: never (log lines with ``verbose``).
    callbacks : list of skpred.callbacks.Callback or None, default=None
        Your code on the training loop's hooks (epoch and batch ends, the
        end of training), in every phase (pretraining and fine-tuning): log,
        checkpoint, or stop a phase with ``loop.stop()``. See
        :mod:`skpred.callbacks`.
    compile : bool, default=False
        Compile the fine-tuning step with ``torch.compile`` (the inductor
        backend): the forward pass and the loss, with their backward pass,
        as one graph, and the max-norm constraint as another. The first
        steps pay the compilation (tens of seconds on a CPU), so it pays
        only for long fits; the default is off because on the bundled
        digits it does not win end to end (docs/benchmarks.md, "Compiled
        steps"). The model equals the eager one to float32 rounding. Where
        compilation is unavailable the step runs eagerly, with a warning.
        Pretraining and ``solver="lbfgs"`` always run eagerly.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss (multiplying ``sample_weight``):
        ``{label: weight}``, or "balanced", ``n_samples / (n_classes *
        count)`` as scikit-learn defines it ("balanced" is an error with
        ``partial_fit``, which never sees the whole data).
    warm_start : bool, default=False
        Reuse the fitted network (and its dictionaries) on the next ``fit``.
        As in scikit-learn, the optimizer is rebuilt from the current
        ``solver``, ``learning_rate_init``, ``momentum`` and Adam's
        parameters; changing a parameter that shapes the network
        (``hidden_layer_sizes``, ``dictionary``, ``alpha_fraction``, ...)
        is a ValueError naming it.

    Notes
    -----
    A ``fit`` or ``partial_fit`` that raises leaves the estimator as it was
    (unfitted, if it was). Ctrl-C during training (a layer's pretraining,
    the activation pass between two pretrained layers, fine-tuning and its
    validation) stops the whole fit, keeps what was trained with one
    warning, and leaves a usable model; during the steps that train nothing
    (checking the data, building a dictionary) it cancels the fit and
    leaves the estimator as it was.
    Weights and biases start from scikit-learn's Glorot uniform
    initialisation, ``U(-b, b)`` with ``b = sqrt(6 / (fan_in + fan_out))``
    (2 instead of 6 for "logistic"), on every layer; a predicted layer's V
    is drawn so that ``W = U V`` has that distribution's variance (each
    column's V uniform, its bound divided by the root mean squared row norm
    of the column's U). Layers are initialised on the CPU from the seeded
    generator and then moved to the device, so a seed gives the same initial weights on every
    device; torch's global random state is never used. Pickles hold the
    weights on the CPU and the optimizer's state, so training continues
    after a round trip exactly as without it.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when X has feature names that are all strings.
    n_iter_ : int
        Fine-tuning epochs run by the last ``fit`` (cumulative epochs with
        ``partial_fit``).
    loss_curve_ : list of float
        Mean training loss (cross-entropy) per epoch.
    history_ : list of dict
        One record per epoch of every phase, in order: ``phase``
        ("pretrain layer k", "fine-tune"), ``epoch``, ``train_loss``,
        ``valid_score`` and ``valid_loss`` (with ``early_stopping``, else
        None), ``learning_rate`` (at the epoch's end), ``duration`` and
        ``elapsed`` (seconds). :func:`skpred.plotting.plot_history` draws
        it. ``partial_fit`` and warm starts append to it.
    validation_scores_ : list of float or None
        Validation accuracy per epoch when ``early_stopping`` (weighted by
        ``sample_weight`` and ``class_weight``).
    best_validation_score_ : float or None
    layers_ : list of dict
        The resolved settings of every hidden layer: ``dictionary`` (with
        "auto" resolved; None for a dense layer), ``alpha_fraction``,
        ``n_columns``, ``n_atoms`` (None for dense and lowrank layers),
        ``image_shape`` (the grid of a grid kernel, else None), ``ridge``
        (absolute, or None), ``pretrained`` and ``units``.
    dictionaries_ : list of KernelDictionary or None
        The fitted dictionary of each hidden layer (None for dense and
        lowrank layers).
    coefs_ : list of ndarray
        Full weight matrices, ``coefs_[i]`` of shape (n_in, n_out), the
        output layer last (as scikit-learn's MLPClassifier).
    intercepts_ : list of ndarray
    n_dynamic_params_ : int
        Learned weights of the hidden layers (V; W for dense layers; U and V
        for lowrank), biases and output layer excluded.
    n_static_params_ : int
        Fixed weights (U) of the hidden layers.
    fraction_learned_ : float
        Learned weights of the predicted hidden layers divided by their
        ``n_in * n_out`` (the paper's x-axis). 1.0 when no layer is
        predicted.
    communication_ : dict
        Only after a data-parallel fit (:mod:`skpred.distributed`): what
        travelled between the ranks: ``bytes_per_step`` (4 x the learned
        scalars), ``gradient_bytes``, ``once_bytes`` (data-kernel
        statistics), ``other_bytes``, ``steps``, ``world_size`` and
        ``dense_bytes_per_step``, what a dense network of the same shape
        would send per step.
    module_ : skpred.nn.PredictedMLP
        The trained torch module (returns logits), usable on its own.
    device_ : torch.device
        Where ``module_`` lives.

    See Also
    --------
    KernelDictionary : The fixed factor U of each hidden layer.
    sklearn.neural_network.MLPClassifier : The dense MLP of scikit-learn.

    References
    ----------
    Denil, M., Shakibi, B., Dinh, L., Ranzato, M. and de Freitas, N. (2013).
    Predicting Parameters in Deep Learning. NIPS 26. arXiv:1306.0543.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skpred import PredictedMLPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = PredictedMLPClassifier(random_state=0, device="cpu")
    >>> clf.fit(X[:1500] / 16, y[:1500]).score(X[1500:] / 16, y[1500:]) > 0.9
    True
    >>> clf.layers_[0]["dictionary"], clf.layers_[0]["n_columns"], clf.fraction_learned_
    ('emp', 4, 0.25)
    """

    _parameter_constraints = {**TRAINING_CONSTRAINTS, **_MLPNetwork._network_constraints,
                              **CLASSIFIER_CONSTRAINTS}

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        *,
        activation="relu",
        dictionary="auto",
        alpha_fraction=0.25,
        n_columns="auto",
        length_scale=1.0,
        ridge="auto",
        image_shape=None,
        ae_n_components=None,
        pretrain="auto",
        pretrain_epochs=10,
        pretrain_learning_rate=1e-3,
        pretrain_recipe="adam",
        init="glorot",
        solver="adam",
        learning_rate_init=1e-3,
        learning_rate="constant",
        power_t=0.5,
        learning_rate_decay=1.0,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        batch_size="auto",
        max_iter=200,
        max_fun=15000,
        alpha=1e-4,
        max_norm=None,
        max_norm_on="W",
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
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dictionary = dictionary
        self.alpha_fraction = alpha_fraction
        self.n_columns = n_columns
        self.length_scale = length_scale
        self.ridge = ridge
        self.image_shape = image_shape
        self.ae_n_components = ae_n_components
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_learning_rate = pretrain_learning_rate
        self.pretrain_recipe = pretrain_recipe
        self.init = init
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
        self.max_fun = max_fun
        self.alpha = alpha
        self.max_norm = max_norm
        self.max_norm_on = max_norm_on
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


class PredictedMLPRegressor(_MLPNetwork, TorchRegressorBase):
    """Multilayer perceptron regressor with predicted hidden layers.

    The network, dictionaries, pretraining and training loop of
    :class:`PredictedMLPClassifier`, with a linear output layer of one unit
    per target and the squared error (half the mean over targets, as
    scikit-learn's MLPRegressor). ``score`` is R^2, and early stopping
    watches the validation R^2. y may have several columns (multi-output).

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default="squared_error"
        scikit-learn's: half the squared error, or half the Poisson
        deviance with an exponential output (a log link; y must be >= 0,
        a ValueError otherwise, where scikit-learn fits it anyway). Keyword
        only here (scikit-learn's MLPRegressor takes it as its first
        positional parameter).
    hidden_layer_sizes, activation, dictionary, alpha_fraction, n_columns, \
length_scale, ridge, image_shape, ae_n_components, pretrain, pretrain_epochs, \
pretrain_learning_rate, pretrain_recipe, init, solver, learning_rate_init, learning_rate, power_t, \
learning_rate_decay, momentum, nesterovs_momentum, beta_1, beta_2, epsilon, batch_size, \
max_iter, max_fun, alpha, max_norm, max_norm_on, \
shuffle, early_stopping, validation_fraction, n_iter_no_change, tol, device, \
random_state, verbose, progress_bar, callbacks, warm_start, compile :
        As in :class:`PredictedMLPClassifier`, with the same defaults.
        Targets are not scaled: standardise them (e.g. with
        ``sklearn.compose.TransformedTargetRegressor``) when their scale is
        far from 1.

    Attributes
    ----------
    n_outputs_ : int
        Number of targets.
    n_features_in_, feature_names_in_, n_iter_, loss_curve_, history_, \
validation_scores_, best_validation_score_, layers_, dictionaries_, coefs_, \
intercepts_, n_dynamic_params_, n_static_params_, fraction_learned_, module_, \
device_ :
        As in :class:`PredictedMLPClassifier` (``loss_curve_`` holds the
        squared error, ``validation_scores_`` the R^2).

    See Also
    --------
    PredictedMLPClassifier : The same network for classes.
    sklearn.neural_network.MLPRegressor : The dense MLP regressor of scikit-learn.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skpred import PredictedMLPRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> X = StandardScaler().fit_transform(X)
    >>> reg = PredictedMLPRegressor(random_state=0, device="cpu")
    >>> reg.fit(X[:350], y[:350] / 100).score(X[350:], y[350:] / 100) > 0.4
    True

    With 10 features the hidden layer is an ordinary dense one under
    ``dictionary="auto"`` (too few inputs to predict from); wider inputs
    (16 or more) get a predicted layer:

    >>> reg.layers_[0]["dictionary"] is None
    True
    """

    _parameter_constraints = {**TRAINING_CONSTRAINTS, **_MLPNetwork._network_constraints,
                              "loss": [StrOptions({"squared_error", "poisson"})]}
    # the loss sets the output layer's activation (exp for Poisson)
    _architecture_params = _MLPNetwork._architecture_params + ("loss",)

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        *,
        loss="squared_error",
        activation="relu",
        dictionary="auto",
        alpha_fraction=0.25,
        n_columns="auto",
        length_scale=1.0,
        ridge="auto",
        image_shape=None,
        ae_n_components=None,
        pretrain="auto",
        pretrain_epochs=10,
        pretrain_learning_rate=1e-3,
        pretrain_recipe="adam",
        init="glorot",
        solver="adam",
        learning_rate_init=1e-3,
        learning_rate="constant",
        power_t=0.5,
        learning_rate_decay=1.0,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        batch_size="auto",
        max_iter=200,
        max_fun=15000,
        alpha=1e-4,
        max_norm=None,
        max_norm_on="W",
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
        warm_start=False,
        compile=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.loss = loss
        self.activation = activation
        self.dictionary = dictionary
        self.alpha_fraction = alpha_fraction
        self.n_columns = n_columns
        self.length_scale = length_scale
        self.ridge = ridge
        self.image_shape = image_shape
        self.ae_n_components = ae_n_components
        self.pretrain = pretrain
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_learning_rate = pretrain_learning_rate
        self.pretrain_recipe = pretrain_recipe
        self.init = init
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
        self.max_fun = max_fun
        self.alpha = alpha
        self.max_norm = max_norm
        self.max_norm_on = max_norm_on
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
        self.warm_start = warm_start
        self.compile = compile
