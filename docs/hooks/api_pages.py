"""MkDocs hook: expand ``<!-- api-modules PACKAGE [shallow] -->`` on an API page into one
mkdocstrings block per public module of PACKAGE, found in the source tree at build time, so a
new module (or one moved into a package) is documented without editing the page.

A package's own block lists only what its ``__init__.py`` defines (functions, classes,
constants): names it merely imports from its modules are documented with those modules, once.
``shallow`` takes the package's direct modules only (the top-level page: its subpackages have
their own pages).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

_MARKER = re.compile(r"^<!-- api-modules (?P<package>[\w.]+)(?P<shallow> shallow)? -->$", re.M)


def _root(config: dict) -> Path:
    return Path(config["config_file_path"]).parent


def _defined(init: Path) -> list[str]:
    """Public names that ``init`` defines itself (not imports)."""
    names: list[str] = []
    for node in ast.parse(init.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [name for name in names if not name.startswith("_")]


def _block(name: str, members: list[str] | None) -> str:
    lines = [f"::: {name}", "    options:", "      show_root_heading: true"]
    if members is not None:
        lines.append(f"      members: {members if members else 'false'}")
    return "\n".join(lines) + "\n"


def _modules(folder: Path, package: str, shallow: bool) -> list[str]:
    blocks: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("_"):
            continue
        if path.suffix == ".py":
            blocks.append(_block(f"{package}.{path.stem}", None))
        elif not shallow and (path / "__init__.py").is_file():
            blocks.append(_block(f"{package}.{path.name}", _defined(path / "__init__.py")))
            blocks += _modules(path, f"{package}.{path.name}", shallow)
    return blocks


def on_page_markdown(markdown: str, page: object, config: dict, files: object) -> str:
    def expand(match: re.Match[str]) -> str:
        package = match["package"]
        folder = _root(config).joinpath(*package.split("."))
        if not (folder / "__init__.py").is_file():
            raise ValueError(f"api-modules: {folder} is not a package (page {page})")
        shallow = match["shallow"] is not None
        head = [] if shallow else [_block(package, _defined(folder / "__init__.py"))]
        return "\n".join(head + _modules(folder, package, shallow))

    return _MARKER.sub(expand, markdown)
