"""Optimisers and learning-rate schedules (scikit-learn's rules and the
authors' per-minibatch decay).
"""

import torch
from torch import nn
from torch.optim import lr_scheduler

from .callbacks import LRSchedule


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


def schedule_callback(learning_rate, *, learning_rate_init, power_t=0.5,
                      learning_rate_decay=1.0, samples_seen=0, n_samples=1):
    """The ``learning_rate`` parameter as an :class:`~skpred.callbacks.LRSchedule`
    (None for ``"constant"``), each on a ``torch.optim.lr_scheduler`` class:

    - ``"invscaling"``: ``learning_rate_init / (t + 1) ** power_t`` after
      every epoch, ``t`` the samples seen so far, counted over earlier
      ``partial_fit`` calls and warm starts too (scikit-learn's rule and
      its ``t_``); a ``LambdaLR``.
    - ``"adaptive"``: constant while the stopping rule is not met; each time
      it is, the rate is divided by 5 and training goes on, unless the rate
      is already at most 1e-6 (scikit-learn's rule); a ``MultiplicativeLR``
      stepped on plateaus.
    - ``"decay"``: divided by ``learning_rate_decay`` after every minibatch
      (the authors' schedule); an ``ExponentialLR`` stepped per batch.
    - a callable: ``learning_rate(optimizer)`` returns any scheduler of that
      optimizer, stepped after every epoch (see ``LRSchedule``).
    """
    if callable(learning_rate):
        return LRSchedule(learning_rate, every="epoch")
    if learning_rate == "constant":
        return None
    if learning_rate == "invscaling":
        def factory(optimizer):
            for group in optimizer.param_groups:
                group["initial_lr"] = learning_rate_init  # the formula's base

            return lr_scheduler.LambdaLR(
                optimizer, lambda k: (samples_seen + k * n_samples + 1) ** -power_t)

        return LRSchedule(factory, every="epoch")
    if learning_rate == "adaptive":
        return LRSchedule(lambda opt: lr_scheduler.MultiplicativeLR(opt, lambda _: 0.2),
                          every="plateau", min_lr=1e-6)
    if learning_rate == "decay":
        if learning_rate_decay == 1.0:
            return None
        return LRSchedule(lambda opt: lr_scheduler.ExponentialLR(opt, 1.0 / learning_rate_decay),
                          every="batch")
    raise ValueError(f"learning_rate must be one of {LEARNING_RATES} or a callable, "
                     f"got {learning_rate!r}.")
