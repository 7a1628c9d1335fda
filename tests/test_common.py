"""scikit-learn API compliance for every public estimator (one file owns it)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skpred import (
    ImageEncoder,
    KernelDictionary,
    PredictedConvNetClassifier,
    PredictedMLPClassifier,
    PredictedRICA,
    ZCAWhitening,
)


def _estimators():
    # Cheap settings. The grid kernels (se, dct) need an image-shaped input
    # and the common checks feed arbitrary n_features, so the checks run the
    # dictionaries that accept any width. alpha_fraction=1.0 for the
    # classifiers: check_classifiers_train uses 2-feature blobs, where 0.5
    # would leave a single atom. The skips reported by this
    # module are scikit-learn's own array-API checks, which it skips unless
    # SCIPY_ARRAY_API is set.
    return [
        KernelDictionary("emp", alpha_fraction=0.5, n_columns=2, random_state=0),
        KernelDictionary("random", alpha_fraction=0.5, random_state=0),
        KernelDictionary("randcon", alpha_fraction=0.5, random_state=0),
        PredictedMLPClassifier(
            hidden_layer_sizes=(16,), dictionary="random", alpha_fraction=1.0,
            solver="adam", learning_rate_init=0.02, max_iter=30, batch_size=32,
            device="cpu", random_state=0,
        ),
        # image_shape="1d": the checks' inputs are not images, so the tiny
        # network convolves along the feature axis (1x1 kernels fit any width).
        PredictedConvNetClassifier(
            conv_layers=((4, 1, 1),), dense_layers=(16,), image_shape="1d",
            dictionary="random", alpha_fraction=1.0, n_columns=1, solver="adam",
            learning_rate_init=0.02, max_iter=30, batch_size=32, device="cpu", random_state=0,
        ),
        PredictedRICA(n_components=3, dictionary="random", alpha_fraction=1.0, max_iter=5,
                      device="cpu", random_state=0),
        ZCAWhitening(epsilon=0.1),
        # "1d" images and 1-pixel patches: again, the checks' inputs are not images.
        ImageEncoder(
            PredictedRICA(n_components=2, dictionary=None, max_iter=3, device="cpu"),
            patch_size=1, image_shape="1d", n_patches=50, device="cpu", random_state=0,
        ),
    ]


@parametrize_with_checks(_estimators())
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_every_parameter_has_a_validation_constraint():
    import inspect

    for est in _estimators():
        params = set(inspect.signature(type(est).__init__).parameters) - {"self"}
        assert params == set(type(est)._parameter_constraints), type(est).__name__
