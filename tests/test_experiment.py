"""End to end: config -> split -> models x seeds -> run directories and summary."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from tgraph.config import ConfigError, load_config
from tgraph.experiment import run_experiment


def _config(tmp_path, *overrides):
    return load_config(
        [],
        [
            "experiment=t",
            f"output_dir={tmp_path}",
            "seeds=[0,1]",
            "dataset.options={n_users: 120, n_pois: 200, n_events: 8000, days: 40, seed: 3}",
            "models=[{name: pop}, {name: markov}, {name: bprmf, train: {epochs: 3}}]",
            "train={batch_size: 512, lr: 0.01, valid_metric: mrr, metrics: [mrr], progress: false}",
            "metrics=[acc@1, acc@10, mrr]",
            *overrides,
        ],
    )


def test_synthetic_experiment_writes_run_directories(tmp_path):
    summary = run_experiment(_config(tmp_path))
    assert list(summary["model"]) == ["pop", "markov", "bprmf"]
    assert (summary["seeds"] == 2).all()
    base = tmp_path / "t" / "synthetic"
    for model in ("pop", "markov", "bprmf"):
        for seed in (0, 1):
            run = base / model / f"seed{seed}"
            metrics = json.loads((run / "metrics.json").read_text())
            config = yaml.safe_load((run / "config.yaml").read_text())
            (env,) = json.loads((run / "environment.json").read_text())  # one session
            per_query = pd.read_csv(run / "per_query.csv")
            assert config["seed"] == seed and config["model"]["name"] == model
            assert env["versions"]["dgl"] == "2.1.0"
            assert "test {" in (run / "run.log").read_text()
            # the synthetic check-ins' next-POI protocol hides the target's time: labelled
            assert (metrics["query_time"], metrics["task"]) == ("hidden", "next-POI")
            # the summary is recomputable from the per-query results
            assert per_query["mrr"].mean() == pytest.approx(metrics["test"]["mrr"])
    # statistical baselines do not depend on the seed; the planted transitions favour Markov
    row = summary.set_index("model")
    assert row.loc["pop", "mrr_std"] == 0.0
    assert row.loc["markov", "acc@10_mean"] > row.loc["pop", "acc@10_mean"]
    assert (summary["query_time"] == "hidden").all() and (summary["task"] == "next-POI").all()
    text = (base / "summary.md").read_text()
    assert text.startswith("Task: next-POI (query_time: hidden)\n\n| model |")


def test_resume_continues_runs_and_can_add_a_refit(tmp_path):
    models = "models=[{name: bprmf, train: {epochs: 2}}]"
    run_experiment(_config(tmp_path, models, "seeds=[0]"))
    run = tmp_path / "t" / "synthetic" / "bprmf" / "seed0"
    more = "models=[{name: bprmf, train: {epochs: 3, refit: true}}]"
    run_experiment(_config(tmp_path, more, "seeds=[0]"), resume=True)
    curve = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in curve] == [1, 2, 3, 4, 5, 6]
    assert [r.get("refit_epoch") for r in curve] == [None, None, None, 1, 2, 3]
    assert (run / "refit.pt").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train_valid_seconds"] >= sum(r["train_s"] for r in curve)
    # the selected epoch's validation metrics, nested
    assert metrics["valid"] == curve[metrics["best_epoch"] - 1]["valid"]


def test_experiment_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="dataset.protocol"):
        run_experiment(_config(tmp_path, "dataset.protocol=nope"))
    with pytest.raises(ConfigError, match="labels must be unique"):
        run_experiment(_config(tmp_path, "models=[{name: pop}, {name: pop}]"))
    with pytest.raises(ConfigError, match=r"models\[0\]\.config\.dimm"):
        run_experiment(_config(tmp_path, "models=[{name: bprmf, config: {dimm: 3}}]"))
