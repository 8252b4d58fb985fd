"""Where datasets live: $TGRAPH_DATA, else ../shared/data beside the project, else a cache."""

from __future__ import annotations

import os
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: the argument, ```$TGRAPH_DATA```, ``<project>/../shared/data``
    when it exists, else ``~/.cache/tgraph/data`` (where downloads go)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("TGRAPH_DATA")
    if env:
        return Path(env).expanduser()
    shared = _PROJECT_ROOT.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    return Path.home() / ".cache" / "tgraph" / "data"
