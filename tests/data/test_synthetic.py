"""The synthetic generator: determinism, sizes, and the planted structure being recoverable."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from tgraph.data import DataError, load
from tgraph.data.geo import haversine
from tgraph.data.preprocess import fit_kmeans, time_features
from tgraph.data.synthetic import generate


@pytest.fixture(scope="module")
def data():
    return generate(seed=0)


def _assert_same(a, b):
    for table in ("events", "users", "items"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    for key, value in a.meta["planted"].items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, b.meta["planted"][key])


def test_same_seed_same_tables():
    _assert_same(generate(n_events=20_000, seed=3), generate(n_events=20_000, seed=3))
    _assert_same(generate(n_events=5_000, seed=1), load("synthetic", n_events=5_000, seed=1))


def test_other_seed_differs():
    a, b = generate(n_events=20_000, seed=3), generate(n_events=20_000, seed=4)
    assert not np.array_equal(a.events["item"].to_numpy(), b.events["item"].to_numpy())
    assert not np.allclose(a.items["lat"].to_numpy(), b.items["lat"].to_numpy())


def test_sizes_and_columns(data):
    assert len(data) == 50_000 and data.n_users == 500 and data.n_items == 800
    assert data.name == "synthetic"
    events = data.events
    columns = {"user", "item", "timestamp", "lat", "lon", "category", "tz_offset"}
    assert set(events.columns) == columns
    assert (events["tz_offset"] == 0).all()
    assert (np.diff(events["timestamp"].to_numpy()) >= 0).all()
    start = pd.Timestamp("2023-01-02", tz="UTC").timestamp()
    assert events["timestamp"].min() >= start
    assert events["timestamp"].max() < start + 121 * 86_400  # a session may run past the span
    per_user = np.bincount(events["user"], minlength=500)
    assert per_user.min() >= 10 and per_user.sum() == 50_000
    np.testing.assert_array_equal(per_user, data.meta["planted"]["events_per_user"])
    items = data.items
    np.testing.assert_array_equal(events["category"], items["category"].to_numpy()[events["item"]])
    np.testing.assert_array_equal(events["lat"], items["lat"].to_numpy()[events["item"]])
    assert np.bincount(items["category"], minlength=20).min() >= 1
    assert np.bincount(items["region"], minlength=12).min() >= 1
    # POIs lie in a city around (40.7, -74.0), within a few km of their region centre
    planted = data.meta["planted"]
    spread = haversine(
        items["lat"],
        items["lon"],
        planted["region_lat"][items["region"]],
        planted["region_lon"][items["region"]],
    )
    assert np.median(spread) < 1.5 and spread.max() < 6
    assert abs(items["lat"].mean() - 40.7) < 0.2 and abs(items["lon"].mean() + 74.0) < 0.25
    counts = planted["choice_counts"]
    assert sum(counts.values()) == 50_000


def test_jitter_moves_events_a_little():
    data = generate(n_events=5_000, jitter_m=20.0)
    items = data.items
    moved = haversine(
        data.events["lat"],
        data.events["lon"],
        items["lat"].to_numpy()[data.events["item"]],
        items["lon"].to_numpy()[data.events["item"]],
    )
    assert 0.005 < np.median(moved) < 0.05 and moved.max() < 0.2


def test_daily_and_weekly_rhythm(data):
    feats = time_features(data)
    weekday = np.bincount(feats["hour"][feats["weekend"] == 0], minlength=24)
    weekend = np.bincount(feats["hour"][feats["weekend"] == 1], minlength=24)
    night = weekday[2:6].mean()
    for peak in (8, 12, 19):  # planted weekday peaks 8.5 h, 12.5 h, 19 h
        assert weekday[peak] > 5 * night
    assert weekday[2:6].sum() / weekday.sum() < 0.05
    # weekend mornings are late: the 8 h share is much lower than on weekdays
    assert weekend[7:9].sum() / weekend.sum() < 0.5 * weekday[7:9].sum() / weekday.sum()
    # weekend days are busier per day (planted weekend ratio ~ 1.3)
    n_weekend_days = 34  # 2023-01-02 (Monday) + 120 days holds 17 full weekends
    per_day_weekend = weekend.sum() / n_weekend_days
    per_day_weekday = weekday.sum() / (120 - n_weekend_days)
    assert per_day_weekend > 1.1 * per_day_weekday


def test_events_concentrate_near_home_and_work(data):
    events, users = data.events, data.users
    feats = time_features(data)
    region = data.items["region"].to_numpy()[events["item"]]
    home = users["home_region"].to_numpy()[events["user"]]
    work = users["work_region"].to_numpy()[events["user"]]
    differ = home != work
    office_hours = (feats["weekend"] == 0) & feats["hour"].between(10, 15)
    weekend = feats["weekend"] == 1
    at_work = region == work
    assert at_work[differ & office_hours].mean() > at_work[differ & weekend].mean() + 0.25
    at_home = region == home
    assert at_home[differ & weekend].mean() > at_home[differ & office_hours].mean() + 0.25
    # far above chance: the same events with users shuffled
    shuffled = np.random.default_rng(0).permutation(len(events))
    assert ((region == home) | (region == work)).mean() > 0.6
    assert ((region == home[shuffled]) | (region == work[shuffled])).mean() < 0.4


def test_taste_drift(data):
    planted = data.meta["planted"]
    user, cat = data.events["user"].to_numpy(), data.events["category"].to_numpy()
    t = data.events["timestamp"].to_numpy()
    early, late = t < np.quantile(t, 0.2), t > np.quantile(t, 0.8)
    gain = np.log(planted["taste_end"][user, cat] + 1e-12) - np.log(
        planted["taste_start"][user, cat] + 1e-12
    )
    assert gain[early].mean() < -1.0 and gain[late].mean() > 0.3

    def user_tv(a, b):  # mean per-user total-variation distance of category distributions
        first = pd.crosstab(user[a], cat[a], normalize="index")
        last = pd.crosstab(user[b], cat[b], normalize="index").reindex_like(first).fillna(0)
        return (0.5 * (first - last).abs().sum(axis=1)).mean()

    # early vs late differs far more than two random samples of the same sizes (sampling noise)
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(len(t))
    a, b = np.zeros(len(t), bool), np.zeros(len(t), bool)
    a[shuffled[: early.sum()]], b[shuffled[early.sum() : early.sum() + late.sum()]] = True, True
    assert user_tv(early, late) > user_tv(a, b) + 0.05


def test_sequential_transitions_and_revisits(data):
    planted = data.meta["planted"]
    events = data.events.sort_values(["user", "timestamp"], kind="stable")
    user, item = events["user"].to_numpy(), events["item"].to_numpy()
    t = events["timestamp"].to_numpy()
    consecutive = (user[1:] == user[:-1]) & (t[1:] - t[:-1] < 3 * 3600)
    hit = (planted["successors"][item[:-1]] == item[1:, None]).any(axis=1)
    assert hit[consecutive].mean() > 0.2
    assert hit[consecutive].mean() > 5 * hit[user[1:] != user[:-1]].mean()
    favourites = np.concatenate([planted["favourites_home"], planted["favourites_work"]], 1)
    at_favourite = (favourites[user] == item[:, None]).any(axis=1)
    assert at_favourite.mean() > 0.3
    assert events.groupby("user")["item"].nunique().sum() < 0.6 * len(events)


def test_planted_regions_recoverable_by_kmeans(data):
    items = data.items
    regions = fit_kmeans(items["lat"], items["lon"], k=12, seed=0)
    found = regions.assign(items["lat"], items["lon"])
    table = pd.crosstab(found, items["region"])
    purity = table.max(axis=1).sum() / len(items)
    assert purity > 0.95


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_users": 0},
        {"n_pois": 5, "n_categories": 20},
        {"n_events": 2.5},
        {"p_transition": 1.5},
        {"days": True},
    ],
)
def test_bad_parameters(kwargs):
    with pytest.raises(DataError):
        generate(**kwargs)


@pytest.mark.performance
def test_one_million_events_fast():
    began = time.perf_counter()
    data = generate(n_events=1_000_000, n_users=2_000, n_pois=3_000, seed=7)
    elapsed = time.perf_counter() - began
    assert len(data) == 1_000_000 and data.n_users == 2_000
    assert data.events["item"].nunique() > 2_500
    assert elapsed < 30, f"1M events took {elapsed:.1f} s"
