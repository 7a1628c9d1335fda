"""What the torch-backed classifiers share: fit, partial_fit, predict, pickling.

Subclasses build their network in ``_build`` and may reshape inputs in
``_check_X``; training runs through :func:`skpred._loop.train_epochs`.
"""

import copy
from contextlib import contextmanager
from types import SimpleNamespace
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import (BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context,
                          is_classifier)
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils._available_if import available_if
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d
from torch.nn import functional as F

from ._validation import check_float32_range, validate_floats
from . import _device, _distributed, _feeds, _lbfgs, _loop, _optim, _summary
from .callbacks import (CatchInterrupt, EarlyStopping, History, IterationLog, ProgressBar,
                        TrainingResult, Validation, check_callbacks, wants_progress_bar)
from ._persist import SaveMixin, TorchStateMixin
from .nn._linear import FactoredLayer

# Rows per prediction chunk; every chunk is padded to it (predict_in_batches).
_PREDICT_BATCH = 256

# Constraints of the training parameters every classifier shares.
TRAINING_CONSTRAINTS = {
    "solver": [StrOptions({"sgd", "adam"})],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "learning_rate_decay": [Interval(Real, 1, None, closed="left")],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "nesterovs_momentum": ["boolean"],
    "beta_1": [Interval(Real, 0, 1, closed="left")],
    "beta_2": [Interval(Real, 0, 1, closed="left")],
    "epsilon": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "shuffle": ["boolean"],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
    "tol": [Interval(Real, 0, None, closed="left")],
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
    "learning_rate": [StrOptions(set(_optim.LEARNING_RATES)), callable],
    "power_t": [Interval(Real, 0, None, closed="left")],
    "progress_bar": [StrOptions({"auto"}), "boolean"],
    "callbacks": [list, None],
    "compile": ["boolean"],
}

# Parameters of the classifiers only.
CLASSIFIER_CONSTRAINTS = {
    "class_weight": [dict, StrOptions({"balanced"}), None],
}


def _stochastic_solver(est):
    """partial_fit exists for the minibatch solvers only (scikit-learn's
    AttributeError, so that ``hasattr(est, "partial_fit")`` is False)."""
    if est.solver == "lbfgs":
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. "
                             f"{est.solver} is not stochastic.")
    return True


def resolve_batch_size(batch_size, n_samples):
    """``"auto"`` is scikit-learn's ``min(200, n_samples)``; a number is kept."""
    return min(200, n_samples) if batch_size == "auto" else batch_size


@contextmanager
def all_or_nothing(est, in_place=()):
    """Undo every change to ``est`` when the block raises (KeyboardInterrupt too).

    The estimator's attributes are restored as they were; the objects named
    in ``in_place`` (modules and optimizers that training updates in place)
    are deep-copied first and put back, a ``torch.Generator`` by its state.
    A failed fit thus leaves a fitted estimator as it was, and a fresh one
    unfitted.
    """
    saved = dict(est.__dict__)
    present = [k for k in in_place if saved.get(k) is not None]
    generators = {k: saved[k].get_state() for k in present
                  if isinstance(saved[k], torch.Generator)}
    copies = copy.deepcopy({k: saved[k] for k in present if k not in generators})
    try:
        yield
    except BaseException:
        est.__dict__.clear()
        est.__dict__.update(saved)
        est.__dict__.update(copies)
        for k, state in generators.items():
            saved[k].set_state(state)
        raise


