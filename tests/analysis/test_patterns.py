"""Sequential patterns: hand-computed rules, slot transitions, graph structure, synthetic/NYC."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from tgraph.analysis import patterns as P
from tgraph.data import DataError, Interactions, load
from tgraph.data.preprocess import add_regions, fit_kmeans, item_coordinates
from tgraph.data.synthetic import generate

MONDAY = 4 * 86_400  # 1970-01-05 00:00 UTC


@pytest.fixture(scope="module")
def synth():
    return generate(seed=0)


@pytest.fixture(scope="module")
def nyc(root):
    inter = load("foursquare_nyc", root)
    inter, _ = add_regions(inter, fit_kmeans(*item_coordinates(inter), k=30, seed=0))
    return inter


def _rules_table():
    # transactions A->B, A->B, A->C, B->C: N = 4, n_A. = 3, n_B. = 1, n_.B = 2, n_.C = 2
    return P.rules_from_pairs(["A", "A", "A", "B"], ["B", "B", "C", "C"])


def test_rules_hand_computed():
    rules = _rules_table().set_index(["antecedent", "consequent"])
    assert len(rules) == 3
    expected = {  # count, support, confidence, lift
        ("A", "B"): (2, 0.5, 2 / 3, (2 / 3) / 0.5),
        ("A", "C"): (1, 0.25, 1 / 3, (1 / 3) / 0.5),
        ("B", "C"): (1, 0.25, 1.0, 1.0 / 0.5),
    }
    for key, (count, support, confidence, lift) in expected.items():
        row = rules.loc[key]
        assert row["count"] == count
        assert np.allclose(
            row[["support", "confidence", "lift"]].to_numpy(float), [support, confidence, lift]
        )
    assert np.isclose(rules.loc[("A", "B"), "antecedent_support"], 0.75)
    assert np.isclose(rules.loc[("B", "C"), "consequent_support"], 0.5)
    strict = P.rules_from_pairs(["A", "A", "A", "B"], ["B", "B", "C", "C"], min_confidence=0.5)
    assert set(zip(strict["antecedent"], strict["consequent"], strict=True)) == {
        ("A", "B"),
        ("B", "C"),
    }
    with pytest.raises(DataError):
        P.rules_from_pairs([], [])


def test_transition_graph_structure():
    rules = _rules_table()
    positions = pd.DataFrame(
        {
            "location": ["A", "B", "C"],
            "lat": [1.0, 2.0, 3.0],
            "lon": [4.0, 5.0, 6.0],
            "n_events": [3, 2, 2],
        }
    )
    graph = P.transition_graph(rules, positions)
    assert isinstance(graph, nx.DiGraph)
    assert graph.number_of_nodes() == 3 and graph.number_of_edges() == 3
    assert graph.nodes["B"]["pos"] == (5.0, 2.0)
    assert np.isclose(graph.edges["A", "B"]["lift"], 4 / 3) and graph.edges["A", "B"]["count"] == 2
    pruned = P.transition_graph(rules, min_support=0.3)
    assert pruned.number_of_nodes() == 2 and pruned.number_of_edges() == 1
    with pytest.raises(DataError, match="position"):
        P.transition_graph(rules, positions.iloc[:2])


def _tiny_trip() -> Interactions:
    # user 0 on a Monday: region 0 -> 1 at 08:00 (morning), three stays in region 1, 1 -> 0 at
    # 20:00 (evening); then a 3-day gap (beyond max_gap_hours) and one more check-in
    times = [8, 9, 12, 13, 20, 21, 21 + 72]
    items = [0, 1, 1, 1, 1, 0, 1]
    frame = pd.DataFrame(
        {"user": 0, "item": items, "timestamp": [MONDAY + h * 3600 for h in times]}
    )
    meta = pd.DataFrame({"lat": [40.0, 40.1], "lon": [-74.0, -74.0], "region": [0, 1]})
    return Interactions.from_frame(frame, name="trip", item_meta=meta)


def test_transitions_by_slot():
    inter = _tiny_trip()
    table = P.transitions(inter)
    got = {(str(r.slot), r.src, r.dst): r.count for r in table.itertuples()}
    assert got == {("morning", 0, 1): 1, ("evening", 1, 0): 1}
    assert np.allclose(table["share"], 1.0)
    with_stays = P.transitions(inter, self_loops=True)
    assert with_stays["count"].sum() == 5  # 6 consecutive pairs, one beyond 24 h
    rules = P.association_rules(inter)
    assert rules["count"].sum() == 5 and np.isclose(rules["support"].sum(), 1.0)


def test_synthetic_rules(synth):
    rules = P.association_rules(synth, "region")
    assert np.isclose(rules["support"].sum(), 1.0)
    # staying in the region is planted (favourites near the anchor, nearby successors)
    stays = rules[rules["antecedent"] == rules["consequent"]]
    assert len(stays) == synth.items["region"].nunique()
    assert (stays["lift"] > 1).mean() >= 0.9 and stays["support"].sum() > 0.5
    # confidence sums to 1 over each antecedent's rules
    assert np.allclose(rules.groupby("antecedent")["confidence"].sum(), 1.0)
    graph = P.transition_graph(rules, P.location_positions(synth), self_loops=True)
    assert graph.number_of_nodes() == synth.items["region"].nunique()
    assert graph.number_of_edges() == len(rules)


def test_nyc_sanity(nyc):
    table = P.transitions(nyc)
    assert set(table["slot"].astype(str)) == set(P.SLOT_NAMES)
    rules = P.association_rules(nyc, min_support=0.001)
    assert (rules["support"] >= 0.001).all() and len(rules) > 30
    stays = rules[rules["antecedent"] == rules["consequent"]]
    assert stays["lift"].median() > 1.5  # consecutive NYC check-ins stay in their area
    graph = P.transition_graph(rules, P.location_positions(nyc))
    assert graph.number_of_edges() == int((rules["antecedent"] != rules["consequent"]).sum())
    lat = np.array([graph.nodes[n]["lat"] for n in graph])
    assert np.all((lat > 40.4) & (lat < 41.1))


def test_plots_written(synth, tmp_path):
    rules = P.association_rules(synth)
    graph = P.transition_graph(rules, P.location_positions(synth), min_support=0.002)
    paths = [
        P.plot_transitions(P.transitions(synth), tmp_path / "a.png"),
        P.plot_association_rules(rules, tmp_path / "b.png"),
        P.plot_transition_graph(graph, tmp_path / "c.png"),
        P.plot_transition_graph(P.transition_graph(rules), tmp_path / "d.png"),  # no positions
    ]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
