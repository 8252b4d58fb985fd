"""Optuna studies: pruning, crash and resume, parallel workers (journal file, PostgreSQL with
heartbeats), export of the best configuration, re-training, plots and config errors."""

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

from tests.postgres import find_bin, postgres_server
from tgraph.config import ConfigError, load_config
from tgraph.study_plots import read_curve
from tgraph.tune import counted_trials, finish_study, load_study, retried_from, run_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
State = optuna.trial.TrialState

SYNTHETIC = {
    "experiment": "t",
    "seeds": [0],
    "dataset": {
        "name": "synthetic",
        "options": {"n_users": 100, "n_pois": 150, "n_events": 6000, "days": 30, "seed": 1},
    },
    "metrics": ["acc@10", "ndcg@10", "mrr"],
    "train": {
        "epochs": 3,
        "batch_size": 256,
        "valid_metric": "mrr",
        "metrics": ["mrr"],
        "progress": False,
    },
    "models": [{"name": "bprmf"}],
    "study": {
        "n_trials": 6,
        "n_startup_trials": 2,
        "pruner": {"type": "none"},
        "space": {
            "model.config.embedding_dim": {"type": "categorical", "choices": [8, 16]},
            "train.lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
        },
        "top_k": 1,
        "retrain_seeds": [1],
    },
}


