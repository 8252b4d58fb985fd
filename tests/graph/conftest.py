"""Fixtures for the graph tests: a hand-made toy dataset and the Foursquare NYC training graph."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd
import pytest

from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import add_regions, fit_grid
from tgraph.data.protocols import getnext_nyc
from tgraph.graph import build_graph

# items w, x, y, z get codes 0, 1, 2, 3 (sorted raw ids); users a, b, c get 0, 1, 2
TOY_ITEMS = pd.DataFrame(
    {
        "lat": [40.9, 40.70, 40.71, 40.8],
        "lon": [-73.8, -74.00, -74.01, -73.9],
        "region": [2, 0, 0, 1],
    },
    index=["w", "x", "y", "z"],
)
TOY_EVENTS = pd.DataFrame(
    {
        "user": ["a", "a", "a", "b", "b", "c"],
        "item": ["x", "y", "x", "y", "z", "z"],
        "timestamp": [10, 20, 100_000, 15, 30, 40],
    }
)


def make_toy(events: pd.DataFrame | None = None, items: pd.DataFrame | None = None):
    return Interactions.from_frame(
        TOY_EVENTS if events is None else events,
        name="toy",
        item_meta=TOY_ITEMS if items is None else items,
    )


@pytest.fixture
def toy() -> Interactions:
    return make_toy()


def random_interactions(seed: int, n_events: int = 400) -> Interactions:
    """Random events with many timestamp ties, regions and categories on every item."""
    rng = np.random.default_rng(seed)
    n_items = int(rng.integers(5, 40))
    frame = pd.DataFrame(
        {
            "user": rng.integers(0, int(rng.integers(2, 30)), n_events),
            "item": rng.integers(0, n_items, n_events),
            "timestamp": rng.integers(0, int(rng.integers(5, 5000)), n_events),
        }
    )
    items = pd.DataFrame(
        {
            "lat": 40.7 + rng.normal(0, 0.05, n_items),
            "lon": -74.0 + rng.normal(0, 0.05, n_items),
            "region": rng.integers(0, 6, n_items),
            "category": rng.integers(0, 4, n_items),
        }
    )
    return Interactions.from_frame(frame, name=f"random{seed}", item_meta=items)


@pytest.fixture(scope="session")
def nyc_split(root):
    """The GETNext NYC split with 1 km grid regions fitted on the POIs of the training events
    (every catalogue POI is assigned to its nearest fitted cell)."""
    split = getnext_nyc(root)
    train = split.train
    seen = np.unique(train.events["item"].to_numpy())
    grid = fit_grid(train.items["lat"].to_numpy()[seen], train.items["lon"].to_numpy()[seen])
    train, _ = add_regions(train, grid)
    return dataclasses.replace(split, train=train)


@pytest.fixture(scope="session")
def nyc_graph(nyc_split):
    start = time.perf_counter()
    graph = build_graph(nyc_split.train, {"time_slots": 24})
    graph.meta.report["build_seconds"] = time.perf_counter() - start
    return graph
