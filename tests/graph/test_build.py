"""build_graph: hand-computed toy cases, spec validation, errors, and invariants on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from tests.graph.conftest import TOY_EVENTS, TOY_ITEMS, make_toy, random_interactions
from tgraph.config import validate_model
from tgraph.data.geo import haversine
from tgraph.data.synthetic import generate
from tgraph.errors import ConfigError, DataError
from tgraph.graph import GraphSpec, build_graph, reverse, timed_etypes
from tgraph.graph.spec import (
    AT_SLOT,
    IN_LOCATION,
    INTERACTS,
    NEAR,
    OF_CATEGORY,
    TRANSITION,
    VISITS,
)


def edges(g, etype, *data: str) -> list[tuple]:
    """Edges of ``etype`` as (src, dst, *data) tuples in edge-id order."""
    src, dst = g.edges(etype=etype)
    columns = [src, dst, *(g.edges[etype].data[k] for k in data)]
    return list(zip(*(c.tolist() for c in columns)))


# ------------------------------------------------------------------------------ toy: hand-computed
def test_nodes_are_the_catalogue_and_interactions_the_events(toy):
    g = build_graph(toy).graph
    assert g.num_nodes("user") == 3 and g.num_nodes("item") == 4  # item w has no event
    assert g.num_nodes("location") == 3
    # events sorted by time: (a,x,10) (b,y,15) (a,y,20) (b,z,30) (c,z,40) (a,x,100000)
    assert edges(g, INTERACTS, "timestamp") == [
        (0, 1, 10),
        (1, 2, 15),
        (0, 2, 20),
        (1, 3, 30),
        (2, 3, 40),
        (0, 1, 100_000),
    ]
    assert g.edges[INTERACTS].data["timestamp"].dtype == torch.int64
    assert edges(g, IN_LOCATION) == [(0, 2), (1, 0), (2, 0), (3, 1)]
    assert [d for _, d in edges(g, VISITS)] == [0, 0, 0, 1, 1, 0]
    assert g.nodes["item"].data["location"].tolist() == [2, 0, 0, 1]
    assert g.nodes["user"].data["id"].tolist() == [0, 1, 2]


def test_transitions_hand_computed(toy):
    g = build_graph(toy).graph  # max gap 24 h drops a: y(20) -> x(100000)
    assert edges(g, TRANSITION, "timestamp", "gap") == [(1, 2, 20, 10), (2, 3, 30, 15)]
    km = haversine(40.70, -74.00, 40.71, -74.01)
    assert g.edges[TRANSITION].data["dist_km"][0].item() == pytest.approx(km, rel=1e-6)
    g = build_graph(toy, {"max_gap_seconds": None}).graph
    assert edges(g, TRANSITION, "gap") == [(1, 2, 10), (2, 3, 15), (2, 1, 99_980)]
    g = build_graph(toy, {"max_gap_seconds": 10}).graph
    assert edges(g, TRANSITION) == [(1, 2)]


def test_transitions_stay_within_trajectories():
    events = TOY_EVENTS.assign(trajectory=["t1", "t2", "t2", "t3", "t3", "t4"])
    g = build_graph(make_toy(events), {"max_gap_seconds": None}).graph
    assert edges(g, TRANSITION) == [(2, 3), (2, 1)]  # a: x | y -> x, b: y -> z


def test_region_from_events_mode_with_smallest_on_ties():
    events = TOY_EVENTS.assign(region=[5, 3, 5, 4, 1, 1])
    # x: {5, 5} -> 5; y: {3, 4} tie -> 3; z: {1, 1} -> 1; w: no event -> no location
    g = build_graph(make_toy(events, TOY_ITEMS.drop(columns="region")))
    assert edges(g.graph, IN_LOCATION) == [(1, 5), (2, 3), (3, 1)]
    assert g.graph.num_nodes("location") == 6
    assert g.meta.report["items_without_location"] == 1
    assert g.meta.report["locations_without_coordinates"] == 3  # regions 0, 2, 4 are empty


def test_static_items_region_wins_over_events_and_fills_unknown_items():
    items = TOY_ITEMS.assign(region=[np.nan, 7, np.nan, -1])
    events = TOY_EVENTS.assign(region=[5, 3, 5, 4, 1, 1])
    toy = make_toy(events, items)
    static = toy.with_events(toy.events, meta={"static_item_columns": ["region"]})
    g = build_graph(static, {"near_k": 0}).graph
    assert edges(g, IN_LOCATION) == [(1, 7), (2, 3), (3, 1)]


def test_undeclared_items_region_gives_way_to_the_events():
    """An items column the events also carry, not declared static, may hold validation/test
    information: the events' most frequent value is used instead (x: 5, 5; y: 3, 4 -> the
    smaller; z: 1, 1; w has no event: unknown)."""
    items = TOY_ITEMS.assign(region=[np.nan, 7, np.nan, -1])
    events = TOY_EVENTS.assign(region=[5, 3, 5, 4, 1, 1])
    g = build_graph(make_toy(events, items), {"near_k": 0}).graph
    assert edges(g, IN_LOCATION) == [(1, 5), (2, 3), (3, 1)]


def test_locations_need_a_region_column():
    inter = make_toy(items=TOY_ITEMS.drop(columns="region"))
    with pytest.raises(DataError, match="'region'"):
        build_graph(inter)
    g = build_graph(inter, {"locations": False})
    assert "location" not in g.graph.ntypes


def test_training_item_without_region_is_an_error():
    with pytest.raises(DataError, match="item 2 of a training event has no region"):
        build_graph(make_toy(items=TOY_ITEMS.assign(region=[2, 0, np.nan, 1])))


def test_near_locations_knn_and_radius(toy):
    # centres: 0 = mean(x, y) = (40.705, -74.005), 1 = z, 2 = w
    g = build_graph(toy, {"near_k": 1}).graph
    assert sorted(edges(g, NEAR)) == [(0, 1), (1, 0), (2, 1)]
    d01 = haversine(40.705, -74.005, 40.8, -73.9)
    assert dict(((s, d), km) for s, d, km in edges(g, NEAR, "dist_km"))[(0, 1)] == pytest.approx(
        d01, rel=1e-5
    )
    assert g.nodes["location"].data["latlon"][0].tolist() == pytest.approx([40.705, -74.005])
    g = build_graph(toy, {"near_radius_km": d01 + 0.01}).graph
    assert sorted(edges(g, NEAR)) == [(0, 1), (1, 0)]  # 1 <-> 2 is 13.9 km > radius
    g = build_graph(toy, {"near_k": 2}).graph
    assert g.num_edges(NEAR) == 6
    assert NEAR not in build_graph(toy, {"near_k": 0}).graph.canonical_etypes


def test_time_slots_use_local_time():
    events = TOY_EVENTS.assign(
        timestamp=[0, 3600 * 5, 3600 * 5 + 1799, 3600 * 23, 86400 + 3600 * 7, 50], tz_offset=-300
    )
    g = build_graph(make_toy(events), {"time_slots": 48}).graph
    # local = UTC - 5 h: 19:00, 00:00, 00:29:59, 18:00, 02:00, 19:00:50 -> half-hour slots
    assert [s for _, s in edges(g, AT_SLOT)] == [38, 38, 0, 0, 36, 4]
    assert g.num_nodes("timeslot") == 48
    assert g.edges[AT_SLOT].data["timestamp"].tolist() == sorted(events["timestamp"])


def test_categories():
    items = TOY_ITEMS.assign(category=[3, 0, 0, 1])
    g = build_graph(make_toy(items=items), {"categories": True}).graph
    assert edges(g, OF_CATEGORY) == [(0, 3), (1, 0), (2, 0), (3, 1)]
    assert g.num_nodes("category") == 4
    assert g.nodes["item"].data["category"].tolist() == [3, 0, 0, 1]
    with pytest.raises(DataError, match="'category'"):
        build_graph(make_toy(), {"categories": True})


def test_weight_and_coordinate_features():
    inter = make_toy(TOY_EVENTS.assign(weight=[1.0, 2.0, 3.0, 4.0, 5.0, 0.5]))
    g = build_graph(inter)
    # weight follows the time-sorted events
    assert g.graph.edges[INTERACTS].data["weight"].tolist() == [1.0, 4.0, 2.0, 5.0, 0.5, 3.0]
    coord = g.graph.nodes["item"].data["coord"]
    assert coord.dtype == torch.float32
    assert coord.mean(0).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert coord.std(0, unbiased=False).tolist() == pytest.approx([1.0, 1.0], abs=1e-5)
    lat = TOY_ITEMS["lat"].to_numpy()
    assert g.meta.coord_mean[0] == pytest.approx(lat.mean())


def test_event_coordinates_when_items_have_none():
    events = TOY_EVENTS.assign(lat=[40.0, 41.0, 40.2, 41.0, 42.0, 42.0], lon=-74.0)
    g = build_graph(make_toy(events, TOY_ITEMS[["region"]]), {"near_k": 0})
    latlon = g.graph.nodes["item"].data["latlon"]
    assert latlon[1, 0].item() == pytest.approx(40.1)  # x: median of 40.0 and 40.2
    assert torch.isnan(latlon[0]).all()  # w: no event, no coordinate
    assert g.graph.nodes["item"].data["coord"][0].tolist() == [0.0, 0.0]
    assert g.meta.report["items_without_coordinates"] == 1


def test_degree_norm_hand_computed(toy):
    g = build_graph(toy).graph
    # edge (a, x): a has 3 interactions, x has 2
    assert g.edges[INTERACTS].data["norm"][0].item() == pytest.approx(1 / np.sqrt(3 * 2))
    assert g.nodes["user"].data["norm_out_interacts"].tolist() == pytest.approx(
        [3**-0.5, 2**-0.5, 1.0]
    )
    assert g.nodes["item"].data["norm_in_interacts"][0].item() == 0.0  # w: degree 0


def test_reverse_relations_mirror_forward_ones(toy):
    g = build_graph(toy, {"time_slots": 24}).graph
    forward = [et for et in g.canonical_etypes if not et[1].startswith("rev_")]
    assert len(g.canonical_etypes) == 2 * len(forward) == 12
    for et in forward:
        fs, fd = g.edges(etype=et)
        rs, rd = g.edges(etype=reverse(et))
        assert torch.equal(fs, rd) and torch.equal(fd, rs)
        assert g.edges[et].data.keys() == g.edges[reverse(et)].data.keys()
        for key, value in g.edges[et].data.items():
            assert torch.equal(value, g.edges[reverse(et)].data[key]), (et, key)
    assert len(build_graph(toy, {"reverse": False}).graph.canonical_etypes) == 5


# ------------------------------------------------------------------------------ spec
def test_spec_rejects_unknown_keys_and_bad_values(toy):
    """Every bad value raises one ConfigError naming ``graph.<key>``, before any graph work."""
    bad_values = [
        ({"near_kk": 3}, "near_kk", "Extra inputs"),
        ({"near_k": -1}, "near_k", "greater than or equal to 0"),
        ({"time_slots": -24}, "time_slots", "greater than or equal to 0"),
        ({"time_slots": 86401}, "time_slots", "less than or equal to 86400"),
        ({"near_radius_km": 0}, "near_radius_km", "greater than 0"),
        ({"max_gap_seconds": 2.5}, "max_gap_seconds", "valid integer"),
        ({"near_k": "5"}, "near_k", "valid integer"),
        ({"categories": 1}, "categories", "valid boolean"),
        ({"time_slots": True}, "time_slots", "valid integer"),
    ]
    for bad, key, problem in bad_values:
        with pytest.raises(ConfigError, match=rf"key 'graph\.{key}': .*{problem}"):
            build_graph(toy, bad)
    with pytest.raises(ValidationError):
        GraphSpec(near_k=-1)
    spec = GraphSpec.model_validate({"time_slots": 24, "categories": True, "near_radius_km": 3})
    assert spec.near_radius_km == 3.0 and isinstance(spec.near_radius_km, float)
    assert GraphSpec.model_validate(spec.model_dump()) == spec
    assert validate_model(GraphSpec, None, "graph") == GraphSpec()


def test_summary_and_repr(toy):
    g = build_graph(toy)
    s = g.summary()
    assert s["num_nodes"] == {"item": 4, "location": 3, "user": 3}
    assert s["num_edges"]["user-interacts-item"] == 6
    assert s["start"] == "1970-01-01 00:00:10" and s["end"] == "1970-01-02 03:46:40"
    assert "user-interacts-item" in s["timed_relations"]
    assert "item-in_location-location" not in s["timed_relations"]
    text = repr(g)
    assert "user-interacts-item" in text and "1970-01-02 03:46:40" in text


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
def test_to_device_moves_graph_and_features(toy, device):
    g = build_graph(toy).to(device)
    assert g.device.type == device
    for et in g.graph.canonical_etypes:
        data = g.graph.edges[et].data
        assert all(data[k].device.type == device for k in data.keys())
    for nt in g.graph.ntypes:
        data = g.graph.nodes[nt].data
        assert all(data[k].device.type == device for k in data.keys())


# ------------------------------------------------------------------------------ invariants
def pandas_transitions(train, max_gap: int) -> pd.DataFrame:
    """Transitions recomputed independently: shift within (user[, trajectory]) groups."""
    ev = train.events.sort_values(["user", "timestamp"], kind="stable")
    keys = ["user", "trajectory"] if "trajectory" in ev.columns else ["user"]
    grouped = ev.groupby(keys, sort=False)
    frame = pd.DataFrame(
        {"src": grouped["item"].shift(), "dst": ev["item"], "t": ev["timestamp"]}
    ).assign(gap=ev["timestamp"] - grouped["timestamp"].shift())
    frame = frame[frame["gap"] <= max_gap].astype(np.int64)
    return frame.sort_values(["t", "src", "dst"]).reset_index(drop=True)


def check_invariants(g, train, max_gap: int) -> None:
    graph = g.graph
    ev = train.events
    assert graph.num_nodes("user") == train.n_users and graph.num_nodes("item") == train.n_items
    assert graph.num_edges(INTERACTS) == len(ev)
    got = pd.DataFrame(edges(graph, INTERACTS, "timestamp"), columns=["user", "item", "timestamp"])
    want = ev[["user", "item", "timestamp"]]
    assert got.sort_values(list(got.columns)).values.tolist() == (
        want.sort_values(list(want.columns)).values.tolist()
    )
    # every item has exactly one location; visits follow the event's item
    assert graph.out_degrees(etype=IN_LOCATION).tolist() == [1] * train.n_items
    _, location = graph.edges(etype=IN_LOCATION)
    vu, vl = graph.edges(etype=VISITS)
    iu, ii = graph.edges(etype=INTERACTS)
    assert torch.equal(vu, iu) and torch.equal(vl, location[ii])
    # transitions agree with an independent pandas computation
    want = pandas_transitions(train, max_gap)
    got = pd.DataFrame(
        edges(graph, TRANSITION, "timestamp", "gap"), columns=["src", "dst", "t", "gap"]
    )
    got = got.sort_values(["t", "src", "dst"]).reset_index(drop=True)
    assert len(got) == len(want) == g.meta.report["transitions"]
    pd.testing.assert_frame_equal(got, want[["src", "dst", "t", "gap"]])
    # degree invariants on every relation
    for et in graph.canonical_etypes:
        out_deg, in_deg = graph.out_degrees(etype=et), graph.in_degrees(etype=et)
        assert int(out_deg.sum()) == int(in_deg.sum()) == graph.num_edges(et)
        src, dst = graph.edges(etype=et)
        norm = graph.edges[et].data["norm"]
        expected = (out_deg[src].double() * in_deg[dst].double()).rsqrt()
        assert torch.allclose(norm.double(), expected, rtol=1e-6)
    for et in timed_etypes(graph):
        assert graph.edges[et].data["timestamp"].dtype == torch.int64


def test_random_data_invariants():
    for seed in range(5):
        train = random_interactions(seed)
        check_invariants(build_graph(train), train, 24 * 3600)


def test_synthetic_invariants():
    train = generate(n_users=60, n_pois=150, n_events=4000, n_regions=6, days=30, seed=1)
    g = build_graph(train, {"time_slots": 24, "categories": True})
    check_invariants(g, train, 24 * 3600)
    graph = g.graph
    # the generator's regions and categories become the location and category edges
    _, location = graph.edges(etype=IN_LOCATION)
    assert location.tolist() == train.items["region"].tolist()
    _, category = graph.edges(etype=OF_CATEGORY)
    assert category.tolist() == train.items["category"].tolist()
    assert graph.num_nodes("location") == 6 and graph.num_nodes("category") == 20
    assert graph.num_edges(NEAR) == 6 * 5  # k = 5 nearest of 6 regions
    assert graph.num_edges(AT_SLOT) == len(train)


# ------------------------------------------------------------------------------ Foursquare NYC
def test_nyc_graph_agrees_with_the_training_data(nyc_graph, nyc_split):
    train = nyc_split.train
    assert (train.n_users, train.n_items) == (1083, 5135)
    check_invariants(nyc_graph, train, 24 * 3600)
    graph = nyc_graph.graph
    assert graph.num_edges(AT_SLOT) == len(train)
    assert nyc_graph.meta.report["items_without_location"] == 0


@pytest.mark.performance
def test_nyc_graph_builds_in_seconds(nyc_graph):
    assert nyc_graph.meta.report["build_seconds"] < 20, nyc_graph.meta.report["build_seconds"]


def test_nyc_graph_has_no_validation_or_test_event(nyc_graph, nyc_split):
    graph = nyc_graph.graph
    last_train = int(nyc_split.train.events["timestamp"].max())
    for et in timed_etypes(graph):
        assert int(graph.edges[et].data["timestamp"].max()) <= last_train, et
    keys = set(edges(graph, INTERACTS, "timestamp"))
    for part in (nyc_split.valid, nyc_split.test):
        assert int(part.events["timestamp"].min()) > last_train
        held_out = part.events[["user", "item", "timestamp"]].itertuples(index=False, name=None)
        assert keys.isdisjoint(held_out)
    # both ends of each transition are training events
    train_keys = set(
        nyc_split.train.events[["item", "timestamp"]].itertuples(index=False, name=None)
    )
    for src, dst, t, gap in edges(graph, TRANSITION, "timestamp", "gap"):
        assert (dst, t) in train_keys and (src, t - gap) in train_keys
