"""A SIGKILL at any write point of ``tgraph run``, then the same command with ``--resume``,
gives the metrics, per-query results and curve of an uninterrupted run (issue 10, case 10):
nothing lost, nothing recorded twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.runs.helpers import TINY, run_of
from tgraph.cli import main
from tgraph.runs import RunDir

WRAPPER = Path(__file__).with_name("kill_wrapper.py")
#: 3 selection epochs, then a 3-epoch refit (the best epoch is the last one here)
ARGS = [*TINY, "train.epochs=3", "train.refit=true", "--threads", "1"]
TIMES = {"train_s", "eval_s"}


def _command(output_dir: Path) -> list[str]:
    config = output_dir / "experiment.yaml"
    config.write_text("experiment: t\n")
    return ["run", "--config", str(config), f"output_dir={output_dir}", *ARGS]


def _results(output_dir: Path) -> tuple[dict, pd.DataFrame, list[dict]]:
    """metrics.json (timings left out), per_query.csv and the curve (timings left out)."""
    run = RunDir(run_of(output_dir))
    metrics = run.read_metrics().model_dump(exclude={"train_seconds", "train_valid_seconds"})
    curve = [r.model_dump(exclude=TIMES) for r in run.read_curve()]
    return metrics, run.read_per_query(), curve


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    assert main(_command(out)) == 0
    return _results(out)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "n", "when", "match"),
    [
        # after the fingerprint and config, before any training
        ("tgraph.runs.rundir:RunDir.begin", 1, "after", ""),
        # between an epoch's curve record and its checkpoint
        ("tgraph.runs.rundir:RunDir.append_curve", 2, "after", ""),
        # while writing the last checkpoint of the selection
        ("tgraph.train.trainer:save_checkpoint", 3, "before", "last.pt"),
        # during the refit, after its second record (it continues from its first epoch)
        ("tgraph.runs.rundir:RunDir.append_curve", 5, "after", ""),
        # while writing the refit's checkpoint of its second epoch
        ("tgraph.train.trainer:save_checkpoint", 2, "before", "refit_last.pt"),
        # after the per-query results, before metrics.json
        ("tgraph.runs.rundir:RunDir._write_text", 1, "before", "metrics.json"),
    ],
)
def test_sigkill_then_resume_equals_an_uninterrupted_run(
    tmp_path, uninterrupted, target, n, when, match
):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    killed = subprocess.run(
        [sys.executable, str(WRAPPER), target, str(n), when, match, "--", *_command(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run = RunDir(run_of(tmp_path))
    assert not run.finished  # a killed run never looks finished
    assert main([*_command(tmp_path), "--resume"]) == 0
    metrics, per_query, curve = _results(tmp_path)
    expected_metrics, expected_per_query, expected_curve = uninterrupted
    assert metrics == expected_metrics
    pd.testing.assert_frame_equal(per_query, expected_per_query)
    assert curve == expected_curve  # no epoch lost or recorded twice
    # every session's environment is kept (a kill before the first session leaves none)
    sessions = ["resume"] if target.endswith("begin") else ["new", "resume"]
    assert [session["note"] for session in run.environments()] == sessions
    assert json.loads(run.layout.fingerprint.read_text())["amendments"] == []
