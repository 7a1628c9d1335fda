"""Operators per training step (counted with torch.profiler, never timed),
the evaluation weight cache, and the one-group optimizer's old files.

The counts come from ``benchmarks/bench_step_ops.py`` itself (loaded from
its file), so the README's table and these bounds measure the same step.
"""

import importlib.util
import os

import numpy as np
import pytest
import torch

from skpred import PredictedMLPClassifier
from skpred._optim import load_state, make_optimizer
from skpred.nn import PredictedLinear

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
    path = os.path.join(ROOT, "benchmarks", "bench_step_ops.py")
    spec = importlib.util.spec_from_file_location("bench_step_ops_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def counts():
    """Operators per fine-tuning step of the paper MLP (PAPER_MLP_SETTINGS,
    no pretraining) on 300 random 784-pixel images at batch 100: the counts
    depend on shapes, not values."""
    bench = _bench()
    rng = np.random.RandomState(0)
    X = rng.rand(300, 784).astype(np.float32)
    y = np.arange(300) % 10
    rows = {
        "bare": (bench.bare_loop, {}),
        "dense": (bench.skpred_mlp, dict(dictionary=None)),
        "1 column": (bench.skpred_mlp, dict(alpha_fraction=0.1, n_columns=1)),
        "10 columns": (bench.skpred_mlp, dict(alpha_fraction=0.1, n_columns=10)),
    }
    out = {}
    for name, (make, params) in rows.items():
        total, steps, _ = bench.per_step(
            lambda X, y, e, make=make, params=params: make(X, y, e, **params), X, y, 3,
            epochs=(1, 2))
        out[name] = total / steps
    return out


def test_a_predicted_step_issues_at_most_a_quarter_more_operators_than_dense(counts):
    """Breakage caught: the predicted step's extra operators coming back
    (the bias unfused, V copied for one column, transposes and reshapes
    around the batched product, max-norm through a Gram einsum and seven
    elementwise kernels per layer): issue 26 measured 1.48x at 1 column
    and 1.62x at 10 before. Reference: skpred's dense step, counted the
    same way."""
    assert counts["1 column"] <= 1.25 * counts["dense"], counts
    assert counts["10 columns"] <= 1.25 * counts["dense"], counts


def test_skpreds_dense_step_issues_no_more_operators_than_a_bare_torch_loop(counts):
    """Breakage caught: per-step overhead in skpred's loop (the penalty
    through autograd, a per-sample loss then a mean, an optimizer looping
    over parameters, a detach-multiply-add for the running loss). Reference:
    the loop a torch user writes for the same step (benchmarks/bench_step_ops.py)."""
    assert counts["dense"] <= counts["bare"], counts


def _trained_layer():
    torch.manual_seed(0)  # test-only: the default init draws from torch's RNG
    return PredictedLinear(30, 12, torch.randn(3, 30, 4), dtype=torch.float64, path="dense")


def _reference(layer, x):
    """x W^T + b with W from an einsum of the layer's U and V (independent
    of the layer's own materialisation)."""
    W = torch.einsum("cia,cam->icm", layer.dictionaries, layer.V).reshape(30, 12)
    return x @ W + layer.bias


def test_evaluation_builds_w_once_and_rebuilds_it_after_every_change():
    """Breakage caught: prediction rebuilding W on every call (the cost
    model counts it as free), or a stale W after an optimiser step, a
    load_state_dict or a move. Reference: an einsum of U and V."""
    from skpred.nn._linear import cached_weights

    layer = _trained_layer().eval()
    x = torch.randn(5, 30, dtype=torch.float64)
    builds = []
    original = layer._build_weight
    layer._build_weight = lambda: builds.append(1) or original()
    with torch.no_grad():
        layer(x)
        layer(x)
        assert len(builds) == 2  # outside cached_weights: built on every call
        with cached_weights():
            first = layer(x)
            layer(x)
            layer(x)
        with torch.inference_mode(), cached_weights():
            layer(x)  # inference tensors have no version: never cached
    assert len(builds) == 4
    torch.testing.assert_close(first, _reference(layer, x))
    # an optimiser step changes V in place: the next prediction sees it
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    layer(x).sum().backward()  # grad enabled: never cached
    optimizer.step()
    with torch.no_grad(), cached_weights():
        torch.testing.assert_close(layer(x), _reference(layer, x))
        # load_state_dict copies into the same storage
        other = _trained_layer()
        with torch.no_grad():
            other.V.mul_(-2.0)
        layer.load_state_dict(other.state_dict())
        torch.testing.assert_close(layer(x), _reference(other, x))
        # a dtype move drops the cache with the old storage
        layer.float()
        assert "_weight_cache" not in layer.__dict__
        torch.testing.assert_close(layer(x.float()), _reference(layer, x.float()))


def test_an_estimators_cached_w_follows_refits_and_set_params(digits):
    """Breakage caught: a prediction after a refit (new parameters), after
    partial_fit (the same parameters stepped) or after set_params and fit
    reading a W cached from the earlier weights. Reference: predictions of
    a fresh estimator fitted the same way."""
    X, y = digits
    params = dict(hidden_layer_sizes=(20,), dictionary="se", alpha_fraction=0.5,
                  n_columns=2, max_iter=3, random_state=0, batch_size=64)

    def fresh(**extra):
        return PredictedMLPClassifier(**dict(params, **extra)).fit(X, y)

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = fresh()
        clf.predict_proba(X)  # caches W
        clf.partial_fit(X, y)
        stepped = fresh()
        stepped.partial_fit(X, y)
        np.testing.assert_allclose(clf.predict_proba(X), stepped.predict_proba(X), atol=1e-6)
        clf.set_params(max_iter=5).fit(X, y)
        np.testing.assert_allclose(clf.predict_proba(X), fresh(max_iter=5).predict_proba(X),
                                   atol=1e-6)


def test_two_group_optimizer_state_of_earlier_files_loads_into_one_group():
    """Breakage caught: files written with the former two parameter groups
    (weights, then biases) refused, or their momenta attached to the wrong
    parameters after the merge. Reference: torch's own two-group SGD after
    the same steps."""
    torch.manual_seed(0)  # test-only
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    weights = [p for n, p in net.named_parameters() if not n.endswith("bias")]
    biases = [p for n, p in net.named_parameters() if n.endswith("bias")]
    old = torch.optim.SGD([{"params": weights}, {"params": biases}], lr=0.1, momentum=0.9)
    for _ in range(2):
        old.zero_grad()
        net(torch.randn(5, 4)).pow(2).sum().backward()
        old.step()
    new = make_optimizer(net, "sgd", 1.0, momentum=0.5)
    load_state(new, old.state_dict())
    assert len(new.param_groups) == 1 and new.param_groups[0]["lr"] == 0.1
    for p in weights + biases:
        torch.testing.assert_close(new.state[p]["momentum_buffer"],
                                   old.state[p]["momentum_buffer"])
    different = old.state_dict()
    different["param_groups"][1]["lr"] = 0.2
    with pytest.raises(ValueError, match="different settings"):
        load_state(make_optimizer(net, "sgd", 1.0), different)


@pytest.mark.parametrize("on", ["V", "W"])
def test_one_max_norm_call_caps_every_layer_and_column(on):
    """Breakage caught: the grouped max-norm (three multi-tensor operators
    for every predicted layer together) skipping a layer, a column group
    (uneven columns: V and V_rest) or a one-column layer, scaling a unit
    below the cap, or a wrong norm (R V instead of U V). Reference: numpy
    norms of V's units, or of the rows of W by einsum."""
    from skpred.nn._mlp import max_norm_

    rng = np.random.RandomState(0)
    layers = [PredictedLinear(20, 7, rng.standard_normal((3, 20, 4)), dtype=torch.float64),
              PredictedLinear(7, 5, rng.standard_normal((1, 7, 3)), dtype=torch.float64),
              torch.nn.Linear(5, 4, dtype=torch.float64)]
    with torch.no_grad():
        for layer in layers:
            for p in layer.parameters():
                p.copy_(torch.as_tensor(rng.standard_normal(p.shape) * 3))

    def unit_norms(layer):
        if isinstance(layer, torch.nn.Linear):
            return np.linalg.norm(layer.weight.detach().numpy(), axis=1)
        if on == "V":
            return np.concatenate([np.linalg.norm(V.detach().numpy(), axis=1).ravel()
                                   for V, _, _ in layer._groups()])
        U = layer.dictionaries.detach().numpy()
        return np.concatenate([
            np.linalg.norm(np.einsum("cia,cam->cim", U[c0:c1], V.detach().numpy()),
                           axis=1).ravel() for V, c0, c1 in layer._groups()])

    before = [unit_norms(layer) for layer in layers]
    cap = float(np.median(np.concatenate(before)))
    max_norm_(layers, cap, on=on)
    for layer, b in zip(layers, before):
        np.testing.assert_allclose(unit_norms(layer), np.minimum(b, cap), rtol=1e-6)
    assert layers[0].V_rest is not None  # the uneven case was exercised


def _compile_fit(X, y, **extra):
    import warnings
    params = dict(hidden_layer_sizes=(16,), dictionary="se", alpha_fraction=0.5, n_columns=2,
                  max_norm=1.0, max_norm_on="V", solver="sgd", learning_rate_init=0.1,
                  batch_size=64, max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)
        return PredictedMLPClassifier(**dict(params, **extra)).fit(X, y)


@pytest.mark.parametrize("where", ["wrapping", "first call"])
def test_compile_falls_back_to_eager_with_a_warning(digits, monkeypatch, where):
    """Breakage caught: compile=True crashing where torch.compile is
    unavailable (no backend or compiler: the error comes when wrapping or
    at the first call), or falling back to something other than the eager
    step. Reference: the same fit with compile=False."""
    X, y = digits

    def broken(fn, *args, **kwargs):
        if where == "wrapping":
            raise RuntimeError("no backend")

        def call(*a, **k):
            raise torch._dynamo.exc.TorchDynamoException("no C++ compiler")

        return call

    monkeypatch.setattr(torch, "compile", broken)
    eager = _compile_fit(X, y)
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = PredictedMLPClassifier(**dict(eager.get_params(), compile=True)).fit(X, y)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert any("could not be compiled" in m and "training step" in m for m in messages)
    np.testing.assert_array_equal(clf.predict_proba(X), eager.predict_proba(X))


def test_compile_does_not_hide_errors_that_are_not_the_compilers(digits, monkeypatch):
    """Breakage caught: any error in a compiled step (a bad input, out of
    memory) taken for a missing compiler and hidden behind a fallback."""
    X, y = digits

    def failing(fn, *args, **kwargs):
        def call(*a, **k):
            raise MemoryError("out of memory")

        return call

    monkeypatch.setattr(torch, "compile", failing)
    with pytest.raises(MemoryError):
        _compile_fit(X, y, compile=True)


def test_compile_needs_a_boolean(digits):
    """Breakage caught: compile="yes" silently taken as true."""
    X, y = digits
    with pytest.raises(ValueError, match="compile"):
        PredictedMLPClassifier(compile="yes", max_iter=1).fit(X[:50], y[:50])


@pytest.mark.slow  # torch.compile's inductor takes about 10 s on a CPU
def test_compiled_training_gives_the_eager_model(digits):
    """Breakage caught: the compiled step (forward, loss, backward, the
    max-norm graph) training a different model: a skipped constraint, the
    penalty lost, a stale graph after the last, smaller batch. Reference:
    the eager fit, to float32 tolerance."""
    X, y = digits
    eager = _compile_fit(X, y, alpha=1e-2)
    compiled = _compile_fit(X, y, alpha=1e-2, compile=True)
    np.testing.assert_allclose(compiled.predict_proba(X), eager.predict_proba(X), atol=2e-5)
    np.testing.assert_allclose(compiled.loss_curve_, eager.loss_curve_, rtol=1e-5)


@pytest.mark.parametrize("user_setting", [False, True])
def test_training_flushes_subnormals_and_restores_the_users_setting(digits, user_setting):
    """Breakage caught: training computing with subnormal floats (tens of
    times slower on a CPU: saturated sigmoid units after pretraining make
    such gradients), or a fit leaving the process's flush setting changed
    (on when the user had it off, off when on). Reference: the product
    1e-39 * 2 in float32, zero exactly when subnormals are flushed."""
    from skpred.callbacks import Callback

    def flushing():
        return float(torch.full((), 1e-39, dtype=torch.float32) * 2.0) == 0.0

    seen = []

    class Probe(Callback):
        def on_batch_end(self, loop):
            seen.append(flushing())

    X, y = digits
    if not torch.set_flush_denormal(True):
        pytest.skip("this CPU cannot flush subnormals (torch.set_flush_denormal: False)")
    torch.set_flush_denormal(user_setting)
    try:
        assert flushing() == user_setting
        PredictedMLPClassifier(hidden_layer_sizes=(8,), max_iter=1, random_state=0,
                               callbacks=[Probe()]).fit(X[:200], y[:200])
        assert seen and all(seen)
        assert flushing() == user_setting
    finally:
        torch.set_flush_denormal(False)


def test_memory_helpers_read_a_containers_limit_and_the_penalty_has_no_weights(monkeypatch):
    """Breakage caught: a cgroup memory limit ignored (the host's free
    memory taken for the container's, so pooling once could exceed the
    limit), or an empty penalty crashing in torch.stack. Reference: the
    numbers the fake files give."""
    import builtins
    import io

    from skpred import _device
    from skpred._optim import L2Penalty

    files = {"/proc/meminfo": "MemAvailable:    8000000 kB\n",
             "/sys/fs/cgroup/memory.max": "1000000000\n",
             "/sys/fs/cgroup/memory.current": "400000000\n"}
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: io.StringIO(files[path])
                        if path in files else real_open(path, *a, **k))
    assert _device.available_memory("cpu") == 600_000_000
    files["/sys/fs/cgroup/memory.max"] = "max\n"
    assert _device.available_memory("cpu") == 8_000_000 * 1024
    assert float(L2Penalty([], 1.0).value()) == 0.0


def test_an_old_two_group_state_resumes_with_the_multi_tensor_step():
    """Breakage caught: a state loaded from an older file bringing back
    foreach=None (torch's per-parameter loop on the CPU)."""
    net = torch.nn.Linear(3, 2)
    old = torch.optim.SGD([{"params": [net.weight]}, {"params": [net.bias]}], lr=0.1)
    new = make_optimizer(net, "sgd", 1.0)
    load_state(new, old.state_dict())
    assert new.param_groups[0]["foreach"] is True
