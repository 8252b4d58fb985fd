"""OpenMP threads that behave on a machine shared with other busy processes.

torch (and DGL's kernels through it) run intra-op work on OpenMP threads. With the OpenMP
runtime's default wait policy, a thread that reaches the end of a parallel region spins on its
core before it sleeps; when another process keeps one of the cores busy, the spinning thread
takes CPU time from the thread it waits for, and a 2-thread training step became about 47 times
slower on a 2-core machine (see ``experiments/benchmarks/threads.py``). With
``OMP_WAIT_POLICY=PASSIVE`` waiting threads sleep at once.

The runtime reads ``OMP_WAIT_POLICY`` once, when it is loaded (on ``import torch``); no call
changes it afterwards. So :func:`configure` runs when the ``tgraph`` package is imported:

- ``OMP_WAIT_POLICY`` already set (to anything): kept, tgraph never overrides it;
- torch not imported yet: set to ``PASSIVE`` in ``os.environ`` (child processes inherit it);
- torch imported first, without a policy, with more than one thread: too late to change; one
  :class:`RuntimeWarning` says how to fix it (import ``tgraph`` first, or set the variable).

The ``tgraph`` command imports the package before torch, so every ``tgraph run`` / ``tune`` /
``serve`` gets the policy. :func:`record` is what a run's ``environment.json`` stores.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

VARIABLE = "OMP_WAIT_POLICY"
DEFAULT = "PASSIVE"
# Variables that change how many threads run or how they wait; recorded when set.
_RECORDED = (
    "OMP_WAIT_POLICY",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
)

# Who decided the policy: "user" (set before tgraph), "tgraph" (set by configure) or
# "unset" (torch was loaded before tgraph and nobody set it). None until configure runs.
_source: str | None = None
_warned = False


def configure() -> str | None:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set or torch is already loaded; return the
    policy the OpenMP runtime uses (None: the runtime's default, spin then sleep)."""
    global _source, _warned
    current = os.environ.get(VARIABLE)
    if current:
        _source = _source or "user"
        return current
    if "torch" not in sys.modules:
        os.environ[VARIABLE] = DEFAULT
        _source = "tgraph"
        return DEFAULT
    _source = "unset"
    if not _warned and _torch_threads() > 1:
        _warned = True
        warnings.warn(
            "torch was imported before tgraph with OMP_WAIT_POLICY unset: its OpenMP threads "
            "spin while they wait, which made training many times slower whenever another "
            "process was busy on the machine. Import tgraph before torch, or set "
            "OMP_WAIT_POLICY=PASSIVE in the environment (ACTIVE keeps spinning and silences "
            "this warning).",
            RuntimeWarning,
            stacklevel=2,
        )
    return None


def set_threads(n: int) -> None:
    """Use ``n`` intra-op threads in torch, and in the OpenMP runtimes and child processes
    started after this call (``OMP_NUM_THREADS``)."""
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    os.environ["OMP_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)


def _torch_threads() -> int:
    torch = sys.modules.get("torch")
    get = getattr(torch, "get_num_threads", None)
    return int(get()) if callable(get) else 0


def record() -> dict[str, Any]:
    """The thread settings of this process, for a run's environment record: the wait policy
    the OpenMP runtime uses and who set it, torch's intra-op threads (None before torch is
    imported), the CPUs this process may use, and the thread variables that are set."""
    policy = os.environ.get(VARIABLE) if _source != "unset" else None
    try:
        cpus: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count()
    return {
        "omp_wait_policy": policy,
        "omp_wait_policy_source": _source,
        "torch_threads": _torch_threads() or None,
        "cpus": cpus,
        "variables": {name: os.environ[name] for name in _RECORDED if name in os.environ},
    }
