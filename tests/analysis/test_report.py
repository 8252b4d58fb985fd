"""``tgraph analyse`` reports (tgraph.analysis.report): files written, findings, skipped steps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph.analysis import report, spatial
from tgraph.analysis.stratify import STRATA
from tgraph.config import load_config
from tgraph.data import registry
from tgraph.data.interactions import Interactions
from tgraph.errors import DataError, RunDirError
from tgraph.experiment import run_experiment

SMALL = {"n_users": 100, "n_pois": 150, "n_events": 6000}
TABLES = [
    "hour_weekday_activity",
    "autocorrelation",
    "power_spectrum",
    "periods",
    "inter_event_times_hist",
    "activity_trend",
    "region_clusters",
    "checkin_density",
    "radius_of_gyration",
    "next_checkin_distance_hist",
    "home_work",
    "transitions",
    "association_rules",
    "category_rules",
    "preference_drift",
    "drift_summary",
    "preference_table",
]
PLOTS = [
    "hour_weekday_activity",
    "autocorrelation",
    "power_spectrum",
    "inter_event_times",
    "activity_trend",
    "region_clusters",
    "checkin_density",
    "radius_of_gyration",
    "next_checkin_distance",
    "home_work",
    "transitions",
    "association_rules",
    "transition_graph",
    "category_rules",
    "drift_distribution",
]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    inter, notes = report.load_dataset("synthetic", **SMALL)
    out = tmp_path_factory.mktemp("analysis")
    return inter, out, report.dataset_report(inter, out, regions=8, seed=1, notes=notes)


def test_parse_options():
    assert report.parse_options(["n_users=100", "part=test", "w=0.5", "x="]) == {
        "n_users": 100,
        "part": "test",
        "w": 0.5,
        "x": None,
    }
    with pytest.raises(DataError, match="key=value"):
        report.parse_options(["n_users"])


@pytest.mark.slow
def test_dataset_report_writes_every_file(synthetic_report):
    inter, out, result = synthetic_report
    names = {p.name for p in result["files"]}
    top_user = int(inter.events["user"].value_counts().sort_index().idxmax())
    expected = {f"{t}.csv" for t in TABLES} | {f"{p}.png" for p in PLOTS}
    expected |= {"summary.md", f"preferences_user{top_user}.png"}
    assert names == expected
    assert {p.name for p in out.iterdir()} == expected
    for path in result["files"]:
        assert path.stat().st_size > 0, path
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG
    assert list(result["skipped"]) == ["embedding_drift"]  # the only one needing training
    assert "(see 'regions')" not in (out / "summary.md").read_text()


@pytest.mark.slow  # shares the 5-s synthetic_report fixture with the test above
def test_dataset_report_findings(synthetic_report):
    inter, out, _ = synthetic_report
    summary = (out / "summary.md").read_text()
    periods = pd.read_csv(out / "periods.csv")
    # the synthetic rhythm is daily: the strongest period is 24 h, and the summary says so
    assert periods["period_hours"].iloc[0] == pytest.approx(24.0, abs=0.5)
    assert "Detected periods: 24.0 h" in summary
    rg = pd.read_csv(out / "radius_of_gyration.csv")["rg_km"].median()
    assert f"Median radius of gyration: {rg:.2f} km" in summary
    jump = spatial.next_checkin_distance(inter)["distance_km"].median()
    assert f"next check-in (within 24 h): {jump:.2f} km" in summary
    drift = pd.read_csv(out / "drift_summary.csv").set_index("kind")
    mean, null = drift.loc["first_last", "mean"], drift.loc["first_last", "null_mean"]
    assert f"mean {mean:.3f} vs time-shuffled null {null:.3f}" in summary
    # the planted taste drift shows: first-vs-last drift exceeds its null
    assert mean > null
    rules = pd.read_csv(out / "association_rules.csv")
    moves = rules[rules["antecedent"] != rules["consequent"]]
    top = moves.sort_values("count", ascending=False, kind="stable").iloc[0].astype(int)
    assert f"{top['antecedent']} -> {top['consequent']}: {top['count']:,} moves" in summary
    assert len(pd.read_csv(out / "region_clusters.csv")) == 8
    assert "embedding_drift: needs a model trained per snapshot" in summary


def test_missing_columns_are_skipped_with_reasons(tmp_path):
    full = registry.load("synthetic", n_users=60, n_pois=80, n_events=3000)
    inter = Interactions(
        events=full.events[["user", "item", "timestamp", "tz_offset"]],
        users=full.users,
        items=full.items[["raw_id"]],
        name="bare",
    )
    result = report.dataset_report(inter, tmp_path)
    skipped = result["skipped"]
    for name in (
        "regions",
        "checkin_density",
        "radius_of_gyration",
        "next_checkin_distance",
        "home_work",
        "transitions",
        "association_rules",
        "transition_graph",
        "category_rules",
        "preference_drift",
    ):
        assert name in skipped, name
    assert "no coordinates" in skipped["checkin_density"]
    assert skipped["category_rules"] == "no 'category' column in the events or items"
    assert skipped["home_work"] == "needs regions (see 'regions')"
    summary = (tmp_path / "summary.md").read_text()
    for name, reason in skipped.items():
        assert f"- {name}: {reason}" in summary
    # the temporal analyses need only timestamps and still run
    assert (tmp_path / "periods.csv").stat().st_size > 0
    assert not (tmp_path / "checkin_density.csv").exists()


def test_load_dataset_with_parts(monkeypatch):
    part = registry.load("synthetic", n_users=20, n_pois=30, n_events=400)
    spec = registry.DatasetSpec("parts", "", (), lambda **kw: {"train": part, "test": part}, "", "")
    monkeypatch.setitem(registry.DATASETS, "parts", spec)
    inter, notes = report.load_dataset("parts")
    assert inter is part and "'train' part is analysed" in notes[0]
    only = registry.DatasetSpec("only", "", (), lambda **kw: {"valid": part, "test": part}, "", "")
    monkeypatch.setitem(registry.DATASETS, "only", only)
    with pytest.raises(DataError, match="part=test"):
        report.load_dataset("only")


def test_run_report_stratifies_a_finished_run(tmp_path):
    config = load_config(
        [],
        [
            "experiment=t",
            f"output_dir={tmp_path}",
            "seeds=[0]",
            "dataset.options={n_users: 80, n_pois: 120, n_events: 4000, days: 30, seed: 2}",
            "models=[{name: markov}]",
            "train={batch_size: 256, valid_metric: mrr, metrics: [mrr], progress: false}",
            "metrics=[acc@10, mrr]",
        ],
    )
    run_experiment(config)
    run_dir = tmp_path / "t" / "synthetic" / "markov" / "seed0"
    result = report.run_report(run_dir, n_boot=50)
    out = run_dir / "analysis"
    table = pd.read_csv(out / "stratified.csv")
    assert set(table["stratum"]) == set(STRATA) >= {"hour", "weekday", "activity", "novelty"}
    assert set(table["metric"]) == {"acc@10", "mrr"}  # the run's configured metrics
    per_query = pd.read_csv(run_dir / "per_query.csv")
    for (stratum, metric), rows in table.groupby(["stratum", "metric"]):
        # every query falls in exactly one level; the weighted level means give the overall mean
        assert rows["n"].sum() == len(per_query), stratum
        overall = (rows["n"] * rows["mean"]).sum() / rows["n"].sum()
        assert overall == pytest.approx(per_query[metric].mean())
    pngs = [p for p in result["files"] if p.suffix == ".png"]
    assert len(pngs) == len(STRATA) * 2
    assert all(p.read_bytes()[:8] == PNG for p in pngs)
    assert np.array_equal(pd.read_csv(out / "strata.csv")["query"], np.sort(per_query["query"]))
    with pytest.raises(RunDirError, match="no config.yaml"):
        report.run_report(tmp_path)
