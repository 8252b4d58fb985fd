"""A study whose trials train on several processes (:mod:`tgraph.tune.group`): ``tgraph tune
--nproc 2`` runs real torchrun groups on 127.0.0.1 (gloo, one thread per rank) in the slow
tests; the others check the command line, the study's identity and the checks of a group
without processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tgraph.cli import main
from tgraph.errors import ConfigError, StudyError
from tgraph.runs import RunDir
from tgraph.train import distributed
from tgraph.train.distributed import Context
from tgraph.tune import load_study, retried_from
from tgraph.tune.group import GroupBroken, check_same_study, trial_of_group
from tgraph.tune.storage import OWNER

REPO = Path(__file__).resolve().parents[2]
State = optuna.trial.TrialState
COUNTED = (State.COMPLETE, State.PRUNED)

#: trials of about a second; a median pruner that may prune from the second trial on
STUDY = {
    "experiment": "g",
    "seeds": [0],
    "dataset": {
        "name": "synthetic",
        "options": {"n_users": 60, "n_pois": 80, "n_events": 4000, "days": 20, "seed": 1},
    },
    "metrics": ["mrr"],
    "train": {
        "epochs": 3,
        "batch_size": 64,
        "valid_metric": "mrr",
        "metrics": ["mrr"],
        "progress": False,
    },
    "models": [{"name": "bprmf"}],
    "study": {
        "n_trials": 3,
        "n_startup_trials": 2,
        "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        "space": {
            "model.config.embedding_dim": {"type": "categorical", "choices": [8, 16, 64]},
            "train.lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
        },
        "top_k": 1,
        "retrain_seeds": [1],
    },
}


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**config, "output_dir": str(tmp_path / "runs")}))
    return path


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {
        **os.environ,
        "PYTHONPATH": path,
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "DGLBACKEND": "pytorch",
    }


def _start(
    *argv: str,
    launcher: tuple[str, ...] = (),
    marker: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """``tgraph tune <argv>`` (after ``launcher``, e.g. a torchrun command line) in a new
    session (its torchrun and ranks stop together), with ``env`` added to the environment;
    ``marker`` tags the processes' environment (see :func:`_rank_process`)."""
    python = launcher or (sys.executable,)
    return subprocess.Popen(
        [*python, "-m", "tgraph", "tune", "--threads", "1", *argv],
        cwd=REPO,
        env={**_env(), "TGRAPH_TEST_GROUP": marker, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(process: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for ``process``; a hang (any rank) fails the test and stops every process."""
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"a group hung for {timeout} s:\n{output[-4000:]}")
    assert process.returncode == 0, output[-6000:]
    return output


def _torchrun(node_rank: int, port: int) -> tuple[str, ...]:
    """The documented multi-machine form on this machine: node ``node_rank`` of 2, 1 process
    each, master on 127.0.0.1:``port``."""
    return (
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node-rank={node_rank}",
        "--nproc-per-node=1", "--master-addr=127.0.0.1", f"--master-port={port}",
    )  # fmt: skip


def _rank_process(marker: str, rank: int) -> int | None:
    """The pid of the process of rank ``rank`` started with ``marker`` (None if none yet)."""
    wanted = {f"TGRAPH_TEST_GROUP={marker}".encode(), f"RANK={rank}".encode()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:  # gone, or not ours
            continue
        if wanted <= environ:
            return int(entry.name)
    return None


def _check_group_trials(trials: list[optuna.trial.FrozenTrial], folder: Path) -> None:
    """Every counted trial trained on 2 ranks; a complete one, the same parameters and
    weights on both; one curve per trial, written by rank 0."""
    for t in trials:
        if t.state not in COUNTED:
            continue
        assert t.user_attrs["world_size"] == 2
        curve = RunDir(folder / "trials" / f"{t.number:04d}").read_curve()
        assert [r.epoch for r in curve] == list(range(1, len(curve) + 1))  # written once
        if t.state == State.COMPLETE:
            ranks = t.user_attrs["ranks"]
            assert len(ranks) == 2 and ranks[0] == ranks[1]
            assert ranks[0]["params"] == t.params and len(ranks[0]["digest"]) == 64


# ---------------------------------------------------------------------- without processes
def test_nproc_launches_the_tune_command_line_after_checking_the_study(tmp_path, monkeypatch):
    launched = []
    monkeypatch.setattr(distributed, "launch", lambda n, argv: launched.append((n, argv)) or 0)
    path = str(_write(tmp_path, STUDY))
    argv = ["tune", "--config", path, "--nproc", "2", "--search-only"]
    assert main(argv) == 0
    assert launched == [(2, argv)]
    assert main(["tune", "--config", path, "--nproc", "0"]) == 2
    broken = str(_write(tmp_path, {**STUDY, "study": {**STUDY["study"], "n_trials": -1}}))
    assert main(["tune", "--config", broken, "--nproc", "2"]) == 2  # refused before launching
    assert len(launched) == 1


def test_the_group_size_is_part_of_a_study_beyond_one_process(tmp_path):
    path = _write(tmp_path, STUDY)
    one, two = load_study([path]), load_study([path], world_size=2)
    assert "world_size" not in one.definition  # one-process studies keep their identity
    assert two.definition == {**one.definition, "world_size": 2}
    assert two.fingerprint != one.fingerprint and two.name != one.name


def test_a_study_on_dist_dgl_is_refused(tmp_path):
    path = _write(tmp_path, {**STUDY, "train": {**STUDY["train"], "distributed": "dist_dgl"}})
    with pytest.raises(ConfigError, match="train.distributed"):
        load_study([path])


def test_ranks_that_loaded_different_studies_are_refused(tmp_path, monkeypatch):
    spec = load_study([_write(tmp_path, STUDY)])
    two = Context(rank=0, world_size=2)
    monkeypatch.setattr(distributed, "all_gather", lambda value, ctx: [value, value])
    check_same_study(spec, two)
    monkeypatch.setattr(distributed, "all_gather", lambda value, ctx: [value, "0" * 64])
    with pytest.raises(StudyError, match="different studies"):
        check_same_study(spec, two)


def test_a_collective_failed_by_a_gone_rank_breaks_the_trial_other_errors_pass():
    gone = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed")
    with pytest.raises(GroupBroken, match="trial 7") as broken:
        with trial_of_group(7):
            raise gone
    assert broken.value.number == 7 and broken.value.__cause__ is gone
    with pytest.raises(ValueError, match="own"):  # rank 0's own error fails the trial as usual
        with trial_of_group(7):
            raise ValueError("own")


# ---------------------------------------------------------------------- real groups
@pytest.mark.slow
def test_a_two_process_study_prunes_retrains_and_leaves(tmp_path):
    """``tgraph tune --nproc 2``: the budget of complete + pruned trials, a pruned trial that
    stops both ranks (the re-training that follows it needs both), the same trial on both
    ranks, and every process gone at the end."""
    path = _write(tmp_path, STUDY)
    output = _finish(_start("--config", str(path), "--nproc", "2"))
    spec = load_study([path], world_size=2)
    storage = f"sqlite:///{spec.folder / 'study.db'}"
    trials = optuna.load_study(study_name=spec.name, storage=storage).get_trials(deepcopy=False)
    assert [t.state for t in trials].count(State.PRUNED) >= 1, output[-3000:]
    assert len([t for t in trials if t.state in COUNTED]) == 3
    _check_group_trials(trials, spec.folder)
    assert "parameters identical on 2 ranks" in output
    (retrained,) = RunDir.finished_below(spec.folder / "retrain")
    assert retrained.read_fingerprint().values["world_size"] == 2
    assert (spec.folder / "selected.yaml").exists()


@pytest.mark.slow
def test_two_groups_share_a_journal_file_and_spend_the_budget_exactly(tmp_path):
    """Two groups of 2 processes, one study, 4 trials: ``--nproc 2``, and the documented
    multi-machine form (torchrun ``--nnodes 2``, a node per launcher, here both on 127.0.0.1).
    Each group's first trial waits until the other has one too (``tests/tune/handshake.py``)."""
    study = {**STUDY["study"], "n_trials": 4}
    models = [{"name": "bprmf_handshake"}]
    config = {**STUDY, "imports": ["tests.tune.handshake"], "models": models, "study": study}
    path = _write(tmp_path, config)
    journal = tmp_path / "study.journal"
    (tmp_path / "handshake").mkdir()
    argv = ["--config", str(path), "--search-only", "--storage", f"journal:{journal}"]
    port = distributed.free_port()
    env = {"TGRAPH_TEST_HANDSHAKE": str(tmp_path / "handshake"), "TGRAPH_TEST_GROUPS": "2"}
    groups = [
        _start(*argv, "--nproc", "2", "--worker", "0", env=env),
        *(_start(*argv, "--worker", "1", launcher=_torchrun(k, port), env=env) for k in (0, 1)),
    ]
    for group in groups:
        _finish(group)
    spec = load_study([path], world_size=2)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    trials = optuna.load_study(study_name=spec.name, storage=storage).get_trials(deepcopy=False)
    counted = [t for t in trials if t.state in COUNTED]
    assert len(counted) == 4
    assert len({t.user_attrs[OWNER]["pid"] for t in counted}) == 2  # both groups ran trials
    _check_group_trials(trials, spec.folder)


@pytest.mark.slow
def test_a_rank_killed_mid_trial_ends_its_group_and_the_trial_is_retried(tmp_path):
    """SIGKILL of rank 1 in the middle of a trial: torchrun stops the group (no hang, a
    failure exit code); the same command then finishes the study, the dead trial retried with
    its parameters."""
    config = {**STUDY, "train": {**STUDY["train"], "epochs": 5}}
    path = _write(tmp_path, {**config, "study": {**STUDY["study"], "pruner": {"type": "none"}}})
    spec = load_study([path], world_size=2)
    storage = f"sqlite:///{spec.folder / 'study.db'}"
    argv = ["--config", str(path), "--nproc", "2", "--search-only"]
    marker = str(tmp_path)
    group = _start(*argv, marker=marker)
    deadline = time.monotonic() + 240

    def running_trial_1() -> bool:  # trial 1 has validated an epoch (its curve says so)
        curve = spec.folder / "trials" / "0001" / "curve.jsonl"
        return curve.exists() and curve.read_text().endswith("\n")

    while not running_trial_1():
        assert group.poll() is None, group.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "trial 1 never ran"
        time.sleep(0.05)
    pid = _rank_process(marker, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    try:
        output, _ = group.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(group.pid, signal.SIGKILL)
        pytest.fail(f"the group hung after rank 1 died:\n{group.communicate()[0][-3000:]}")
    assert group.returncode != 0, output[-3000:]
    killed = optuna.load_study(study_name=spec.name, storage=storage).trials[1]
    assert killed.state == State.RUNNING  # left running by rank 0, which has left

    _finish(_start(*argv))
    trials = optuna.load_study(study_name=spec.name, storage=storage).get_trials(deepcopy=False)
    assert trials[1].state == State.FAIL
    (retry,) = [t for t in trials if retried_from(t) == 1]
    assert retry.state == State.COMPLETE and retry.params == killed.params
    assert len([t for t in trials if t.state in COUNTED]) == 3
    _check_group_trials(trials, spec.folder)
