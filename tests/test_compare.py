"""Leaderboards from run directories, with paired significance tests."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tgraph.compare import collect_runs, compare, leaderboard, paired_tests
from tgraph.config import load_config
from tgraph.errors import CompareError
from tgraph.experiment import run_experiment

METRICS = ["acc@1", "acc@10", "mrr"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three models x two seeds on tiny synthetic data (written by run_experiment)."""
    out = tmp_path_factory.mktemp("runs")
    config = load_config(
        [],
        [
            "experiment=cmp",
            f"output_dir={out}",
            "seeds=[0,1]",
            "dataset.options={n_users: 120, n_pois: 200, n_events: 8000, days: 40, seed: 3}",
            "models=[{name: pop}, {name: markov}, {name: bprmf, train: {epochs: 2}}]",
            "train={batch_size: 512, lr: 0.01, valid_metric: mrr, metrics: [mrr], progress: false}",
            f"metrics=[{', '.join(METRICS)}]",
        ],
    )
    run_experiment(config)
    return out


def test_paired_tests_hand_computed():
    a = np.array([0.5, 0.4, 0.9, 0.3, 0.8])
    b = np.array([0.1, 0.4, 0.5, 0.2, 0.1])
    d = a - b  # 0.4, 0, 0.4, 0.1, 0.7
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p_t, p_w = paired_tests(a, b)
    assert p_t == pytest.approx(2 * stats.t.sf(abs(t), df=len(d) - 1))
    # Wilcoxon drops the zero difference; ranks of |0.4, 0.4, 0.1, 0.7| are 2.5, 2.5, 1, 4: all
    # positive, so W- = 0, the most extreme of the 2^4 sign patterns: exact p = 2 / 16
    assert p_w == pytest.approx(2 / 16)
    assert paired_tests(a, a) == (1.0, 1.0)


def test_leaderboard_from_run_directories(runs):
    table = collect_runs(runs)
    assert len(table) == 6 and set(table["model"]) == {"pop", "markov", "bprmf"}
    board = leaderboard(table)
    assert len(board) == 3 * len(METRICS)
    row = board.set_index(["model", "metric"])
    base = runs / "cmp" / "synthetic"
    for model in ("pop", "markov", "bprmf"):
        files = [base / model / f"seed{s}" / "metrics.json" for s in (0, 1)]
        values = [json.loads(f.read_text())["test"]["mrr"] for f in files]
        assert row.loc[(model, "mrr"), "mean"] == pytest.approx(np.mean(values))
        assert row.loc[(model, "mrr"), "std"] == pytest.approx(np.std(values, ddof=1))
    # the reference of each model is the best *other* model; markov beats pop on planted
    # transitions, clearly enough to be significant on ~100 queries
    for metric in METRICS:
        part = board[board["metric"] == metric].set_index("model")
        for model, r in part.iterrows():
            others = part.drop(index=model)
            assert r["reference"] == others["mean"].idxmax()
            assert 0 <= r["p_ttest"] <= 1 and 0 <= r["p_wilcoxon"] <= 1
    assert row.loc[("pop", "acc@10"), "reference"] == "markov"
    assert row.loc[("pop", "acc@10"), "p_wilcoxon"] < 0.01

    # the p-values are those of the per-query values averaged over seeds
    per_query = {
        m: np.mean(
            [
                pd.read_csv(runs / "cmp" / "synthetic" / m / f"seed{s}" / "per_query.csv")["mrr"]
                for s in (0, 1)
            ],
            axis=0,
        )
        for m in ("pop", "markov", "bprmf")
    }
    pop = row.loc[("pop", "mrr")]
    expected = stats.wilcoxon(per_query["pop"], per_query[pop["reference"]]).pvalue
    assert pop["p_wilcoxon"] == pytest.approx(expected)

    # baselines restrict the references; a model alone in the pool gets none
    only = leaderboard(table, metrics=["mrr"], baselines=["pop"]).set_index("model")
    assert only.loc["markov", "reference"] == "pop" and pd.isna(only.loc["pop", "reference"])


def test_compare_writes_tables_and_curves(runs, tmp_path):
    result = compare(runs, tmp_path / "out", metrics=["acc@10", "mrr"])
    files = result["files"]
    board = pd.read_csv(files["csv"])
    assert set(board["metric"]) == {"acc@10", "mrr"}
    md = files["md"].read_text()
    assert "| model | seeds | acc@10 | p acc@10 (t / W) | mrr | p mrr (t / W) |" in md
    pop = board[(board["model"] == "pop") & (board["metric"] == "mrr")].iloc[0]
    assert f"vs {pop['reference']} |" in md.splitlines()[-3]  # pop's row, last of the table
    assert md.count("**") == 4  # one best cell per metric
    tex = files["tex"].read_text()
    assert tex.count(r"\begin{tabular}") == 1 and r"$\pm$" in tex and r"\textbf{" in tex
    (curve,) = result["curves"]
    assert curve.suffix == ".png" and curve.stat().st_size > 1000


def test_compare_errors(runs, tmp_path):
    with pytest.raises(CompareError, match="no finished run directory"):
        compare(tmp_path)
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    with pytest.raises(CompareError, match=r"metric\(s\) \['hit@3'\] missing"):
        leaderboard(collect_runs(copy), metrics=["hit@3"])
    file = copy / "cmp" / "synthetic" / "markov" / "seed1" / "per_query.csv"
    pd.read_csv(file).iloc[1:].to_csv(file, index=False)
    with pytest.raises(CompareError, match="queries differ"):
        leaderboard(collect_runs(copy))
    for seed in (0, 1):  # now both markov runs lack that query: markov cannot be paired
        file = copy / "cmp" / "synthetic" / "markov" / f"seed{seed}" / "per_query.csv"
        table = pd.read_csv(runs / "cmp" / "synthetic" / "markov" / f"seed{seed}" / "per_query.csv")
        table.iloc[1:].to_csv(file, index=False)
    with pytest.raises(CompareError, match="ranked different queries"):
        leaderboard(collect_runs(copy))
