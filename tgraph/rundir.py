"""Run directories: everything needed to recompute a run's reported figures.

Layout of ``runs/<experiment>/<dataset>/<model>/seed<k>/``::

    config.yaml        the resolved configuration
    environment.json   versions, git commit, device, command line, start time
    metrics.json       final metrics (validation-selected) and the best epoch
    curve.jsonl        per-epoch training loss and validation metrics
    run.log            the log records of the run (tgraph's loggers, INFO and above)
    per_query.csv      per-query (per-user) test metrics, for significance tests
    checkpoint.pt      model + optimiser state (written by the trainer)
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

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
    """Versions, git commit, device and command line of the current process."""
    versions = {}
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
        "argv": sys.argv,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class RunDir:
    """A run directory; created on construction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, config: dict[str, Any]) -> None:
        self.file("config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def write_json(self, name: str, payload: dict[str, Any]) -> None:
        self.file(name).write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")

    def read_json(self, name: str) -> dict[str, Any]:
        return json.loads(self.file(name).read_text())

    def write_table(self, name: str, table: pd.DataFrame) -> None:
        table.to_csv(self.file(name), index=False)

    @contextmanager
    def capture_log(self, name: str = "run.log") -> Iterator[None]:
        """Copy tgraph's log records (INFO and above) to ``name`` while the block runs."""
        handler = logging.FileHandler(self.file(name), mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        logger = logging.getLogger("tgraph")
        previous = logger.level
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous)
            handler.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
