"""A small C kernel for the evaluator's counting step, compiled on first use.

``count_at_least.c`` (beside this file) counts, for each row of a float32 score block and each
of the row's thresholds, the scores at or above the threshold, and tells which rows hold a
non-finite score: one read of each row from memory, the comparisons in L2 cache, four
thresholds per sweep (see the C file). The pure-torch path
(:func:`tgraph.eval.evaluator.count_at_least`) makes one pass over the block per threshold
plus one for the finiteness check; on the Gowalla test set (7.3 targets per user) the kernel
removes most of the evaluator's time above the scoring matmul
(``experiments/benchmarks/full_ranking.py``). Both give the same integer counts.

The kernel is compiled with the system's C compiler (``$CC``, else ``cc`` or ``gcc``) into
``$TGRAPH_CACHE/native`` (default ``~/.cache/tgraph/native``; a per-user folder of the
temporary directory if that cannot be made), named by a hash of the source
and flags, written under a temporary name and renamed (concurrent first uses are safe), and
loaded with :mod:`ctypes`; a call releases the GIL, so rows are split over
``torch.get_num_threads()`` Python threads. Without a compiler, or with ``TGRAPH_NATIVE=0``,
:func:`kernel` returns ``None`` and the evaluator keeps the torch path (logged once).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("count_at_least.c")
FLAGS = ("-O3", "-shared", "-fPIC", "-std=c99")
#: rows x items below which one thread does the whole block (thread start-up would dominate)
_PARALLEL_MIN = 1 << 20

_state: dict[str, object] = {}


def _cache_dir() -> Path:
    base = os.environ.get("TGRAPH_CACHE") or os.path.join(Path.home(), ".cache", "tgraph")
    return Path(base) / "native"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


def _build() -> ctypes.CDLL:
    compiler = _compiler()
    if compiler is None:
        raise OSError("no C compiler (set CC, or install cc/gcc)")
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join((compiler, *FLAGS)).encode()).hexdigest()[:16]
    target = _cache_dir() / f"count_at_least-{digest}.so"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # an unwritable home: a per-user folder in the temporary directory
        fallback = Path(tempfile.gettempdir()) / f"tgraph-native-{os.getuid()}"
        fallback.mkdir(mode=0o700, exist_ok=True)
        target = fallback / target.name
    if not target.exists():
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            subprocess.run(
                [compiler, *FLAGS, "-o", tmp, str(SOURCE), "-lm"],
                check=True,
                capture_output=True,
                text=True,
                timeout=120,
            )
            os.replace(tmp, target)
        except subprocess.CalledProcessError as error:
            raise OSError(f"{compiler} failed: {error.stderr.strip()[-500:]}") from error
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    library = ctypes.CDLL(str(target))
    function = library.tgraph_count_at_least
    function.restype = ctypes.c_int64
    function.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    function.argtypes += [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p]
    function.argtypes += [ctypes.c_int64, ctypes.c_int64]
    return library


def kernel() -> ctypes.CDLL | None:
    """The loaded library, building it on first use; ``None`` when disabled or unavailable."""
    if os.environ.get("TGRAPH_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    if "library" not in _state:
        try:
            _state["library"] = _build()
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("native ranking kernel unavailable, using the torch path: %s", error)
            _state["library"] = None
    library = _state["library"]
    return library if isinstance(library, ctypes.CDLL) else None


def usable(scores: Tensor) -> bool:
    """Whether :func:`count_at_least` can take ``scores`` (and the kernel is available)."""
    return (
        scores.device.type == "cpu"
        and scores.dtype == torch.float32
        and scores.dim() == 2
        and (scores.stride(1) == 1 or scores.shape[1] <= 1)
        and kernel() is not None
    )


def _pool(workers: int) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads, made again after a fork (a child has none of the
    parent's threads: submitting to the parent's pool would wait forever)."""
    pool = _state.get("pool")
    key = (workers, os.getpid())
    if not isinstance(pool, ThreadPoolExecutor) or _state.get("pool_key") != key:
        if isinstance(pool, ThreadPoolExecutor) and _state.get("pool_pid") == key[1]:
            pool.shutdown(wait=False)
        pool = ThreadPoolExecutor(workers, thread_name_prefix="tgraph-rank")
        _state["pool"], _state["pool_key"], _state["pool_pid"] = pool, key, key[1]
    return pool


def count_at_least(scores: Tensor, thresholds: Tensor, n_thresholds: Tensor) -> tuple[Tensor, bool]:
    """``(counts, finite)``: ``counts[b, k] = #{j: scores[b, j] >= thresholds[b, k]}`` as
    int64 for ``k < n_thresholds[b]`` (``0`` elsewhere), and whether every score is finite.
    ``scores``: ``[B, N]`` float32 on CPU with unit item stride (see :func:`usable`)."""
    library = kernel()
    assert library is not None, "check native.usable(scores) first"
    n_rows, n_items = scores.shape
    width = thresholds.shape[1]
    level = thresholds.to(torch.float32).contiguous()
    per_row = n_thresholds.to(torch.int64).contiguous()
    counts = torch.zeros(n_rows, width, dtype=torch.int64)
    if n_rows == 0:
        return counts, True
    function = library.tgraph_count_at_least
    stride = scores.stride(0) if n_rows > 1 else n_items
    args = (scores.data_ptr(), stride, n_items, level.data_ptr(), per_row.data_ptr(), width)
    out = counts.data_ptr()
    workers = min(torch.get_num_threads(), n_rows)
    if workers <= 1 or n_rows * n_items < _PARALLEL_MIN:
        bad = function(*args, out, 0, n_rows)
    else:
        # equal work per thread: a row costs ceil(n / 4) sweeps (at least one)
        work = np.cumsum(np.maximum((per_row.numpy() + 3) // 4, 1))
        cuts = np.searchsorted(work, work[-1] * np.arange(1, workers) / workers)
        bounds = [0, *sorted(set(int(c) for c in cuts)), n_rows]
        parts = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
        pool = _pool(workers)
        bad = sum(f.result() for f in [pool.submit(function, *args, out, *p) for p in parts])
    return counts, bad == 0
