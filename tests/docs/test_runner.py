"""The guide runner itself, on a fixture page whose every step leaves a checkable trace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.docs.runner import Block, GuideError, cli_commands, guide_env, parse_blocks, run_page
from tgraph.models.registry import list_models

FIXTURE = Path(__file__).parent / "fixtures" / "sample_guide.md"


def test_parse_blocks_reads_language_title_text_and_line() -> None:
    """The fixture's blocks, in order: titles only where written, indented blocks de-indented,
    a four-backtick block keeps the three-backtick fence inside it."""
    blocks = parse_blocks(FIXTURE.read_text(encoding="utf-8"))
    assert [(b.lang, b.title) for b in blocks] == [
        ("text", "data/events.csv"),
        ("python", "helper_mod.py"),
        ("yaml", "tiny.yaml"),
        ("python", None),
        ("bash", None),
        ("console", None),
        ("python", None),
        ("markdown", None),
    ]
    assert blocks[0].text == "user,item\n1,7\n2,8\n"
    assert blocks[0].line == 5
    assert blocks[6].line == 58
    assert blocks[6].text.startswith("import json\nfrom pathlib import Path\n\nassert step == 2\n")
    assert blocks[7].text == '```python\nraise SystemExit("never run")\n```\n'


def test_unclosed_fence_names_its_line() -> None:
    with pytest.raises(GuideError, match="line 2: fenced block opened here is never closed"):
        parse_blocks("intro\n```python\nx = 1\n")


def test_cli_commands_only_tgraph_lines_with_continuations_and_comments() -> None:
    block = Block(
        "bash",
        None,
        "pip install tgraph\ntgraph run --config a.yaml \\\n    seeds=[0]   # one seed\n"
        "make test\n  tgraph data list\n",
        1,
    )
    assert cli_commands(block) == [["run", "--config", "a.yaml", "seeds=[0]"], ["data", "list"]]


def test_guide_env_puts_the_folder_first_and_keeps_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TGRAPH_DATA", "/some/data")
    monkeypatch.setenv("PYTHONPATH", "/already/there")
    env = guide_env(tmp_path)
    paths = env["PYTHONPATH"].split(os.pathsep)
    assert paths[0] == str(tmp_path)
    assert paths[-1] == "/already/there"
    assert env["TGRAPH_DATA"] == "/some/data"


@pytest.mark.slow  # runs `tgraph run` in a subprocess
def test_run_page_follows_the_fixture(tmp_path: Path) -> None:
    """Titled blocks become files, python blocks share one namespace and run in order in the
    folder (the second sees the first's variable and the module written by a titled block), the
    `tgraph` line runs the CLI there (its run with the one overridden seed exists when the next
    block reads it), other bash lines and console blocks do not run."""
    cwd = Path.cwd()
    namespace = run_page(FIXTURE, tmp_path)
    assert Path.cwd() == cwd
    assert (tmp_path / "data" / "events.csv").read_text() == "user,item\n1,7\n2,8\n"
    assert namespace["rows"] == 2
    assert namespace["step"] == 3
    # seeds=[0] (after a backslash continuation and before a comment) replaced the config's [0, 1]
    assert namespace["runs"] == ["seed0"]
    assert set(namespace["test"]) == {"acc@10"}
    assert not (tmp_path / "made_by_touch").exists()
    assert "helper_mod" not in sys.modules
    assert "guide_pop" not in list_models()  # registered by the page, removed afterwards


def test_failing_cli_command_names_page_line_and_command(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# p\n\n```bash\ntgraph no-such-command\n```\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(GuideError) as caught:
        run_page(page, work)
    message = str(caught.value)
    assert f"{page}:3: `tgraph no-such-command` exited 2" in message
    assert "invalid choice" in message


def test_failing_python_block_names_page_and_line(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n")
    with pytest.raises(GuideError, match=rf"{page}:7: python block failed: AssertionError"):
        run_page(page, tmp_path)
