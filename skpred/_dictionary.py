"""KernelDictionary: the fixed factor U of a predicted layer, as a transformer."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _kernels

__all__ = ["KernelDictionary"]

# Ridge used by ridge="auto", relative to the kernel's scale (its mean
# diagonal): the authors' 0.1 for se (whose diagonal is 1), and for the
# empirical kernels 0.01 of the mean variance, which on MNIST pixels (mean
# variance about 0.1) is the authors' absolute 0.001.
_AUTO_RIDGE = {"se": 0.1}
_DEFAULT_AUTO_RIDGE = 1e-2


def _layout(n_features, image_shape, kernel):
    """Image shape (rows, cols, channels) for grid kernels, else None."""
    # A given shape is validated even where the kernel does not use it: a
    # wrong shape is always a user error worth reporting.
    if kernel in ("se", "dct") or image_shape is not None:
        return _kernels.infer_image_shape(n_features, image_shape)
    return None


def _kernel_dictionaries(K_columns, n_features, n_atoms, n_columns, ridge, rng, n_channels=1):
    """Kernel ridge dictionaries, one alpha per column.

    ``K_columns(alpha)`` returns ``K[:, alpha]``, so ``se`` never builds the
    full kernel matrix.
    """
    alphas = _kernels.sample_alpha(n_features, n_atoms, rng, n_columns, n_channels)
    dicts = []
    for alpha in alphas:
        K_xa = K_columns(alpha)
        dicts.append(_kernels.ridge_predictor(K_xa, K_xa[alpha], ridge))
    return dicts, alphas, ridge


def _scaled_ridge(est, ridge, K):
    """With ridge="auto", scale the ridge by the kernel's mean variance.

    A data kernel's scale is the data's: the covariance of sigmoid
    activations is ~100 times smaller than that of pixels. A fixed ridge
    would then dominate K_aa and shrink U (and the gradient V sees) towards
    zero; relative to the mean diagonal it acts alike on any data.
    """
    if est.ridge != "auto" or ridge is None:
        return ridge
    scale = float(np.mean(np.diag(K)))
    return ridge * scale if scale > 0 else ridge


def _build_se(est, X, n_features, shape, n_atoms, rng, ridge):
    def K_columns(alpha):
        return _kernels.se_kernel(shape, est.length_scale, columns=alpha)

    return _kernel_dictionaries(K_columns, n_features, n_atoms, est.n_columns, ridge, rng, shape[2])


def _data_kernel(fn):
    def build(est, X, n_features, shape, n_atoms, rng, ridge):
        K = fn(X)
        ridge = _scaled_ridge(est, ridge, K)
        return _kernel_dictionaries(lambda a: K[:, a], n_features, n_atoms, est.n_columns, ridge, rng)

    return build


def _build_callable(est, X, n_features, shape, n_atoms, rng, ridge):
    K = np.asarray(est.kernel(X), dtype=np.float64)
    if K.shape != (n_features, n_features):
        raise ValueError(
            f"The callable kernel must return an array of shape "
            f"(n_features, n_features) = ({n_features}, {n_features}), got {K.shape}."
        )
    if not np.all(np.isfinite(K)):
        raise ValueError("The callable kernel returned NaN or infinity.")
    ridge = _scaled_ridge(est, ridge, K)
    return _kernel_dictionaries(lambda a: K[:, a], n_features, n_atoms, est.n_columns, ridge, rng)


def _build_dct(est, X, n_features, shape, n_atoms, rng, ridge):
    atoms = _kernels.dct_atoms(shape)
    alphas = _kernels.sample_alpha(n_features, n_atoms, rng, est.n_columns, shape[2])
    return [atoms[:, a] for a in alphas], alphas, None


def _build_ae(est, X, n_features, shape, n_atoms, rng, ridge):
    from ._training import autoencoder_atoms  # torch only where needed

    n_hidden = est.ae_n_components if est.ae_n_components is not None else 2 * n_features
    if n_atoms > n_hidden:
        raise ValueError(
            f"The ae dictionary has ae_n_components={n_hidden} atoms, fewer than "
            f"the n_atoms={n_atoms} requested per column."
        )
    atoms = autoencoder_atoms(X, n_hidden, epochs=est.ae_max_iter, random_state=rng, device=est.device)
    alphas = _kernels.sample_alpha(n_hidden, n_atoms, rng, est.n_columns)
    return [atoms[:, a] for a in alphas], alphas, None


def _build_random(est, X, n_features, shape, n_atoms, rng, ridge):
    dicts = [_kernels.random_dictionary(n_features, n_atoms, rng) for _ in range(est.n_columns)]
    return dicts, [None] * est.n_columns, None


def _build_randcon(est, X, n_features, shape, n_atoms, rng, ridge):
    alphas = _kernels.sample_alpha(n_features, n_atoms, rng, est.n_columns)
    return [_kernels.randcon_dictionary(n_features, a) for a in alphas], alphas, None


# One registry for the string option `kernel`: its keys are the StrOptions set.
DICTIONARY_BUILDERS = {
    "se": _build_se,
    "emp": _data_kernel(_kernels.empirical_kernel),
    "emp2": _data_kernel(_kernels.empirical_squared_kernel),
    "dct": _build_dct,
    "ae": _build_ae,
    "random": _build_random,
    "randcon": _build_randcon,
}
# Kernels whose U depends on the training data.
DATA_KERNELS = frozenset({"emp", "emp2", "ae"})


class KernelDictionary(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Fixed dictionary U of a predicted layer (Denil et al. 2013).

    A predicted layer factors its weights as ``W = U V``: ``U`` (this
    transformer's dictionary, fixed) maps a few learned values per feature to
    a full weight vector, and only ``V`` is learned. ``transform(X)``
    computes ``X U``, the fixed linear pooling that a predicted layer applies
    before its learned part, so a ``KernelDictionary`` followed by any
    linear model is exactly a linear model with predicted weights.

    With ``n_columns > 1`` the transformer holds one dictionary per column,
    each from its own random subset alpha of input locations, and
    ``transform`` returns ``[X U_1, ..., X U_C]`` side by side.

    Parameters
    ----------
    kernel : {"se", "emp", "emp2", "dct", "ae", "random", "randcon"} or callable, default="se"
        How ``U`` is built:

        - ``"se"``: kernel ridge regression with a squared-exponential kernel
          over pixel coordinates (zero across channels, one spatial sample of
          alpha shared by all channels). Needs an image grid.
        - ``"emp"`` / ``"emp2"``: kernel ridge regression with the empirical
          covariance of ``X`` / of ``X * X`` (data-driven).
        - ``"dct"``: ``U`` holds the DCT-II atoms whose frequencies are in
          alpha (alpha indexes atoms, no ridge). Needs an image grid.
        - ``"ae"``: atoms of a sigmoid tied-weight autoencoder with
          ``ae_n_components`` hidden units trained (in torch) on ``X``; alpha
          indexes atoms and ``U`` holds the chosen atoms (unit norm, no ridge).
        - ``"random"``: a fixed Gaussian matrix with entries N(0, 1/n_features)
          (the paper's RandFixU).
        - ``"randcon"``: columns of the identity at alpha, so each output sees
          only the inputs in alpha (RandCon).
        - callable: ``kernel(X)`` returns an ``(n_features, n_features)``
          positive semi-definite kernel over input locations, used with
          kernel ridge regression.

    alpha_fraction : float in (0, 1], default=0.25
        Share of the input locations in alpha: ``n_atoms = round(alpha_fraction
        * n_features)`` (at least 1). For multi-channel grid kernels it is the
        share of pixels, and every channel of a chosen pixel is in alpha.
        Ignored when ``n_atoms`` is given.
    n_atoms : int or None, default=None
        Number of atoms per column. When not None it is used and
        ``alpha_fraction`` is ignored.
    n_columns : int, default=1
        Number of columns, each with its own alpha and dictionary.
    length_scale : float or tuple of float, default=1.0
        Length scale of the ``se`` kernel in pixels, one value or one per
        spatial axis ``(rows, cols)``.
    ridge : float, None or "auto", default="auto"
        Ridge of the kernel ridge predictor ``U = K_xa (K_aa + ridge I)^-1``.
        ``None`` is raw mode, ``U = K_xa``. ``"auto"`` is relative to the
        kernel's mean diagonal, so that it acts alike whatever the scale of
        the data: 0.1 for ``se`` (the authors' value; its diagonal is 1) and
        0.01 times the mean variance for data and callable kernels (on MNIST
        pixels that is the authors' 0.001). Used by ``se``, ``emp``, ``emp2`` and
        callable kernels only.
    image_shape : tuple of int or None, default=None
        ``(rows, cols)`` or ``(rows, cols, channels)`` of the flattened input,
        in C-order (channels last). ``None`` infers a square grayscale image
        when ``n_features`` is a perfect square (needed by ``se`` and ``dct``).
    ae_n_components : int or None, default=None
        Number of autoencoder atoms for ``kernel="ae"``; None means twice
        ``n_features``. ``n_atoms`` are drawn from them per column.
    ae_max_iter : int, default=10
        Training epochs of the ``ae`` autoencoder (batch 100, Adam at learning
        rate 0.001 on the mean squared error, as ``PredictedMLPClassifier``'s
        pretraining).
    device : str, default="auto"
        Where the ``ae`` autoencoder trains: "auto" (a CUDA GPU when present),
        "cpu", "cuda" or "cuda:N". Other kernels run in numpy.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws of alpha, the ``random`` dictionary and the ``ae``
        autoencoder.

    Attributes
    ----------
    components_ : ndarray of shape (n_columns * `n_atoms_`, `n_features_in_`)
        All dictionaries stacked as rows, ``[U_1.T; ...; U_C.T]``, so that
        ``transform(X) == X @ components_.T`` (like PCA).
    dictionaries_ : list of ndarray of shape (`n_features_in_`, `n_atoms_`)
        ``U_c`` for each column.
    alpha_indices_ : list of ndarray of shape (`n_atoms_`,)
        The sorted input locations (or DCT atoms) in alpha for each column;
        entries are None for the ``random`` dictionary, which has no alpha.
    n_atoms_ : int
        Number of atoms per column.
    image_shape_ : tuple of int or None
        The (rows, cols, channels) grid used, or None.
    ridge_ : float or None
        The ridge actually used (absolute), None where no ridge solve runs.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when X has feature names that are all strings.

    See Also
    --------
    PredictedMLPClassifier : MLP whose hidden layers use such dictionaries.
    sklearn.decomposition.PCA : A data-driven linear projection.

    References
    ----------
    Denil, M., Shakibi, B., Dinh, L., Ranzato, M. and de Freitas, N. (2013).
    Predicting Parameters in Deep Learning. NIPS 26. arXiv:1306.0543.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skpred import KernelDictionary
    >>> X, y = load_digits(return_X_y=True)
    >>> kd = KernelDictionary("se", alpha_fraction=0.25, n_columns=2, random_state=0)
    >>> kd.fit_transform(X).shape
    (1797, 32)
    >>> kd.n_atoms_, kd.image_shape_
    (16, (8, 8, 1))
    """

    _parameter_constraints = {
        "kernel": [StrOptions(set(DICTIONARY_BUILDERS)), callable],
        "alpha_fraction": [Interval(Real, 0, 1, closed="right")],
        "n_atoms": [Interval(Integral, 1, None, closed="left"), None],
        "n_columns": [Interval(Integral, 1, None, closed="left")],
        "length_scale": [Interval(Real, 0, None, closed="neither"), "array-like"],
        "ridge": [Interval(Real, 0, None, closed="neither"), None, StrOptions({"auto"})],
        "image_shape": [tuple, list, None],
        "ae_n_components": [Interval(Integral, 1, None, closed="left"), None],
        "ae_max_iter": [Interval(Integral, 0, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        kernel="se",
        *,
        alpha_fraction=0.25,
        n_atoms=None,
        n_columns=1,
        length_scale=1.0,
        ridge="auto",
        image_shape=None,
        ae_n_components=None,
        ae_max_iter=10,
        device="auto",
        random_state=None,
    ):
        self.kernel = kernel
        self.alpha_fraction = alpha_fraction
        self.n_atoms = n_atoms
        self.n_columns = n_columns
        self.length_scale = length_scale
        self.ridge = ridge
        self.image_shape = image_shape
        self.ae_n_components = ae_n_components
        self.ae_max_iter = ae_max_iter
        self.device = device
        self.random_state = random_state

    def _resolved_ridge(self):
        if self.ridge != "auto":
            return self.ridge
        name = self.kernel if isinstance(self.kernel, str) else None
        return _AUTO_RIDGE.get(name, _DEFAULT_AUTO_RIDGE)

    def _n_atoms(self, n_features, shape):
        """Atoms per column; a multiple of the channels for grid kernels."""
        channels = shape[2] if shape is not None and self.kernel in ("se", "dct") else 1
        n_pixels = n_features // channels
        if self.n_atoms is not None:
            if self.n_atoms > n_features:
                raise ValueError(
                    f"n_atoms={self.n_atoms} exceeds the number of input features "
                    f"({n_features})."
                )
            if self.n_atoms % channels:
                raise ValueError(
                    f"n_atoms={self.n_atoms} must be a multiple of the number of "
                    f"channels ({channels}) for the {self.kernel!r} kernel, which "
                    f"samples whole pixels."
                )
            return self.n_atoms
        return channels * _kernels.n_atoms_for(n_pixels, alpha_fraction=self.alpha_fraction)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build one dictionary per column.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. Only the ``emp``/``emp2``/``ae``/callable kernels use its
            values; the other kernels use only ``n_features``.
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        n_features = X.shape[1]
        name = self.kernel if isinstance(self.kernel, str) else "callable"
        if (name in DATA_KERNELS or name == "callable") and X.shape[0] < 2:
            raise ValueError(
                f"The {name!r} kernel is estimated from data and needs at least 2 "
                f"samples, got n_samples={X.shape[0]}."
            )
        shape = _layout(n_features, self.image_shape, name)
        n_atoms = self._n_atoms(n_features, shape)
        rng = check_random_state(self.random_state)
        build = _build_callable if name == "callable" else DICTIONARY_BUILDERS[name]
        ridge = self._resolved_ridge()
        dicts, alphas, ridge_used = build(self, X, n_features, shape, n_atoms, rng, ridge)

        self.dictionaries_ = dicts
        self.alpha_indices_ = alphas
        self.n_atoms_ = n_atoms
        self.image_shape_ = shape
        self.ridge_ = ridge_used
        self.components_ = np.concatenate([U.T for U in dicts], axis=0)
        self._n_features_out = self.components_.shape[0]
        return self

    def transform(self, X):
        """Project X onto every column's dictionary: ``[X U_1, ..., X U_C]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_columns * `n_atoms_`)
            Same floating dtype as X (float32 stays float32).
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return X @ self.components_.T.astype(X.dtype, copy=False)

    def predict_weights(self, V):
        """Map learned weights V to full predicted weights ``W = U V``.

        In kernel ridge mode ``V`` holds each feature's weights at the
        locations alpha, and the result is the full feature predicted from
        them.

        Parameters
        ----------
        V : array-like of shape (n_columns, `n_atoms_`, n_outputs) or (`n_atoms_`, n_outputs)
            One block per column; the 2-D form applies to a single-column
            dictionary only.

        Returns
        -------
        W : ndarray of shape (`n_features_in_`, n_columns * n_outputs)
            Column blocks ``[U_1 V_1, ..., U_C V_C]``, in the column order of
            ``transform``.
        """
        check_is_fitted(self)
        V = np.asarray(V, dtype=np.float64)
        n_columns = len(self.dictionaries_)
        if V.ndim == 2:
            if n_columns != 1:
                raise ValueError(
                    f"A 2-D V is only accepted for one column; this dictionary has "
                    f"{n_columns} columns, so pass V of shape (n_columns, n_atoms, n_outputs)."
                )
            V = V[None]
        if V.ndim != 3 or V.shape[:2] != (n_columns, self.n_atoms_):
            raise ValueError(
                f"V must have shape (n_columns={n_columns}, n_atoms={self.n_atoms_}, "
                f"n_outputs), got {V.shape}."
            )
        return np.concatenate([U @ Vc for U, Vc in zip(self.dictionaries_, V)], axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def fit_layer_dictionary(spec, n_in, inputs, rng, device, image_shape=None, **extra):
    """The fitted KernelDictionary of one predicted layer of a network.

    ``spec`` holds the layer's ``dictionary``, ``alpha_fraction``,
    ``n_columns``, ``length_scale`` and ``ridge``. ``inputs`` (a tensor of
    the layer's input on the training data, or None) is read only by
    data-driven kernels; the others see only the width ``n_in``.
    """
    kd = KernelDictionary(
        spec["dictionary"], alpha_fraction=spec["alpha_fraction"], n_columns=spec["n_columns"],
        length_scale=spec["length_scale"], ridge=spec["ridge"], image_shape=image_shape,
        device=str(device), random_state=rng, **extra,
    )
    if spec["dictionary"] in DATA_KERNELS:
        data = inputs.cpu().numpy()  # a view, not a copy, on the CPU
    else:
        data = np.zeros((2, n_in), dtype=np.float32)  # only the width is used
    return kd.fit(data)
