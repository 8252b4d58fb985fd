"""Preference drift, its null baseline and embedding drift (tgraph.analysis.evolution)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ortho_group

from tgraph import models
from tgraph.analysis import evolution as ev
from tgraph.data import load, preprocess
from tgraph.data.interactions import Interactions
from tgraph.data.protocols import chronological_split
from tgraph.data.synthetic import generate
from tgraph.errors import DataError
from tgraph.train.trainer import Trainer

DAY = 86_400


def _inter(rows: list[tuple[int, int, int, int]]) -> Interactions:
    """Events (user, item, day, category) -> Interactions (one event per row, noon UTC)."""
    frame = pd.DataFrame(rows, columns=["user", "item", "day", "category"])
    frame["timestamp"] = frame.pop("day") * DAY + DAY // 2 + np.arange(len(frame))
    return Interactions.from_frame(frame, name="hand")


def test_equal_width_windows_and_calendar_months():
    inter = _inter([(0, 0, d, 0) for d in (0, 1, 2, 3, 4, 5, 6, 7, 35, 40)])
    codes, labels = ev.assign_windows(inter, 2)
    span = inter.events["timestamp"].max() - inter.events["timestamp"].min()
    expected = (inter.events["timestamp"] - inter.events["timestamp"].min()) >= span / 2
    assert codes.tolist() == expected.astype(int).tolist()
    assert len(labels) == 2
    months, month_labels = ev.assign_windows(inter, "M")
    assert month_labels == ["1970-01", "1970-02"]
    assert months.tolist() == [0] * 8 + [1, 1]
    with pytest.raises(DataError, match="windows"):
        ev.assign_windows(inter, 0)
    with pytest.raises(DataError, match="period alias"):
        ev.assign_windows(inter, "not-a-period")


def test_preference_table_and_drift_by_hand():
    # user 0: window 0 = {cat 0 x3, cat 1 x1}, window 1 = {cat 1 x4}; user 1: same in both;
    # user 2 has only 2 events in window 0 (below min_events=3) -> no pair
    rows = [(0, 0, 0, 0)] * 3 + [(0, 1, 1, 1)] + [(0, 1, 9, 1)] * 4
    rows += [(1, 0, 0, 0), (1, 1, 1, 1), (1, 0, 2, 0)] + [(1, 0, 8, 0), (1, 1, 9, 1), (1, 0, 9, 0)]
    rows += [(2, 0, 1, 0), (2, 1, 1, 1)] + [(2, 0, 9, 0)] * 3
    inter = _inter(rows)
    table = ev.preference_table(inter, "category", 2)
    assert np.allclose(table.groupby(["user", "window"])["share"].sum(), 1.0)
    u0 = table[(table["user"] == 0) & (table["window"] == 0)].set_index("value")["share"]
    assert u0.to_dict() == {0: 0.75, 1: 0.25}
    drift = ev.preference_drift(inter, "category", 2, min_events=3)
    consecutive = drift[drift["kind"] == "consecutive"].set_index("user")
    assert sorted(consecutive.index) == [0, 1]
    expected = jensenshannon([0.75, 0.25], [0.0, 1.0], base=2) ** 2
    assert consecutive.loc[0, "jsd"] == pytest.approx(expected)
    assert consecutive.loc[1, "jsd"] == pytest.approx(0.0, abs=1e-12)
    assert consecutive.loc[0, ["n_a", "n_b"]].tolist() == [4, 4]
    first_last = drift[drift["kind"] == "first_last"].set_index("user")
    assert np.allclose(first_last["jsd"], consecutive.loc[first_last.index, "jsd"])


def test_first_last_uses_first_and_last_qualifying_windows():
    # 3 windows; user 0 active in all, window 1 qualifies only for user 0
    rows = [(0, 0, 0, 0)] * 2 + [(0, 1, 5, 1)] * 2 + [(0, 1, 9, 1), (0, 0, 9, 0)]
    rows += [(1, 0, 0, 0), (1, 0, 0, 0), (1, 1, 9, 1), (1, 1, 9, 1)]
    drift = ev.preference_drift(_inter(rows), "category", 3, min_events=2)
    first_last = drift[drift["kind"] == "first_last"].set_index("user")
    assert first_last.loc[0, ["window_a", "window_b"]].tolist() == [0, 2]
    assert first_last.loc[0, "jsd"] == pytest.approx(jensenshannon([1, 0], [0.5, 0.5], base=2) ** 2)
    assert first_last.loc[1, "jsd"] == pytest.approx(1.0)
    consecutive = drift[drift["kind"] == "consecutive"]
    assert consecutive[["user", "window_a", "window_b"]].values.tolist() == [[0, 0, 1], [0, 1, 2]]


def test_errors_name_the_problem():
    inter = _inter([(0, 0, 0, 0), (0, 1, 1, 1)])
    with pytest.raises(DataError, match="no column 'region'"):
        ev.preference_drift(inter, "region")
    with pytest.raises(DataError, match="min_events"):
        ev.preference_drift(inter, "category", min_events=0)


def test_shuffle_times_permutes_within_user():
    inter = generate(n_users=30, n_pois=60, n_events=1500, seed=3)
    shuffled = ev.shuffle_times(inter, seed=1)
    for column in ("timestamp", "item"):
        before = inter.events.groupby("user")[column].apply(sorted)
        after = shuffled.events.groupby("user")[column].apply(sorted)
        assert before.equals(after)
    pairs = lambda e: set(map(tuple, e[["user", "item", "timestamp"]].to_numpy()))  # noqa: E731
    assert len(pairs(inter.events) & pairs(shuffled.events)) < 0.2 * len(inter)
    assert ev.shuffle_times(inter, seed=1).events.equals(shuffled.events)


def test_planted_taste_drift_is_recovered():
    """The generator's users move from taste0 to taste1: first-vs-last drift beats the null."""
    inter = generate(n_users=300, n_pois=400, n_events=30_000, seed=0)
    observed = ev.preference_drift(inter, "category", windows=4, min_events=5)
    null = ev.null_drift(inter, "category", windows=4, min_events=5, n_shuffles=5, seed=0)
    summary = ev.drift_summary(observed, null).set_index("kind")
    fl = summary.loc["first_last"]
    assert fl["users"] >= 280
    assert fl["excess"] > 0.04  # measured 0.072 (0.399 vs null 0.327)
    assert fl["share_above_null"] > 0.65  # measured 0.73
    assert summary.loc["consecutive", "excess"] > 0  # smaller steps drift less
    assert fl["excess"] > summary.loc["consecutive", "excess"]
    # drift disabled: a time-shuffled copy has no temporal drift, its excess is ~0
    flat = ev.shuffle_times(inter, seed=99)
    flat_summary = ev.drift_summary(
        ev.preference_drift(flat, "category", 4, 5), ev.null_drift(flat, "category", 4, 5, 5)
    ).set_index("kind")
    assert abs(flat_summary.loc["first_last", "excess"]) < 0.02
    assert fl["excess"] > flat_summary.loc["first_last", "excess"] + 0.04
    # more events drawn from the drifting taste (no revisits/transitions): stronger drift
    explore = generate(n_users=300, n_pois=400, n_events=30_000, seed=0, p_revisit=0.0,
                       p_transition=0.0)  # fmt: skip
    strong = ev.drift_summary(
        ev.preference_drift(explore, "category", 4, 5), ev.null_drift(explore, "category", 4, 5, 5)
    ).set_index("kind")
    assert strong.loc["first_last", "excess"] > 1.5 * fl["excess"]


