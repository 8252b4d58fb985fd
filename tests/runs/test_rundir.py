"""The run-directory contract: safe paths, fingerprints, the check/begin decisions, results
written last."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tgraph.errors import RunDirError
from tgraph.runs import (
    Amendment,
    Fingerprint,
    RunDir,
    RunLayout,
    RunMetrics,
    run_path,
    safe_run_path,
)

CONFIG = {"model": {"name": "bprmf", "config": {"dim": 8}}, "train": {"lr": 0.01, "epochs": 2}}
DATA = {"train_events": 100, "test_queries": 10}


def _fp(**train) -> Fingerprint:
    return Fingerprint.of({**CONFIG, "train": {**CONFIG["train"], **train}}, DATA)


def _metrics(fingerprint: Fingerprint) -> RunMetrics:
    return RunMetrics(
        model="bprmf",
        seed=0,
        fingerprint=fingerprint.digest,
        best_epoch=1,
        valid_metric="mrr",
        valid={"mrr": 0.5},
        test={"mrr": 0.4},
        train_seconds=1.0,
        train_valid_seconds=1.0,
    )


def _finished(path, fingerprint: Fingerprint) -> RunDir:
    run = RunDir(path)
    run.begin(fingerprint, {"seed": 0}, run.check(fingerprint))
    run.write_results(_metrics(fingerprint), pd.DataFrame({"query": [0], "mrr": [0.4]}))
    return run


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/abs", "a\\b"])
def test_names_that_leave_the_output_folder_are_refused(tmp_path, name):
    """Case 9: no run path may leave ``output_dir``, whatever validated the names before."""
    with pytest.raises(RunDirError, match="leave the output folder"):
        safe_run_path(tmp_path, "exp", name)
    with pytest.raises(RunDirError):
        run_path(tmp_path, name, "synthetic", "bprmf", 0)
    assert run_path(tmp_path, "e", "d", "m", 3) == tmp_path / "e" / "d" / "m" / "seed3"


def test_fingerprint_digest_and_differences():
    """Canonical: key order does not matter; ignored options are left out; differences are
    named by their full key path."""
    a = Fingerprint.of({"train": {"epochs": 2, "lr": 0.01}, "model": CONFIG["model"]}, DATA)
    b = Fingerprint.of({**CONFIG, "train": {**CONFIG["train"], "progress": False}}, DATA)
    assert a.digest == b.digest and len(a.short) == 8
    # the seeds of one configuration share the digest, not the values
    seeded = Fingerprint.of({**CONFIG, "seed": 1}, DATA)
    assert seeded.digest == Fingerprint.of({**CONFIG, "seed": 2}, DATA).digest == a.digest
    assert seeded.differences(Fingerprint.of({**CONFIG, "seed": 2}, DATA)) == {"seed": (1, 2)}
    c = Fingerprint.of(CONFIG, {**DATA, "train_events": 101})
    assert a.differences(c) == {"data.train_events": (100, 101)}
    assert a.differences(_fp(lr=0.1)) == {"train.lr": (0.01, 0.1)}
    # only learning-rate and weight-decay amendments make a run differ from a fresh one
    assert a.amended([Amendment(key="train.epochs", old=2, new=3)]).digest == a.digest
    assert a.amended([Amendment(key="train.lr", old=0.1, new=0.01)]).digest != a.digest


def test_check_decisions(tmp_path):
    path = tmp_path / "seed0"
    run = RunDir(path)
    assert run.check(_fp()).action == "new" and not path.exists()  # check writes nothing
    run.begin(_fp(), {"seed": 0}, run.check(_fp()))
    with pytest.raises(RunDirError, match="unfinished run of this configuration.*--resume"):
        run.check(_fp())
    assert run.check(_fp(), resume=True).action == "resume"
    with pytest.raises(RunDirError, match=r"another configuration: train\.lr 0\.01 -> 0\.1"):
        run.check(_fp(lr=0.1))
    decision = run.check(_fp(lr=0.1, epochs=5), resume=True)
    assert decision.action == "resume"
    assert [(a.key, a.old, a.new) for a in decision.amendments] == [
        ("train.epochs", 2, 5),
        ("train.lr", 0.01, 0.1),
    ]
    other = Fingerprint.of({**CONFIG, "model": {"name": "bprmf", "config": {"dim": 9}}}, DATA)
    with pytest.raises(RunDirError, match=r"cannot resume .*model\.config\.dim 8 -> 9"):
        run.check(other, resume=True)
    assert run.check(other, overwrite=True).replace


def test_finished_runs_are_done_and_amended_resumes_withdraw_their_results(tmp_path):
    run = _finished(tmp_path / "seed0", _fp())
    assert run.check(_fp()).action == "done" and run.check(_fp(), resume=True).action == "done"
    assert run.read_metrics().test == {"mrr": 0.4}
    decision = run.check(_fp(epochs=4), resume=True)
    recorded = run.begin(_fp(epochs=4), {"seed": 0}, decision)
    # the old results are gone before training continues: the folder is not finished
    assert not run.finished and not run.layout.per_query.exists()
    assert [a.key for a in recorded.amendments] == ["train.epochs"]
    assert run.read_fingerprint().amendments == recorded.amendments


def test_overwrite_moves_the_old_run_aside(tmp_path):
    """Case 2: another configuration is never written over an old run; ``overwrite`` keeps
    the old one in a sibling folder that readers skip."""
    old = _finished(tmp_path / "m" / "seed0", _fp())
    with pytest.raises(RunDirError, match="another configuration"):
        old.check(_fp(lr=0.1))
    assert old.read_metrics().fingerprint == _fp().digest
    new = RunDir(old.path)
    new.begin(_fp(lr=0.1), {"seed": 0}, new.check(_fp(lr=0.1), overwrite=True))
    (moved,) = [p for p in (tmp_path / "m").iterdir() if p.name != "seed0"]
    assert moved.name.startswith("seed0" + RunLayout.REPLACED)
    assert RunDir(moved).read_metrics().fingerprint == _fp().digest
    assert not new.finished and new.read_fingerprint().digest == _fp(lr=0.1).digest
    assert RunDir.finished_below(tmp_path) == []  # the moved-aside run is not listed


def test_files_without_fingerprint_are_refused(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(RunDirError, match="no fingerprint.json"):
        RunDir(tmp_path).check(_fp())
    with pytest.raises(RunDirError, match="not the results format"):
        RunDir(tmp_path).read_metrics()


def test_results_are_valid_json_and_written_last(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    with pytest.raises(ValueError, match="non-finite"):
        RunMetrics(**{**_metrics(_fp()).model_dump(), "valid": {"mrr": float("-inf")}})
    written = []
    original = RunDir._write_text
    monkeypatch.setattr(
        RunDir, "_write_text", lambda self, p, t: (written.append(p.name), original(self, p, t))
    )
    run.write_results(_metrics(_fp()), pd.DataFrame({"query": [0], "mrr": [0.4]}))
    assert written == ["metrics.json"] and run.layout.per_query.is_file()
    assert json.loads(run.layout.metrics.read_text())["valid"] == {"mrr": 0.5}
    assert not list(tmp_path.glob("*.tmp"))
