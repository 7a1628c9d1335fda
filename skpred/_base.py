"""What the torch-backed classifiers share: fit, partial_fit, predict, pickling.

Subclasses build their network in ``_build`` and may reshape inputs in
``_check_X``; training runs through :func:`skpred._training.train_epochs`.
"""

import copy
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._validation import validate_floats
from . import _training
from .nn._linear import _Factored

# Rows per prediction chunk; every chunk is padded to it (predict_in_batches).
_PREDICT_BATCH = 256

# Constraints of the training parameters every classifier shares.
TRAINING_CONSTRAINTS = {
    "solver": [StrOptions({"sgd", "adam"})],
    "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
    "learning_rate_decay": [Interval(Real, 1, None, closed="left")],
    "momentum": [Interval(Real, 0, 1, closed="both")],
    "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "shuffle": ["boolean"],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "device": [str],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
}


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


def _tensors_to_cpu(obj):
    if torch.is_tensor(obj):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _tensors_to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_tensors_to_cpu(v) for v in obj)
    return obj


class TorchStateMixin:
    """Pickling for estimators holding torch modules, an optimizer and a
    torch.Generator.

    Modules named in ``_torch_modules`` are stored on the CPU, so a model
    fitted on a GPU unpickles on a CPU-only machine. The optimizer
    ``_optimizer`` (bound to ``module_``'s parameters) is stored as its state
    dict on the CPU (moments, step counts and the decayed learning rate) and
    rebuilt on loading, so training after a pickle round trip continues
    exactly as without it.
    """

    _torch_modules = ()

    def __getstate__(self):
        state = dict(super().__getstate__())
        optimizer = state.get("_optimizer")
        if optimizer is not None:
            state["_optimizer"] = None
            state["_optimizer_state"] = (
                "sgd" if isinstance(optimizer, torch.optim.SGD) else "adam",
                _tensors_to_cpu(optimizer.state_dict()),
            )
        for name in self._torch_modules:
            if name in state:
                state[name] = _training.cpu_copy(getattr(self, name))
                state["device_"] = torch.device("cpu")
        if "_generator" in state:
            state["_generator_state"] = state.pop("_generator").get_state()
        return state

    def __setstate__(self, state):
        gen_state = state.pop("_generator_state", None)
        if gen_state is not None:
            state["_generator"] = torch.Generator()
            state["_generator"].set_state(gen_state)
        optimizer_state = state.pop("_optimizer_state", None)
        super().__setstate__(state)
        if optimizer_state is not None:
            solver, opt_state = optimizer_state
            # lr, momentum and weight decay are restored by load_state_dict.
            self._optimizer = _training.make_optimizer(self.module_, solver, 1.0)
            self._optimizer.load_state_dict(opt_state)


