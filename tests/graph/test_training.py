"""A model's training heterograph: regions fitted on training items only, left out without
coordinates, node types dropped."""

import pandas as pd
import pytest

from tests.models.helpers import make_interactions, random_split
from tgraph.graph.training import check_graph_leakage, training_heterograph


def test_regions_are_fitted_on_training_items_only():
    """A POI seen only outside training (far away) gets an existing region, never its own."""
    rows = [(0, 0, 1), (0, 1, 2), (1, 2, 3), (1, 0, 4)]
    train = make_interactions(rows, 2, 4)
    items = train.items.copy()
    items.loc[3, ["lat", "lon"]] = [10.0, 10.0]  # item 3: never in training
    train = train.with_events(train.events, items=items)
    hetero = training_heterograph(train, {"near_k": 1}, n_regions=50)
    graph = hetero.graph
    assert graph.num_nodes("location") == 3  # three distinct training POIs, k capped at 3
    assert hetero.meta.report["regions"] == {"method": "kmeans", "k": 3, "fitted_on_items": 3}
    location = graph.nodes["item"].data["location"]
    assert 0 <= int(location[3]) < 3
    far = graph.nodes["location"].data["latlon"][:, 0] < 30
    assert int(far.sum()) == 1  # only the region the unseen item joined moves


def test_without_coordinates_locations_are_left_out():
    frame = pd.DataFrame({"user": [0, 0, 1], "item": [0, 1, 1], "timestamp": [1, 2, 3]})
    train = make_interactions(frame.itertuples(index=False), 2, 2)
    train = train.with_events(train.events, items=train.items[["raw_id"]])
    hetero = training_heterograph(train)
    assert "location" not in hetero.graph.ntypes
    assert "locations_left_out" in hetero.meta.report


def test_drop_ntypes():
    train = random_split().train
    hetero = training_heterograph(train, drop_ntypes=("user",))
    assert "user" not in hetero.graph.ntypes and "transition" in hetero.graph.etypes
    with pytest.raises(ValueError, match="leaves no relation"):
        training_heterograph(
            train, {"locations": False, "transitions": False}, drop_ntypes=["user"]
        )


def test_nyc_training_graph_passes_the_feature_leakage_check(nyc_split, nyc_graph):
    """The NYC graph's item positions are the POI file's (static), its categories unknown
    (the STAN table has none), and every timed edge is a training check-in."""
    checked = check_graph_leakage(nyc_split, nyc_graph)
    assert checked["item_features"] == ["latlon"]
    assert checked["edge_times"]["user-interacts-item"] == 113_013
