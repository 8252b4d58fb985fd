"""The pages outside the docs site (README, CONTRIBUTING) link only to files that exist; the site
itself is checked by `mkdocs build --strict`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
# [text](target): the target up to the closing parenthesis, without a title
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(markdown: str) -> list[str]:
    """Link targets that are paths in the repository (no URL, no bare anchor), anchor removed."""
    targets = (target.split("#", 1)[0] for target in _LINK.findall(markdown))
    return [t for t in targets if t and not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_relative_links_ignores_urls_and_anchors() -> None:
    text = (
        "[a](docs/x.md#part) [b](https://example.org/y.md) [c](#top) [d](mailto:a@b.c) [e](LICENSE)"
    )
    assert relative_links(text) == ["docs/x.md", "LICENSE"]


@pytest.mark.parametrize("page", ["README.md", "CONTRIBUTING.md"])
def test_links_point_at_existing_files(page: str) -> None:
    missing = [
        target
        for target in relative_links((PROJECT / page).read_text(encoding="utf-8"))
        if not (PROJECT / target).exists()
    ]
    assert not missing, f"{page} links to missing files: {missing}"
