"""The scale benchmark (experiments/benchmarks/scale.py) end to end at a tiny size."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks" / "scale.py"
STEPS = ("generate", "split", "graph", "train_epoch", "evaluate")


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.mark.slow
def test_one_size_in_process(scale, tmp_path):
    """Every step is timed with its memory; the epoch covers every training event; the
    seeded sample of test queries is ranked; the table and plot are written."""
    argv = ["--fanouts", "5,5", "--batch-size", "256", "--eval-sample", "20"]
    record = scale.run_size(scale.parse_args(argv), 4000)
    assert record["n_users"] == 40 and record["n_pois"] == 80
    assert list(record["steps"]) == list(STEPS)
    for step in record["steps"].values():
        assert step["seconds"] > 0 and 0 < step["rss_gib"] <= step["peak_gib"]
    peaks = [record["steps"][s]["peak_gib"] for s in STEPS]
    assert peaks == sorted(peaks)  # the peak so far
    assert record["batches"] == -(-record["train_events"] // 256)
    assert 0 < record["train_events"] < 4000
    assert record["test_queries"] > 20 and record["eval_queries"] == 20
    assert all(0 <= v <= 1 for v in record["metrics"].values())
    assert 0 < record["step_input_nodes"] <= record["graph_nodes"] == 120
    assert len(record["step_block_edges"]) == 2  # one block per fanout
    full = record["full_graph"]  # whole-graph steps timed after the end-to-end steps
    assert full["steps"] == 3 and full["seconds_per_step"] > 0
    assert full["epoch_seconds_estimate"] == pytest.approx(
        full["seconds_per_step"] * record["batches"], abs=0.1
    )

    (tmp_path / "size_4000.json").write_text(json.dumps(record))
    scale._write_table(tmp_path)
    rows = (tmp_path / "scale.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("4000,40,80,")
    assert (tmp_path / "scale.md").read_text().count("\n") == 3
    assert (tmp_path / "scale.png").stat().st_size > 0


@pytest.mark.slow
def test_subprocess_per_size_and_resume(scale, tmp_path):
    """main() runs each size in its own process and writes its record; --resume keeps it."""
    argv = ["--sizes", "3000", "--fanouts", "5", "--batch-size", "512", "--out", str(tmp_path)]
    argv += ["--full-graph-steps", "0"]
    scale.main(argv)
    path = tmp_path / "size_3000.json"
    record = json.loads(path.read_text())
    assert record["settings"]["fanouts"] == [5] and record["settings"]["threads"] == 1
    assert record["n_events"] == 3000 and set(record["steps"]) == set(STEPS)
    assert record["eval_queries"] == record["test_queries"] > 0  # all of them by default
    assert "full_graph" not in record
    path.write_text(json.dumps({**record, "marker": True}))
    scale.main([*argv, "--resume"])
    assert json.loads(path.read_text())["marker"] is True
    assert (tmp_path / "scale.csv").read_text().splitlines()[1].startswith("3000,30,60,")
