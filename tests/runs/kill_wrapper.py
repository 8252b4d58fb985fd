"""``python kill_wrapper.py MODULE:ATTR N WHEN MATCH -- tgraph ARGS...``: run ``tgraph ARGS``
and SIGKILL the process at the ``N``-th call of ``MODULE.ATTR`` with a path argument ending in
``MATCH`` (``""``: any call), ``WHEN`` "before" or "after" the call runs.

Fault injection for the resume tests lives here, not in tgraph: the patched function is any
write point (``tgraph.runs.rundir:RunDir.append_curve``,
``tgraph.train.trainer:save_checkpoint``, ...).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys


def main(argv: list[str]) -> int:
    target, n, when, match = argv[0], int(argv[1]), argv[2], argv[3]
    assert argv[4] == "--" and when in ("before", "after")
    module_name, attr = target.split(":")
    owner = importlib.import_module(module_name)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    calls = 0

    def matches(args: tuple) -> bool:
        paths = [str(a) for a in args if isinstance(a, os.PathLike)]
        return not match or any(p.endswith(match) for p in paths)

    def killing(*args, **kwargs):
        nonlocal calls
        calls += matches(args)
        kill = calls == n and matches(args)
        if kill and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        out = original(*args, **kwargs)
        if kill and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    setattr(owner, name, killing)
    from tgraph.cli import main as tgraph

    return tgraph(argv[5:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
