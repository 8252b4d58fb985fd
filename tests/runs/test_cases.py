"""Issue 10's cases 1, 2, 3, 4, 9 and 10 (provenance) end to end, through run_experiment and
compare on a tiny synthetic experiment."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.runs.helpers import run_of, tiny
from tgraph.compare import collect_runs, compare, leaderboard
from tgraph.config import ExperimentConfig
from tgraph.data.protocols import prepare_split
from tgraph.errors import CompareError, RunDirError
from tgraph.experiment import plan, run_experiment
from tgraph.runs import Fingerprint, RunDir
from tgraph.train.recipe import build_trainer


def test_case1_compare_refuses_to_average_configurations(tmp_path):
    """Seeds 0-2, then seed 0 again with another lr and embedding_dim (``overwrite``): the
    board must not show "3 seeds" of a mixture."""
    run_experiment(tiny(tmp_path, "seeds=[0,1,2]"))
    other = tiny(
        tmp_path,
        "models=[{name: bprmf, config: {embedding_dim: 16}}]",
        "train.lr=0.05",
    )
    run_experiment(other, overwrite=True)
    with pytest.raises(CompareError, match=r"bprmf have 2 configurations") as error:
        compare(tmp_path)
    assert str(run_of(tmp_path, seed=0)) in str(error.value)
    assert str(run_of(tmp_path, seed=2)) in str(error.value)
    runs = collect_runs(tmp_path, allow_mixed=True)
    board = leaderboard(runs, metrics=["mrr"]).set_index("model")
    seeds = {label.split(" [")[0]: [] for label in board.index}
    for label, row in board.iterrows():
        assert label.startswith("bprmf [") and len(label) == len("bprmf [12345678]")
        seeds[label.split(" [")[0]].append(int(row["seeds"]))
    assert sorted(seeds["bprmf"]) == [1, 2]


def test_case1_seeds_are_distinct_seeds(tmp_path):
    """Two copies of one run below the compared folder are not two seeds."""
    run_experiment(tiny(tmp_path / "a", "seeds=[0,1]"))
    run_experiment(tiny(tmp_path / "b", "seeds=[0]"))
    with pytest.raises(CompareError, match="seed 0 more than once"):
        collect_runs(tmp_path)
    assert leaderboard(collect_runs(tmp_path / "a"), metrics=["mrr"])["seeds"].tolist() == [2]


def test_case2_rerun_with_another_config_is_refused_and_nothing_is_written(tmp_path):
    run_experiment(tiny(tmp_path))
    run = RunDir(run_of(tmp_path))
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with pytest.raises(RunDirError, match=r"another configuration: train\.lr 0\.01 -> 0\.02"):
        run_experiment(tiny(tmp_path, "train.lr=0.02"))
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before
    # the same command again: the finished run is reported, not trained again
    summary = run_experiment(tiny(tmp_path))
    assert summary["seeds"].tolist() == [1]
    assert run.layout.metrics.read_bytes() == before["metrics.json"]


def test_case2_a_crash_after_new_settings_leaves_no_finished_looking_run(tmp_path, monkeypatch):
    """Resuming a finished run with more epochs withdraws its results before training: a
    crash then leaves an unfinished run that compare does not report."""
    run_experiment(tiny(tmp_path))

    def crash(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr("tgraph.experiment.train_one", crash)
    with pytest.raises(RuntimeError, match="killed"):
        run_experiment(tiny(tmp_path, "train.epochs=3"), resume=True)
    run = RunDir(run_of(tmp_path))
    assert not run.finished and run.read_config()["train"]["epochs"] == 3
    with pytest.raises(CompareError, match="no finished run"):
        compare(tmp_path)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("dataset.options.seed=4", "dataset.options.seed"),
        ("models=[{name: bprmf, config: {embedding_dim: 16}}]", "model.config.embedding_dim"),
        ("train.batch_size=128", "train.batch_size"),
    ],
)
def test_case3_resume_refuses_another_config_or_data(tmp_path, override, key):
    run_experiment(tiny(tmp_path))
    config_file = RunDir(run_of(tmp_path)).layout.config
    before = config_file.read_text()
    with pytest.raises(RunDirError, match=f"cannot resume .*{re.escape(key)} "):
        run_experiment(tiny(tmp_path, override, "train.epochs=3"), resume=True)
    assert config_file.read_text() == before  # no false provenance


def test_case4_resume_applies_a_changed_lr_and_weight_decay(tmp_path):
    """The optimizer's restored state would keep the old values; the new ones are applied,
    recorded as amendments (curve, fingerprint) and the refit replays them."""
    run_experiment(tiny(tmp_path))
    amended = tiny(tmp_path, "train.lr=0.05", "train.weight_decay=0.001", "train.epochs=3")
    run_experiment(amended, resume=True)
    run = RunDir(run_of(tmp_path))
    curve = run.read_curve()
    assert [r.lr for r in curve] == [0.01, 0.01, 0.05]
    changes = {a.key: (a.old, a.new) for a in curve[2].amendments}
    assert changes == {
        "train.lr": (0.01, 0.05),
        "train.weight_decay": (0.0, 0.001),
        "train.epochs": (2, 3),
    }
    assert run.read_fingerprint().amendments[0].at  # with the session's time
    assert yaml.safe_load(run.layout.config.read_text())["train"]["lr"] == 0.05
    # an amended learning rate makes the run differ from a fresh one: not averaged with them
    fresh = Fingerprint(run.read_fingerprint().values)
    assert run.read_metrics().fingerprint == run.read_fingerprint().digest != fresh.digest
    with pytest.raises(RunDirError, match="resumed with train.epochs 2 -> 3"):
        run_experiment(
            tiny(tmp_path, "train.lr=0.05", "train.weight_decay=0.001", "train.epochs=3")
        )


def test_case4_the_trainer_sets_the_amended_values_on_the_optimizer(tmp_path):
    config = tiny(tmp_path)
    spec = plan(config)[0]
    split = prepare_split(config.dataset)
    run = RunDir(tmp_path / "r")
    build_trainer(split, spec.entry, 0, config, run_dir=run).fit()
    amended = tiny(tmp_path, "train.lr=0.05", "train.weight_decay=0.001", "train.epochs=3")
    trainer = build_trainer(split, amended.models[0], 0, amended, run_dir=run)
    trainer.fit(resume=True)
    group = trainer.optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"]) == (0.05, 0.001)
    changed = tiny(tmp_path, "train.n_neg=2", "train.epochs=4")
    with pytest.raises(RunDirError, match=r"\['train.n_neg'\] changed"):
        build_trainer(split, changed.models[0], 0, changed, run_dir=run).fit(resume=True)


def test_case9_no_run_leaves_the_output_folder(tmp_path):
    """Even a configuration that bypassed validation cannot place a run outside."""
    config = ExperimentConfig.model_construct(**{**dict(tiny(tmp_path)), "experiment": "../../x"})
    with pytest.raises(RunDirError, match="leave the output folder"):
        plan(config)
    with pytest.raises(RunDirError):
        run_experiment(config)
    assert not (tmp_path.parent.parent / "x").exists()


def test_case10_every_session_keeps_its_provenance(tmp_path):
    run_experiment(tiny(tmp_path))
    run_experiment(tiny(tmp_path, "train.epochs=3"), resume=True)
    run = RunDir(run_of(tmp_path))
    sessions = run.environments()
    assert [s["note"] for s in sessions] == ["new", "resume"]
    assert all(s["versions"]["torch"] for s in sessions)
    log = run.layout.log.read_text()
    assert log.count("==== session") == 2 and log.index("session 1 (new)") < log.index("session 2")
    assert log.count("bprmf seed 0: test") == 2
    assert [r.epoch for r in run.read_curve()] == [1, 2, 3]
