"""scikit-learn API compliance for every public estimator (one file owns it).

Every estimator is checked as a user gets it: constructed with its
defaults, with only ``device="cpu"`` (the checks compare runs, and CPU runs
are deterministic) and ``random_state=0`` set. The only skips reported by
this module are scikit-learn's own array-API checks, which it skips unless
SCIPY_ARRAY_API is set, and the sample-weight equivalence checks of the
three networks, expected to fail (strictly), with the measured reason in
``_expected_failures``.
"""

import inspect

from sklearn.utils.estimator_checks import parametrize_with_checks

from skpred import (
    ImageEncoder,
    KernelDictionary,
    PredictedConvNetClassifier,
    PredictedMLPClassifier,
    PredictedMLPRegressor,
    PredictedRICA,
    ZCAWhitening,
)

PUBLIC_ESTIMATORS = [
    KernelDictionary, PredictedMLPClassifier, PredictedMLPRegressor, PredictedConvNetClassifier,
    PredictedRICA, ZCAWhitening, ImageEncoder,
]

# The networks train in float32: fitting with integer sample weights and
# fitting on the rows repeated give outputs that agree only to float32
# rounding (the sums run in another order), where scikit-learn's check asks
# assert_allclose's default rtol=1e-7. Measured (2 CPU cores and 1 thread,
# the same): largest relative difference of the checked outputs 9.5e-7 for
# PredictedMLPClassifier, 2.4e-7 for PredictedMLPRegressor (dense and sparse
# data alike) and 5.6e-6 for PredictedConvNetClassifier (dense data; it
# takes no sparse input, so the sparse check is not run for it).
# tests/test_sample_weight.py asserts the same equivalence at a float32
# tolerance (predictions rtol 1e-3, atol 1e-4; loss curves rtol 1e-4).
# The xfails are strict (pyproject.toml: xfail_strict): a check that starts
# passing is reported, so this list cannot go stale.
_WEIGHT_CHECKS = ("check_sample_weight_equivalence_on_dense_data",
                  "check_sample_weight_equivalence_on_sparse_data")
_MEASURED = {"PredictedMLPClassifier": "9.5e-7", "PredictedMLPRegressor": "2.4e-7",
             "PredictedConvNetClassifier": "5.6e-6"}


def _expected_failures(estimator):
    name = type(estimator).__name__
    if name not in _MEASURED:
        return {}
    reason = (f"float32 training: weighted and repeated-row fits differ by {_MEASURED[name]} "
              "relative, the check asks 1e-7 (asserted at a float32 tolerance in "
              "test_sample_weight.py)")
    return {check: reason for check in _WEIGHT_CHECKS}


def _default_instance(cls):
    params = inspect.signature(cls.__init__).parameters
    fixed = {k: v for k, v in (("device", "cpu"), ("random_state", 0)) if k in params}
    return cls(**fixed)


def _estimators():
    return [_default_instance(cls) for cls in PUBLIC_ESTIMATORS]


@parametrize_with_checks(_estimators(), expected_failed_checks=_expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_checked_instances_differ_from_defaults_only_in_device_and_seed():
    for est in _estimators():
        defaults = type(est)().get_params()
        changed = {k for k, v in est.get_params().items() if defaults[k] != v}
        assert changed <= {"device", "random_state"}, (type(est).__name__, changed)


def test_every_parameter_has_a_validation_constraint():
    for est in _estimators():
        params = set(inspect.signature(type(est).__init__).parameters) - {"self"}
        assert params == set(type(est)._parameter_constraints), type(est).__name__
