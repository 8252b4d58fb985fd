"""The executed guides: each page is followed in a fresh folder and every step must succeed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.runner import cli_commands, parse_blocks, run_page

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDES = ["guides/own-data.md", "guides/own-model.md"]


@pytest.mark.slow
@pytest.mark.parametrize("page", GUIDES)
def test_guide_runs(page: str, tmp_path: Path) -> None:
    path = DOCS / page
    assert path.is_file(), f"{path} is missing: the guide is executed by this test"
    blocks = parse_blocks(path.read_text(encoding="utf-8"))
    # A guide whose code was renamed out of the convention would pass while running nothing.
    python = [b for b in blocks if b.title is None and b.lang == "python"]
    commands = [c for b in blocks if b.title is None and b.lang == "bash" for c in cli_commands(b)]
    assert python or commands, f"{path} has no python block or tgraph command: nothing would run"
    run_page(path, tmp_path)
