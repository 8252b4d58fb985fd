"""Item attributes come from the training part: a POI that moves between train and test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import item_codes, item_coordinates
from tgraph.data.protocols import chronological_split
from tgraph.errors import DataError, LeakageError
from tgraph.graph import build_graph, check_graph_leakage, training_heterograph

#: user, item, t, lat, lon, category. POI p sits at (0, 0) in train and at (1, 1) in test
#: (median over all its events: 1.0); r occurs only in test; q never moves.
ROWS = [
    ("u0", "p", 0, 0.0, 0.0, 1), ("u0", "q", 1, 5.0, 5.0, 3),
    ("u1", "q", 2, 5.0, 5.0, 3), ("u1", "p", 3, 0.0, 0.0, 1),
    ("u0", "q", 10, 5.0, 5.0, 3), ("u1", "q", 11, 5.0, 5.0, 3),
    ("u0", "p", 20, 1.0, 1.0, 2), ("u1", "p", 21, 1.0, 1.0, 2), ("u0", "r", 22, 9.0, 9.0, 4),
    ("u1", "p", 23, 1.0, 1.0, 2), ("u1", "q", 24, 5.0, 5.0, 3),
]  # fmt: skip
CUTS = (10, 20)
COLUMNS = ["user", "item", "timestamp", "lat", "lon", "category"]


def checkins(item_meta: pd.DataFrame | None = None, **meta) -> Interactions:
    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    return Interactions.from_frame(frame, name="moving", item_meta=item_meta, meta=meta)


def all_event_medians() -> pd.DataFrame:
    """What readers used to put in the items table: the median over ALL events."""
    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    return frame.groupby("item")[["lat", "lon"]].median()


def test_item_coordinates_from_all_events_in_the_items_table_are_caught():
    """p's items-table latitude is 1.0 (its test positions count), training says 0.0."""
    with pytest.raises(LeakageError, match=r"items column 'lat'.*first item 'p'.*1\.0 vs 0\.0"):
        chronological_split(checkins(all_event_medians()), cuts=CUTS)


def test_categories_from_all_events_in_the_items_table_are_caught():
    """p's most frequent category over all events is 2 (three test check-ins), in train 1."""
    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    category = frame.groupby("item")["category"].agg(lambda c: c.mode().min())
    with pytest.raises(LeakageError, match=r"items column 'category'.*'p'"):
        chronological_split(checkins(category.to_frame()), cuts=CUTS)


@pytest.fixture
def split():
    """Coordinates on the events only (no items-table coordinates)."""
    return chronological_split(checkins(), cuts=CUTS)


def test_training_coordinates_and_categories_only(split):
    lat, lon = item_coordinates(split.train)
    np.testing.assert_array_equal(lat, [0.0, 5.0, np.nan])  # p, q, r (r: test only)
    np.testing.assert_array_equal(lon, [0.0, 5.0, np.nan])
    assert item_codes(split.train, "category").tolist() == [1, 3, -1]
    assert split.report["leakage_checks"]["items_table_attributes"] == []


def test_the_training_graph_uses_training_positions_and_passes_the_check(split):
    graph = build_graph(split.train, {"locations": False, "near_k": 0})
    latlon = graph.graph.nodes["item"].data["latlon"].numpy()
    np.testing.assert_array_equal(latlon, [[0.0, 0.0], [5.0, 5.0], [np.nan, np.nan]])
    checked = check_graph_leakage(split, graph)
    assert checked["item_features"] == ["category", "latlon"]
    assert checked["edge_times"]["user-interacts-item"] == 4
    located = training_heterograph(split.train, {"near_k": 0}, n_regions=2)
    assert check_graph_leakage(split, located)["item_features"] == ["category", "latlon"]


def test_a_graph_built_from_all_events_is_caught(split):
    """Coordinates of all events (p at 1.0) as a node feature, and test check-ins as edges."""
    leaky = build_graph(checkins(), {"locations": False, "near_k": 0})
    with pytest.raises(LeakageError, match=r"item feature 'latlon'.*first item 'p'"):
        check_graph_leakage(split, leaky)
    with pytest.raises(LeakageError, match=r"'user-interacts-item'.*first t=20"):
        split.check_no_leakage(edge_times={"user-interacts-item": np.array([0, 3, 20, 21])})
    with pytest.raises(LeakageError, match=r"item feature 'category'.*'p'.*2\.0.*1\.0"):
        split.check_no_leakage(item_features={"category": np.array([2, 3, -1])})


def test_a_declared_static_poi_table_is_used_as_it_is():
    """A POI file's coordinates are static: used for every POI, r (test only) included."""
    poi_file = pd.DataFrame({"lat": [0.0, 5.0, 9.0], "lon": [0.0, 5.0, 9.0]}, index=["p", "q", "r"])
    split = chronological_split(checkins(poi_file, static_item_columns=["lat", "lon"]), cuts=CUTS)
    lat, _ = item_coordinates(split.train)
    assert lat.tolist() == [0.0, 5.0, 9.0]
    graph = build_graph(split.train, {"locations": False, "near_k": 0})
    assert check_graph_leakage(split, graph)["item_features"] == ["category", "latlon"]


def test_feature_checks_need_one_row_per_item_and_a_known_attribute(split):
    with pytest.raises(LeakageError, match=r"'latlon' has shape \(2, 2\).*\(3, 2\)"):
        split.check_no_leakage(item_features={"latlon": np.zeros((2, 2))})
    with pytest.raises(DataError, match="no training attribute 'popularity'"):
        split.check_no_leakage(item_features={"popularity": np.zeros(3)})
