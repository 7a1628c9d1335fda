"""scikit-learn API compliance for every public estimator (one file owns it)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skpred import KernelDictionary


def _estimators():
    # Cheap settings. The grid kernels (se, dct) need an image-shaped input
    # and the common checks feed arbitrary n_features, so the checks run the
    # kernels that accept any width: the data-driven one and the random ones.
    return [
        KernelDictionary("emp", alpha_fraction=0.5, n_columns=2, random_state=0),
        KernelDictionary("random", alpha_fraction=0.5, random_state=0),
        KernelDictionary("randcon", alpha_fraction=0.5, random_state=0),
    ]


@parametrize_with_checks(_estimators())
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
