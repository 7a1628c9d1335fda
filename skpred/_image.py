"""The Coates et al. (2011) image-feature pipeline around any feature learner.

Random patches -> per-patch normalisation -> ZCA whitening -> feature
learning (e.g. PredictedRICA) -> dense convolutional extraction -> encoding
-> sum pooling over the four image quadrants.
"""

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    OneToOneFeatureMixin,
    TransformerMixin,
    _fit_context,
    clone,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._validation import validate_floats
from . import _device, _kernels
from ._kernels import hwc_to_chw_rows
from ._base import all_or_nothing
from ._persist import SaveMixin
from ._rica import PredictedRICA

__all__ = ["ZCAWhitening", "ImageEncoder", "sample_patches", "normalize_patches"]


# patch_size="auto": Coates et al.'s 6x6, shrunk to fit smaller images.
_AUTO_PATCH = 6


def _patch_hw(patch_size, image_shape, one_d):
    rows, cols, _ = image_shape
    if patch_size == "auto":
        return (1 if one_d else min(_AUTO_PATCH, rows)), min(_AUTO_PATCH, cols)
    ph, pw = (1, int(patch_size)) if one_d else (int(patch_size), int(patch_size))
    if ph > rows or pw > cols:
        raise ValueError(
            f"patch_size={patch_size} is larger than the {rows}x{cols} images."
        )
    return ph, pw


def sample_patches(X, image_shape, patch_size, n_patches, random_state=None):
    """Random square patches from flattened channels-last images.

    Parameters
    ----------
    X : ndarray of shape (n_images, rows * cols * channels)
    image_shape : tuple ``(rows, cols, channels)``
    patch_size : int or tuple ``(ph, pw)``
    n_patches : int
    random_state : int, RandomState or None

    Returns
    -------
    patches : ndarray of shape (n_patches, ph * pw * channels)
        Channels-last flattened patches (as the images).
    """
    rng = check_random_state(random_state)
    rows, cols, channels = image_shape
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, Integral) else patch_size
    if ph > rows or pw > cols:
        raise ValueError(f"patch_size={patch_size} is larger than the {rows}x{cols} images.")
    images = np.asarray(X).reshape(-1, rows, cols, channels)
    idx = rng.randint(0, len(images), n_patches)
    r = rng.randint(0, rows - ph + 1, n_patches)
    c = rng.randint(0, cols - pw + 1, n_patches)
    # Gather each patch by fancy indexing: (n, ph, pw, C) without a Python loop.
    rr = r[:, None, None] + np.arange(ph)[None, :, None]
    cc = c[:, None, None] + np.arange(pw)[None, None, :]
    patches = images[idx[:, None, None], rr, cc]
    return patches.reshape(n_patches, -1)


def normalize_patches(P, epsilon):
    """Per-patch mean removal and division by ``sqrt(var + epsilon)``."""
    P = np.asarray(P, dtype=np.float64)
    P = P - P.mean(axis=1, keepdims=True)
    return P / np.sqrt(P.var(axis=1, keepdims=True) + epsilon)


