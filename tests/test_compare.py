"""Leaderboards from run directories: paired significance tests with Holm's adjustment, learning
curves over seeds, stratified results side by side."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tgraph.analysis.stratify import query_strata
from tgraph.compare import (
    collect_runs,
    compare,
    holm,
    leaderboard,
    paired_markdown,
    paired_table,
    paired_tests,
    seed_mean_per_query,
    stratified_board,
    to_latex,
    to_markdown,
)
from tgraph.config import DatasetConfig, load_config, validate_model
from tgraph.data.protocols import prepare_split
from tgraph.errors import CompareError
from tgraph.experiment import run_experiment
from tgraph.runs import CurveRecord, RunDir
from tgraph.study_plots import curve_band, plot_curves

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


def test_holm_hand_computed():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> 0.06 (the
    # adjusted values never decrease along the sorted order)
    adjusted = holm(np.array([0.01, 0.04, 0.03, 0.005]))
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    # a model without a reference has no test: not in the family (m = 2), kept as NaN
    np.testing.assert_allclose(holm(np.array([np.nan, 0.02, 0.5])), [np.nan, 0.04, 0.5])
    np.testing.assert_allclose(holm(np.array([0.6, 0.7])), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm(np.array([0.2, 0.2])), [0.4, 0.4])  # ties
    assert np.isnan(holm(np.array([np.nan]))).all() and len(holm(np.array([]))) == 0


def test_paired_table_of_committed_per_query_files(tmp_path):
    """seed_mean_per_query reads per-query CSV files too (any row order); paired_table tests
    ours against each reference and Holm-adjusts over the references per metric and test."""
    a = np.array([0.5, 0.4, 0.9, 0.3, 0.8])
    b = np.array([0.1, 0.4, 0.5, 0.2, 0.1])
    users = [7, 8, 9, 7, 8]
    paths = {}
    for name, values in {"ours0": a, "ours1": a + 0.1, "ref": b, "same": a + 0.05}.items():
        frame = pd.DataFrame({"query": range(5), "user": users, "mrr": values})
        paths[name] = tmp_path / f"{name}.csv"
        frame.iloc[::-1].to_csv(paths[name], index=False)  # reversed rows: sorted on reading
    ours = seed_mean_per_query([paths["ours0"], paths["ours1"]], ["mrr"])
    np.testing.assert_allclose(ours["mrr"], a + 0.05)
    refs = {k: seed_mean_per_query([paths[k]], ["mrr"]) for k in ("ref", "same")}
    table = paired_table(ours, refs, ["mrr"]).set_index("reference")
    assert table.loc["ref", "diff"] == pytest.approx((a + 0.05 - b).mean())
    assert table.loc["ref", "p_t"] == pytest.approx(paired_tests(a + 0.05, b)[0])
    assert table.loc["same", "p_t"] == 1.0  # identical per-query values: no test evidence
    np.testing.assert_allclose(table["p_t_holm"], holm(table["p_t"].to_numpy()))
    lines = paired_markdown(table.reset_index(), "ours").splitlines()
    assert lines[0].startswith("| reference | metric | ours |") and len(lines) == 2 + 2
    assert lines[2].startswith(f"| ref | mrr | {(a + 0.05).mean():.4f} | {b.mean():.4f} |")
    other = pd.DataFrame({"query": range(5), "user": [1] * 5, "mrr": b}).set_index("query")
    with pytest.raises(CompareError, match="other queries"):
        paired_table(ours, {"other": other}, ["mrr"])


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
    # Holm: one family per metric and test: the distinct pairs (model, reference); the best
    # model and its reference are compared both ways but tested once
    for metric in METRICS:
        part = board[board["metric"] == metric]
        pairs = {frozenset(pair): k for k, pair in enumerate(zip(part["model"], part["reference"]))}
        assert len(pairs) == 2  # three models: best vs second twice, third vs best
        for test in ("p_ttest", "p_wilcoxon"):
            raw = {pair: part[test].iloc[k] for pair, k in pairs.items()}
            (low, p_low), (high, p_high) = sorted(raw.items(), key=lambda item: item[1])
            expected = {low: min(1, 2 * p_low), high: max(min(1, 2 * p_low), p_high)}
            for _, r in part.iterrows():
                assert r[f"{test}_holm"] == pytest.approx(
                    expected[frozenset((r["model"], r["reference"]))]
                )

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
    result = compare(runs, tmp_path / "out", metrics=["acc@10", "mrr"], n_boot=200)
    files = result["files"]
    board = pd.read_csv(files["csv"])
    assert set(board["metric"]) == {"acc@10", "mrr"}
    md = files["md"].read_text()
    assert (
        "| model | seeds | acc@10 | p acc@10 (t / W) | Holm p acc@10 (t / W) | mrr | p mrr (t / W) "
        "| Holm p mrr (t / W) |" in md
    )
    pop = board[(board["model"] == "pop") & (board["metric"] == "mrr")].iloc[0]
    holm_t, holm_w = (f"{v:.2g}" if v >= 1e-3 else f"{v:.1e}" for v in pop[-2:])
    row = md.splitlines()[-3]  # pop's row, last of the table
    assert row.endswith(f"vs {pop['reference']} | {holm_t} / {holm_w} |")
    assert md.count("**") == 4  # one best cell per metric
    tex = files["tex"].read_text()
    assert tex.count(r"\begin{tabular}") == 1 and r"$\pm$" in tex and r"\textbf{" in tex
    assert "Holm $p$ (t / W)" in tex
    (curve,) = result["curves"]
    assert curve.suffix == ".png" and curve.stat().st_size > 1000
    assert [p.name for p in result["strata_plots"]] == [
        "strata_cmp_synthetic_acc_at_10.png",
        "strata_cmp_synthetic_mrr.png",
    ]
    assert all(p.stat().st_size > 1000 for p in result["strata_plots"])
    strata = pd.read_csv(files["strata_csv"])
    assert set(strata["metric"]) == {"acc@10", "mrr"}
    text = files["strata_md"].read_text()
    assert "### cmp / synthetic: mrr by novelty" in text
    assert "| novelty | queries | bprmf | markov | pop |" in text  # the board's order
    assert not (tmp_path / "plain" / "stratified.csv").exists()
    plain = compare(runs, tmp_path / "plain", metrics=["mrr"], strata=False)
    assert plain["strata"] is None and plain["strata_plots"] == []
    assert not (tmp_path / "plain" / "stratified.csv").exists()


def test_one_seed_has_no_spread(runs):
    table = collect_runs(runs)
    board = leaderboard(table[table["seed"] == 0], metrics=["mrr"])
    assert board["seeds"].tolist() == [1, 1, 1] and board["std"].isna().all()
    md, tex = to_markdown(board), to_latex(board)
    rows = [line for line in md.splitlines() if line.startswith("| ") and "± " in line]
    assert len(rows) == 3 and all("± n/a" in row for row in rows) and "± 0.0000" not in md
    assert tex.count(r"$\pm$ n/a") == 3


def test_stratified_results_side_by_side(runs):
    table = collect_runs(runs)
    strata = stratified_board(table, ["mrr"], n_boot=200)
    board = leaderboard(table, metrics=["mrr"]).set_index("model")
    config = RunDir(table["path"].iloc[0]).read_config()
    split = prepare_split(validate_model(DatasetConfig, config["dataset"], "dataset"))
    queries = query_strata(split, "test").set_index("query")
    for model in ("pop", "markov", "bprmf"):
        mine = strata[strata["model"] == model]
        seeds = [runs / "cmp" / "synthetic" / model / f"seed{s}" / "per_query.csv" for s in (0, 1)]
        tables = [pd.read_csv(f).set_index("query") for f in seeds]
        per_query = (tables[0]["mrr"] + tables[1]["mrr"]) / 2  # the model's mean over seeds
        for stratum, levels in mine.groupby("stratum"):
            # each stratum partitions the queries; the levels' means add up to the board's
            assert levels["n"].sum() == len(per_query) == board.loc[model, "n_queries"]
            weighted = (levels["n"] * levels["mean"]).sum() / levels["n"].sum()
            assert weighted == pytest.approx(board.loc[model, "mean"])
            for _, level in levels.iterrows():
                values = per_query[queries[stratum] == level["level"]]
                assert level["n"] == len(values)
                assert level["mean"] == pytest.approx(values.mean())
                assert level["ci_low"] <= level["mean"] <= level["ci_high"]
    # every model is shown on the same levels (the same queries)
    levels = strata.groupby("model")[["stratum", "level", "n"]].apply(
        lambda f: [tuple(r) for r in f.to_numpy()]
    )
    assert levels["pop"] == levels["markov"] == levels["bprmf"]


def test_learning_curves_are_mean_and_band_over_seeds(tmp_path):
    def curve(losses, valid):
        return [
            CurveRecord(epoch=e, loss=loss, valid={"mrr": v} if v is not None else {})
            for e, (loss, v) in enumerate(zip(losses, valid, strict=True), start=1)
        ]

    # seed 1 stopped early: epoch 3 has one seed, no spread; epoch 2 was not validated
    seeds = [curve([1.0, 2.0, 3.0], [0.1, None, 0.3]), curve([3.0, 4.0], [0.3, None])]
    loss = curve_band(seeds, lambda r: r.loss)
    assert loss["epoch"].tolist() == [1, 2, 3] and loss["n"].tolist() == [2, 2, 1]
    np.testing.assert_allclose(loss["mean"], [2.0, 3.0, 3.0])
    np.testing.assert_allclose(loss["std"], [math.sqrt(2), math.sqrt(2), np.nan])
    valid = curve_band(seeds, lambda r: r.valid.get("mrr"))
    assert valid["epoch"].tolist() == [1, 3]
    np.testing.assert_allclose(valid["mean"], [0.2, 0.3])
    path = plot_curves({"a": seeds, "b": seeds[:1]}, tmp_path / "c.png", "mrr")
    assert path.stat().st_size > 1000
    assert plot_curves({"a": [curve([None], [None])]}, tmp_path / "none.png", "mrr") is None
    assert not (tmp_path / "none.png").exists()


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


def test_stratified_results_refuse_another_split(runs, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    file = copy / "cmp" / "synthetic" / "pop" / "seed1" / "fingerprint.json"
    payload = json.loads(file.read_text())
    payload["values"]["data"]["train_events"] += 1  # as if the data had changed since
    file.write_text(json.dumps(payload))
    with pytest.raises(CompareError, match=r"pop/seed1: the split rebuilt .* is not the one"):
        stratified_board(collect_runs(copy), ["mrr"], n_boot=10)
    config = copy / "cmp" / "synthetic" / "markov" / "seed0" / "config.yaml"
    config.write_text(
        config.read_text().replace("protocol_options: {}", "protocol_options: {a: 1}")
    )
    with pytest.raises(CompareError, match="markov/seed0: its dataset section differs"):
        stratified_board(collect_runs(copy), ["mrr"], n_boot=10)


def test_hidden_and_known_query_times_are_never_one_board(runs, tmp_path):
    table = collect_runs(runs)
    assert set(table["query_time"]) == {"hidden"} and set(table["task"]) == {"next-POI"}
    board = leaderboard(table, metrics=["mrr"])
    assert set(board["query_time"]) == {"hidden"}
    assert "### cmp / synthetic (next_poi_chronological; next-POI, query_time hidden)" in (
        to_markdown(board)
    )
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    file = copy / "cmp" / "synthetic" / "markov" / "seed1" / "metrics.json"
    payload = json.loads(file.read_text())
    payload.update(query_time="known", task="time-aware next-POI")  # as a time-aware run
    file.write_text(json.dumps(payload))
    with pytest.raises(CompareError, match="query_time hidden and known are different tasks"):
        collect_runs(copy)
    for key in ("query_time", "task"):  # a run recorded before query_time: the time was known
        del payload[key]
    file.write_text(json.dumps(payload))
    with pytest.raises(CompareError, match="markov/seed1"):
        collect_runs(copy)
