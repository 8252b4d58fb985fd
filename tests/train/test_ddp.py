"""Data-parallel training (PyTorch DDP, gloo) in 2 processes on 127.0.0.1, launched by torchrun.

The slow tests start real processes: ``torchrun ... ddp_worker.py`` (the documented
``torchrun ... -m tgraph run`` form, with each rank's parameters dumped) and ``tgraph run
--nproc 2``. gloo is in the CPU wheel of torch: nothing is skipped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from tgraph.cli import main
from tgraph.config import load_config
from tgraph.errors import ConfigError
from tgraph.experiment import run_experiment
from tgraph.train import distributed

WORKER = Path(__file__).with_name("ddp_worker.py")
REPO = Path(__file__).resolve().parents[2]


def _curve(run: Path) -> list[dict]:
    """A run directory's curve records as written (plain dicts: the tests compare raw fields)."""
    return [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]


def _config(tmp_path: Path, output: str, models: list[dict]) -> Path:
    config = {
        "experiment": "ddp",
        "output_dir": str(tmp_path / output),
        "seeds": [0],
        "dataset": {
            "name": "synthetic",
            "options": {"n_users": 120, "n_pois": 200, "n_events": 8000, "days": 40, "seed": 3},
            "protocol": "next_poi_chronological",
        },
        "metrics": ["acc@1", "acc@10", "mrr"],
        "train": {
            "batch_size": 256,
            "lr": 0.01,
            "epochs": 6,
            "valid_metric": "mrr",
            "metrics": ["mrr"],
            "progress": False,
        },
        "models": models,
    }
    path = tmp_path / f"{output}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "DGLBACKEND": "pytorch"}
    return {**env, **extra}


def _torchrun(dumps: Path, *argv: str) -> list[str]:
    """torchrun with 2 ranks on 127.0.0.1 running the worker: ``tgraph <argv>``, each rank's
    trained parameters dumped in ``dumps``."""
    dumps.mkdir(exist_ok=True)
    port = distributed.free_port()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1"]
    torchrun += ["--nproc-per-node=2", "--master-addr=127.0.0.1", f"--master-port={port}"]
    return [*torchrun, str(WORKER), str(dumps), *argv]


