"""A tiny finished run (synthetic data, a few epochs) for the serving tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.runs.helpers import run_of, tiny
from tgraph.experiment import run_experiment

#: BPR-MF (no history) and SASRec (histories of 5 events)
MODELS = (
    "models=[{name: bprmf, config: {embedding_dim: 8}},"
    " {name: sasrec, config: {max_len: 5, embedding_dim: 8, n_heads: 1, n_layers: 1}}]"
)


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serve_runs")
    run_experiment(tiny(out, MODELS))
    return out


@pytest.fixture(scope="session")
def run_dir(runs: Path) -> Path:
    return run_of(runs, "bprmf")


@pytest.fixture(scope="session")
def sequence_run(runs: Path) -> Path:
    return run_of(runs, "sasrec")
