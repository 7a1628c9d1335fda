"""PredictedRICA: reconstruction ICA (Le et al. 2011) with predicted features."""

import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted

from ._validation import check_float32_range, validate_floats
from . import _device, _feeds, _kernels, _loop
from ._base import all_or_nothing
from .callbacks import Callback, CatchInterrupt, check_callbacks, enable_verbose_logging, logger
from ._persist import SaveMixin, TorchStateMixin
from ._dictionary import layer_dictionary
from ._kinds import kind_names
from ._layers import auto_dictionary, build_dictionaries
from .nn import PredictedLinear

__all__ = ["PredictedRICA", "rica_objective", "CONTRASTS"]


class _LogCosh(torch.autograd.Function):
    """``log cosh(u)``, computed without overflow as ``|u| + log1p(exp(-2|u|))
    - log 2``, with the derivative ``tanh(u)`` in one pass: fewer passes over
    the data, forward and backward, than ``logaddexp(u, -u) - log 2`` under
    autograd, on what is most of the RICA objective's cost."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        a = u.abs()
        return a + torch.log1p(torch.exp(-2.0 * a)) - _LOG2

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * torch.tanh(u)


_LOG2 = float(np.log(2.0))


def _logcosh(u, eps):
    return _LogCosh.apply(u)


def _sqrt(u, eps):
    return torch.sqrt(u * u + eps)


# One registry for the string option `contrast` (smooth L1 penalties).
CONTRASTS = {"logcosh": _logcosh, "sqrt": _sqrt}


def rica_objective(W, X, sparsity, contrast="logcosh", epsilon=1e-2):
    """RICA objective averaged over samples (Le et al. 2011).

    ``sparsity * sum_j g(W_j x) + 1/2 ||W^T W x - x||^2``, averaged over the
    rows x of X. W is (n_components, n_features), rows are features.
    """
    Z = X @ W.t()  # (n, k)
    recon = Z @ W  # (n, d) = x W^T W
    g = CONTRASTS[contrast]
    per_sample = sparsity * g(Z, epsilon).sum(1) + 0.5 * ((recon - X) ** 2).sum(1)
    return per_sample.mean()


class PredictedRICA(SaveMixin, TorchStateMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                    BaseEstimator):
    """Reconstruction ICA whose features are predicted: ``W^T = U V``.

    Learns ``n_components`` features (rows of ``W``; may exceed
    ``n_features``: overcomplete) by minimising, averaged over samples,

        sparsity * sum_j g(W_j x) + 1/2 ||W^T W x - x||^2

    with ``g`` a smooth L1 penalty, on (typically ZCA-whitened) patches. With a
    dictionary, ``W^T = [U_1 V_1, ..., U_C V_C]``: every feature is predicted
    from its values at the locations alpha of its column, and only V is
    learned (Denil et al. 2013, Figure 6).

    Parameters
    ----------
    n_components : int, default=64
        Number of features.
    sparsity : float, default=0.1
        Weight lambda of the sparsity penalty.
    contrast : {"logcosh", "sqrt"}, default="logcosh"
        ``g(u) = log cosh(u)`` or ``sqrt(u^2 + epsilon)``.
    epsilon : float, default=1e-2
        Smoothing of the ``sqrt`` contrast.
    dictionary : "auto", str or None, default="auto"
        Any :class:`KernelDictionary` kernel; None is ordinary RICA.
        ``"auto"`` is the paper's rule: ``"se"`` (smooth features) when
        ``image_shape`` is given, i.e. the inputs are image patches (as
        :class:`ImageEncoder` passes them), and the data-driven ``"emp"``
        otherwise. The kernel used is ``dictionary_.kernel_``.
    alpha_fraction : float in (0, 1], default=0.5
    n_columns : int or None, default=None
        Columns splitting the features, each with its own alpha. None gives
        every feature its own alpha (``n_columns = n_components``): a single
        column would confine all features to the span of one U, of rank
        ``alpha_fraction * n_features``, which cannot reconstruct whitened
        data (measured on 8x8 natural patches, alpha 0.5: objective 10.5 with
        one column, 3.5 with one per feature, 1.4 for ordinary RICA).
    length_scale : float, default=1.0
    ridge : float, None or "auto", default="auto"
    image_shape : tuple of int or None, default=None
        ``(rows, cols)`` or ``(rows, cols, channels)`` of a patch (colour
        patches channels-last). With None, an explicit ``"se"``/``"dct"``
        infers a square grayscale patch, and ``"auto"`` takes the input as
        not an image.
    solver : {"lbfgs", "adam"}, default="lbfgs"
        Full-batch L-BFGS with a strong Wolfe line search, or minibatch Adam
        for large patch sets.
    max_iter : int, default=200
        L-BFGS iterations, or Adam epochs.
    tol : float, default=1e-6
        L-BFGS: stop when the objective changes by less than ``tol`` between
        iterations (or no weight moves by more than ``tol``). Adam: stop when it
        changes by less than ``tol * max(1, |f|)`` between epochs.
    batch_size : int, default=1024
        Adam minibatch size.
    learning_rate : float, default=1e-2
        Adam learning rate.
    standardize : bool, default=False
        Centre and scale every input feature to unit variance before
        learning (``mean_``, ``scale_``; applied by transform). RICA assumes
        zero-mean, whitened inputs; leave False when they already are.
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        Log the objective at every iteration.
    callbacks : list of skpred.callbacks.Callback or None, default=None
        With ``solver="adam"``: your code on the training loop's hooks
        (phase ``"rica"``; ``loop.record["objective"]`` is the objective
        on the whole data after the epoch), see :mod:`skpred.callbacks`.
        L-BFGS runs all its iterations inside one torch step, where no hook
        can run: callbacks with ``solver="lbfgs"`` are a ValueError.
    warm_start : bool, default=False
        Continue from the current V (and dictionary) on the next fit.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, `n_features_in_`)
        W, rows are the features.
    dictionary_ : KernelDictionary or None
    n_iter_ : int
    objective_curve_ : list of float
        Objective at the start and after every iteration (epoch for Adam).
    n_dynamic_params_ : int
        Learned weights (V, or W without dictionary).
    n_static_params_ : int
        Fixed weights (U).
    fraction_learned_ : float
        ``n_dynamic_params_ / (n_components * n_features_in_)``.
    mean_, scale_ : ndarray of shape (`n_features_in_`,) or None
        Standardisation, when ``standardize``.
    n_features_in_ : int
    feature_names_in_ : ndarray

    See Also
    --------
    sklearn.decomposition.FastICA : Complete ICA by fixed point iteration.
    ImageEncoder : Convolutional feature extraction with the learned features.

    References
    ----------
    Le, Q., Karpenko, A., Ngiam, J. and Ng, A. (2011). ICA with Reconstruction
    Cost for Efficient Overcomplete Feature Learning. NIPS 24.
    Denil, M., Shakibi, B., Dinh, L., Ranzato, M. and de Freitas, N. (2013).
    Predicting Parameters in Deep Learning. NIPS 26. arXiv:1306.0543.

    Examples
    --------
    >>> import numpy as np
    >>> from skpred import PredictedRICA
    >>> X = np.random.default_rng(0).standard_normal((500, 16))
    >>> rica = PredictedRICA(n_components=20, alpha_fraction=0.5, max_iter=30,
    ...                      random_state=0, device="cpu").fit(X)
    >>> rica.components_.shape, rica.fraction_learned_
    ((20, 16), 0.5)
    >>> rica.objective_curve_[-1] < rica.objective_curve_[0]
    True
    """

    _torch_modules = ("layer_",)

    _parameter_constraints = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "sparsity": [Interval(Real, 0, None, closed="left")],
        "contrast": [StrOptions(set(CONTRASTS))],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "dictionary": [StrOptions(kind_names(fixed=True, extra={"auto"})), None],
        "alpha_fraction": [Interval(Real, 0, 1, closed="right")],
        "n_columns": [Interval(Integral, 1, None, closed="left"), None],
        "length_scale": [Interval(Real, 0, None, closed="neither"), tuple],
        "ridge": [Interval(Real, 0, None, closed="neither"), None, StrOptions({"auto"})],
        "image_shape": [tuple, list, None],
        "solver": [StrOptions({"lbfgs", "adam"})],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "standardize": ["boolean"],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": [list, None],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        n_components=64,
        *,
        sparsity=0.1,
        contrast="logcosh",
        epsilon=1e-2,
        dictionary="auto",
        alpha_fraction=0.5,
        n_columns=None,
        length_scale=1.0,
        ridge="auto",
        image_shape=None,
        solver="lbfgs",
        max_iter=200,
        tol=1e-6,
        batch_size=1024,
        learning_rate=1e-2,
        standardize=False,
        device="auto",
        random_state=None,
        verbose=0,
        callbacks=None,
        warm_start=False,
    ):
        self.n_components = n_components
        self.sparsity = sparsity
        self.contrast = contrast
        self.epsilon = epsilon
        self.dictionary = dictionary
        self.alpha_fraction = alpha_fraction
        self.n_columns = n_columns
        self.length_scale = length_scale
        self.ridge = ridge
        self.image_shape = image_shape
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.standardize = standardize
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.warm_start = warm_start

    # ---------------------------------------------------------------- build

    def _make_layer(self, X, n_features, rng, generator, device):
        if self.dictionary is None:
            layer = _device.seeded(
                lambda: torch.nn.Linear(n_features, self.n_components, bias=False),
                generator, device)
            return layer, None
        n_columns = self.n_components if self.n_columns is None else self.n_columns
        if self.n_components % n_columns or n_columns > self.n_components:
            raise ValueError(
                f"n_columns={n_columns} must divide n_components={self.n_components}: "
                f"features are split equally among columns."
            )
        kind = self.dictionary
        if kind == "auto":
            kind = auto_dictionary(self.image_shape is not None)
        built = build_dictionaries(
            kind, n_features, X, rng, alpha_fraction=self.alpha_fraction, n_columns=n_columns,
            length_scale=self.length_scale, ridge=self.ridge, image_shape=self.image_shape,
            device=device)
        kd = layer_dictionary(
            built, dict(alpha_fraction=self.alpha_fraction, n_columns=n_columns,
                        length_scale=self.length_scale, ridge=self.ridge),
            n_features, self.device)
        layer = _device.seeded(
            lambda: PredictedLinear(n_features, self.n_components, kd.dictionaries_, bias=False),
            generator, device)
        return layer, kd

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Learn the features from X (n_samples, n_features).

        Returns
        -------
        self : object
        """
        warm = self.warm_start and hasattr(self, "layer_")
        # A failed fit leaves the estimator as it was.
        with all_or_nothing(self, ("layer_", "_generator", "objective_curve_") if warm else ()):
            X = validate_floats(self, X, reset=not warm)
            if X.shape[0] < 2:
                raise ValueError(f"PredictedRICA needs at least 2 samples, got n_samples={X.shape[0]}.")
            if self.image_shape is not None:
                # Checked even where the dictionary does not read it.
                _kernels.infer_image_shape(X.shape[1], self.image_shape)
            rng = check_random_state(self.random_state)
            if not warm:
                if self.standardize:
                    self.mean_ = X.mean(axis=0)
                    scale = X.std(axis=0)
                    self.scale_ = np.where(scale > 0, scale, 1.0)
                else:
                    self.mean_ = self.scale_ = None
                self.device_ = _device.resolve_device(self.device)
                generator = _device.torch_generator(rng)
                self.layer_, self.dictionary_ = self._make_layer(
                    X, X.shape[1], rng, generator, self.device_)
                self._generator = generator
                self.objective_curve_ = []
                self.n_iter_ = 0
            X_in = X if self.mean_ is None else (X - self.mean_) / self.scale_
            X_t = _feeds.to_device(X_in, self.device_)
            layer = self.layer_
            params = [p for p in layer.parameters() if p.requires_grad]

            def objective(Xb):
                return rica_objective(layer.weight, Xb, self.sparsity, self.contrast, self.epsilon)

            enable_verbose_logging(self.verbose)
            if self.solver == "lbfgs":
                if check_callbacks(self.callbacks):
                    raise ValueError(
                        "callbacks run on the minibatch loop of solver='adam'; L-BFGS runs "
                        "all its iterations inside one torch step, where no hook can run. "
                        "Use solver='adam', or callbacks=None.")
                self._fit_lbfgs(params, objective, X_t)
            else:
                with torch.no_grad():
                    start = objective(X_t).item()
                if not self.objective_curve_:
                    self.objective_curve_.append(start)
                self._fit_adam(objective, X_t, start)
            self._set_attributes()
            return self

    def _fit_lbfgs(self, params, objective, X_t):
        """Full-batch L-BFGS in one ``step()`` of ``max_iter`` iterations.

        Every objective evaluation is one the optimiser needs: the starting
        point and the line searches' trial points. The curve is recorded
        inside the closure: the start, then per iteration the lowest value
        its line search evaluated (the accepted point under the strong Wolfe
        conditions). Stops when the objective changes by less than ``tol``
        between iterations (or a step moves no weight by more than ``tol``).
        """
        optimizer = None
        per_iter = {}

        def closure():
            optimizer.zero_grad()
            f = objective(X_t)
            f.backward()
            value = f.item()  # L-BFGS reads it on the host in any case
            if not np.isfinite(value):
                raise ValueError("The RICA objective became NaN or infinite.")
            k = optimizer.state[params[0]].get("n_iter", 0)
            per_iter[k] = min(per_iter.get(k, np.inf), value)
            return f

        optimizer = torch.optim.LBFGS(
            params, lr=1, max_iter=self.max_iter, max_eval=25 * max(1, self.max_iter),
            history_size=20, tolerance_grad=1e-9, tolerance_change=self.tol,
            line_search_fn="strong_wolfe")
        try:
            if self.max_iter > 0:
                optimizer.step(closure)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by the user; keeping the features so far.")
        n_iter = optimizer.state[params[0]].get("n_iter", 0)
        if not self.objective_curve_ and 0 in per_iter:
            self.objective_curve_.append(per_iter[0])
        for k in range(1, n_iter + 1):
            if k in per_iter:
                self.objective_curve_.append(per_iter[k])
                if self.verbose:
                    logger.info(f"RICA iteration {self.n_iter_ + k}: "
                                f"objective {per_iter[k]:.6f}")
        self.n_iter_ += n_iter

    def _fit_adam(self, objective, X_t, start):
        """Minibatch Adam, one loop: after every epoch the objective on the
        whole data is recorded, and training stops once it changes by at
        most ``tol * max(1, |f|)``."""
        optimizer = torch.optim.Adam(
            [p for p in self.layer_.parameters() if p.requires_grad], lr=self.learning_rate)
        callbacks = [_ObjectiveCheck(self, objective, X_t, start), CatchInterrupt()]
        _loop.train_epochs(
            self.layer_, lambda xb, _: objective(xb), X_t, None, optimizer,
            epochs=self.max_iter, batch_size=self.batch_size, generator=self._generator,
            phase="rica", callbacks=callbacks + check_callbacks(self.callbacks),
            estimator=self)

    def _set_attributes(self):
        layer = self.layer_
        self.components_ = layer.weight.detach().cpu().numpy().astype(np.float64)
        self._n_features_out = self.components_.shape[0]
        if isinstance(layer, PredictedLinear):
            self.n_dynamic_params_ = int(layer.n_dynamic_params)
            self.n_static_params_ = int(layer.n_static_params)
        else:
            self.n_dynamic_params_ = int(layer.weight.numel())
            self.n_static_params_ = 0
        self.fraction_learned_ = self.n_dynamic_params_ / self.components_.size

    # ------------------------------------------------------------ transform

    def _prepared(self, X):
        X = validate_floats(self, X, reset=False)
        if self.mean_ is not None:
            X = ((X - self.mean_) / self.scale_).astype(X.dtype, copy=False)
        return X

    def transform(self, X):
        """Feature responses ``X W^T``, shape (n_samples, n_components); dtype kept."""
        check_is_fitted(self)
        X = self._prepared(X)
        return X @ self.components_.T.astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        """Reconstruction ``Z W`` from responses Z (in the standardised space
        mapped back when ``standardize``)."""
        check_is_fitted(self)
        # Finite real numbers only (complex input is an error, not a warning).
        Z = check_array(X, dtype=[np.float64, np.float32])
        check_float32_range(Z)
        if Z.shape[1] != self.components_.shape[0]:
            raise ValueError(
                f"inverse_transform expects shape (n_samples, {self.components_.shape[0]}), "
                f"got {Z.shape}."
            )
        dtype = Z.dtype
        out = Z @ self.components_.astype(dtype, copy=False)
        if self.mean_ is not None:
            out = out * self.scale_ + self.mean_
        return out.astype(dtype, copy=False)

    def objective(self, X):
        """The RICA objective of the fitted features on X (averaged over samples)."""
        check_is_fitted(self)
        X = self._prepared(X)
        with torch.no_grad():
            W = torch.as_tensor(self.components_)
            return float(rica_objective(W, torch.as_tensor(X, dtype=torch.float64), self.sparsity,
                                        self.contrast, self.epsilon))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class _ObjectiveCheck(Callback):
    """PredictedRICA's Adam epochs: the objective on the whole data after
    each (``objective_curve_``, ``n_iter_``, ``loop.record["objective"]``)
    and the stop on a change of at most ``tol * max(1, |f|)``."""

    def __init__(self, est, objective, X_t, start):
        self.est, self.objective, self.X_t, self.previous = est, objective, X_t, start

    def on_epoch_end(self, loop):
        with torch.no_grad():
            current = self.objective(self.X_t).item()
        est = self.est
        est.objective_curve_.append(current)
        est.n_iter_ += 1
        loop.record["objective"] = current
        if est.verbose:
            logger.info(f"RICA epoch {est.n_iter_}: objective {current:.6f}")
        if abs(self.previous - current) <= est.tol * max(1.0, abs(current)):
            loop.stop(converged=True)
        self.previous = current
