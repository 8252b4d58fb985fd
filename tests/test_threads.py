"""tgraph's OpenMP wait policy (tgraph.threads): set before torch loads, a user's value kept,
recorded in the run environment. Each case imports in a fresh interpreter (the policy is
decided once per process, at the first ``import tgraph``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tgraph import threads
from tgraph.runs.environment import environment

REPO = Path(__file__).resolve().parents[1]


def _python(code: str, **variables: str | None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with ``variables`` set (None: removed)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "default"}
    for name, value in variables.items():
        env.pop(name, None)
        if value is not None:
            env[name] = value
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


_REPORT = (
    "import json, os\n"
    "from tgraph.threads import record\n"
    "print(json.dumps({'env': os.environ.get('OMP_WAIT_POLICY'), **record()}))\n"
)


def _report(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_policy_set_when_tgraph_is_imported_before_torch():
    code = "import tgraph\nimport torch\ntorch.set_num_threads(2)\n" + _REPORT
    done = _python(code, OMP_WAIT_POLICY=None, OMP_NUM_THREADS=None)
    report = _report(done)
    assert report["env"] == "PASSIVE"
    assert report["omp_wait_policy"] == "PASSIVE"
    assert report["omp_wait_policy_source"] == "tgraph"
    assert report["torch_threads"] == 2
    assert "RuntimeWarning" not in done.stderr


@pytest.mark.parametrize("value", ["ACTIVE", "passive"])
def test_explicit_policy_is_kept(value):
    done = _python("import tgraph\n" + _REPORT, OMP_WAIT_POLICY=value)
    report = _report(done)
    assert report["env"] == report["omp_wait_policy"] == value
    assert report["omp_wait_policy_source"] == "user"
    assert report["variables"]["OMP_WAIT_POLICY"] == value


def test_torch_first_without_policy_warns_once_and_records_unset():
    code = (
        "import torch\ntorch.set_num_threads(2)\nimport tgraph\n"
        "from tgraph.threads import configure\nconfigure()\n" + _REPORT
    )
    done = _python(code, OMP_WAIT_POLICY=None, OMP_NUM_THREADS=None)
    report = _report(done)
    assert report["env"] is None  # too late to change: tgraph does not pretend it did
    assert report["omp_wait_policy"] is None
    assert report["omp_wait_policy_source"] == "unset"
    assert done.stderr.count("RuntimeWarning") == 1
    assert "OMP_WAIT_POLICY=PASSIVE" in done.stderr


def test_torch_first_with_one_thread_does_not_warn():
    code = "import torch\ntorch.set_num_threads(1)\nimport tgraph\n" + _REPORT
    done = _python(code, OMP_WAIT_POLICY=None)
    assert _report(done)["omp_wait_policy_source"] == "unset"
    assert "RuntimeWarning" not in done.stderr


def test_cli_threads_option_sets_torch_and_children(monkeypatch, capsys):
    """``tgraph run --threads N``: torch's threads, and OMP_NUM_THREADS for child processes."""
    import torch

    from tgraph.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert main(["run", "--threads", "1", "--config", "demo", "--dry-run"]) == 0
    assert torch.get_num_threads() == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_set_threads_rejects_zero():
    with pytest.raises(ValueError, match="at least 1"):
        threads.set_threads(0)


def test_environment_records_threads():
    record = environment()["threads"]
    assert set(record) == {
        "omp_wait_policy",
        "omp_wait_policy_source",
        "torch_threads",
        "cpus",
        "variables",
    }
    assert record["omp_wait_policy"] == os.environ.get("OMP_WAIT_POLICY")
    assert record["omp_wait_policy_source"] in {"user", "tgraph", "unset"}
    assert record["torch_threads"] >= 1  # the tests import torch (conftest)
    assert record["cpus"] >= 1
    json.dumps(record)
