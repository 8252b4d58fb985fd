"""The ``tgraph`` command: help texts, ``run`` -> ``compare``, ``tune`` -> ``run best.yaml``."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
import yaml

from tgraph.cli import main

TINY = [
    "seeds=[0]",
    "dataset.options={n_users: 80, n_pois: 120, n_events: 4000, days: 30, seed: 2}",
    "train={batch_size: 256, lr: 0.01, epochs: 2, valid_metric: mrr, metrics: [mrr],"
    " progress: false}",
    "metrics=[acc@10, mrr]",
]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--help"], ["tune", "compare", "run", "data", "analyse"]),
        (["tune", "--help"], ["--storage", "journal:FILE", "postgresql://", "--n-trials"]),
        (["compare", "--help"], ["RUNS_DIR", "Wilcoxon", "--baselines"]),
        (["analyse", "--help"], ["dataset", "run", "bootstrap"]),
        (["analyse", "dataset", "--help"], ["--regions", "--option", "runs/analysis/NAME"]),
        (["analyse", "run", "--help"], ["RUN_DIR", "--n-boot"]),
    ],
)
def test_help(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out


def test_run_then_compare(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("experiment: c\nmodels: [{name: pop}, {name: markov}]\n")
    runs = tmp_path / "runs"
    assert main(["run", "--config", str(config), f"output_dir={runs}", *TINY, "seeds=[0,1]"]) == 0
    capsys.readouterr()
    assert main(["compare", str(runs), "--baselines", "pop", "--metrics", "mrr"]) == 0
    out = capsys.readouterr().out
    assert "| model | seeds | mrr | p mrr (t / W) |" in out and "vs pop" in out
    board = pd.read_csv(runs / "leaderboard.csv").set_index("model")
    assert board.loc["markov", "reference"] == "pop" and board.loc["markov", "p_wilcoxon"] < 1


def test_tune_exports_a_runnable_config(tmp_path, capsys):
    study = {
        "experiment": "s",
        "output_dir": str(tmp_path),
        "models": [{"name": "bprmf", "config": {"embedding_dim": 8}}],
        "study": {
            "n_trials": 5,
            "pruner": {"type": "none"},
            "space": {"train.lr": {"type": "float", "low": 0.001, "high": 0.1, "log": True}},
            "top_k": 1,
            "retrain_seeds": [1],
        },
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["tune", "--config", str(path), "--n-trials", "2", *TINY]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "s" / "synthetic" / "study-bprmf"
    storage = f"sqlite:///{folder / 'study.db'}"
    assert len(optuna.load_study(study_name="s-bprmf-synthetic", storage=storage).trials) == 2
    assert f"best configuration: {folder / 'best.yaml'}" in out and "selected on mean" in out
    assert (folder / "selected.yaml").is_file() and (folder / "trials.csv").is_file()
    # best.yaml is complete: it runs as it is
    assert main(["run", "--config", str(folder / "best.yaml"), f"output_dir={tmp_path / 'b'}"]) == 0
    assert (tmp_path / "b" / "s" / "synthetic" / "bprmf" / "seed0" / "metrics.json").is_file()


def test_analyse_dataset(tmp_path, capsys):
    out = tmp_path / "a"
    options = ["n_users=60", "n_pois=80", "n_events=3000", "seed=4"]
    argv = ["analyse", "dataset", "synthetic", "--out", str(out), "--regions", "5"]
    assert main([*argv, *(f"--option={o}" for o in options)]) == 0
    printed = capsys.readouterr().out
    summary = (out / "summary.md").read_text()
    assert printed.startswith(summary) and "3,000 events" in summary
    assert "(5 k-means regions, seed 0)" in summary
    assert len(pd.read_csv(out / "region_clusters.csv")) == 5
