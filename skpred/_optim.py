"""Optimisers and learning-rate schedules (scikit-learn's rules and the
authors' per-minibatch decay).
"""

import torch
from torch import nn


def param_groups(module: nn.Module, weight_decay: float):
    """Weight decay on weights (W, V, learned U), none on biases."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if name.endswith("bias") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(module, solver, learning_rate, momentum=0.0, weight_decay=0.0):
    groups = param_groups(module, weight_decay)
    if solver == "sgd":
        return torch.optim.SGD(groups, lr=learning_rate, momentum=momentum)
    if solver == "adam":
        return torch.optim.Adam(groups, lr=learning_rate)
    raise ValueError(f"solver must be 'sgd' or 'adam', got {solver!r}.")


LEARNING_RATES = ("constant", "invscaling", "adaptive", "decay")


class LearningRateSchedule:
    """The ``learning_rate`` option of the classifiers, applied to any torch
    optimizer through its ``param_groups``.

    - ``"constant"``: ``learning_rate_init`` throughout.
    - ``"invscaling"``: ``learning_rate_init / (t + 1) ** power_t`` after
      every epoch, ``t`` the samples seen so far (scikit-learn's rule).
    - ``"adaptive"``: constant while the stopping rule is not met; each time
      it is, the rate is divided by 5 and training goes on, unless the rate
      is already at most 1e-6 (scikit-learn's rule).
    - ``"decay"``: divided by ``learning_rate_decay`` after every minibatch
      (the authors' schedule).

    ``samples_seen`` carries over between calls (``partial_fit``, warm
    starts), as scikit-learn's ``t_``.
    """

    def __init__(self, kind="constant", learning_rate_init=1e-3, power_t=0.5,
                 learning_rate_decay=1.0, samples_seen=0):
        if kind not in LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {LEARNING_RATES}, got {kind!r}.")
        self.kind = kind
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.learning_rate_decay = learning_rate_decay
        self.samples_seen = samples_seen

    @staticmethod
    def _set(optimizer, lr):
        for group in optimizer.param_groups:
            group["lr"] = lr

    def after_batch(self, optimizer):
        if self.kind == "decay" and self.learning_rate_decay != 1.0:
            for group in optimizer.param_groups:
                group["lr"] /= self.learning_rate_decay

    def after_epoch(self, optimizer, n_samples):
        self.samples_seen += n_samples
        if self.kind == "invscaling":
            self._set(optimizer, self.learning_rate_init / (self.samples_seen + 1) ** self.power_t)

    def on_plateau(self, optimizer) -> bool:
        """The stopping rule was met: True to keep training (rate divided)."""
        if self.kind != "adaptive":
            return False
        lr = optimizer.param_groups[0]["lr"]
        if lr <= 1e-6:
            return False
        self._set(optimizer, lr / 5.0)
        return True