class TorchEstimatorBase(SaveMixin, TorchStateMixin, BaseEstimator):
    """What the skpred networks share, classifiers and regressors (not public).

    Subclasses define the parameters used here (``solver``,
    ``learning_rate_init``, ``learning_rate``, ``power_t``,
    ``learning_rate_decay``, ``momentum``, ``nesterovs_momentum``,
    ``beta_1``, ``beta_2``, ``epsilon``, ``alpha``, ``batch_size``,
    ``max_iter``, ``shuffle``, ``early_stopping``, ``validation_fraction``,
    ``n_iter_no_change``, ``tol``, ``device``, ``random_state``,
    ``verbose``, ``progress_bar``, ``warm_start``) and
    ``_build(X_t, n_outputs, rng, generator, device, context) -> (module,
    dictionaries, fitted)``: ``module(x)`` returns the outputs (logits for a
    classifier), ``module.weight_layers()`` lists its layers with weights,
    output last, ``fitted`` maps the names of further fitted attributes to
    values, and ``context`` holds the sample weights on the device
    (``"weights"``, or None) and the progress bar (``"progress"``). The
    task (classification or regression) comes from the mixin bases below.
    """

    _abstract = True  # a base: not a class a file can name

    _torch_modules = ("module_",)
    # Parameters that shape the network: warm_start keeps the network, so a
    # change of one of these after fit is an error (subclasses list theirs).
    _architecture_params = ()
    # What training updates in place (undone when a fit fails).
    _in_place = ("module_", "_optimizer", "_generator", "loss_curve_", "history_")

    # ----------------------------------------------------------- task hooks

    def _validate_fit_data(self, X, y, reset):
        raise NotImplementedError

    def _targets(self, y, first_call):
        """Targets as an array for the device, and the number of outputs."""
        raise NotImplementedError

    def _target_tensor(self, targets, device):
        raise NotImplementedError

    def _per_sample_loss(self, out, yb):
        raise NotImplementedError

    def _mean_loss(self, out, yb):
        """The unweighted minibatch mean of :meth:`_per_sample_loss`; a task
        whose loss has a fused mean overrides it (one operator, not two)."""
        return self._per_sample_loss(out, yb).mean()

    def _validation_score(self, out, y, w):
        """Score of outputs ``out`` against ``y`` (weights ``w`` or None): higher is better."""
        raise NotImplementedError

    def _task_weights(self, targets, partial):
        """Per-sample weights the task adds (class weights), or None."""
        return None

    # ------------------------------------------------------------------- fit

    # "csr" where the network reads X through a dense first layer (the
    # MLPs): batches are densified on the device, never the whole matrix.
    _accept_sparse = False

    def _check_X(self, X, y="no_validation", reset=True):
        """Validate X (and y unless "no_validation", 1-D or 2-D); subclasses
        reshape images here."""
        if isinstance(y, str) and y == "no_validation":
            return validate_floats(self, X, reset=reset, accept_sparse=self._accept_sparse)
        return validate_floats(self, X, y, reset=reset, accept_sparse=self._accept_sparse,
                               multi_output=True)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Build the network and its dictionaries, then train it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float32 or float64; training runs in float32.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (strings or integers) for a classifier; targets
            for a regressor.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights: each sample's loss is weighted, batches
            average ``sum(w l) / sum(w)``, the validation score and the
            data-driven dictionaries (``emp``, ``emp2``, ``ae``) and
            pretraining weigh samples alike. Integer weights act as
            repeated rows.

        Returns
        -------
        self : object
        """
        warm = self.warm_start and hasattr(self, "module_")
        with all_or_nothing(self, self._in_place if warm else ()):
            if warm:
                self._check_architecture_unchanged()
                # As scikit-learn: the weights are kept, the optimizer is
                # rebuilt from the current parameters (solver, learning rate).
                self._optimizer = None
            X, y = self._validate_fit_data(X, y, reset=not warm)
            if warm and is_classifier(self):
                self._check_warm_start_classes(y)
            return self._fit(X, y, sample_weight, epochs=self.max_iter, incremental=warm)

    def _partial_fit(self, X, y, sample_weight, classes=None):
        if self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        first = not hasattr(self, "module_")
        if not first:
            # scikit-learn validates only the first call; here every call is
            # (set_params between calls must not reach the loop unchecked),
            # and a change of the network's shape is refused as warm_start's.
            self._validate_params()
            self._check_architecture_unchanged("partial_fit")
        with all_or_nothing(self, () if first else self._in_place):
            X, y = self._validate_fit_data(X, y, reset=first)
            if first and is_classifier(self) and np.ndim(y) == 2:
                self._set_classes(y)  # multilabel: the labels are y's columns
            elif first and classes is not None:
                # A label absent from this first chunk is still a class.
                self._set_classes(classes)
            return self._fit(X, y, sample_weight, epochs=1, incremental=not first, partial=True)

    def _architecture(self):
        """The architecture parameters, lists as tuples (for comparison)."""
        def norm(v):
            if isinstance(v, (list, tuple)):
                return tuple(norm(x) for x in v)
            return v.item() if isinstance(v, np.generic) else v

        return {name: norm(getattr(self, name)) for name in self._architecture_params}

    def _check_architecture_unchanged(self, action="warm_start"):
        built = getattr(self, "_built_architecture", None)
        if built is None:
            return
        for name, value in self._architecture().items():
            if name in built and value != built[name]:
                fix = ("set warm_start=False to build a new network" if action == "warm_start"
                       else "call fit to build a new network")
                what = "warm_start=True" if action == "warm_start" else "partial_fit"
                raise ValueError(
                    f"{what} keeps the fitted network, but {name} changed from "
                    f"{built[name]!r} to {value!r} since it was built; {fix}.")

    def _check_schedule(self):
        if self.learning_rate_decay != 1.0 and self.learning_rate != "decay":
            raise ValueError(
                f"learning_rate_decay={self.learning_rate_decay!r} is used only with "
                f"learning_rate='decay' (got learning_rate={self.learning_rate!r}); set "
                f"both, or leave learning_rate_decay at 1.0.")

    def _weights(self, X, targets, sample_weight, partial):
        """The per-sample weights of this fit (sample and task weights), or None."""
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                           ensure_non_negative=True)
            check_float32_range(weights, "sample_weight")
        task = self._task_weights(targets, partial)
        if task is not None:
            weights = task if weights is None else weights * task
        if weights is not None and not weights.sum() > 0:
            raise ValueError("The sample weights sum to zero: at least one sample must have a "
                             "positive weight.")
        return weights

    def _fit(self, X, y, sample_weight, epochs, incremental, partial=False):
        """One fit or partial_fit: prepare the data, build the network (a
        first call), train it, record the fitted attributes."""
        data = self._prepare(X, y, sample_weight, incremental, partial)
        if not incremental:
            self._build_network(data)
        # A Ctrl-C during pretraining ends the whole fit (once warned).
        result = self._train(data, 0 if data.interrupted else epochs, partial)
        if result.diverged and not np.isfinite(result.validation_scores).any():
            raise ValueError(
                "The training loss became NaN or infinite before any epoch had a finite "
                "validation score; lower the learning rate or standardise the inputs.")
        self._record(result, data, partial)
        return self

    def _prepare(self, X, y, sample_weight, incremental, partial):
        """Checks, targets, weights, seeds and the device copies of the data
        (the validation split held out when early stopping)."""
        self._check_schedule()
        user_callbacks = check_callbacks(self.callbacks)
        dp = _distributed.current()
        if dp is not None:
            dp.reset_counts()  # communication_ reports this call
            # Same parameters and data on every rank, or a clear error (not
            # a hang or a silently different model).
            params = {k: v for k, v in self.get_params(deep=False).items()
                      if k not in ("device", "callbacks")}
            where = _device.resolve_device(self.device)
            dp.check_same("the estimator's parameters", [type(self).__name__, params], where)
            dp.check_same("the training data", _distributed.fingerprint(X, y, sample_weight),
                          where)
        # partial_fit has set classes_ already (from its `classes`).
        targets, n_outputs = self._targets(y, first_call=not incremental and not partial)
        weights = self._weights(X, targets, sample_weight, partial)
        rng = check_random_state(self.random_state)
        if incremental:
            device, generator = self.device_, self._generator
        else:
            device = _device.resolve_device(self.device)
            generator = _device.torch_generator(rng)
        # as scikit-learn, early stopping applies to the stochastic solvers only
        early = self.early_stopping and self.solver != "lbfgs"
        y_t = self._target_tensor(targets, device)
        w_t = None if weights is None else torch.as_tensor(weights, dtype=torch.float32,
                                                           device=device)
        X_val = y_val = w_val = None
        if not early:
            X_t = _feeds.to_device(X, device)  # the one copy of X on the device
        else:
            train_idx, val_idx = train_test_split(
                np.arange(len(targets)), test_size=self.validation_fraction,
                # the user's labels: an error names the class that is too small
                stratify=(self.classes_[targets] if is_classifier(self) and targets.ndim == 1
                          else None),
                random_state=rng,
            )
            if len(val_idx) < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            train_idx.sort()
            if sp.issparse(X):  # CSR arrays (small next to dense X): rows taken apart
                X_t = _feeds.to_device(X, device)
                X_val, X_t = X_t.take(val_idx), X_t.take(train_idx)
            else:
                # The one copy of X on the device, its training rows first: the
                # training and validation sets are two views of it (no copy).
                X_t = _feeds.to_device(X, device, order=np.concatenate([train_idx, val_idx]))
                X_t, X_val = X_t[:len(train_idx)], X_t[len(train_idx):]
            y_val, y_t = y_t[val_idx], y_t[train_idx]
            if w_t is not None:
                w_val, w_t = w_t[val_idx], w_t[train_idx]
                if not w_t.sum() > 0:
                    raise ValueError("The sample weights of the training split sum to zero.")
        data = SimpleNamespace(X_t=X_t, y_t=y_t, w_t=w_t, X_val=X_val, y_val=y_val,
                               w_val=w_val, dtype=X.dtype, early=early, n_outputs=n_outputs,
                               rng=rng, device=device, generator=generator, dp=dp,
                               user_callbacks=user_callbacks, interrupted=False)
        if self.solver == "lbfgs":
            self._check_lbfgs(data)
        return data

    def _phase_callbacks(self, phase, offset=0):
        """What every phase reports: the history record, then scikit-learn's
        ``Iteration N, loss = ...`` line per epoch or a progress bar
        (``verbose``, ``progress_bar``), and Ctrl-C ending the phase
        cleanly."""
        callbacks = [History()]
        if wants_progress_bar(self.progress_bar, self.verbose):
            callbacks.append(ProgressBar())
        elif self.verbose:
            prefix = "" if phase == "fine-tune" else f"{phase.capitalize()}: "
            callbacks.append(IterationLog(prefix, offset))
        callbacks.append(CatchInterrupt())
        return callbacks

    def _build_network(self, data):
        """A first call: the network, its dictionaries (and pretraining)."""
        context = dict(weights=data.w_t, dp=data.dp,
                       callbacks=lambda phase: self._phase_callbacks(phase) + data.user_callbacks)
        module, dictionaries, fitted = self._build(
            data.X_t, data.n_outputs, data.rng, data.generator, data.device, context)
        data.interrupted = fitted.pop("_interrupted", False)
        pretrain_history = fitted.pop("_history", [])
        for name, value in fitted.items():
            setattr(self, name, value)
        self.module_ = module
        self.dictionaries_ = dictionaries
        self.device_ = data.device
        self._generator = data.generator
        self._optimizer = None
        self._samples_seen = 0
        self._stopping_state = None
        self._built_architecture = self._architecture()
        self.loss_curve_ = []
        self.history_ = list(pretrain_history)
        self.n_iter_ = 0

    def _check_lbfgs(self, data):
        """What L-BFGS cannot run: it takes all its steps inside one torch call."""
        if data.dp is not None:
            raise ValueError("solver='lbfgs' does not run data-parallel; use 'sgd' or 'adam'.")
        if data.user_callbacks:
            raise ValueError(
                "callbacks run on the minibatch loop of solver='sgd' and 'adam'; L-BFGS runs "
                "all its iterations inside one torch step, where no hook can run. Use another "
                "solver, or callbacks=None.")
        if getattr(self, "max_norm", None) is not None:
            raise ValueError(
                "max_norm caps the weights after every step of 'sgd' or 'adam'; L-BFGS's "
                "line search would ignore it. Use another solver, or max_norm=None.")

    def _train_lbfgs(self, data, epochs):
        """Full-batch L-BFGS for at most ``epochs`` iterations (scikit-learn's
        ``solver="lbfgs"``, on torch's optimiser)."""
        module = self.module_
        feed, forward = self._training_feed(module, data.X_t, epochs, data.X_t.shape[0])
        self._optimizer = None  # nothing of L-BFGS's is kept between fits
        if epochs == 0:
            return TrainingResult()
        with _device.flush_denormal():
            return _lbfgs.train_lbfgs(
                module, forward, self._per_sample_loss, feed, data.y_t, weights=data.w_t,
                penalty=_optim.l2_penalty(module, self.alpha), max_iter=epochs,
                max_fun=self.max_fun, tol=self.tol,
                verbose=bool(self.verbose) and not wants_progress_bar(self.progress_bar,
                                                                      self.verbose))

    def _optimizer_settings(self):
        return dict(solver=self.solver, learning_rate_init=self.learning_rate_init,
                    momentum=self.momentum, nesterovs_momentum=self.nesterovs_momentum,
                    beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)

    def _train(self, data, epochs, partial):
        """Fine-tune the network for at most ``epochs`` epochs."""
        module = self.module_
        if self.solver == "lbfgs":
            return self._train_lbfgs(data, epochs)
        if data.dp is not None:
            # Seeded alike, the ranks start from the same weights.
            data.dp.check_same_tensors("the initial weights",
                                       list(module.state_dict().values()), data.device)
        settings = self._optimizer_settings()
        before = getattr(self, "_optimizer_built_with", settings)  # files from before: as now
        if self._optimizer is not None and settings["solver"] != before["solver"]:
            self._optimizer = None  # another solver: a new optimizer, its state lost
        if self._optimizer is None:
            self._optimizer = _optim.make_optimizer(
                module, self.solver, self.learning_rate_init, momentum=self.momentum,
                nesterovs_momentum=self.nesterovs_momentum, beta_1=self.beta_1,
                beta_2=self.beta_2, epsilon=self.epsilon)
        else:
            # partial_fit after set_params: the new optimiser settings apply
            # from this call on (the moments and momenta are kept)
            _optim.update_optimizer(self._optimizer, before, settings)
        self._optimizer_built_with = settings
        batch_size = resolve_batch_size(self.batch_size, data.X_t.shape[0])
        # What the loop reads (X, or X's fixed pooling) and its network.
        feed, forward = self._training_feed(module, data.X_t, epochs, batch_size)

        def batch_loss(xb, yb, wb=None):
            if wb is None:
                return self._mean_loss(forward(xb), yb)
            return _feeds.weighted_mean(self._per_sample_loss(forward(xb), yb), wb)

        after_step = self._after_step(module)
        if self.compile:
            # forward, loss and (through AOTAutograd) backward as one graph;
            # the constraint as another
            batch_loss = _loop.compiled(batch_loss, "the training step")
            if after_step is not None:
                after_step = _loop.compiled(after_step, "the max-norm constraint")

        def validation():
            with torch.no_grad():
                out = _feeds.apply_in_batches(module, data.X_val)
                loss = _feeds.weighted_mean(self._per_sample_loss(out, data.y_val), data.w_val)
                return self._validation_score(out, data.y_val, data.w_val), loss.item()

        callbacks = [Validation(validation)] if data.early else []
        schedule = _optim.schedule_callback(
            self.learning_rate, learning_rate_init=self.learning_rate_init,
            power_t=self.power_t, learning_rate_decay=self.learning_rate_decay,
            samples_seen=getattr(self, "_samples_seen", 0), n_samples=data.X_t.shape[0])
        if schedule is not None:
            callbacks.append(schedule)
        phase = self._phase_callbacks("fine-tune", offset=self.n_iter_ if partial else 0)
        stopping = EarlyStopping(
            self.tol, self.n_iter_no_change, validation=data.early,
            plateau=schedule.on_plateau if schedule is not None else None,
            # scikit-learn carries the rule's count and best loss across
            # partial_fit calls and warm starts (reset only by a new fit)
            state=None if data.early else getattr(self, "_stopping_state", None))
        callbacks += phase[:-1] + [stopping, phase[-1]] + data.user_callbacks
        return _loop.train_epochs(
            module, batch_loss, feed, data.y_t, self._optimizer,
            epochs=epochs, batch_size=batch_size, shuffle=self.shuffle,
            generator=data.generator, after_step=after_step,
            penalty=_optim.l2_penalty(module, self.alpha), weights=data.w_t, dp=data.dp,
            callbacks=callbacks, estimator=self,
            warn_not_converged=not partial and not data.interrupted,
            stop_on_divergence=data.early,
        )

    def _record(self, result, data, partial):
        """The fitted attributes after training."""
        self._samples_seen = (getattr(self, "_samples_seen", 0)
                              + data.X_t.shape[0] * result.n_epochs)
        self._stopping_state = None if data.early else result.stopping_state
        done = sum(1 for r in self.history_ if r["phase"] == "fine-tune")
        for record in result.history:
            record["epoch"] += done
        self.history_.extend(result.history)
        self.loss_curve_.extend(result.losses)
        # a warm start counts its own epochs (as scikit-learn); partial_fit
        # calls count on (scikit-learn: 1 after each call)
        self.n_iter_ = self.n_iter_ + result.n_epochs if partial else result.n_epochs
        # scikit-learn's names for the same quantities
        self.t_ = self._samples_seen
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else None
        self.best_loss_ = (None if data.early or self._stopping_state is None
                           or self.solver == "lbfgs"
                           else self._stopping_state[0])
        self.n_layers_ = len(self.module_.weight_layers()) + 1
        self._fit_dtype = np.dtype(data.dtype).name  # a name: files hold it
        # the parameters of this fit (save writes these, not later set_params);
        # callbacks are code, never saved
        self._fit_params = {k: v for k, v in self.get_params(deep=False).items()
                            if k != "callbacks"}
        if data.early:
            self.validation_scores_ = result.validation_scores
            self.best_validation_score_ = max(
                (v for v in result.validation_scores if np.isfinite(v)), default=None)
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self._set_weight_attributes()
        if data.dp is not None:
            dense = sum(l.weight.numel() + (l.bias.numel() if l.bias is not None else 0)
                        for l in self.module_.weight_layers())
            self.communication_ = data.dp.report(self.module_, dense)
        else:
            self.__dict__.pop("communication_", None)

    def _training_feed(self, module, X_t, epochs, batch_size):
        """``(feed, forward)``: the training loop computes ``forward(feed[rows])``.

        By default X itself and the module; a network may substitute a
        fixed transformation of X computed once (see ``_MLPNetwork``).
        """
        return X_t, module

    def _after_step(self, module):
        """Called after every optimiser step (constraints); None for nothing."""
        return None

    def _set_weight_attributes(self):
        """Parameter counts over the hidden layers (all but the output layer).

        A predicted layer (U fixed, or U learned for lowrank) counts its
        learned weights as dynamic and its fixed U as static; an ordinary
        layer counts its whole weight as dynamic. ``fraction_learned_`` is
        the dynamic weights of the predicted layers over their full size
        (the paper's x-axis); biases are never counted.
        """
        dynamic = static = predicted_dynamic = predicted_dense = 0
        for layer in self.module_.weight_layers()[:-1]:
            if isinstance(layer, FactoredLayer):
                dynamic += layer.n_dynamic_params
                static += layer.n_static_params
                predicted_dynamic += layer.n_dynamic_params
                predicted_dense += layer.weight.numel()
            else:
                dynamic += layer.weight.numel()
        self.n_dynamic_params_ = int(dynamic)
        self.n_static_params_ = int(static)
        self.fraction_learned_ = predicted_dynamic / predicted_dense if predicted_dense else 1.0

    def _check_loaded(self):
        """After skpred.load: the network agrees with the parameters and the
        fitted attributes (ValueError otherwise)."""
        if not hasattr(self, "module_"):
            return
        from .nn import PredictedConvNet, PredictedMLP

        if not isinstance(self.module_, (PredictedMLP, PredictedConvNet)):
            raise ValueError("The file's network is not one this estimator builds.")
        if not isinstance(getattr(self, "n_features_in_", None), int):
            raise ValueError("The file's n_features_in_ is not an integer.")
        if is_classifier(self) and not (isinstance(self.classes_, np.ndarray)
                                             and self.classes_.ndim == 1):
            raise ValueError("The file's classes_ is not a 1-D array.")
        self._check_architecture_unchanged()
        allowed = {"softmax", "logistic"} if is_classifier(self) else {"identity", "exp"}
        act = getattr(self, "out_activation_", None)
        if act is not None and act not in allowed:
            raise ValueError(f"The file's out_activation_ is {act!r}, not one of "
                             f"{sorted(allowed)}.")
        if not isinstance(getattr(self, "_is_multilabel", False), bool):
            raise ValueError("The file's _is_multilabel is not a boolean.")
        layers = self.module_.weight_layers()
        expected = (len(self.classes_) if is_classifier(self) and self._out_activation()
                    == "softmax" else self.n_outputs_)
        if layers[-1].out_features != expected:
            raise ValueError(f"The file's network has {layers[-1].out_features} outputs, but "
                             f"its fitted attributes say {expected}.")
        shape = getattr(self.module_, "image_shape", None)
        n_in = int(np.prod(shape)) if shape is not None else layers[0].in_features
        if n_in != self.n_features_in_:
            raise ValueError(f"The file's network reads {n_in} features, but "
                             f"n_features_in_ is {self.n_features_in_}.")

    def summary(self):
        """A table of the fitted network's layers and parameter counts.

        One row per weight layer, the output layer last: its kind, resolved
        dictionary, columns and atoms, the alpha fraction asked for and the
        share actually learned, and its dynamic (learned), static (fixed U)
        and bias counts; ``trainable`` is what torch counts in
        ``module_.parameters()``. Text in a terminal, an HTML table in a
        notebook; ``pandas.DataFrame(est.summary().rows)`` for a DataFrame.

        Returns
        -------
        summary : skpred._summary.ParameterSummary
            ``rows`` (list of dict), ``totals`` (dict).
        """
        check_is_fitted(self)
        return _summary.summarise(self)

    # --------------------------------------------------------------- predict

    def _module_device(self):
        return next(self.module_.parameters()).device

    def _outputs(self, X):
        """The network's outputs on X, float32 numpy, and X's dtype."""
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        self.module_.eval()
        # Padded chunks: a row's prediction does not depend on the rows
        # predicted with it.
        out = _feeds.predict_in_batches(self.module_, X, self._module_device(),
                                           _PREDICT_BATCH, pad=True)
        return out, X.dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = bool(self._accept_sparse)
        tags.non_deterministic = False
        return tags


class TorchClassifierBase(ClassifierMixin, TorchEstimatorBase):
    """Classification on :class:`TorchEstimatorBase` (cross-entropy on logits).

    Subclasses define ``class_weight`` besides the training parameters.
    """

    _abstract = True  # a base: not a class a file can name

    def _validate_fit_data(self, X, y, reset):
        X, y = self._check_X(X, y, reset=reset)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)  # scikit-learn's warning, then 1-D
        check_classification_targets(y)
        kind = type_of_target(y)
        if y.ndim == 2 and kind != "multilabel-indicator":
            raise ValueError(
                f"{type(self).__name__} takes y of shape (n_samples,) (classes) or a 0/1 "
                f"indicator matrix (multilabel); got a 2-D y of type {kind!r}.")
        return X, y

    # The output layer, as scikit-learn's MLPClassifier: softmax over the
    # classes (more than 2), one logistic unit (2 classes, or 1), one
    # logistic unit per label (multilabel). Files from before this have no
    # out_activation_: softmax over every class, 2 included.
    def _out_activation(self):
        return getattr(self, "out_activation_", "softmax")

    def _multilabel(self):
        return getattr(self, "_is_multilabel", False)

    def _set_classes(self, classes):
        """classes_, out_activation_ and n_outputs_ from the labels (or from
        a multilabel indicator matrix: classes_ = 0 .. n_labels - 1)."""
        classes = np.asarray(classes)
        if classes.ndim == 2:
            self._is_multilabel = True
            self.classes_ = np.arange(classes.shape[1])
            self.out_activation_ = "logistic"
            self.n_outputs_ = classes.shape[1]
            return
        self._is_multilabel = False
        self.classes_ = LabelEncoder().fit(classes).classes_
        if len(self.classes_) > 2:
            self.out_activation_, self.n_outputs_ = "softmax", len(self.classes_)
        else:
            self.out_activation_, self.n_outputs_ = "logistic", 1

    def _targets(self, y, first_call):
        """Encode labels (setting classes_ on a first fit): integer codes of
        the classes, or the 0/1 matrix of a multilabel y."""
        if first_call:
            self._set_classes(y)
        if self._multilabel() != (y.ndim == 2):
            raise ValueError(
                f"y is {'a multilabel indicator matrix' if y.ndim == 2 else 'one label per sample'}"
                f", but the network was fitted on "
                f"{'multilabel y' if self._multilabel() else 'one label per sample'}.")
        if y.ndim == 2:
            if y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {y.shape[1]} labels, but the network was fitted with "
                                 f"{len(self.classes_)}.")
            return y.astype(np.int64), self.n_outputs_
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(
                f"`y` has classes not in `self.classes_`. `self.classes_` has "
                f"{self.classes_.tolist()}. 'y' has {np.unique(y).tolist()}.")
        n_outputs = len(self.classes_) if self._out_activation() == "softmax" else 1
        return np.searchsorted(self.classes_, y), n_outputs

    def _check_warm_start_classes(self, y):
        classes = np.unique(y) if np.asarray(y).ndim == 1 else np.arange(np.shape(y)[1])
        if set(classes.tolist()) != set(self.classes_.tolist()):
            raise ValueError(
                f"warm_start can only be used where `y` has the same classes as in the "
                f"previous call to fit. Previously got {np.asarray(self.classes_)}, `y` has "
                f"{np.asarray(classes)}")

    def _task_weights(self, targets, partial):
        if self.class_weight is None:
            return None
        if targets.ndim == 2:
            raise ValueError("class_weight is not supported with a multilabel y; weigh the "
                             "samples with sample_weight instead.")
        if partial and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: the class "
                "frequencies of the whole data are unknown there; pass a dict of class "
                "weights, or compute them with sklearn.utils.class_weight.compute_class_weight.")
        present = np.unique(targets)
        if isinstance(self.class_weight, dict):
            unknown = [k for k in self.class_weight if k not in set(self.classes_.tolist())]
            if unknown:
                raise ValueError(f"class_weight has labels that are not classes: {unknown}.")
            for label, w in self.class_weight.items():
                if (isinstance(w, bool) or not isinstance(w, (Real, np.number))
                        or not np.isfinite(w) or w < 0 or w > np.finfo(np.float32).max):
                    raise ValueError(f"class_weight of class {label!r} is {w!r}; a class weight "
                                     f"must be a finite number >= 0.")
            per_class = compute_class_weight(self.class_weight, classes=self.classes_,
                                             y=self.classes_[targets])
        else:
            per_class = np.ones(len(self.classes_))
            per_class[present] = compute_class_weight(
                "balanced", classes=self.classes_[present], y=self.classes_[targets])
        if not (per_class[present] > 0).any():
            raise ValueError(
                f"class_weight gives weight 0 to every class in y "
                f"({self.classes_[present].tolist()}): nothing would be learned.")
        return per_class[targets]

    def _target_tensor(self, targets, device):
        if self._out_activation() == "softmax":
            return torch.as_tensor(targets, dtype=torch.long, device=device)
        # logistic units: 0/1 per output (a single class is all 0, as
        # scikit-learn's LabelBinarizer has it)
        matrix = targets if targets.ndim == 2 else (targets == 1)[:, None]
        return torch.as_tensor(matrix, dtype=torch.float32, device=device)

    def _mean_loss(self, out, yb):
        if self._out_activation() == "softmax":
            return F.cross_entropy(out, yb)
        return super()._mean_loss(out, yb)

    def _per_sample_loss(self, out, yb):
        if self._out_activation() == "softmax":
            return F.cross_entropy(out, yb, reduction="none")
        # scikit-learn's binary log loss: summed over the outputs
        return F.binary_cross_entropy_with_logits(out, yb, reduction="none").sum(1)

    def _validation_score(self, out, y, w):
        """Accuracy (subset accuracy for multilabel y), scikit-learn's score."""
        if self._out_activation() == "softmax":
            right = out.argmax(1) == y
        else:
            right = ((out > 0) == (y > 0.5)).all(1)
        return _feeds.weighted_mean(right.float(), w).item()

    @available_if(_stochastic_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of training over (X, y), building the network on the first call.

        Every call validates the parameters. After ``set_params``, a
        parameter that shapes the network is a ValueError naming it; new
        optimiser settings (``learning_rate_init``, ``momentum``, Adam's)
        apply from this call, a new ``solver`` starts a new optimizer (see
        the user guide's differences from scikit-learn).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every class; required on the first call. On later calls it may
            be omitted, or must equal the first call's.
        sample_weight : array-like of shape (n_samples,), default=None
            As in ``fit``.

        Returns
        -------
        self : object
        """
        first = not hasattr(self, "module_")
        if first and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if not first and classes is not None:
            given = np.unique(np.asarray(classes))
            if not np.array_equal(given, self.classes_):
                raise ValueError(
                    f"classes={given.tolist()} is not the same as on the first call to "
                    f"partial_fit, which was {self.classes_.tolist()}.")
        return self._partial_fit(X, y, sample_weight, classes)

    def _logits(self, X):
        """The logits as a tensor, float32 for float32 X, else float64."""
        out, dtype = self._outputs(X)
        return torch.as_tensor(out).to(torch.float64 if dtype == np.float64 else torch.float32)

    def decision_function(self, X):
        """The network's logits.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes), or (n_samples,) with two classes
            With two classes, as scikit-learn's linear classifiers, the
            score of ``classes_[1]`` against ``classes_[0]`` (the log-odds);
            with a multilabel y, one log-odds per label. float32 for float32
            X, else float64.
        """
        out = self._logits(X).numpy()
        if self._out_activation() == "softmax":
            return out[:, 1] - out[:, 0] if out.shape[1] == 2 else out
        return out if self._multilabel() else out[:, 0]

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes) (for two
        classes, or one, the columns ``1 - p`` and ``p`` as scikit-learn's);
        with a multilabel y, each label's probability, shape (n_samples,
        n_labels). float32 for float32 X, else float64."""
        logits = self._logits(X)
        if self._out_activation() == "softmax":
            return torch.softmax(logits, dim=1).numpy()
        p = torch.sigmoid(logits)
        return p.numpy() if self._multilabel() else torch.cat([1 - p, p], dim=1).numpy()

    def predict_log_proba(self, X):
        """Log of ``predict_proba``, the same shape and dtype."""
        logits = self._logits(X)
        if self._out_activation() == "softmax":
            return torch.log_softmax(logits, dim=1).numpy()
        logp = F.logsigmoid(logits)
        if self._multilabel():
            return logp.numpy()
        return torch.cat([F.logsigmoid(-logits), logp], dim=1).numpy()

    def predict(self, X):
        """Predicted class labels, shape (n_samples,); with a multilabel y,
        the 0/1 indicator matrix, shape (n_samples, n_labels)."""
        out, _ = self._outputs(X)
        if self._out_activation() == "softmax":
            return self.classes_[out.argmax(axis=1)]
        positive = out > 0
        if self._multilabel():
            return positive.astype(np.int64)
        if len(self.classes_) == 1:
            return np.repeat(self.classes_, len(out))
        return self.classes_[positive[:, 0].astype(np.int64)]


class TorchRegressorBase(RegressorMixin, TorchEstimatorBase):
    """Regression on :class:`TorchEstimatorBase`: squared error (half the
    mean over outputs, as scikit-learn's MLPRegressor), ``score`` R^2;
    early stopping on the validation R^2."""

    _abstract = True  # a base: not a class a file can name

    def _check_X(self, X, y="no_validation", reset=True):
        if isinstance(y, str) and y == "no_validation":
            return validate_floats(self, X, reset=reset, accept_sparse=self._accept_sparse)
        X, y = validate_floats(self, X, y, reset=reset, multi_output=True, y_numeric=True,
                               accept_sparse=self._accept_sparse)
        check_float32_range(np.asarray(y, dtype=np.float64), "y")
        return X, y

    def _validate_fit_data(self, X, y, reset):
        return self._check_X(X, y, reset=reset)

    def _loss(self):
        return getattr(self, "loss", "squared_error")

    def _targets(self, y, first_call):
        y = np.asarray(y, dtype=np.float64)
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if self._loss() == "poisson" and (y < 0).any():
            raise ValueError("loss='poisson' requires y >= 0 (counts or rates); y has "
                             f"{int((y < 0).sum())} negative value(s).")
        if first_call or not hasattr(self, "n_outputs_"):
            self.n_outputs_ = n_outputs
            # as scikit-learn: the Poisson loss predicts through exp (a log link)
            self.out_activation_ = "exp" if self._loss() == "poisson" else "identity"
            self._y_1d = y.ndim == 1
        elif n_outputs != self.n_outputs_:
            raise ValueError(f"y has {n_outputs} output(s), but the network was fitted with "
                             f"{self.n_outputs_}.")
        return y.reshape(len(y), -1), n_outputs

    def _target_tensor(self, targets, device):
        return torch.as_tensor(targets, dtype=torch.float32, device=device)

    def _out_activation(self):
        return getattr(self, "out_activation_", "identity")

    def _per_sample_loss(self, out, yb):
        if self._out_activation() == "exp":
            # half the Poisson deviance of exp(out), summed over the outputs
            # (scikit-learn's poisson_loss), written in out to stay finite
            return (torch.xlogy(yb, yb) - yb * out - yb + torch.exp(out)).sum(1)
        return 0.5 * ((out - yb) ** 2).mean(1)

    def _validation_score(self, out, y, w):
        """R^2 averaged over outputs (uniform), weighted as the samples."""
        if self._out_activation() == "exp":
            out = torch.exp(out)
        w = torch.ones(len(y), device=y.device) if w is None else w
        total = w.sum().clamp_min(1e-12)
        mean = (w @ y) / total
        residual = w @ (y - out) ** 2
        spread = w @ (y - mean) ** 2
        r2 = torch.where(spread > 0, 1 - residual / spread.clamp_min(1e-30),
                         torch.where(residual > 0, torch.zeros_like(spread), torch.ones_like(spread)))
        return r2.mean().item()

    @available_if(_stochastic_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch of training over (X, y), building the network on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            As in ``fit``.

        Returns
        -------
        self : object
        """
        return self._partial_fit(X, y, sample_weight)

    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_outputs) as
        y in ``fit``; float32 for float32 X, else float64."""
        out, dtype = self._outputs(X)
        out = out.astype(dtype, copy=False)
        if self._out_activation() == "exp":
            out = np.exp(out)
        return out[:, 0] if self._y_1d else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