def _run(command: list[str], cwd: Path, timeout: float = 300, **env: str) -> None:
    """Run ``command`` (``env``: extra environment variables); on a timeout, stop it with
    every process it started (the ranks)."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"timed out after {timeout} s: {command}\n{output[-3000:]}")
    assert process.returncode == 0, output[-6000:]


# ---------------------------------------------------------------------- without processes
def test_shards_are_disjoint_equal_and_cover_the_order():
    order = np.random.default_rng(0).permutation(11)
    shards = [distributed.shard(order, rank, 3) for rank in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to 12 with order[0]
    assert sorted(np.concatenate(shards).tolist()) == sorted([*order.tolist(), order[0]])
    assert distributed.shard(order, 0, 1).tolist() == order.tolist()
    assert [len(distributed.shard(order[:1], r, 2)) for r in range(2)] == [1, 1]


def test_each_rank_takes_an_equal_part_of_the_batch():
    two = distributed.Context(rank=1, world_size=2)
    assert distributed.check_batch_size(256, two) == 128
    assert distributed.check_batch_size(256, distributed.Context()) == 256
    with pytest.raises(ConfigError, match="train.batch_size"):
        distributed.check_batch_size(255, two)


def test_the_launch_command_is_torchrun_on_loopback_without_nproc():
    argv = ["--debug", "run", "--config", "demo", "--nproc", "2", "--nproc=2", "seeds=[0]"]
    command = distributed.launch_command(2, argv, port=29555)
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert "--nproc-per-node=2" in command and "--master-addr=127.0.0.1" in command
    assert "--master-port=29555" in command
    assert command[-7:] == ["-m", "tgraph", "--debug", "run", "--config", "demo", "seeds=[0]"]


def test_nproc_launches_the_command_line_and_refuses_a_bad_count(tmp_path, monkeypatch):
    launched = []
    monkeypatch.setattr(distributed, "launch", lambda n, argv: launched.append((n, argv)) or 0)
    config = str(_config(tmp_path, "runs", [{"name": "bprmf"}]))
    assert main(["run", "--config", config, "--nproc", "2", "--resume"]) == 0
    assert launched == [(2, ["run", "--config", config, "--nproc", "2", "--resume"])]
    assert main(["run", "--config", config, "--nproc", "0"]) == 2
    # a dry run is only printed, never launched
    assert main(["run", "--config", config, "--nproc", "2", "--dry-run"]) == 0
    assert len(launched) == 1


def test_one_process_fingerprints_do_not_name_a_world_size(tmp_path):
    from tgraph.data import protocols
    from tgraph.experiment import plan

    config = load_config([str(_config(tmp_path, "runs", [{"name": "bprmf"}]))], [])
    (spec,) = plan(config)
    split = protocols.prepare_split(config.dataset, None)
    assert "world_size" not in spec.fingerprint(split).values


# ---------------------------------------------------------------------- 2 processes
@pytest.mark.slow
def test_two_processes_train_identical_replicas_written_once_by_rank_0(tmp_path):
    """torchrun with 2 ranks: every rank's parameters equal after training (a model whose
    loss leaves a parameter unused, and a graph model with a refit); one session, one curve,
    one result in each run directory; quality within tolerance of one process."""
    models = [{"name": "bprmf_unused"}, {"name": "lightgcn", "train": {"refit": True}}]
    config = _config(tmp_path, "runs", models)
    dumps = tmp_path / "dumps"
    _run(_torchrun(dumps, "run", "--config", str(config)), tmp_path)

    for label in ("bprmf_unused", "lightgcn"):
        rank0 = torch.load(dumps / f"{label}-rank0.pt")
        rank1 = torch.load(dumps / f"{label}-rank1.pt")
        assert rank0.keys() == rank1.keys()
        for name in rank0:
            assert torch.equal(rank0[name], rank1[name]), (label, name)

    base = tmp_path / "runs" / "ddp" / "synthetic"
    for label, records in (("bprmf_unused", 6), ("lightgcn", None)):
        run = base / label / "seed0"
        (session,) = json.loads((run / "environment.json").read_text())
        assert session["note"] == "new (2 processes)"
        curve = _curve(run)
        epochs = [(r["epoch"], r.get("refit", False)) for r in curve]
        assert len(epochs) == len(set(epochs))  # every record once
        if records is not None:
            assert len(curve) == records
        assert (run / "run.log").read_text().count("==== session") == 1
        fingerprint = json.loads((run / "fingerprint.json").read_text())
        assert fingerprint["values"]["world_size"] == 2
        assert (run / "metrics.json").is_file()
    assert (base / "lightgcn" / "seed0" / "refit.pt").is_file()
    # the weights rank 0 ranked the test part with are the best checkpoint's
    best = torch.load(base / "bprmf_unused" / "seed0" / "best.pt", weights_only=False)["model"]
    assert all(
        torch.equal(best[k], v) for k, v in torch.load(dumps / "bprmf_unused-rank0.pt").items()
    )

    # quality: test MRR within 0.03 of one process (122 test queries; the unused parameter
    # changes nothing else in bprmf)
    one = _config(tmp_path, "one", [{"name": "bprmf"}, models[1]])
    single = run_experiment(load_config([str(one)], [])).set_index("model")
    double = pd.read_csv(base / "summary.csv").set_index("model")
    assert abs(double.loc["bprmf_unused", "mrr_mean"] - single.loc["bprmf", "mrr_mean"]) < 0.03
    assert abs(double.loc["lightgcn", "mrr_mean"] - single.loc["lightgcn", "mrr_mean"]) < 0.03


@pytest.mark.slow
def test_tgraph_run_nproc_launches_two_ranks(tmp_path):
    """``tgraph run --nproc 2`` (torchrun underneath): a statistical model and a trained one."""
    config = _config(tmp_path, "runs", [{"name": "pop"}, {"name": "bprmf", "train": {"epochs": 2}}])
    command = [sys.executable, "-m", "tgraph", "run", "--nproc", "2", "--config", str(config)]
    _run(command, tmp_path)
    base = tmp_path / "runs" / "ddp" / "synthetic"
    for label in ("pop", "bprmf"):
        run = base / label / "seed0"
        assert json.loads((run / "fingerprint.json").read_text())["values"]["world_size"] == 2
        assert (run / "metrics.json").is_file()
    assert len(_curve(base / "bprmf" / "seed0")) == 2


@pytest.mark.slow
def test_a_resumed_two_process_run_equals_an_uninterrupted_one(tmp_path):
    """2 epochs, then --resume with 4 (each rank restores its own generators): the same
    parameters on every rank as 4 epochs in one go, each curve record once."""
    models = [{"name": "bprmf"}]
    whole, parts = _config(tmp_path, "whole", models), _config(tmp_path, "parts", models)
    _run(_torchrun(tmp_path / "whole", "run", "--config", str(whole), "train.epochs=4"), tmp_path)
    _run(_torchrun(tmp_path / "parts", "run", "--config", str(parts), "train.epochs=2"), tmp_path)
    resume = ["run", "--config", str(parts), "--resume", "train.epochs=4"]
    _run(_torchrun(tmp_path / "parts", *resume), tmp_path)
    for rank in (0, 1):  # the selected weights
        a = torch.load(tmp_path / "whole" / f"bprmf-rank{rank}.pt")
        b = torch.load(tmp_path / "parts" / f"bprmf-rank{rank}.pt")
        assert all(torch.equal(a[k], b[k]) for k in a)
    runs = [
        tmp_path / name / "ddp" / "synthetic" / "bprmf" / "seed0" for name in ("whole", "parts")
    ]
    # the last epoch's weights (rank 0's; the ranks' were compared by digest) and every loss
    # (the mean over ranks: each rank's negatives after the resume count)
    a, b = (torch.load(r / "last.pt", weights_only=False)["model"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    curves = [_curve(r) for r in runs]
    assert [r["epoch"] for r in curves[1]] == [1, 2, 3, 4]
    assert [r["loss"] for r in curves[0]] == [r["loss"] for r in curves[1]]
    run = runs[1]
    notes = [s["note"] for s in json.loads((run / "environment.json").read_text())]
    assert notes == ["new (2 processes)", "resume (2 processes)"]


@pytest.mark.slow
def test_a_two_process_refit_stopped_midway_resumes_after_its_last_checkpoint(tmp_path):
    """Both ranks stop after refit epoch 2 is recorded (before its checkpoint); --resume
    continues the refit after epoch 1 on both ranks: the same parameters on every rank and the
    same curve and test metrics as a run that was never stopped."""
    models = [{"name": "lightgcn", "train": {"refit": True}}]
    whole, parts = _config(tmp_path, "whole", models), _config(tmp_path, "parts", models)
    _run(_torchrun(tmp_path / "whole", "run", "--config", str(whole)), tmp_path)
    runs = [
        tmp_path / name / "ddp" / "synthetic" / "lightgcn" / "seed0" for name in ("whole", "parts")
    ]
    curves = [_curve(runs[0])]
    assert curves[0][-1]["refit_epoch"] >= 3  # a refit long enough to stop in its middle

    command = _torchrun(tmp_path / "parts", "run", "--config", str(parts))
    _run(command, tmp_path, STOP_AFTER_REFIT_EPOCH="2")
    assert (runs[1] / "refit_last.pt").is_file() and not (runs[1] / "refit.pt").exists()
    assert not (runs[1] / "metrics.json").exists()
    _run(_torchrun(tmp_path / "parts", "run", "--config", str(parts), "--resume"), tmp_path)

    for rank in (0, 1):  # the refitted weights, on both ranks
        a = torch.load(tmp_path / "whole" / f"lightgcn-rank{rank}.pt")
        b = torch.load(tmp_path / "parts" / f"lightgcn-rank{rank}.pt")
        assert all(torch.equal(a[k], b[k]) for k in a)
    curves.append(_curve(runs[1]))
    times = ("train_s", "eval_s")
    a, b = ([{k: v for k, v in r.items() if k not in times} for r in c] for c in curves)
    assert a == b  # refit epoch 2 recorded once
    resumed = (runs[1] / "run.log").read_text().split("==== session")[-1]
    assert "the refit continues after its epoch 1" in resumed
    assert "refit epoch 1/" not in resumed and "refit epoch 2/" in resumed  # 2.. trained
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    assert metrics[0]["test"] == metrics[1]["test"]
