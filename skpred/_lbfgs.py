"""Full-batch training with torch's L-BFGS (``solver="lbfgs"``).

scikit-learn's MLPs run ``scipy.optimize.minimize(method="L-BFGS-B")`` on
the whole training set with ``maxiter=max_iter``, ``maxfun=max_fun`` and
``gtol=tol``. This runs ``torch.optim.LBFGS`` (strong-Wolfe line search) on
the same objective, on the network's device, with the same three limits:
at most ``max_iter`` iterations, no new iteration once ``max_fun``
objective evaluations were spent, and a stop once the largest gradient
entry is at most ``tol``. One difference: torch's change tolerance is
absolute (here scipy's default ``ftol``, 2.2e-9) where scipy's is relative.
"""

import math
import time
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning

from .callbacks import IterationLog, TrainingResult

# scipy's default ftol for L-BFGS-B (factr 1e7 x machine epsilon)
_FTOL = 2.220446049250313e-09
# Rows per forward/backward pass of the full-batch objective: the
# gradient is accumulated over chunks, so memory does not grow with n.
_CHUNK = 8192


def train_lbfgs(module, forward, per_sample_loss, X, y, *, weights=None, penalty=None,
                max_iter, max_fun, tol, verbose=False, phase="fine-tune"):
    """Minimise ``sum(w l) / sum(w) + penalty() / sum(w)`` over the whole data.

    ``forward(X[rows])`` gives the outputs, ``per_sample_loss(out, y[rows])``
    one loss per row. Returns a :class:`~skpred.callbacks.TrainingResult`
    with one loss and one history record per iteration (the loss at the
    point the iteration's line search accepted). A ConvergenceWarning names
    the limit that stopped an unconverged run. Ctrl-C keeps the current
    weights, with one warning.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    n = X.shape[0]
    weight_total = float(weights.sum()) if weights is not None else float(n)
    per_iter = {}
    started = time.perf_counter()
    marks = {}
    optimizer = None

    def report(k):
        marks[k] = time.perf_counter()
        if verbose:
            print(IterationLog.line(k, per_iter[k]), flush=True)

    def closure():
        optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=X.device)
        for start in range(0, n, _CHUNK):
            rows = slice(start, min(start + _CHUNK, n))
            loss = per_sample_loss(forward(X[rows]), y[rows])
            loss = (loss * weights[rows]).sum() if weights is not None else loss.sum()
            loss = loss / weight_total
            loss.backward()
            total += loss.detach()
        if penalty is not None:
            term = penalty() / weight_total
            term.backward()
            total += term.detach()
        value = total.item()  # L-BFGS reads it on the host in any case
        if not math.isfinite(value):
            raise ValueError("The training loss became NaN or infinite; standardise the "
                             "inputs or raise alpha.")
        k = optimizer.state[params[0]].get("n_iter", 0)
        if k - 1 in per_iter and k not in per_iter and k - 1 >= 1:
            report(k - 1)  # iteration k - 1's line search is over
        per_iter[k] = min(per_iter.get(k, math.inf), value)
        return total

    optimizer = torch.optim.LBFGS(
        params, lr=1, max_iter=max_iter, max_eval=max_fun, tolerance_grad=tol,
        tolerance_change=_FTOL, history_size=10, line_search_fn="strong_wolfe")
    result = TrainingResult()
    module.train()
    try:
        optimizer.step(closure)
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by the user; keeping the weights of the last "
                      "L-BFGS evaluation.")
        result.interrupted = True
    finally:
        module.eval()
    state = optimizer.state[params[0]]
    n_iter, evals = state.get("n_iter", 0), state.get("func_evals", 0)
    if n_iter in per_iter and n_iter not in marks and n_iter >= 1:
        report(n_iter)
    previous = started
    for k in range(1, n_iter + 1):
        if k not in per_iter:
            continue
        result.losses.append(per_iter[k])
        end = marks.get(k, time.perf_counter())
        result.history.append(dict(phase=phase, epoch=k, train_loss=per_iter[k],
                                   valid_score=None, valid_loss=None, learning_rate=None,
                                   duration=end - previous, elapsed=end - started))
        previous = end
    result.n_epochs = len(result.losses)
    if n_iter == 0 and 0 in per_iter:
        # already optimal at the start (gradient within tol): the start's loss
        result.losses.append(per_iter[0])
    hit = ("max_iter" if n_iter >= max_iter else "max_fun" if evals >= max_fun else None)
    result.converged = hit is None and not result.interrupted
    if hit is not None and not result.interrupted:
        limit = max_iter if hit == "max_iter" else max_fun
        warnings.warn(
            f"lbfgs failed to converge after {n_iter} iteration(s) and {evals} evaluation(s) "
            f"of the loss: the limit {hit}={limit} was reached. Increase {hit}, or scale "
            f"the data.", ConvergenceWarning)
    return result