class TorchClassifierBase(TorchStateMixin, ClassifierMixin, BaseEstimator):
    """Base of the skpred classifiers (not public).

    Subclasses define the parameters used here (``solver``,
    ``learning_rate_init``, ``momentum``, ``weight_decay``, ``batch_size``,
    ``max_iter``, ``learning_rate_decay``, ``shuffle``, ``early_stopping``,
    ``validation_fraction``, ``n_iter_no_change``, ``tol``, ``device``,
    ``random_state``, ``verbose``, ``warm_start``) and
    ``_build(X_t, n_classes, rng, generator, device) -> (module, dictionaries,
    fitted)``, where ``module(x)`` returns logits, ``module.weight_layers()``
    lists its layers with weights, output last, and ``fitted`` maps the names
    of further fitted attributes (the resolved layer settings) to values.
    """

    _torch_modules = ("module_",)
    # Parameters that shape the network: warm_start keeps the network, so a
    # change of one of these after fit is an error (subclasses list theirs).
    _architecture_params = ()
    # What training updates in place (undone when a fit fails).
    _in_place = ("module_", "_optimizer", "_generator", "loss_curve_")

    # ------------------------------------------------------------------- fit

    def _check_X(self, X, y="no_validation", reset=True):
        """Validate X (and y unless "no_validation"); subclasses reshape images here."""
        return validate_floats(self, X, y, reset=reset)

    def _validate_fit_data(self, X, y, reset):
        X, y = self._check_X(X, y, reset=reset)
        check_classification_targets(y)
        return X, y

    def _prepare(self, X, y, classes, first_call):
        """Encode labels, set classes_; returns integer targets."""
        if first_call:
            encoder = LabelEncoder().fit(classes if classes is not None else y)
            if len(encoder.classes_) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in "
                    f"the data, but the data contains only one class: "
                    f"{encoder.classes_[0]!r}."
                )
            self.classes_ = encoder.classes_
        unseen = np.setdiff1d(np.unique(y), self.classes_)
        if unseen.size:
            raise ValueError(f"y contains labels not in classes_: {unseen.tolist()}.")
        return np.searchsorted(self.classes_, y)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Build the network and its dictionaries, then train it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float32 or float64; training runs in float32.
        y : array-like of shape (n_samples,)
            Class labels (strings or integers).

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
            return self._fit(X, y, epochs=self.max_iter, incremental=warm)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None):
        """One epoch of training over (X, y), building the network on the first call.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every class; required on the first call. On later calls it may
            be omitted, or must equal the first call's.

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
        with all_or_nothing(self, () if first else self._in_place):
            X, y = self._validate_fit_data(X, y, reset=first)
            if first:
                # A label absent from this first chunk is still a class.
                self._prepare(X, y, classes, first_call=True)
            return self._fit(X, y, epochs=1, incremental=not first, partial=True)

    def _architecture(self):
        """The architecture parameters, lists as tuples (for comparison)."""
        def norm(v):
            if isinstance(v, (list, tuple)):
                return tuple(norm(x) for x in v)
            return v.item() if isinstance(v, np.generic) else v

        return {name: norm(getattr(self, name)) for name in self._architecture_params}

    def _check_architecture_unchanged(self):
        built = getattr(self, "_built_architecture", None)
        if built is None:
            return
        for name, value in self._architecture().items():
            if value != built[name]:
                raise ValueError(
                    f"warm_start=True keeps the fitted network, but {name} changed from "
                    f"{built[name]!r} to {value!r} since it was built; set warm_start=False "
                    f"to build a new network.")

    def _fit(self, X, y, epochs, incremental, partial=False):
        # partial_fit has set classes_ already (from its `classes`).
        y_idx = self._prepare(X, y, None, first_call=not incremental and not partial)
        rng = check_random_state(self.random_state)
        if incremental:
            device = self.device_
            generator = self._generator
        else:
            device = _training.resolve_device(self.device)
            generator = _training.torch_generator(rng)
        early = self.early_stopping and not partial
        if early:
            train_idx, val_idx = train_test_split(
                np.arange(len(y_idx)), test_size=self.validation_fraction,
                stratify=y_idx, random_state=rng,
            )
            train_idx.sort()
        X_t = _training.to_device(X, device)  # the one copy of X on the device
        y_t = torch.as_tensor(y_idx, dtype=torch.long, device=device)
        if early:
            X_val, y_val = X_t[val_idx], y_t[val_idx]
            X_t, y_t = X_t[train_idx], y_t[train_idx]  # the full copy is freed here

        interrupted = False
        if not incremental:
            module, dictionaries, fitted = self._build(X_t, len(self.classes_), rng, generator,
                                                       device)
            # A Ctrl-C during pretraining ends the whole fit (once warned).
            interrupted = fitted.pop("_interrupted", False)
            for name, value in fitted.items():
                setattr(self, name, value)
            self.module_ = module
            self.dictionaries_ = dictionaries
            self.device_ = device
            self._generator = generator
            self._optimizer = None
            self._built_architecture = self._architecture()
            self.loss_curve_ = []
            self.n_iter_ = 0
        module = self.module_
        if self._optimizer is None:
            self._optimizer = _training.make_optimizer(
                module, self.solver, self.learning_rate_init, self.momentum, self.weight_decay
            )
        loss_fn = torch.nn.CrossEntropyLoss()

        def batch_loss(xb, yb):
            return loss_fn(module(xb), yb)

        after_step = self._after_step(module)

        def validation_score():
            with torch.no_grad():
                pred = _training.apply_in_batches(lambda x: module(x).argmax(1), X_val)
            return (pred == y_val).float().mean().item()

        result = _training.train_epochs(
            module, batch_loss, X_t, y_t, self._optimizer,
            epochs=0 if interrupted else epochs,
            batch_size=resolve_batch_size(self.batch_size, X_t.shape[0]),
            shuffle=self.shuffle,
            generator=generator, learning_rate_decay=self.learning_rate_decay,
            after_step=after_step, validation_score=validation_score if early else None,
            n_iter_no_change=self.n_iter_no_change, tol=self.tol, verbose=self.verbose,
            warn_not_converged=not partial and not interrupted,
        )
        self.loss_curve_.extend(result.losses)
        self.n_iter_ = self.n_iter_ + result.n_epochs if partial else result.n_epochs
        if early:
            self.validation_scores_ = result.validation_scores
            self.best_validation_score_ = max(result.validation_scores) if result.validation_scores else None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
        self._set_weight_attributes()
        return self

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
            if isinstance(layer, _Factored):
                dynamic += layer.n_dynamic_params
                static += layer.n_static_params
                predicted_dynamic += layer.n_dynamic_params
                predicted_dense += layer.weight.numel()
            else:
                dynamic += layer.weight.numel()
        self.n_dynamic_params_ = int(dynamic)
        self.n_static_params_ = int(static)
        self.fraction_learned_ = predicted_dynamic / predicted_dense if predicted_dense else 1.0

    # --------------------------------------------------------------- predict

    def _module_device(self):
        return next(self.module_.parameters()).device

    def _logits(self, X):
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        self.module_.eval()
        # Padded chunks: a row's prediction does not depend on the rows
        # predicted with it.
        return _training.predict_in_batches(self.module_, X, self._module_device(),
                                            _PREDICT_BATCH, pad=True)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        check_is_fitted(self)
        logits = torch.as_tensor(self._logits(X))
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict_log_proba(self, X):
        """Log of the class probabilities, shape (n_samples, n_classes)."""
        check_is_fitted(self)
        logits = torch.as_tensor(self._logits(X))
        return torch.log_softmax(logits.double(), dim=1).numpy()

    def predict(self, X):
        """Predicted class labels, shape (n_samples,)."""
        check_is_fitted(self)
        return self.classes_[self._logits(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

