"""Optuna studies: exact resume after SIGKILL (real processes), study identity (fingerprints),
dead workers' trials on every storage, the exact budget, pruning, parallel workers (journal
file, PostgreSQL with heartbeats), export of each trial's own configuration, re-training,
plots and config errors."""

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
from tgraph.config import load_config
from tgraph.errors import ConfigError, StudyError
from tgraph.runs import RunDir
from tgraph.tune import (
    counted_trials,
    export_best,
    finish_study,
    load_study,
    open_study,
    retrain_top,
    retried_from,
    run_study,
    trial_config,
)
from tgraph.tune.sampler import ContinuingSampler
from tgraph.tune.search import objective
from tgraph.tune.storage import OWNER, owner_gone, owner_record

optuna.logging.set_verbosity(optuna.logging.WARNING)
State = optuna.trial.TrialState
COUNTED = (State.COMPLETE, State.PRUNED)

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

#: a study of seconds whose trials last long enough to be killed in the middle (4 epochs of
#: ~0.1 s; never pruned before epoch 2), with the default configuration inside the space
TINY = {
    **SYNTHETIC,
    "experiment": "k",
    "dataset": {
        "name": "synthetic",
        "options": {"n_users": 60, "n_pois": 80, "n_events": 4000, "days": 20, "seed": 1},
    },
    "metrics": ["mrr"],
    "train": {**SYNTHETIC["train"], "epochs": 4, "batch_size": 64},
    "study": {
        **SYNTHETIC["study"],
        "n_trials": 6,
        "pruner": {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 2},
        "space": {
            "model.config.embedding_dim": {"type": "categorical", "choices": [8, 16, 64]},
            "train.lr": {"type": "float", "low": 1e-3, "high": 5e-2, "log": True},
        },
    },
}
DEFAULTS = {"model.config.embedding_dim": 64, "train.lr": 1e-3}


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
        time.sleep(0.01)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate()


def _storage(url: str):
    """A storage for reading the study of another process (``journal:FILE`` or an RDB URL)."""
    if url.startswith("journal:"):
        backend = optuna.storages.journal.JournalFileBackend(url.removeprefix("journal:"))
        return optuna.storages.JournalStorage(backend)
    return optuna.storages.RDBStorage(url)


def _trials(name: str, storage) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
    except KeyError:  # not created yet
        return []


