"""Input validation shared by every estimator (no estimator imported here)."""

import numpy as np
from sklearn.utils.validation import validate_data

__all__ = ["validate_floats", "check_float32_range"]

# The computation runs in float32 (torch) or forms products of values
# (covariances): a finite float64 beyond float32's range overflows there
# into inf and then NaN, silently. It is rejected at the door instead.
_F32_MAX = float(np.finfo(np.float32).max)


def check_float32_range(X, name="X"):
    """ValueError when a float array holds values beyond float32's range."""
    if X.size and X.dtype.itemsize > 4 and X.dtype.kind == "f":
        hi, lo = float(X.max()), float(X.min())
        if hi > _F32_MAX or lo < -_F32_MAX:
            raise ValueError(
                f"{name} holds values beyond float32's range (largest magnitude "
                f"{max(hi, -lo):.3g} > {_F32_MAX:.3g}); skpred computes in float32. "
                f"Rescale the data (e.g. with StandardScaler).")
    return X


def validate_floats(est, X, y="no_validation", reset=True, **kwargs):
    """scikit-learn's ``validate_data`` to float64/float32 (finite values,
    feature count), then :func:`check_float32_range` on X."""
    out = validate_data(est, X, y, reset=reset, dtype=[np.float64, np.float32], **kwargs)
    check_float32_range(out[0] if isinstance(out, tuple) else out)
    return out
