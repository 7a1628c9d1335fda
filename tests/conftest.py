import numpy as np
import pytest
from sklearn.datasets import load_digits


@pytest.fixture(scope="session")
def digits():
    """load_digits scaled to [0, 1] (8x8 grayscale, 1797 samples)."""
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y