def _outcome(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    """What a study found: its complete and pruned trials' states, parameters and values."""
    return [(t.state.name, t.params, t.values) for t in trials if t.state in COUNTED]


# ---------------------------------------------------------------------------- case 5: resume


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[tuple]:
    """The outcome of TINY run without interruption (in this process)."""
    study = run_study(load_study([_write(tmp_path_factory.mktemp("uninterrupted"), TINY)]))
    return _outcome(study.get_trials(deepcopy=False))


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_sigkill_anywhere_then_the_same_command_ends_as_an_uninterrupted_study(
    tmp_path, storage, uninterrupted
):
    """Case 5: ``tgraph tune`` killed during trial 0 (the defaults), right after a trial and in
    the middle of a later trial, then run again, finds the complete and pruned trials of an
    uninterrupted study (parameters and values, in order): the killed trials are failed, not
    left RUNNING, and retried with their parameters, the defaults are evaluated, and the
    restarted sampler does not repeat the first trials' parameters."""
    path = _write(tmp_path, TINY)
    spec = load_study([path])
    if storage == "sqlite":
        url, args = f"sqlite:///{spec.folder.resolve() / 'study.db'}", []
    else:
        url = f"journal:{tmp_path / 'study.journal'}"
        args = ["--storage", url]
    reader = []  # opened once the first worker has created the storage

    def trials() -> list[optuna.trial.FrozenTrial]:
        if not reader:
            if not (spec.folder / "trials" / "0000").exists():
                return []
            reader.append(_storage(url))
        return _trials(spec.name, reader[0])

    def counted() -> int:
        return sum(t.state in COUNTED for t in trials())

    def mid_trial(finished: int):
        """A trial has validated an epoch (of 4) after ``finished`` trials were counted."""

        def check() -> bool:
            found = trials()
            if sum(t.state in COUNTED for t in found) < finished:
                return False
            for t in found:
                curve = RunDir(spec.folder / "trials" / f"{t.number:04d}").layout.curve
                if t.state == State.RUNNING and curve.is_file() and "\n" in curve.read_text():
                    return True
            return False

        return check

    points = [mid_trial(0), lambda: counted() >= 2, mid_trial(3)]
    if storage == "journal":
        points = [mid_trial(0), mid_trial(3)]
    killed: list[int] = []
    for point in points:
        process = _worker(path, *args)
        _wait_for(point, process)
        _kill(process)
        killed += [t.number for t in trials() if t.state == State.RUNNING]
    assert killed[0] == 0 and len(killed) >= 2  # trial 0 and a later trial died mid-way
    _finish(_worker(path, *args))

    final = trials()
    assert _outcome(final) == uninterrupted
    assert not [t.number for t in final if t.state in (State.RUNNING, State.WAITING)]
    assert sum(t.state in COUNTED for t in final) == TINY["study"]["n_trials"]
    for number in killed:
        assert final[number].state == State.FAIL
        retries = [t for t in final if retried_from(t) == number]
        assert len(retries) == 1 and retries[0].params == final[number].params
    assert final[0].params == DEFAULTS == _outcome(final)[0][1]  # the defaults were evaluated
    params = [tuple(p.values()) for _, p, _ in _outcome(final)]
    assert len(set(params)) == len(params)  # nothing sampled twice


def test_a_restarted_sampler_continues_where_a_seeded_tpe_repeats():
    """Case 5: a seeded TPE sampler restarted after 3 trials draws trials 0-1 again; the
    sampler of tgraph.tune, restarted at any trial, draws an uninterrupted study's trials."""

    def run(sampler, stops: list[int]) -> list[dict]:
        storage = optuna.storages.InMemoryStorage()
        for n in stops:  # a new sampler per process, as after each restart
            study = optuna.create_study(
                storage=storage, study_name="s", sampler=sampler(), load_if_exists=True
            )
            study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("y", 0, 9), n)
        return [t.params for t in study.trials]

    def continuing():
        return ContinuingSampler(seed=0, worker=0, n_startup_trials=3)

    whole = run(continuing, [8])
    assert run(continuing, [3, 1, 4]) == whole
    assert len({tuple(p.values()) for p in whole}) == len(whole)
    assert run(lambda: ContinuingSampler(seed=0, worker=1, n_startup_trials=3), [8]) != whole

    def seeded():
        return optuna.samplers.TPESampler(seed=0, n_startup_trials=10)

    repeated = run(seeded, [3, 2])
    assert repeated[3:] == repeated[:2]  # the old behaviour


