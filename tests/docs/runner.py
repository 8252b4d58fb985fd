"""Execute a documentation page the way a reader would follow it.

The convention (docs pages that are executed by the tests):

- a fenced block with a title, e.g. ```` ```yaml title="run.yaml" ````, is written to that file
  (relative to the page's working folder);
- an untitled ```` ```python ```` block is executed; all blocks of a page share one namespace
  and run in order, with the working folder as the current directory;
- in a ```` ```bash ```` block, each command line starting with ``tgraph `` runs the CLI as
  ``python -m tgraph ...`` in a subprocess (working folder as cwd, the folder on PYTHONPATH) and
  must exit 0; other lines (pip, make, export) are for the reader and are not run;
- ```` ```console ```` blocks show output and are not run.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import tgraph

# Opening fence: three or more backticks, a language, then optional attributes (title="...").
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<info>[^`]*)$")
_TITLE = re.compile(r"""title=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')""")
# The project root, so a subprocess imports the same tgraph as the tests.
_PROJECT = Path(tgraph.__file__).resolve().parents[1]
CLI_TIMEOUT_S = 600
# What a page registers in this process (a model, a dataset, a protocol) is removed afterwards,
# so that two pages, or a page and a test, may use the same name.
_REGISTRIES = (
    ("tgraph.models.registry", "_MODELS"),
    ("tgraph.data.registry", "DATASETS"),
    ("tgraph.data.protocols", "PROTOCOLS"),
)


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: its language, optional title, text and first line number."""

    lang: str
    title: str | None
    text: str
    line: int


class GuideError(AssertionError):
    """A page's block failed; the message names the page, the line and what went wrong."""


def parse_blocks(markdown: str) -> list[Block]:
    """The fenced blocks of ``markdown`` in order; indented fences (in lists) are de-indented."""
    blocks: list[Block] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, ticks, info = opening["indent"], opening["ticks"], opening["info"].strip()
        lang = info.split(maxsplit=1)[0].lower() if info else ""
        title = _TITLE.search(info)
        body: list[str] = []
        j = i + 1
        # A closing fence has at least as many backticks as the opening and nothing else.
        while j < len(lines) and not re.fullmatch(rf"[ \t]*`{{{len(ticks)},}}[ \t]*", lines[j]):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        if j == len(lines):
            raise GuideError(f"line {i + 1}: fenced block opened here is never closed")
        text = "\n".join(body) + ("\n" if body else "")
        name = (title["dq"] if title["dq"] is not None else title["sq"]) if title else None
        blocks.append(Block(lang, name, text, i + 1))
        i = j + 1
    return blocks


def cli_commands(block: Block) -> list[list[str]]:
    """The ``tgraph ...`` command lines of a bash block (backslash continuations joined)."""
    logical: list[str] = []
    pending = ""
    for line in block.text.splitlines():
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    return [
        shlex.split(line, comments=True)[1:]
        for line in logical
        if line.lstrip().startswith("tgraph ")
    ]


def guide_env(folder: Path) -> dict[str, str]:
    """The environment of a CLI subprocess: the caller's (TGRAPH_DATA kept) with ``folder`` and
    the project first on PYTHONPATH, so modules written by the page are importable."""
    env = dict(os.environ)
    paths = [str(folder), str(_PROJECT)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run_page(page: Path, folder: Path) -> dict[str, object]:
    """Follow ``page`` in ``folder``: write titled blocks, execute python blocks and ``tgraph``
    commands in order. Returns the namespace the python blocks shared.

    Python blocks run in this process (cwd and ``sys.path`` set to ``folder`` for the call):
    afterwards the modules imported from ``folder`` leave ``sys.modules`` and the model,
    dataset and protocol registries are restored, so two pages may both write a
    ``my_models.py`` registering the same name.
    """
    namespace: dict[str, object] = {"__name__": "__guide__"}
    cwd = Path.cwd()
    modules_before = set(sys.modules)
    registries = [getattr(importlib.import_module(m), name) for m, name in _REGISTRIES]
    saved = [dict(registry) for registry in registries]
    sys.path.insert(0, str(folder))
    os.chdir(folder)
    try:
        for block in parse_blocks(page.read_text(encoding="utf-8")):
            where = f"{page}:{block.line}"
            if block.title is not None:
                target = folder / block.title
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.text, encoding="utf-8")
            elif block.lang == "python":
                try:
                    exec(compile(block.text, where, "exec"), namespace)
                except Exception as error:
                    raise GuideError(f"{where}: python block failed: {error!r}") from error
            elif block.lang == "bash":
                for args in cli_commands(block):
                    _run_cli(args, folder, where)
    finally:
        os.chdir(cwd)
        sys.path.remove(str(folder))
        for name in set(sys.modules) - modules_before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if origin.startswith(str(folder)):
                del sys.modules[name]
        for registry, before in zip(registries, saved, strict=True):
            registry.clear()
            registry.update(before)
    return namespace


def _run_cli(args: list[str], folder: Path, where: str) -> None:
    command = [sys.executable, "-m", "tgraph", *args]
    done = subprocess.run(
        command,
        cwd=folder,
        env=guide_env(folder),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise GuideError(
            f"{where}: `tgraph {shlex.join(args)}` exited {done.returncode}\n"
            f"stdout (last 2000 chars):\n{done.stdout[-2000:]}\n"
            f"stderr (last 2000 chars):\n{done.stderr[-2000:]}"
        )
