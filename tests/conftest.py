import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits():
    """load_digits scaled to [0, 1] (8x8 grayscale, 1797 samples)."""
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


@pytest.fixture
def quiet_convergence():
    """Fixed-epoch test fits are meant to stop before converging."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
