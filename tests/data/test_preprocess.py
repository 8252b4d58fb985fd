"""Preprocessing: filters and their counts, id maps, time features, regions, POI neighbours."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tgraph.data import DataError, Interactions, load
from tgraph.data.geo import EARTH_RADIUS_KM
from tgraph.data.preprocess import (
    add_regions,
    compact,
    deduplicate,
    fit_grid,
    fit_kmeans,
    haversine,
    item_codes,
    item_coordinates,
    kcore,
    knn_pois,
    radius_pois,
    time_features,
)
from tgraph.data.synthetic import generate


def _inter(rows, **columns) -> Interactions:
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    for name, values in columns.items():
        frame[name] = values
    return Interactions.from_frame(frame, name="hand")


def _random_pois(n, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"lat": rng.uniform(40.5, 40.9, n), "lon": rng.uniform(-74.2, -73.7, n)})


def _cosine_law(lat1, lon1, lat2, lon2):
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    cos = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return EARTH_RADIUS_KM * math.acos(min(1.0, max(-1.0, cos)))


# ---------------------------------------------------------------------------- haversine
def test_haversine_hand_computed():
    quarter = math.pi * 6371.0 / 2
    assert haversine(0.0, 0.0, 0.0, 0.0) == 0.0
    assert haversine(0.0, 0.0, 1.0, 0.0) == pytest.approx(math.pi * 6371.0 / 180, rel=1e-12)
    assert haversine(0.0, 0.0, 0.0, 90.0) == pytest.approx(quarter, rel=1e-12)
    assert haversine(0.0, 0.0, 90.0, 0.0) == pytest.approx(quarter, rel=1e-12)
    assert haversine(0.0, 0.0, 0.0, 180.0) == pytest.approx(2 * quarter, rel=1e-12)
    assert haversine(10.0, 179.5, 10.0, -179.5) == pytest.approx(
        _cosine_law(10.0, 179.5, 10.0, -179.5), rel=1e-6
    )
    # JFK -> LAX, checked against the spherical law of cosines (about 3,970 km)
    jfk_lax = haversine(40.6413, -73.7781, 33.9416, -118.4085)
    assert jfk_lax == pytest.approx(_cosine_law(40.6413, -73.7781, 33.9416, -118.4085), rel=1e-9)
    assert 3_950 < jfk_lax < 4_000


def test_haversine_vectorised():
    pois = _random_pois(50)
    lat, lon = pois["lat"].to_numpy(), pois["lon"].to_numpy()
    d = haversine(lat[:, None], lon[:, None], lat[None], lon[None])
    assert d.shape == (50, 50)
    np.testing.assert_allclose(d, d.T)
    assert d[3, 7] == pytest.approx(_cosine_law(*pois.iloc[3], *pois.iloc[7]), rel=1e-6)


# ---------------------------------------------------------------------------- neighbours
def _brute(pois):
    lat, lon = pois["lat"].to_numpy(), pois["lon"].to_numpy()
    d = haversine(lat[:, None], lon[:, None], lat[None], lon[None])
    np.fill_diagonal(d, np.inf)
    return d


def test_knn_equals_brute_force():
    pois = _random_pois(300, seed=1)
    src, dst, km = knn_pois(pois, 7)
    d = _brute(pois)
    expected = np.argsort(d, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(src, np.repeat(np.arange(300), 7))
    np.testing.assert_array_equal(dst.reshape(300, 7), expected)
    np.testing.assert_allclose(km.reshape(300, 7), np.take_along_axis(d, expected, 1), rtol=1e-7)


def test_knn_excludes_self_with_duplicate_coordinates():
    pois = pd.DataFrame({"lat": [40.7, 40.7, 40.8], "lon": [-74.0, -74.0, -74.0]})
    src, dst, km = knn_pois(pois, 1)
    assert dst[0] == 1 and dst[1] == 0 and dst[2] in (0, 1)
    np.testing.assert_allclose(km, [0.0, 0.0, 0.1 * math.pi * 6371 / 180], atol=1e-9)


def test_knn_accepts_interactions_and_checks_k():
    data = generate(n_events=2_000, n_pois=100, seed=2)
    src, dst, _ = knn_pois(data, 3)
    assert len(src) == 300 and (src != dst).all()
    for k in (0, 100, 2.0):
        with pytest.raises(DataError, match="k must be"):
            knn_pois(data, k)
    with pytest.raises(DataError, match="lat"):
        knn_pois(pd.DataFrame({"x": [1.0, 2.0]}), 1)
    with pytest.raises(DataError, match="missing coordinates"):
        knn_pois(pd.DataFrame({"lat": [40.7, np.nan], "lon": [-74.0, -74.0]}), 1)


def test_radius_equals_brute_force():
    pois = _random_pois(300, seed=2)
    src, dst, km = radius_pois(pois, 2.0)
    d = _brute(pois)
    exp_src, exp_dst = np.nonzero(d <= 2.0)
    assert len(exp_src) > 100
    np.testing.assert_array_equal(src, exp_src)
    np.testing.assert_array_equal(dst, exp_dst)
    np.testing.assert_allclose(km, d[exp_src, exp_dst], rtol=1e-7)
    with pytest.raises(DataError):
        radius_pois(pois, -1.0)


# ---------------------------------------------------------------------------- regions
def test_kmeans_is_deterministic_and_assigns_nearest_centre():
    pois = _random_pois(400, seed=3)
    a = fit_kmeans(pois["lat"], pois["lon"], k=8, seed=5)
    b = fit_kmeans(pois["lat"], pois["lon"], k=8, seed=5)
    np.testing.assert_array_equal(a.lat, b.lat)
    np.testing.assert_array_equal(a.lon, b.lon)
    codes = a.assign(pois["lat"], pois["lon"])
    d = haversine(pois["lat"].to_numpy()[:, None], pois["lon"].to_numpy()[:, None], a.lat, a.lon)
    np.testing.assert_array_equal(codes, d.argmin(axis=1))
    assert np.bincount(codes, minlength=8).min() > 0
    # each centre is the (spherical) mean of its points: Lloyd converged
    for j in range(8):
        members = pois[codes == j]
        assert a.lat[j] == pytest.approx(members["lat"].mean(), abs=1e-3)


def test_kmeans_errors():
    with pytest.raises(DataError, match="k must be"):
        fit_kmeans([40.7, 40.7, 40.8], [-74.0, -74.0, -74.0], k=3)
    with pytest.raises(DataError, match="invalid coordinate"):
        fit_kmeans([40.7, 95.0], [-74.0, -74.0], k=1)


def test_regions_fitted_on_training_items_only():
    data = generate(n_events=5_000, n_pois=300, seed=4)
    train_items = np.arange(0, 300, 2)
    lat, lon = item_coordinates(data)
    regions = fit_kmeans(lat[train_items], lon[train_items], k=6, seed=0)
    out, report = add_regions(data, regions)
    assert report["n_regions"] == 6 and report["items_assigned"] == 300
    item_region = out.items["region"].to_numpy()
    np.testing.assert_array_equal(item_region, regions.assign(lat, lon))
    np.testing.assert_array_equal(out.events["region"], item_region[out.events["item"]])
    assert len(out) == len(data) and not data.has("region")  # the input is not modified
    # the other items do not move the fitted centres
    again = fit_kmeans(lat[train_items], lon[train_items], k=6, seed=0)
    np.testing.assert_array_equal(regions.lat, again.lat)


def test_grid_cells():
    pois = _random_pois(500, seed=5)
    grid = fit_grid(pois["lat"], pois["lon"], cell_km=2.0)
    codes = grid.assign(pois["lat"], pois["lon"])
    assert set(codes) == set(range(grid.n_regions))
    d = _brute(pois)
    np.fill_diagonal(d, 0.0)
    same = codes[:, None] == codes[None]
    assert d[same].max() <= 2.0 * math.sqrt(2) + 0.01  # at most a cell diagonal apart
    assert (~same[d < 0.05]).mean() < 0.2  # very close points mostly share a cell
    # a point far outside the fitted cells goes to the nearest fitted cell
    far = grid.assign([41.5], [-74.0])[0]
    nearest = np.argmin(haversine(41.5, -74.0, grid.lat, grid.lon))
    assert far == nearest
    with pytest.raises(DataError):
        fit_grid(pois["lat"], pois["lon"], cell_km=0.0)


def test_item_coordinates_from_events():
    inter = _inter(
        [(1, "a", 1), (1, "a", 2), (2, "a", 3), (2, "b", 4)],
        lat=[40.0, 40.2, 40.4, 41.0],
        lon=[-74.0, -74.0, -74.0, -73.0],
    )
    lat, lon = item_coordinates(inter)
    np.testing.assert_allclose(lat, [40.2, 41.0])
    np.testing.assert_allclose(lon, [-74.0, -73.0])
    with pytest.raises(DataError, match="no coordinates"):
        item_coordinates(_inter([(1, "a", 1)]))


def _located(items: pd.DataFrame | None = None, **meta) -> Interactions:
    """Item a at (40.0, -74.0) and (40.4, -74.0) in the events (median 40.2), b seen once."""
    frame = pd.DataFrame(
        {
            "user": [1, 1, 2],
            "item": ["a", "a", "b"],
            "timestamp": [1, 2, 3],
            "lat": [40.0, 40.4, 41.0],
            "lon": [-74.0, -74.0, -73.0],
            "category": [5, 5, 6],
        }
    )
    return Interactions.from_frame(frame, name="hand", item_meta=items, meta=meta)


def test_items_table_is_used_only_when_static_or_not_on_the_events():
    table = pd.DataFrame({"lat": [1.0, 2.0], "lon": [3.0, 4.0], "category": [7, 8]}, ["a", "b"])
    # undeclared and also on the events: it may hold validation/test information, so the
    # events given decide (median 40.2 for a; mode 5)
    lat, lon = item_coordinates(_located(table))
    assert lat.tolist() == [40.2, 41.0] and lon.tolist() == [-74.0, -73.0]
    assert item_codes(_located(table), "category").tolist() == [5, 6]
    # declared static (a POI file): used as it is
    static = _located(table, static_item_columns=["lat", "lon", "category"])
    assert item_coordinates(static)[0].tolist() == [1.0, 2.0]
    assert item_codes(static, "category").tolist() == [7, 8]
    # the events carry no coordinates: the table cannot come from them
    bare = Interactions.from_frame(
        pd.DataFrame({"user": [1], "item": ["a"], "timestamp": [1]}), name="bare", item_meta=table
    )
    assert item_coordinates(bare)[1].tolist() == [3.0, 4.0]
    assert item_codes(bare, "category").tolist() == [7, 8]
    assert item_codes(bare, "region") is None


def test_regions_of_static_coordinates_are_static():
    table = pd.DataFrame({"lat": [40.0, 41.0], "lon": [-74.0, -73.0]}, ["a", "b"])
    static = _located(table, static_item_columns=["lat", "lon"])
    grid = fit_grid([40.0, 41.0], [-74.0, -73.0], cell_km=5.0)
    out, _ = add_regions(static, grid)
    assert out.meta["static_item_columns"] == ["lat", "lon", "region"]
    derived, _ = add_regions(_located(), grid)
    assert "static_item_columns" not in derived.meta
    assert item_codes(derived, "region").tolist() == item_codes(out, "region").tolist() == [0, 1]


# ---------------------------------------------------------------------------- time
def test_time_features_local_time():
    stamps = pd.to_datetime(
        ["2024-01-01 03:00", "2024-01-06 23:30", "2024-01-08 12:15", "2024-01-08 12:15"]
    )
    seconds = (stamps - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    inter = _inter([(1, "a", s) for s in seconds], tz_offset=[-300, 120, 0, 45])
    f = time_features(inter, slots_per_day=48)
    # local: Sun 2023-12-31 22:00, Sun 2024-01-07 01:30, Mon 12:15, Mon 13:00
    assert f["hour"].tolist() == [22, 1, 12, 13]
    assert f["weekday"].tolist() == [6, 6, 0, 0]
    assert f["weekend"].tolist() == [1, 1, 0, 0]
    assert f["slot"].tolist() == [44, 3, 24, 26]
    assert f["week_hour"].tolist() == [166, 145, 12, 13]
    assert f["daytype_hour"].tolist() == [46, 25, 12, 13]
    assert f["day"].tolist() == [19722, 19729, 19730, 19730]
    assert len(f) == len(inter) and f.index.equals(inter.events.index)
    assert time_features(inter, slots_per_day=24)["slot"].tolist() == [22, 1, 12, 13]


def test_time_features_match_pandas_calendar():
    rng = np.random.default_rng(0)
    seconds = np.sort(rng.integers(-(10**9), 2 * 10**9, 500))
    inter = _inter([(1, "a", s) for s in seconds], tz_offset=rng.integers(-720, 840, 500))
    f, local = time_features(inter), inter.local_time()
    np.testing.assert_array_equal(f["hour"], local.dt.hour)
    np.testing.assert_array_equal(f["weekday"], local.dt.dayofweek)
    np.testing.assert_array_equal(f["slot"], local.dt.hour * 2 + local.dt.minute // 30)
    no_tz = _inter([(1, "a", s) for s in seconds])
    np.testing.assert_array_equal(
        time_features(no_tz)["hour"], pd.to_datetime(seconds, unit="s").hour
    )
    with pytest.raises(DataError):
        time_features(inter, slots_per_day=0)


# ---------------------------------------------------------------------------- filters
def test_deduplicate_hand_made():
    inter = _inter(
        [(1, "a", 10), (1, "a", 10), (1, "b", 10), (2, "a", 10), (1, "a", 10), (1, "a", 11)],
        weight=[5.0, 4.0, 3.0, 2.0, 1.0, 0.0],
    )
    out, report = deduplicate(inter)
    assert report["dropped"] == 2 and report["events_after"] == 4 == len(out)
    kept = out.events.query("user == 0 and item == 0 and timestamp == 10")
    assert kept["weight"].tolist() == [5.0]  # the first occurrence is kept
    _, by_pair = deduplicate(inter, subset=("user", "item"))
    assert by_pair["dropped"] == 3
    with pytest.raises(DataError, match="rating"):
        deduplicate(inter, subset=("user", "rating"))


def test_deduplicate_nyc_counts(root):
    nyc = load("foursquare_nyc", root)
    out, report = deduplicate(nyc)
    assert report["dropped"] == 458  # foursquare_nyc/PROVENANCE.md: 458 exact duplicate rows
    assert len(out) == 147_938 - 458
    assert not out.events.duplicated(["user", "item", "timestamp"]).any()


def test_kcore_hand_made_needs_iterations():
    # item c has 1 event -> removed; then user 3 has 1 event left -> removed; b keeps 2 events
    rows = [(1, "a", 1), (1, "b", 2), (2, "a", 3), (2, "b", 4), (3, "b", 5), (3, "c", 6)]
    rows += [(4, "a", 7), (4, "d", 8), (5, "d", 9), (5, "a", 10)]
    inter = _inter(rows)
    out, report = kcore(inter, user_k=2, item_k=2)
    assert report["events_after"] == 8 and report["users_after"] == 4
    assert report["items_after"] == 3 and len(report["iterations"]) == 2
    assert [it["events_dropped"] for it in report["iterations"]] == [1, 1]
    assert out.users["raw_id"].tolist() == [1, 2, 4, 5]
    assert out.items["raw_id"].tolist() == ["a", "b", "d"]
    raw_users = out.users["raw_id"].to_numpy()[out.events["user"]]
    raw = set(zip(raw_users, out.items["raw_id"].to_numpy()[out.events["item"]]))
    assert (3, "b") not in raw and (1, "b") in raw
    kept, _ = kcore(inter, user_k=2, item_k=2, remap=False)
    assert kept.n_users == 5 and len(kept) == 8
    with pytest.raises(DataError, match="empty"):
        kcore(inter, user_k=5, item_k=5)
    for bad in (-1, 2.5, True):
        with pytest.raises(DataError, match="user_k"):
            kcore(inter, user_k=bad)


def _naive_kcore(frame: pd.DataFrame, user_k: int, item_k: int) -> pd.DataFrame:
    while True:
        users = frame.groupby("user")["item"].transform("size")
        items = frame.groupby("item")["user"].transform("size")
        keep = (users >= user_k) & (items >= item_k)
        if keep.all():
            return frame
        frame = frame[keep]


def test_kcore_movielens(root):
    ml = load("movielens_100k", root)
    same, report = kcore(ml, user_k=20, item_k=0)  # MovieLens-100K users have >= 20 ratings
    assert report["iterations"] == [] and len(same) == 100_000 and same.n_users == 943
    out, report = kcore(ml, user_k=20, item_k=20)
    raw = pd.DataFrame(
        {
            "user": ml.users["raw_id"].to_numpy()[ml.events["user"]],
            "item": ml.items["raw_id"].to_numpy()[ml.events["item"]],
            "timestamp": ml.events["timestamp"],
        }
    )
    expected = _naive_kcore(raw, 20, 20)
    assert report["events_after"] == len(out) == len(expected)
    assert report["users_after"] == out.n_users == expected["user"].nunique()
    assert report["items_after"] == out.n_items == expected["item"].nunique()
    assert report["events_dropped"] == sum(it["events_dropped"] for it in report["iterations"])
    assert np.bincount(out.events["user"]).min() >= 20
    assert np.bincount(out.events["item"]).min() >= 20
    got = pd.DataFrame(
        {
            "user": out.users["raw_id"].to_numpy()[out.events["user"]],
            "item": out.items["raw_id"].to_numpy()[out.events["item"]],
            "timestamp": out.events["timestamp"],
        }
    )
    key = ["user", "item", "timestamp"]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True),
        expected.sort_values(key).reset_index(drop=True),
    )
    # user metadata follows the compaction
    merged = out.users.merge(ml.users, on="raw_id", suffixes=("", "_source"))
    assert len(merged) == out.n_users and (merged["age"] == merged["age_source"]).all()


def test_compact_drops_unused_ids_and_keeps_raw_ids():
    inter = _inter([(10, "x", 1), (30, "z", 2), (10, "z", 3), (20, "y", 4)])
    part = inter.with_events(inter.events[inter.events["user"] != 1])  # drop user 20, item y
    out, report = compact(part)
    assert report["users_dropped"] == 1 and report["items_dropped"] == 1
    assert out.users["raw_id"].tolist() == [10, 30] and out.items["raw_id"].tolist() == ["x", "z"]
    assert sorted(out.events["user"].tolist()) == [0, 0, 1]
    again, report = compact(out)
    assert report["users_dropped"] == 0 and again.n_items == 2
