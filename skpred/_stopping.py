"""scikit-learn's MLP stopping rule, on its own: a pure function of the
epochs' scores, so it is tested against scikit-learn's code without a
network (:class:`skpred.callbacks.EarlyStopping` applies it)."""

import numpy as np

__all__ = ["StoppingRule"]


class StoppingRule:
    """scikit-learn's MLP stopping rule, tie for tie.

    ``BaseMultilayerPerceptron._update_no_improvement_count``: with a
    validation set (``higher_is_better=True``) an epoch whose score is below
    ``best + tol`` counts as no improvement, so a score *equal* to
    ``best + tol`` is an improvement; on the training loss an epoch whose loss
    is above ``best - tol`` counts. Either way the best is updated on any gain,
    however small, and the rule is met once more than ``n_iter_no_change``
    epochs in a row brought no improvement (the caller then stops, or, with
    the ``"adaptive"`` schedule, lowers the rate and sets ``count`` to 0).
    """

    def __init__(self, tol: float, n_iter_no_change: float, *, higher_is_better: bool):
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.higher_is_better = higher_is_better
        self.best = -np.inf if higher_is_better else np.inf
        self.count = 0

    def update(self, value: float) -> bool:
        """Record one epoch's score (or loss); True when it is a new best."""
        if self.higher_is_better:
            stale = value < self.best + self.tol
            gained = value > self.best
        else:
            stale = value > self.best - self.tol
            gained = value < self.best
        self.count = self.count + 1 if stale else 0
        if gained:
            self.best = value
        return gained

    @property
    def met(self) -> bool:
        return self.count > self.n_iter_no_change
