"""Counting the operators a piece of code issues (for benchmarks and tests).

A step on a GPU at small batches is bound by how many kernels it launches,
not by arithmetic, and that number can be counted on any CPU: every
top-level ATen operator (one the Python code or autograd calls, not one
that another ATen operator calls inside it) is one dispatch and, on a GPU,
at least one launch. :func:`top_level_ops` counts them with
``torch.profiler``; nothing here measures time.
"""

from collections import Counter

import torch


def top_level_ops(fn) -> Counter:
    """Run ``fn()`` under ``torch.profiler`` on the CPU and count its
    top-level ATen operators by name (backward ops included: autograd's
    nodes are not ATen operators, so the ops they call are top level)."""
    with profiler() as prof:
        fn()
    return count_top_level(prof)


def profiler():
    """A CPU ``torch.profiler.profile`` (a context manager)."""
    return torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])


def count_top_level(prof) -> Counter:
    """The top-level ATen operators a finished profile recorded, by name."""
    counts = Counter()
    for event in prof.events():
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            counts[event.name] += 1
    return counts
