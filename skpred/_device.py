"""Devices, seeds and module copies: where tensors live and how layers are
initialised from an estimator's own generator (never torch's global one).
"""

import contextlib
import copy
import math
import re
from typing import Callable

import numpy as np
import torch
from torch import nn


_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def resolve_device(device):
    """Turn the ``device`` parameter into a ``torch.device``.

    ``"auto"`` is the first CUDA GPU when one is present, else the CPU.
    Asking for CUDA on a machine without it is a ValueError, not a crash.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not _DEVICE_RE.match(device):
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}."
        )
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} was requested but CUDA is not available.")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only {torch.cuda.device_count()} "
                f"CUDA device(s) exist."
            )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was requested but MPS is not available.")
    return torch.device(device)


def torch_generator(rng: np.random.RandomState) -> torch.Generator:
    """A local CPU ``torch.Generator`` seeded from a numpy RandomState.

    Library code never touches torch's global seed.
    """
    return torch.Generator().manual_seed(int(rng.randint(0, 2**31 - 1)))


def available_memory(device):
    """Bytes that may still be allocated on ``device``: a GPU's free memory;
    on the CPU the smaller of ``MemAvailable`` (Linux's /proc/meminfo) and
    what a container's cgroup v2 limit leaves; None where neither can be
    read."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    free = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    # a container's limit (cgroup v2) is what the process may still use
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            left = max(int(limit) - used, 0)
            free = left if free is None else min(free, left)
    except (OSError, ValueError):
        pass
    return free


def flushing_denormals() -> bool:
    """Whether the CPU flushes subnormal floats (below 1.2e-38 in float32)
    to zero now; torch has a setter and no getter, so this probes."""
    return float(torch.full((), 1e-39, dtype=torch.float32) * 2.0) == 0.0


@contextlib.contextmanager
def flush_denormal():
    """Subnormal floats flushed to zero inside the block
    (``torch.set_flush_denormal``), then the setting as it was.

    Training with saturating units (sigmoid after pretraining) produces
    gradients in float32's subnormal range, which CPUs compute with tens of
    times slower; they are far below float32's resolution next to the
    values that matter, so zero gives the same model (a fit of the paper's
    Emp-Emp network at alpha 0.25: 14 s against 8.6 s, the same score).
    """
    before = flushing_denormals()
    if not before:
        torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if not before:
            torch.set_flush_denormal(False)


def has_room(n_bytes: int, device) -> bool:
    """Whether an optional tensor of ``n_bytes`` may be allocated on
    ``device``: when it takes at most half of the memory still available
    there (room is left for the training step itself); always where that
    cannot be read."""
    free = available_memory(device)
    return free is None or n_bytes <= free // 2


def reset_linear_(layer: nn.Module, generator: torch.Generator, bound=None) -> None:
    """Uniform initial weights and bias for ``nn.Linear``/``nn.Conv2d``, drawn
    from a local generator: U(-bound, bound), by default torch's own
    initialisation, ``bound = 1/sqrt(fan_in)`` (what kaiming_uniform_ with
    a=sqrt(5) amounts to)."""
    if bound is None:
        bound = 1.0 / math.sqrt(layer.weight[0].numel())
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            layer.bias.uniform_(-bound, bound, generator=generator)


def reset_layer_(layer: nn.Module, generator: torch.Generator, bound=None) -> None:
    """A layer's initial weights from ``generator``: uniform on (-bound,
    bound) for a dense layer; for a predicted one, V scaled so that W = U V
    has that uniform's variance (``bound=None``: torch's defaults)."""
    if isinstance(layer, (nn.Linear, nn.Conv2d)):
        reset_linear_(layer, generator, bound)
    elif bound is None:
        layer.reset_parameters(generator=generator)
    else:
        layer.reset_parameters(generator=generator, bound=bound)


def init_uniform_(layer: nn.Module, irange: float, generator: torch.Generator) -> None:
    """The authors' initialisation (pylearn2's ``irange``): every learned
    weight matrix (W of a dense layer, V of a predicted one, U and V of a
    lowrank one) uniform on (-irange, irange), whatever the dictionary's
    scale; biases zero. A fixed U is left as it is."""
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif p.requires_grad:
                p.uniform_(-irange, irange, generator=generator)


def untouched_global_rng():
    """A context in which torch's global CPU random state is saved and
    restored: module constructors initialise their weights from it, and
    library code must not consume it."""
    return torch.random.fork_rng(devices=[])


def seeded(make: Callable[[], nn.Module], generator: torch.Generator, device,
           bound=None, irange=None) -> nn.Module:
    """``make()`` a layer on the CPU, draw its weights from ``generator``, move it.

    The local generator is a CPU one, so weights are always drawn on the CPU:
    the same seed gives the same initial weights on every device, and a
    CUDA tensor never meets a CPU generator. The constructor's own default
    initialisation runs with the global random state saved and restored.
    ``bound``: see :func:`reset_layer_`; ``irange``: :func:`init_uniform_`
    instead.
    """
    with untouched_global_rng():
        layer = make()
    if irange is None:
        reset_layer_(layer, generator, bound)
    else:
        init_uniform_(layer, irange, generator)
    return layer.to(device)


def seeded_network(make: Callable[[], nn.Module], generator: torch.Generator,
                   device, output_bound=None, output_irange=None) -> nn.Module:
    """``make()`` a network around layers already built (and seeded), draw
    its output layer from ``generator`` on the CPU (uniform on
    ``(-output_bound, output_bound)``, torch's default with None), move it
    to ``device``; with ``output_irange``, :func:`init_uniform_` instead."""
    with untouched_global_rng():
        module = make()
    if output_irange is None:
        reset_linear_(module.output, generator, output_bound)
    else:
        init_uniform_(module.output, output_irange, generator)
    return module.to(device)


def learned_state(module: nn.Module) -> dict:
    """Copies of the module's parameters only: the fixed dictionaries (U,
    buffers that training never changes) are not copied."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def cpu_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every parameter and buffer on the CPU,
    made without a copy on the module's own device (each tensor is copied
    straight to the host, then the module structure around it)."""
    memo = {}
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) in memo:
            continue
        host = t.detach().to("cpu", copy=True)
        memo[id(t)] = nn.Parameter(host, requires_grad=t.requires_grad) \
            if isinstance(t, nn.Parameter) else host
    return copy.deepcopy(module, memo)


def cpu_name() -> str:
    """The CPU's model name and its widest vector instructions (Linux)."""
    import os
    import platform

    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), platform.machine())
    flags = next((line for line in info.splitlines() if line.startswith("flags")), "")
    vector = "AVX-512" if " avx512f" in flags else "AVX2" if " avx2" in flags else "no AVX2"
    return f"{name} ({vector}, {os.cpu_count()} cores)"


def machine() -> str:
    """Where numbers were taken: the CPU, torch's threads, torch and its GPU."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return (f"{cpu_name()}, {torch.get_num_threads()} torch threads, torch "
            f"{torch.__version__}" + (f", {gpu}" if gpu else ""))
