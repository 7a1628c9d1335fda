"""Optimisers and learning-rate schedules (scikit-learn's rules and the
authors' per-minibatch decay).
"""

import torch
from torch import nn
from torch.optim import lr_scheduler

from .callbacks import LRSchedule


def penalised_weights(module: nn.Module):
    """What scikit-learn's ``alpha`` penalises: the learned weights (W of a
    dense layer, V of a predicted one, U and V of a lowrank one), not the
    biases and not a fixed U."""
    return [p for name, p in module.named_parameters()
            if p.requires_grad and not name.endswith("bias")]


class L2Penalty:
    """scikit-learn's ``alpha`` term, ``0.5 * alpha * sum ||w||^2`` over
    :func:`penalised_weights`.

    ``penalty()`` is the differentiable term (L-BFGS adds it to its loss).
    Minibatch training does not put it in the autograd graph: its gradient
    is ``alpha * w``, added to the gradients by :meth:`add_grad_` (one
    fused operator), and its value for the reported loss comes from
    :meth:`value` (two), where autograd would run five operators per weight
    forward and back. Both give the same step.
    """

    def __init__(self, weights, alpha):
        self.weights = list(weights)
        self.alpha = float(alpha)

    def __call__(self):
        return 0.5 * self.alpha * sum(w.pow(2).sum() for w in self.weights)

    @torch.no_grad()
    def value(self):
        """The term at the current weights, a 0-d tensor (no host sync)."""
        if not self.weights:
            return torch.zeros(())
        norms = torch._foreach_norm(self.weights)
        device = norms[0].device
        norms = torch.stack([n.to(device, torch.float32) for n in norms]) \
            if len({(n.device, n.dtype) for n in norms}) > 1 else torch.stack(norms)
        return torch.dot(norms, norms) * (0.5 * self.alpha)

    @torch.no_grad()
    def add_grad_(self, scale):
        """``w.grad += scale * alpha * w`` for every weight: the gradient of
        ``scale * penalty()`` (``scale`` a number or a 0-d tensor)."""
        for w in self.weights:
            if w.grad is None:  # not reached by this loss: its gradient is the term's alone
                w.grad = torch.zeros_like(w)
        grads = [w.grad for w in self.weights]
        if isinstance(scale, torch.Tensor):
            torch._foreach_add_(grads, torch._foreach_mul(self.weights, scale * self.alpha))
        else:
            torch._foreach_add_(grads, self.weights, alpha=scale * self.alpha)


def l2_penalty(module: nn.Module, alpha: float):
    """The :class:`L2Penalty` of ``alpha`` on the module's
    :func:`penalised_weights` (the training loop divides it by the batch's
    weight, as scikit-learn does), or None when ``alpha`` is 0."""
    if not alpha:
        return None
    return L2Penalty(penalised_weights(module), alpha)


def make_optimizer(module, solver, learning_rate, *, momentum=0.9, nesterovs_momentum=True,
                   beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """torch's SGD or Adam over the module's learned parameters, with
    scikit-learn's parameters: torch's Nesterov SGD is scikit-learn's
    update written for ``buf = -velocity / lr`` (the same steps at a
    constant rate)."""
    # One group, weights then biases (the penalty is not the optimizer's
    # weight decay, so the groups would not differ): torch's foreach step
    # runs once per group. Files of earlier releases hold two groups in
    # this order; load_state merges them.
    weights = penalised_weights(module)
    biases = [p for name, p in module.named_parameters()
              if p.requires_grad and name.endswith("bias")]
    params = weights + biases
    # foreach: each update is one multi-tensor operator for all the
    # parameters (torch picks it by default on GPUs only; on the CPU its
    # per-parameter loop issues three operators per parameter).
    if solver == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, momentum=momentum,
                               nesterov=bool(nesterovs_momentum and momentum > 0), foreach=True)
    if solver == "adam":
        return torch.optim.Adam(params, lr=learning_rate, betas=(beta_1, beta_2), eps=epsilon,
                                foreach=True)
    raise ValueError(f"solver must be 'sgd' or 'adam', got {solver!r}.")


def load_state(optimizer, state):
    """``optimizer.load_state_dict(state)``, where ``state`` may come from
    an earlier release: two groups (weights, then biases) whose settings
    are equal, which merge into one (torch numbers parameters across groups
    in order, so the merged group holds the same parameters under the same
    numbers); then the settings :func:`make_optimizer` gives that a file
    cannot change: no torch weight decay (files from before ``alpha`` had
    it on the weights' group; it is the loss's penalty now, see
    ``_persist.ADDED_PARAMETERS``) and the multi-tensor step."""
    groups = state["param_groups"]
    if len(groups) > 1 and len(optimizer.param_groups) == 1:
        def settings(group):
            return {k: v for k, v in group.items() if k not in ("params", "weight_decay")}

        for g in groups[1:]:
            if settings(g) != settings(groups[0]):
                raise ValueError("The optimizer state holds parameter groups with different "
                                 "settings; skpred's optimizer has one group.")
        merged = dict(groups[0], params=[i for g in groups for i in g["params"]])
        state = dict(state, param_groups=[merged])
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        group["weight_decay"] = 0.0
        group["foreach"] = True


def update_optimizer(optimizer, before, after):
    """Apply the settings in ``after`` that differ from ``before`` to a live
    optimizer of the same solver: ``learning_rate_init`` sets every group's
    rate (a schedule's decay so far is replaced), ``momentum`` and
    ``nesterovs_momentum`` SGD's, ``beta_1``, ``beta_2`` and ``epsilon``
    Adam's. Its state (momenta, moments, step counts) is kept."""
    for group in optimizer.param_groups:
        if after["learning_rate_init"] != before["learning_rate_init"]:
            group["lr"] = after["learning_rate_init"]
            group["initial_lr"] = after["learning_rate_init"]
        if isinstance(optimizer, torch.optim.SGD):
            group["momentum"] = after["momentum"]
            group["nesterov"] = bool(after["nesterovs_momentum"] and after["momentum"] > 0)
        elif isinstance(optimizer, torch.optim.Adam):
            group["betas"] = (after["beta_1"], after["beta_2"])
            group["eps"] = after["epsilon"]


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
