"""The ``tgraph`` command: help texts, ``run`` -> ``compare``, ``tune`` -> ``run best.yaml``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import optuna
import pandas as pd
import pytest
import yaml

from tgraph.cli import main
from tgraph.tune import load_study

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
    spec = load_study([path], TINY)  # the study's name and folder carry its fingerprint
    folder = spec.folder
    storage = f"sqlite:///{folder / 'study.db'}"
    assert len(optuna.load_study(study_name=spec.name, storage=storage).trials) == 2
    assert f"best configuration: {folder / 'best.yaml'}" in out and "selected on mean" in out
    assert (folder / "selected.yaml").is_file() and (folder / "trials.csv").is_file()
    # best.yaml is complete: it runs as it is
    assert main(["run", "--config", str(folder / "best.yaml"), f"output_dir={tmp_path / 'b'}"]) == 0
    assert (tmp_path / "b" / "s" / "synthetic" / "bprmf" / "seed0" / "metrics.json").is_file()


@pytest.mark.slow
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


def _tgraph(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    """``tgraph ARGV`` in a new process (the exit code and the streams as a user sees them)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DGLBACKEND": "pytorch"}
    command = [sys.executable, "-m", "tgraph.cli", *argv]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_version():
    from tgraph import __version__

    done = _tgraph("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"tgraph {__version__}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epochs=-3", "train.epochs"),
        ("train.eval_every=0", "train.eval_every"),
        ("seeds=[0,0]", "seeds"),
        ("models=[{name: bprmf, config: {embedding_dim: 0}}]", "models[0].config.embedding_dim"),
        ("experiment=../../x", "experiment"),
    ],
)
def test_configuration_errors_are_one_line_with_exit_code_2(tmp_path, override, key):
    """A bad value exits 2 before anything is written, naming the key, without a traceback;
    ``--debug`` shows the traceback."""
    config = tmp_path / "c.yaml"
    config.write_text(f"output_dir: {tmp_path / 'runs'}\nmodels: [{{name: bprmf}}]\n")
    done = _tgraph("run", "--config", str(config), override)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("tgraph: error: ") and f"'{key}'" in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()
    debug = _tgraph("run", "--debug", "--config", str(config), override)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.slow
def test_yaml_syntax_error_names_the_file(tmp_path):
    config = tmp_path / "broken.yaml"
    config.write_text("models: [{name: bprmf}\n")
    done = _tgraph("run", "--config", str(config))
    assert done.returncode == 2 and str(config) in done.stderr and "YAML" in done.stderr


@pytest.mark.slow
def test_runtime_data_error_exits_1(tmp_path):
    """A missing dataset is a runtime failure (exit 1), reported on one line."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"output_dir: {tmp_path / 'runs'}\nmodels: [{{name: pop}}]\n"
        "dataset: {name: movielens_100k, protocol: leave_last_out}\n"
    )
    done = _tgraph("run", "--config", str(config), "--data-root", str(tmp_path / "nowhere"))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("tgraph: error: ")
    assert "Traceback" not in done.stderr


def test_dry_run_prints_every_resolved_run_and_writes_nothing(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"output_dir: {tmp_path / 'runs'}\nexperiment: d\n"
        "models: [{name: bprmf, config: {embedding_dim: 8}}, {name: pop}]\n"
    )
    assert main(["run", "--config", str(config), "--dry-run", "seeds=[0,3]", "train.lr=1e-2"]) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("# ")]
    base = tmp_path / "runs" / "d" / "synthetic"
    assert headers == [
        f"# {label} seed {seed} -> {base / label / f'seed{seed}'}"
        for label in ("bprmf", "pop")
        for seed in (0, 3)
    ]
    documents = [yaml.safe_load(part.split("\n", 1)[1]) for part in out.split("# ")[1:]]
    assert [(d["model"]["label"], d["seed"]) for d in documents] == [
        (label, seed) for label in ("bprmf", "pop") for seed in (0, 3)
    ]
    first = documents[0]
    assert first["train"]["lr"] == 0.01 and first["model"]["config"]["embedding_dim"] == 8
    assert not (tmp_path / "runs").exists()


def test_shipped_configs_by_name(capsys):
    """``tgraph configs`` lists every shipped config with its first-line description, and a
    bare name given to --config is that shipped file."""
    assert main(["configs"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^demo +The demo: six models on synthetic check-ins", out, re.M)
    assert re.search(r"^studies/bprmf_movielens100k +Study: BPR-MF on MovieLens-100K", out, re.M)
    assert main(["run", "--config", "demo", "--dry-run", "seeds=[3]"]) == 0
    out = capsys.readouterr().out
    assert "# pop seed 3 -> runs/demo/synthetic/pop/seed3" in out
    assert main(["run", "--config", "dmo", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "config file dmo not found, and no shipped config is called 'dmo'" in err
    assert "'demo'" in err and "'lightgcn_gowalla'" in err  # among the shipped names