def test_the_default_trial_is_queued_until_it_has_finished(tmp_path, monkeypatch):
    """Case 5: a study whose default trial crashed queues the defaults again (they used to be
    queued only into an empty study)."""
    spec = load_study([_write(tmp_path, TINY)], ["study.n_trials=2"])

    def crash(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(spec, "train", crash)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_study(spec)
    monkeypatch.undo()
    study = run_study(spec)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [State.FAIL, State.COMPLETE, State.COMPLETE]
    assert trials[0].params == trials[1].params == DEFAULTS


def test_a_worker_is_dead_once_its_process_is_gone():
    """Trials record their process; on its machine, a process that ended, a reused process id
    or a reboot mean the trial is dead; a process on another machine is left to heartbeats."""
    me = owner_record()
    assert not owner_gone(me)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert owner_gone({**me, "pid": child.pid})
    assert owner_gone({**me, "start": me["start"] + 1})  # the id now names another process
    assert owner_gone({**me, "boot": "before-a-reboot"})
    assert not owner_gone({**me, "host": "elsewhere", "pid": child.pid})


def test_a_trial_beyond_the_budget_is_not_run(tmp_path):
    """The budget is exact over workers: a worker does not start while running trials hold
    every place, and a trial numbered beyond the first ``n_trials`` live trials (two workers
    asked at once) is not trained."""
    spec = load_study([_write(tmp_path, TINY)], ["study.n_trials=1", "study.enqueue_default=false"])
    study = open_study(spec)
    with pytest.warns(UserWarning, match="Heartbeat"):
        running = study.ask()  # another live worker's trial holds the only place
        running.set_user_attr(OWNER, owner_record())
        late = study.ask()
        late.set_user_attr(OWNER, owner_record())
    run_study(spec)  # nothing to run, no data loaded
    assert len(study.get_trials(deepcopy=False)) == 2
    with pytest.raises(Exception, match="beyond the budget of 1 trials"):
        objective(spec, split_=None)(late)
    assert study.get_trials(deepcopy=False)[late.number].user_attrs["surplus"] is True


# ---------------------------------------------------------------------------- case 6: identity


def test_an_edited_study_is_a_new_study(tmp_path):
    """Case 6: editing the experiment, the data or the study definition starts a new study
    (its name and folder carry the fingerprint) instead of joining the old one, so best.yaml
    pairs values with the settings that produced them; a bigger budget continues the study."""
    path = _write(tmp_path, TINY)
    first = load_study([path], ["study.n_trials=2"])
    run_study(first)
    assert load_study([path], ["study.n_trials=3", "study.top_k=2"]).name == first.name
    for edit in [
        "train.epochs=2",
        "models=[{name: bprmf, config: {init_std: 0.05}}]",
        "dataset.options.n_events=3000",
        "dataset.protocol=chronological",
        "seeds=[5]",
        "study.space={train.lr: {type: float, low: 1.0e-3, high: 0.1, log: true}}",
        "study.seed=1",
    ]:
        edited = load_study([path], ["study.n_trials=2", edit])
        assert edited.name != first.name and edited.folder != first.folder, edit
    edited = load_study([path], ["study.n_trials=2", "train.epochs=2"])
    study = run_study(edited)
    assert counted_trials(study) == 2  # trained: the old study's trials were not counted
    assert {t.user_attrs["config"]["train"]["epochs"] for t in study.trials} == {2}
    assert yaml.safe_load(export_best(study, edited).read_text())["train"]["epochs"] == 2


@pytest.mark.slow
def test_a_named_old_study_pairs_each_value_with_the_settings_it_ran(tmp_path, caplog):
    """Case 6, joined on purpose: a study named explicitly after an edit keeps each trial's own
    configuration; best.yaml is the best trial's, and re-training trials of different data on
    one split is refused, naming the key."""
    study = {**TINY["study"], "n_trials": 2, "top_k": 5, "pruner": {"type": "none"}}
    path = _write(tmp_path, {**TINY, "study": study})
    first = load_study([path])
    run_study(first)
    # one epoch of one batch: the new trials are worse than the old ones
    edits = [f"study.name={first.name}", "study.n_trials=4", "train.epochs=1"]
    edited = load_study([path], [*edits, "train.batch_size=4096"])
    assert edited.folder == first.folder
    with caplog.at_level("WARNING", logger="tgraph.tune"):
        study = run_study(edited)
    assert "model.train.batch_size, model.train.epochs" in caplog.text
    ran = [(t.user_attrs["config"]["train"]["epochs"], t.params) for t in study.trials]
    assert [epochs for epochs, _ in ran] == [4, 4, 1, 1]
    assert ran[0][1] == ran[2][1] == DEFAULTS  # the new definition's defaults ran too
    best = study.best_trial
    assert best.number in (0, 1)
    exported = yaml.safe_load(export_best(study, edited).read_text())
    assert exported == trial_config(study, best)
    assert exported["train"] == TINY["train"]

    other = load_study([path], [f"study.name={first.name}", "study.n_trials=5",
                                "dataset.options.n_events=3000"])  # fmt: skip
    study = run_study(other)
    with pytest.raises(StudyError, match=r"\(dataset\.options\.n_events\)"):
        retrain_top(study, other)


def test_a_named_study_with_other_objectives_is_refused(tmp_path):
    path = _write(tmp_path, TINY)
    first = load_study([path], ["study.n_trials=0"])
    run_study(first)  # creates the study; nothing to run
    other = [f"study.name={first.name}", "study.objectives=[valid, train_seconds]"]
    with pytest.raises(StudyError, match="objectives"):
        run_study(load_study([path], other))


def test_tune_without_a_study_section_is_a_config_error(tmp_path):
    from tgraph.cli import main

    path = _write(tmp_path, {k: v for k, v in TINY.items() if k != "study"})
    with pytest.raises(ConfigError, match="key 'study': the config has no 'study' section"):
        load_study([path])
    assert main(["tune", "--config", str(path)]) == 2


# ---------------------------------------------------------------------------- storages, workers
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
                if t.state in COUNTED}  # fmt: skip

    first = _worker(path, f"--data-root={root}")
    _wait_for(lambda: len(finished()) >= 3, first)
    _kill(first)
    before = finished()
    assert len(before) >= 3

    # the same command resumes; finish_study then exports, plots and re-trains in-process
    _finish(_worker(path, f"--data-root={root}"))
    study = run_study(study_def, root)  # budget spent: runs nothing, loads the study
    trials = study.get_trials(deepcopy=False)
    after = {t.number: (t.state, t.value) for t in trials}
    assert {n: after[n] for n in before} == before  # no finished trial lost or changed
    assert counted_trials(study) == 7
    assert any(t.state == State.PRUNED for t in trials)
    assert trials[0].params == {"model.config.embedding_dim": 64, "train.lr": 1e-3}  # defaults
    assert not [t for t in trials if t.state == State.RUNNING]  # the killed one was failed
    # every validation was reported (Trainer.fit's on_epoch) as written to the trial's curve;
    # pruned trials stopped before the last epoch
    for t in trials:
        if t.state in COUNTED:
            curve = RunDir(study_def.folder / "trials" / f"{t.number:04d}").read_curve()
            assert t.intermediate_values == {r.epoch: r.valid["ndcg@10"] for r in curve}
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