def _write(tmp_path: Path, config: dict, name: str = "study.yaml") -> Path:
    config = {**config, "output_dir": str(tmp_path / "runs")}
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def _worker(config: Path, *args: str) -> subprocess.Popen:
    """``tgraph tune --search-only`` in a new process (one thread, as on a shared machine)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DGLBACKEND": "pytorch"}
    command = [sys.executable, "-m", "tgraph.cli", "tune", "--config", str(config), *args]
    return subprocess.Popen(
        [*command, "--search-only"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _finish(process: subprocess.Popen, timeout: float = 120) -> None:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output.decode()[-3000:]


def _wait_for(predicate, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate()[0].decode()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _trials(name: str, storage) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


def test_real_data_study_prunes_survives_sigkill_and_resumes(tmp_path, root):
    config = {
        **SYNTHETIC,
        "dataset": {"name": "movielens_100k", "protocol": "leave_last_out"},
        "metrics": ["recall@10", "ndcg@10"],
        "train": {**SYNTHETIC["train"], "epochs": 4, "batch_size": 4096, "valid_metric": "ndcg@10"},
        "study": {
            **SYNTHETIC["study"],
            "n_trials": 7,
            "n_startup_trials": 3,
            "pruner": {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
            "space": {
                "model.config.embedding_dim": {"type": "categorical", "choices": [16, 64]},
                "train.lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
            },
        },
    }
    path = _write(tmp_path, config)
    study_def = load_study([path])
    storage = f"sqlite:///{study_def.folder.resolve() / 'study.db'}"

    def finished():
        # read the storage only once the worker has created it (trial 0's folder exists):
        # two processes creating the SQLite schema at once fail with "table already exists"
        if not (study_def.folder / "trials" / "0000").exists():
            return {}
        return {t.number: (t.state, t.value) for t in _trials(study_def.name, storage)
                if t.state in (State.COMPLETE, State.PRUNED)}  # fmt: skip

    first = _worker(path, f"--data-root={root}")
    _wait_for(lambda: len(finished()) >= 3, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    before = finished()
    assert len(before) >= 3

    # the same command resumes; finish_study then exports, plots and re-trains in-process
    _finish(_worker(path, f"--data-root={root}"))
    study = run_study(study_def, root)  # budget spent: runs nothing, loads the study
    trials = study.get_trials(deepcopy=False)
    after = {t.number: (t.state, t.value) for t in trials}
    assert {n: after[n] for n in before} == before  # no finished trial lost or changed
    assert counted_trials(study) >= 7
    assert any(t.state == State.PRUNED for t in trials)
    assert trials[0].params == {"model.config.embedding_dim": 64, "train.lr": 1e-3}  # defaults
    # only the trial in flight at the kill is left running (its heartbeat is not stale yet)
    assert sum(t.state == State.RUNNING for t in trials) <= 1
    # every validation was reported (Trainer.fit's on_epoch) as written to the trial's curve;
    # pruned trials stopped before the last epoch
    for t in trials:
        if t.state in (State.COMPLETE, State.PRUNED):
            curve = read_curve(study_def.folder / "trials" / f"{t.number:04d}" / "curve.jsonl")
            assert t.intermediate_values == {r["epoch"]: r["valid_ndcg@10"] for r in curve}
            assert max(t.intermediate_values) == (4 if t.state == State.COMPLETE else len(curve))
        if t.state == State.PRUNED:
            assert 1 <= max(t.intermediate_values) < 4

    result = finish_study(study, study_def, root)
    best = yaml.safe_load(result["best_config"].read_text())
    config_back = load_config([result["best_config"]])  # ready to run
    entry = config_back.models[0]
    assert entry.train["lr"] == study.best_params["train.lr"] == best["models"][0]["train"]["lr"]
    assert entry.config["embedding_dim"] == study.best_params["model.config.embedding_dim"]
    retrain = result["retrain"]
    assert list(retrain["model"]) == [f"trial{study.best_trial.number:04d}"]
    assert retrain["selected"].all() and 0 < retrain.loc[0, "ndcg@10_mean"] <= 1
    for png in result["plots"]:
        assert png.suffix == ".png" and png.stat().st_size > 1000
    names = {p.stem for p in result["plots"]}
    assert names == {"history", "importances", "intermediate_values", "parallel_coordinates"}


def test_two_workers_share_a_journal_file(tmp_path):
    path = _write(tmp_path, SYNTHETIC)
    journal = f"journal:{tmp_path / 'study.journal'}"
    workers = [_worker(path, "--storage", journal, "--worker", str(k)) for k in (0, 1)]
    for worker in workers:
        _finish(worker)
    study_def = load_study([path])
    study = optuna.load_study(study_name=study_def.name, storage=study_def.storage(journal))
    trials = study.get_trials()
    assert counted_trials(study) >= 6
    assert [t.number for t in trials] == list(range(len(trials)))
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both workers ran trials
    assert len({t.params["train.lr"] for t in trials}) == len(trials)  # no duplicated sample


@pytest.fixture(scope="module")
def postgres_url():
    bin_dir = find_bin()
    if bin_dir is None:
        message = "PostgreSQL binaries not found (apt-get install postgresql)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with postgres_server(bin_dir) as url:
        yield url


def test_postgres_workers_retry_the_trial_of_a_killed_worker(tmp_path, postgres_url):
    config = {**SYNTHETIC, "train": {**SYNTHETIC["train"], "epochs": 6}}
    config["study"] = {**SYNTHETIC["study"], "n_trials": 8, "heartbeat_interval": 1}
    config["study"]["grace_period"] = 3
    path = _write(tmp_path, config)
    study_def = load_study([path])
    storage = study_def.storage(postgres_url)
    victim = _worker(path, "--storage", postgres_url, "--worker", "1")

    def victim_trial():
        return [t for t in _trials(study_def.name, storage)
                if t.state == State.RUNNING and t.user_attrs.get("worker", "").endswith(
                    f":{victim.pid}")]  # fmt: skip

    _wait_for(lambda: victim_trial(), victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed = victim_trial()[0]
    # the second worker starts once the victim's heartbeat is stale, so that it must find and
    # retry the dead trial (a worker that started earlier could finish the whole budget within
    # the grace period and never look at it)
    time.sleep(config["study"]["grace_period"] + 2 * config["study"]["heartbeat_interval"])
    _finish(_worker(path, "--storage", postgres_url, "--worker", "0"))

    study = optuna.load_study(study_name=study_def.name, storage=storage)
    trials = study.get_trials()
    assert trials[killed.number].state == State.FAIL  # the heartbeat went stale
    retries = [
        t for t in trials
        if retried_from(t) == killed.number
    ]  # fmt: skip
    assert len(retries) == 1
    assert retries[0].state in (State.COMPLETE, State.PRUNED)
    assert retries[0].params == killed.params
    assert counted_trials(study) >= 8


def test_multi_objective_study_has_a_pareto_front(tmp_path):
    config = {**SYNTHETIC, "study": {**SYNTHETIC["study"], "n_trials": 4}}
    config["study"]["objectives"] = ["valid", "train_seconds"]
    study_def = load_study([_write(tmp_path, config)])
    study = run_study(study_def)
    assert len(study.directions) == 2 and counted_trials(study) == 4
    result = finish_study(study, study_def)
    pareto = (study_def.folder / "pareto.csv").read_text().splitlines()
    assert len(pareto) == 1 + len(study.best_trials)
    names = {p.stem for p in result["plots"]}
    assert {"pareto_front", "history", "parallel_coordinates"} <= names
    for png in result["plots"]:
        assert png.stat().st_size > 1000
    # the selected configuration is chosen on validation among re-trained Pareto trials
    assert result["retrain"]["selected"].sum() == 1
    assert (study_def.folder / "selected.yaml").is_file()


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("study.space={model.config.dimm: {type: int, low: 1, high: 4}}", "model.config.dimm"),
        ("study.space={optimiser.lr: {type: float, low: 0.1, high: 1}}", "study.space.optimiser"),
        ("study.space={train.seed: {type: int, low: 0, high: 4}}", "not a searchable"),
        ("study.space={train.lr: {type: gaussian}}", "study.space.train.lr.type"),
        ("study.space={train.lr: {type: float, low: 0.1, high: 0.01}}", "'low' < 'high'"),
        ("study.space={train.lr: {type: float, low: 0, high: 0.1, log: true}}", "low > 0"),
        ("study.space={train.lr: {type: categorical}}", "needs 'choices'"),
        (
            "study.space={model.config.embedding_dim: {type: float, low: 8, high: 64}}",
            "is an integer",
        ),
        ("study.space={train.optimizer: {type: float, low: 1, high: 2}}", "not a number"),
        ("study.n_trail=3", "study.n_trail"),
        ("study.retrain_seeds=[0, 1]", "fresh seeds"),
        ("study.objectives=[train_seconds]", "study.objectives"),
        ("models=[{name: pop}, {name: markov}]", "exactly one model"),
        ("models=[{name: nosuch}]", "unknown model"),
        ("seeds=[]", "key 'seeds'"),
    ],
)
def test_study_config_errors(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        load_study([_write(tmp_path, SYNTHETIC)], [override])
