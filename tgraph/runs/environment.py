"""The environment of a session: versions, git commit, device, threads, command line, start
time."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from tgraph.runs.records import now
from tgraph.threads import record as thread_record

_PACKAGES = ("tgraph", "torch", "dgl", "numpy", "scipy", "pandas", "networkx", "optuna")


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit (with ``-dirty`` if the tree has changes), or None outside git."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def environment(device: str = "cpu") -> dict[str, Any]:
    """Versions, git commit, device, thread settings (:func:`tgraph.threads.record`) and
    command line of the current process."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": git_commit(),
        "device": device,
        "threads": thread_record(),
        "argv": sys.argv,
        "started": now(),
    }
