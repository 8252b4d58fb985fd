"""Every notebook runs top to bottom (small settings); outputs are not committed."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
#: notebooks that load a dataset from the data root
REAL_DATA = {"02_spatiotemporal_analysis.ipynb"}


def test_notebooks_exist():
    assert NOTEBOOKS, "no notebooks found"


@pytest.mark.slow
@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.real_data) if p.name in REAL_DATA else p for p in NOTEBOOKS],
    ids=lambda p: p.name,
)
def test_notebook_runs(path, tmp_path):
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        f"{path.name} has committed outputs: clear them"
    )
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
