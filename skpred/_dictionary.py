"""KernelDictionary: the fixed factor U of a predicted layer, as a transformer."""

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from . import _device, _feeds
from ._validation import validate_floats
from ._base import all_or_nothing
from ._persist import SaveMixin
from ._kinds import kind_names
from ._layers import auto_dictionary, build_dictionaries

__all__ = ["KernelDictionary"]

# The string options of `kernel`: every registered kind with a fixed U (a
# live view of the registry), and "auto".
KERNEL_OPTIONS = kind_names(fixed=True, extra={"auto"})


def set_fitted_dictionary(kd, built, n_features):
    """Give ``kd`` the fitted attributes of ``built`` (a LayerDictionaries)."""
    kd.kernel_ = built.kind
    kd.dictionaries_ = built.dictionaries
    kd.alpha_indices_ = built.alphas
    kd.n_atoms_ = built.n_atoms
    kd.image_shape_ = built.image_shape
    kd.ridge_ = built.ridge
    kd.length_scale_ = built.length_scale
    kd.components_ = np.concatenate([U.T for U in built.dictionaries], axis=0)
    kd.n_features_in_ = n_features
    kd._n_features_out = kd.components_.shape[0]
    return kd


def layer_dictionary(built, spec, n_features, device="auto"):
    """A fitted KernelDictionary holding a network layer's dictionaries.

    ``built`` comes from :func:`skpred._layers.build_dictionaries`; ``spec``
    holds the layer's resolved settings. Nothing is fitted again: this is
    how a network exposes its U as the transformer users know.
    """
    kd = KernelDictionary(
        built.kind, alpha_fraction=spec["alpha_fraction"], n_columns=spec["n_columns"],
        length_scale=spec["length_scale"], ridge=spec["ridge"],
        image_shape=built.image_shape, device=str(device),
    )
    return set_fitted_dictionary(kd, built, n_features)


class KernelDictionary(SaveMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin,
                       BaseEstimator):
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
    kernel : {"auto", "se", "emp", "emp2", "dct", "ae", "random", "uniform", "randcon"} \
or callable, default="auto"
        How ``U`` is built:

        - ``"auto"``: the paper's rule, ``"se"`` when ``image_shape`` is
          given (the input is an image grid) and ``"emp"`` otherwise. The
          number of features alone never makes an input an image: 64
          tabular features get ``"emp"``. The kernel used is ``kernel_``.

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
          (RandFixU as the paper's text describes it).
        - ``"uniform"``: a fixed matrix with entries uniform on (-0.1, 0.1)
          (RandFixU as the authors' code draws it).
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
    length_scale : float, tuple of float or "loo", default=1.0
        Length scale of the ``se`` kernel in pixels, one value or one per
        spatial axis ``(rows, cols)``. ``"loo"`` chooses it from the data:
        each row of ``X`` is taken as a function on the grid, and the length
        scale (among 0.5 to 4 pixels) whose kernel ridge regression best
        predicts each row's values at alpha from its other values there
        (leave-one-out, in closed form) is used; with ``ridge="auto"`` the
        ridge is chosen alike (among 1e-4 to 1). The choice is
        ``length_scale_`` and ``ridge_``. ``se`` only.
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
        in C-order (channels last). With ``None``, an explicit ``"se"`` or
        ``"dct"`` kernel infers a square grayscale image when ``n_features``
        is a perfect square, and ``"auto"`` takes the input as not an image.
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
    kernel_ : str
        The kernel used: ``kernel`` with ``"auto"`` resolved (``"callable"``
        for a callable).
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
    length_scale_ : float, tuple or None
        The se length scale used (chosen with "loo"); None for other kernels.
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
        "kernel": [StrOptions(KERNEL_OPTIONS), callable],
        "alpha_fraction": [Interval(Real, 0, 1, closed="right")],
        "n_atoms": [Interval(Integral, 1, None, closed="left"), None],
        "n_columns": [Interval(Integral, 1, None, closed="left")],
        "length_scale": [Interval(Real, 0, None, closed="neither"), "array-like",
                         StrOptions({"loo"})],
        "ridge": [Interval(Real, 0, None, closed="neither"), None, StrOptions({"auto"})],
        "image_shape": [tuple, list, None],
        "ae_n_components": [Interval(Integral, 1, None, closed="left"), None],
        "ae_max_iter": [Interval(Integral, 0, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        kernel="auto",
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

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build one dictionary per column.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Only the ``emp``/``emp2``/``ae``/callable kernels use its
            values; the other kernels use only ``n_features``. Sparse input
            is read in dense blocks of rows, never densified whole
            (callable kernels and ``length_scale="loo"`` need dense X).
        y : None
            Ignored.

        Returns
        -------
        self : object
            Fitted transformer.
        """
        with all_or_nothing(self):  # a failed fit leaves the estimator as it was
            X = validate_floats(self, X, accept_sparse="csr")
            device = _device.resolve_device(self.device)  # validated whatever the kernel
            kernel = self.kernel
            if kernel == "auto":
                kernel = auto_dictionary(self.image_shape is not None)
            # Sparse X: its CSR arrays go to the device and the covariance (or
            # the ae training) reads them in dense blocks of rows.
            data = _feeds.to_device(X, device) if sp.issparse(X) else X
            built = build_dictionaries(
                kernel, X.shape[1], data, check_random_state(self.random_state),
                alpha_fraction=self.alpha_fraction, n_atoms=self.n_atoms, n_columns=self.n_columns,
                length_scale=self.length_scale, ridge=self.ridge, image_shape=self.image_shape,
                ae_n_components=self.ae_n_components, ae_max_iter=self.ae_max_iter,
                device=device,
            )
            set_fitted_dictionary(self, built, X.shape[1])
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
        X = validate_floats(self, X, reset=False, accept_sparse="csr")
        U = self.components_.T.astype(X.dtype)
        # float32 subnormals (se entries of distant pixels) are zero, as in the
        # predicted layers: same results, products tens of times faster on a CPU
        U[np.abs(U) < np.finfo(U.dtype).tiny] = 0
        return np.asarray(X @ U)

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
        tags.input_tags.sparse = True
        return tags

