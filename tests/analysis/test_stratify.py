"""Stratified evaluation with bootstrap CIs (tgraph.analysis.stratify)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph import models
from tgraph.analysis import stratify as st
from tgraph.data import preprocess, protocols
from tgraph.data.interactions import Interactions
from tgraph.data.split import Split, empty_targets
from tgraph.errors import DataError
from tgraph.eval.evaluator import Evaluator

DAY, HOUR = 86_400, 3600


def test_means_per_stratum_by_hand():
    strata = pd.DataFrame({"query": [10, 11, 12, 13, 14], "colour": list("rrbbb")})
    per_query = pd.DataFrame(
        {
            "query": [14, 13, 12, 11, 10],
            "user": [0, 0, 1, 1, 2],
            "n_gt": 1,
            "best_rank": [1, 2, 3, 4, 5],
            "acc@10": [1.0, 0.0, 1.0, 1.0, 0.0],
            "mrr": [1.0, 0.5, 1 / 3, 0.25, 0.2],
        }
    )
    table = st.stratified_metrics(per_query, strata, by=["colour"], n_boot=200)
    assert set(table["metric"]) == {"acc@10", "mrr"}  # id columns are not metrics
    got = table.set_index(["level", "metric"])
    assert got.loc[("r", "acc@10"), "mean"] == pytest.approx(0.5)  # queries 10, 11
    assert got.loc[("b", "acc@10"), "mean"] == pytest.approx(2 / 3)
    assert got.loc[("r", "mrr"), "mean"] == pytest.approx((0.2 + 0.25) / 2)
    assert got.loc[("b", "mrr"), "n"] == 3
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    with pytest.raises(DataError, match="no strata"):
        st.stratified_metrics(per_query.assign(query=per_query["query"] + 1), strata, ["colour"])
    with pytest.raises(DataError, match="unknown column"):
        st.stratified_metrics(per_query, strata, by=["size"])


def test_bootstrap_ci_contains_mean_and_narrows():
    rng = np.random.default_rng(0)
    small, large = rng.random(50) < 0.3, rng.random(5000) < 0.3
    low_s, high_s = st.bootstrap_ci(small, n_boot=2000, seed=1)
    low_l, high_l = st.bootstrap_ci(large, n_boot=2000, seed=1)
    assert low_s <= small.mean() <= high_s and low_l <= large.mean() <= high_l
    assert (high_l - low_l) < (high_s - low_s) / 5  # width ~ 1 / sqrt(n): ratio 10 expected
    assert st.bootstrap_ci(small, 500, seed=3) == st.bootstrap_ci(small, 500, seed=3)
    assert st.bootstrap_ci(np.full(20, 0.25)) == (0.25, 0.25)
    assert st.bootstrap_ci(small, 500, ci=0.5)[1] - st.bootstrap_ci(small, 500, ci=0.5)[0] < (
        high_s - low_s
    )
    with pytest.raises(DataError, match="n_boot"):
        st.bootstrap_ci(small, n_boot=0)
    with pytest.raises(DataError, match="empty"):
        st.bootstrap_ci(np.array([]))


def _hand_split(shared_query: bool = False) -> Split:
    """3 users, 5 items (regions 0 0 1 1 2); user 1 lives at UTC-5. With ``shared_query`` user
    0 also visits item 0 at day 10, 9 h, and both 9 h visits form one query."""
    train = [(0, 0, 0, 9), (0, 1, 1, 9), (1, 2, 0, 9), (2, 3, 0, 9), (2, 3, 1, 9), (2, 4, 2, 9)]
    test = [
        (0, 1, 10, 8),  # revisit (train)
        (0, 3, 10, 9),  # explore: item 3 is only user 2's
        (1, 2, 11, 23),  # revisit; local 18 h
        (1, 4, 12, 2),  # explore; local 21 h of day 11
        (2, 0, 12, 12),  # explore (user 0 visited item 0, not user 2)
        (2, 0, 13, 12),  # revisit: seen in the test part, before this query
    ]
    if shared_query:
        test.append((0, 0, 10, 9))  # seen in train, region 0
    rows = [(*r, "train") for r in train] + [(*r, "test") for r in test]
    frame = pd.DataFrame(rows, columns=["user", "item", "day", "hour", "part"])
    frame["timestamp"] = frame["day"] * DAY + frame["hour"] * HOUR
    frame["tz_offset"] = np.where(frame["user"] == 1, -300, 0)
    items = pd.DataFrame({"region": [0, 0, 1, 1, 2]}, index=range(5))
    inter = Interactions.from_frame(
        frame[["user", "item", "timestamp", "tz_offset"]], name="hand", item_meta=items
    )
    is_test = (inter.events["timestamp"] >= 10 * DAY).to_numpy()
    test_part = inter.with_events(inter.events[is_test])
    targets = test_part.events[["user", "item", "timestamp"]].copy()
    query = np.arange(len(targets)) * 10 + 5
    if shared_query:
        nine = (targets["user"] == 0).to_numpy() & (targets["timestamp"] == 10 * DAY + 9 * HOUR)
        query[nine] = query[nine].min()
    targets.insert(0, "query", query)
    return Split(
        train=inter.with_events(inter.events[~is_test]),
        valid=None,
        test=test_part,
        valid_targets=empty_targets(),
        test_targets=targets,
        mask_history=False,
        protocol="hand",
        time_order="global",
    )


def test_query_strata_by_hand():
    strata = st.query_strata(_hand_split(), "test", activity_bins=3)
    assert strata["query"].tolist() == [5, 15, 25, 35, 45, 55]
    assert strata["novelty"].tolist() == [
        "revisit",
        "explore",
        "revisit",
        "explore",
        "explore",
        "revisit",
    ]
    assert strata["hour"].tolist() == [8, 9, 18, 21, 12, 12]
    # 1970-01-01 (day 0) was a Thursday: day 10 is a Sunday (6); user 1's day-12 02:00 UTC is
    # Saturday 21:00 local (day 11 -> 5)
    assert strata["weekday"].tolist() == [6, 6, 0, 0, 1, 2]
    assert strata["region"].tolist() == [0, 1, 1, 2, 0, 0]
    assert strata["train_events"].tolist() == [2, 2, 1, 1, 3, 3]
    assert strata["activity"].tolist() == ["Q2 [2-2]"] * 2 + ["Q1 [1-1]"] * 2 + ["Q3 [3-3]"] * 2
    custom = st.query_strata(_hand_split(), "test", item_region=np.array([4, 4, 4, 3, 3]))
    assert custom["region"].tolist() == [4, 3, 4, 3, 4, 4]
    with pytest.raises(DataError, match="item_region"):
        st.query_strata(_hand_split(), "test", item_region=np.zeros(3))


def test_query_with_several_targets():
    strata = st.query_strata(_hand_split(shared_query=True), "test").set_index("query")
    assert len(strata) == 6
    # user 0 at 9 h: item 3 (new, region 1) and item 0 (seen, region 0): mixed, tie -> region 0
    assert strata.loc[15, ["n_targets", "novelty", "region"]].tolist() == [2, "mixed", 0]
    assert strata.loc[5, "novelty"] == "revisit"


def test_nyc_markov_stratified(root, tmp_path):
    split = protocols.getnext_nyc(root)
    result = Evaluator(split, "test", ["acc@10", "mrr"]).evaluate(models.get("markov")(split))
    train_items = np.unique(split.train.events["item"].to_numpy())
    lat, lon = preprocess.item_coordinates(split.train)
    regions = preprocess.fit_kmeans(lat[train_items], lon[train_items], k=10, seed=0)
    strata = st.query_strata(split, "test", item_region=regions.assign(lat, lon))
    assert len(strata) == len(result.per_query) == 1433
    run = tmp_path / "run"
    run.mkdir()
    result.per_query.to_csv(run / "per_query.csv", index=False)
    table = st.stratified_metrics(run, strata, n_boot=300, seed=0)
    direct = st.stratified_metrics(result, strata, n_boot=300, seed=0)
    pd.testing.assert_frame_equal(table, direct, check_exact=False, rtol=1e-12)
    assert set(table["stratum"]) == set(st.STRATA)
    for (_, metric), group in table.groupby(["stratum", "metric"]):
        assert group["n"].sum() == 1433
        weighted = (group["n"] * group["mean"]).sum() / 1433
        assert weighted == pytest.approx(result.metrics[metric])
    assert (table["ci_low"] <= table["mean"] + 1e-12).all()
    assert (table["mean"] <= table["ci_high"] + 1e-12).all()
    acc = table[table["metric"] == "acc@10"].set_index(["stratum", "level"])["mean"]
    # a first-order Markov model only ranks places seen before well
    assert acc[("novelty", "revisit")] > acc[("novelty", "explore")] + 0.2
    assert acc.loc["hour"].index.isin(range(24)).all()
    assert table[table["stratum"] == "region"]["level"].nunique() == 10
    path = st.plot_strata(table, "hour", "acc@10", tmp_path / "hour.png")
    assert path.stat().st_size > 1000
    with pytest.raises(DataError, match="no rows"):
        st.plot_strata(table, "season", "acc@10", tmp_path / "x.png")