class ZCAWhitening(SaveMixin, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """ZCA whitening: ``(x - mean) C^-1/2`` with ``C`` the covariance plus epsilon.

    Parameters
    ----------
    epsilon : float, default=0.1
        Added to the covariance's eigenvalues (Coates et al. use 0.1 on
        normalised patches); 0 whitens exactly when the covariance is
        full rank.

    Attributes
    ----------
    mean_ : ndarray of shape (`n_features_in_`,)
    whitening_ : ndarray of shape (`n_features_in_`, `n_features_in_`)
        Symmetric ``(C + epsilon I)^-1/2``.
    dewhitening_ : ndarray of shape (`n_features_in_`, `n_features_in_`)
        ``(C + epsilon I)^1/2``, for inverse_transform.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from skpred import ZCAWhitening
    >>> X = np.random.default_rng(0).standard_normal((1000, 3)) @ [[2, 1, 0], [0, 1, 0], [0, 0, 3]]
    >>> Z = ZCAWhitening(epsilon=0).fit_transform(X)
    >>> np.allclose(np.cov(Z, rowvar=False), np.eye(3))
    True
    """

    _parameter_constraints = {"epsilon": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, epsilon=0.1):
        self.epsilon = epsilon

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        with all_or_nothing(self):  # a failed fit leaves the estimator as it was
            X = validate_floats(self, X)
            if X.shape[0] < 2:
                raise ValueError(f"ZCAWhitening needs at least 2 samples, got n_samples={X.shape[0]}.")
            self.mean_ = X.mean(axis=0, dtype=np.float64)
            cov = _kernels.empirical_kernel(X)
            evals, evecs = np.linalg.eigh(cov)
            evals = np.maximum(evals, 0.0) + self.epsilon
            if np.any(evals <= 0):
                raise ValueError(
                    "The covariance is singular and epsilon=0: whitening is undefined; "
                    "use epsilon > 0."
                )
            self.whitening_ = (evecs / np.sqrt(evals)) @ evecs.T
            self.dewhitening_ = (evecs * np.sqrt(evals)) @ evecs.T
            return self

    def transform(self, X):
        check_is_fitted(self)
        X = validate_floats(self, X, reset=False)
        return ((X - self.mean_) @ self.whitening_).astype(X.dtype, copy=False)

    def inverse_transform(self, X):
        check_is_fitted(self)
        X = validate_floats(self, X, reset=False)
        return (X @ self.dewhitening_ + self.mean_).astype(X.dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _bin_edges(length):
    """Two disjoint halves of an axis, the first taking the middle row of an
    odd length (Coates et al.: ``1:round(n/2)`` and ``round(n/2)+1:end``).
    A length of 1 cannot be split: both halves are that single row."""
    if length == 1:
        return [(0, 1), (0, 1)]
    half = (length + 1) // 2
    return [(0, half), (half, length)]


# One registry for the string option `encoding`: name -> (fn, outputs per feature).
ENCODINGS = {
    "abs": (lambda z, t: z.abs(), 1),
    "soft_threshold": (lambda z, t: torch.relu(z - t), 1),
    "relu_split": (lambda z, t: torch.cat([torch.relu(z), torch.relu(-z)], dim=1), 2),
}


class ImageEncoder(SaveMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Coates et al. (2011) single-layer image features around a feature learner.

    ``fit`` samples random patches from the training images, normalises each
    (mean removal, ``/ sqrt(var + norm_epsilon)``), ZCA-whitens them and fits
    a clone of ``feature_learner`` on them (any transformer with
    ``components_`` of shape (n_components, patch_dim), e.g.
    :class:`PredictedRICA`). ``transform`` extracts every patch at ``stride``
    from whole images, normalises and whitens it as at training time,
    computes the feature responses, encodes them and sum-pools them over
    the four quadrants of the response map. Patches are streamed through
    the device in chunks of images, so memory stays bounded for any number
    of images.

    Parameters
    ----------
    feature_learner : estimator with ``fit`` and ``components_``, default=None
        Cloned and fitted on the whitened patches. None is
        ``PredictedRICA()`` with its defaults (64 features; ``se`` features,
        since the encoder passes it the patch shape as ``image_shape``).
        A learner whose ``image_shape`` or ``random_state`` is None gets the
        patch shape and a seed drawn from ``random_state``.
    patch_size : int or "auto", default="auto"
        Side of the square patches. "auto" is 6 (Coates et al.), shrunk to
        the image's side for smaller images (to the signal's length for 1-D
        signals); the patch used is ``patch_shape_``. A given size larger
        than the images is an error.
    stride : int, default=1
    n_patches : int, default=10000
        Random training patches.
    image_shape : tuple, "1d" or None, default=None
        ``(rows, cols)`` or ``(rows, cols, channels)`` of the flattened,
        channels-last images; None infers a square grayscale image when
        ``n_features`` is a perfect square and a 1-D signal otherwise;
        "1d": 1-row signals with ``1 x patch_size`` patches. The grid used is
        ``image_shape_``.
    encoding : {"abs", "soft_threshold", "relu_split"}, default="soft_threshold"
        ``|z|``, ``max(0, z - threshold)``, or ``[max(0, z), max(0, -z)]``.
    threshold : float, default=0.25
    norm_epsilon : float, default=0.01
        Added to each patch's variance (Coates et al. use 10 for pixels in
        [0, 255]; 0.01 suits pixels in [0, 1]).
    zca_epsilon : float, default=0.1
    chunk_size : int, default=2**22
        Upper bound on (patches x patch values) per chunk on the device.
    device : str, default="auto"
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    feature_learner_ : fitted clone of ``feature_learner`` (or the default PredictedRICA)
    whitener_ : ZCAWhitening
    image_shape_ : tuple (rows, cols, channels)
    patch_shape_ : tuple (ph, pw, channels)
    device_ : torch.device
        Where ``transform`` runs (``device`` resolved at fit; the CPU after
        unpickling).
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skpred import ImageEncoder, PredictedRICA
    >>> X, y = load_digits(return_X_y=True)
    >>> enc = ImageEncoder(PredictedRICA(16, dictionary=None, max_iter=20, device="cpu"),
    ...                    patch_size=3, n_patches=2000, random_state=0, device="cpu")
    >>> enc.fit_transform(X[:100] / 16).shape
    (100, 64)
    >>> enc = ImageEncoder(random_state=0, device="cpu").fit(X[:300] / 16)
    >>> enc.patch_shape_, enc.feature_learner_.dictionary_.kernel_
    ((6, 6, 1), 'se')
    """

    _parameter_constraints = {
        "feature_learner": [HasMethods(["fit"]), None],
        "patch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "stride": [Interval(Integral, 1, None, closed="left")],
        "n_patches": [Interval(Integral, 2, None, closed="left")],
        "image_shape": [tuple, list, StrOptions({"1d"}), None],
        "encoding": [StrOptions(set(ENCODINGS))],
        "threshold": [Interval(Real, 0, None, closed="left")],
        "norm_epsilon": [Interval(Real, 0, None, closed="neither")],
        "zca_epsilon": [Interval(Real, 0, None, closed="left")],
        "chunk_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str],
        "random_state": ["random_state"],
    }

    def __init__(self, feature_learner=None, *, patch_size="auto", stride=1, n_patches=10000,
                 image_shape=None, encoding="soft_threshold", threshold=0.25,
                 norm_epsilon=0.01, zca_epsilon=0.1, chunk_size=2**22, device="auto",
                 random_state=None):
        self.feature_learner = feature_learner
        self.patch_size = patch_size
        self.stride = stride
        self.n_patches = n_patches
        self.image_shape = image_shape
        self.encoding = encoding
        self.threshold = threshold
        self.norm_epsilon = norm_epsilon
        self.zca_epsilon = zca_epsilon
        self.chunk_size = chunk_size
        self.device = device
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        with all_or_nothing(self):  # a failed fit leaves the estimator as it was
            X = validate_floats(self, X)
            shape, one_d = _kernels.grid_shape(X.shape[1], self.image_shape)
            ph, pw = _patch_hw(self.patch_size, shape, one_d)
            rng = check_random_state(self.random_state)
            P = sample_patches(X, shape, (ph, pw), self.n_patches, rng)
            P = normalize_patches(P, self.norm_epsilon)
            self.whitener_ = ZCAWhitening(epsilon=self.zca_epsilon).fit(P)
            if self.feature_learner is None:
                learner = PredictedRICA(device=self.device)
            else:
                learner = clone(self.feature_learner)
            if "random_state" in learner.get_params() and learner.get_params()["random_state"] is None:
                learner.set_params(random_state=rng.randint(2**31 - 1))
            if "image_shape" in learner.get_params() and learner.get_params()["image_shape"] is None:
                learner.set_params(image_shape=(ph, pw, shape[2]))
            self.feature_learner_ = learner.fit(self.whitener_.transform(P))
            W = getattr(self.feature_learner_, "components_", None)
            if W is None or W.ndim != 2 or W.shape[1] != P.shape[1]:
                raise ValueError(
                    "feature_learner must expose components_ of shape (n_components, "
                    f"{P.shape[1]}) after fitting on patches."
                )
            self.image_shape_ = shape
            self.device_ = _device.resolve_device(self.device)
            self.patch_shape_ = (ph, pw, shape[2])
            self._n_features_out = 4 * W.shape[0] * ENCODINGS[self.encoding][1]
            return self

    def _filters(self, device):
        """Whitening folded into the features, rows in torch's unfold order.

        Response of a normalised patch p (channels-last): ``W Z (p - m)`` with
        Z the symmetric ZCA matrix, so the effective filters are ``F = W Z``
        and the bias ``-F m``.
        """
        W = self.feature_learner_.components_
        F = W @ self.whitener_.whitening_  # (k, d), d in (ph, pw, C) order
        bias = -F @ self.whitener_.mean_
        F_chw = hwc_to_chw_rows(F.T, self.patch_shape_).T  # (k, d) in (C, ph, pw) order
        return (torch.tensor(F_chw, dtype=torch.float32, device=device),
                torch.tensor(bias, dtype=torch.float32, device=device))

    def transform(self, X):
        """Pooled encoded responses, shape (n_images, 4 * n_components * m)
        where m is 2 for "relu_split" and 1 otherwise; quadrant-major order."""
        check_is_fitted(self)
        X = validate_floats(self, X, reset=False)
        device = self.device_
        F, bias = self._filters(device)
        rows, cols, C = self.image_shape_
        ph, pw, _ = self.patch_shape_
        d = ph * pw * C
        oh = (rows - ph) // self.stride + 1
        ow = (cols - pw) // self.stride + 1
        per_image = oh * ow * (d + F.shape[0])
        chunk = max(1, self.chunk_size // per_image)
        encode, _ = ENCODINGS[self.encoding]
        out = []
        with torch.no_grad():
            for s in range(0, len(X), chunk):
                # torch.tensor copies the chunk: read-only input (memmaps) is fine.
                xb = torch.tensor(X[s:s + chunk], dtype=torch.float32, device=device)
                imgs = xb.reshape(-1, rows, cols, C).permute(0, 3, 1, 2)
                P = torch.nn.functional.unfold(imgs, (ph, pw), stride=self.stride)  # (B, d, L)
                P = P - P.mean(dim=1, keepdim=True)
                P = P / torch.sqrt(P.var(dim=1, unbiased=False, keepdim=True) + self.norm_epsilon)
                Z = torch.matmul(F, P) + bias[None, :, None]
                E = encode(Z, self.threshold).reshape(len(xb), -1, oh, ow)
                pooled = [E[:, :, r0:r1, c0:c1].sum(dim=(2, 3))
                          for r0, r1 in _bin_edges(oh) for c0, c1 in _bin_edges(ow)]
                out.append(torch.cat(pooled, dim=1).cpu())
        return torch.cat(out).numpy().astype(X.dtype, copy=False)

    def __getstate__(self):
        # Like the torch-backed estimators: a model fitted on a GPU is
        # stored to run on the CPU, so it loads where there is none.
        state = dict(super().__getstate__())
        if "device_" in state:
            state["device_"] = torch.device("cpu")
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