def test_embedding_drift_is_rotation_invariant():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(200, 8))
    rotation = ortho_group.rvs(8, random_state=1)
    assert np.allclose(ev.embedding_drift(emb, emb @ rotation), 0.0, atol=1e-10)
    moved = emb @ rotation
    moved[:10] = rng.normal(size=(10, 8))  # ten users change, the rest only rotate
    dist = ev.embedding_drift(emb, moved, anchor_a=emb[10:], anchor_b=moved[10:])
    assert np.allclose(dist[10:], 0.0, atol=1e-10)
    assert dist[:10].mean() > 0.5
    assert np.all((dist >= -1e-12) & (dist <= 2 + 1e-12))
    with pytest.raises(DataError, match="shapes differ"):
        ev.embedding_drift(emb, emb[:, :4])


def test_snapshot_embedding_drift_on_synthetic(tmp_path):
    inter = generate(n_users=120, n_pois=200, n_events=6000, seed=0)
    options = {
        "epochs": 4,
        "batch_size": 1024,
        "lr": 0.02,
        "metrics": ("recall@20",),
        "valid_metric": "recall@20",
    }
    snapshots = ev.snapshot_embeddings(
        inter, (0.4, 0.85), "bprmf", {"embedding_dim": 16}, options, seed=0
    )
    assert [s.fraction for s in snapshots] == [0.4, 0.85]
    assert snapshots[0].cut < snapshots[1].cut
    assert np.all(snapshots[1].user_events >= snapshots[0].user_events)  # cumulative
    assert snapshots[1].user_emb.shape == (inter.n_users, 16)
    drift = ev.snapshot_drift(snapshots, min_events=5)
    assert len(drift) > 100 and drift["snapshot_a"].eq(0).all()
    assert drift["cosine_distance"].between(0, 2).all()
    assert drift["cosine_distance"].mean() > 1e-3  # training on more data moves users
    again = ev.snapshot_embeddings(inter, (0.4,), "bprmf", {"embedding_dim": 16}, options, seed=0)
    assert np.array_equal(again[0].user_emb, snapshots[0].user_emb)  # seeded
    with pytest.raises(DataError, match="no per-user embedding"):
        ev.snapshot_embeddings(inter, (0.5,), "markov", None, options)
    # a model restored from a checkpoint state gives the same embeddings
    split = chronological_split(preprocess.deduplicate(inter)[0], ratios=(0.85, 0.05, 0.1))
    trained = models.get("bprmf")(split, {"embedding_dim": 16})
    Trainer(trained, split, {**options, "epochs": 1, "progress": False}).fit()
    restored = models.get("bprmf")(split, {"embedding_dim": 16})
    restored.load_state_dict(trained.state_dict())
    users, items = ev.model_embeddings(restored)
    assert np.array_equal(users, trained.user_emb.weight.detach().numpy())
    assert np.array_equal(items, ev.model_embeddings(trained)[1])
    path = ev.plot_drift_distribution(drift, tmp_path / "emb.png", column="cosine_distance")
    assert path.stat().st_size > 0


def test_nyc_region_drift_and_plots(root, tmp_path):
    inter = load("foursquare_nyc", root)
    regions = preprocess.fit_kmeans(*preprocess.item_coordinates(inter), k=20, seed=0)
    inter, _ = preprocess.add_regions(inter, regions)
    observed = ev.preference_drift(inter, "region", windows="M", min_events=10)
    null = ev.null_drift(inter, "region", windows="M", min_events=10, n_shuffles=2)
    summary = ev.drift_summary(observed, null).set_index("kind")
    assert observed["jsd"].between(0, 1).all()
    assert summary.loc["first_last", "users"] > 500
    assert observed["window_b"].gt(observed["window_a"]).all()
    table = ev.preference_table(inter, "region", "M")
    assert table["window"].nunique() == 11  # April 2012 .. February 2013
    user = int(observed.loc[observed["jsd"].idxmax(), "user"])
    for path in (
        ev.plot_drift_distribution(observed, tmp_path / "drift.png", null=null),
        ev.plot_user_preferences(table, user, tmp_path / "user.png"),
    ):
        assert path.stat().st_size > 1000