@pytest.mark.slow
def test_two_workers_share_a_journal_file_and_spend_the_budget_exactly(tmp_path):
    path = _write(tmp_path, SYNTHETIC)
    journal = f"journal:{tmp_path / 'study.journal'}"
    workers = [_worker(path, "--storage", journal, "--worker", str(k)) for k in (0, 1)]
    for worker in workers:
        _finish(worker)
    study_def = load_study([path])
    trials = _trials(study_def.name, _storage(journal))
    counted = [t for t in trials if t.state in COUNTED]
    assert len(counted) == 6  # no worker ran a trial beyond the budget
    assert [t.number for t in trials] == list(range(len(trials)))
    assert len({t.user_attrs[OWNER]["pid"] for t in counted}) == 2  # both workers ran trials
    assert len({t.params["train.lr"] for t in counted}) == len(counted)  # no duplicated sample


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


@pytest.mark.slow
def test_postgres_workers_retry_the_trial_of_a_killed_worker(tmp_path, postgres_url):
    config = {**SYNTHETIC, "train": {**SYNTHETIC["train"], "epochs": 6}}
    config["study"] = {**SYNTHETIC["study"], "n_trials": 8, "heartbeat_interval": 1}
    config["study"]["grace_period"] = 3
    path = _write(tmp_path, config)
    study_def = load_study([path])
    storage = _storage(postgres_url)
    victim = _worker(path, "--storage", postgres_url, "--worker", "1")

    def victim_trial():
        # every parameter suggested: a worker killed between two suggestions leaves a trial
        # with part of them, and its retry would (rightly) carry them all
        return [t for t in _trials(study_def.name, storage)
                if t.state == State.RUNNING and len(t.params) == len(config["study"]["space"])
                and t.user_attrs.get(OWNER, {}).get("pid") == victim.pid]  # fmt: skip

    _wait_for(lambda: victim_trial(), victim)
    _kill(victim)
    killed = victim_trial()[0]
    # as if the victim had run on another machine: only its heartbeat can tell that it died
    elsewhere = {**killed.user_attrs[OWNER], "host": "elsewhere"}
    storage.set_trial_user_attr(killed._trial_id, OWNER, elsewhere)
    # the second worker starts once the victim's heartbeat is stale, so that it must find and
    # retry the dead trial (a worker that started earlier could finish the whole budget within
    # the grace period and never look at it)
    time.sleep(config["study"]["grace_period"] + 2 * config["study"]["heartbeat_interval"])
    _finish(_worker(path, "--storage", postgres_url, "--worker", "0"))

    trials = _trials(study_def.name, storage)
    assert trials[killed.number].state == State.FAIL  # the heartbeat went stale
    retries = [t for t in trials if retried_from(t) == killed.number]
    assert len(retries) == 1
    assert retries[0].state in COUNTED
    assert retries[0].params == killed.params
    assert sum(t.state in COUNTED for t in trials) == 8


@pytest.mark.slow
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
        ("study.space={train.weight_decay: {type: float, low: -0.1, high: 0.1}}", "-0.1 is not"),
        ("study.space={train.optimizer: {type: categorical, choices: [adam, lbfgs]}}", "lbfgs"),
        ("study.space={train.lr: {type: categorical}}", "needs 'choices'"),
        (
            "study.space={model.config.embedding_dim: {type: float, low: 8, high: 64}}",
            "is an integer",
        ),
        ("study.space={train.optimizer: {type: float, low: 1, high: 2}}", "not a number"),
        ("study.n_trail=3", "study.n_trail"),
        ("study.name=../elsewhere", "study.name"),
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
