"""save_graph / load_graph: exact round trip of structure, features and metadata."""

from __future__ import annotations

import json

import pytest
import torch

from tests.graph.conftest import random_interactions
from tgraph.errors import DataError
from tgraph.graph import build_graph, graph_before, load_graph, save_graph


def assert_same(a, b) -> None:
    ga, gb = a.graph, b.graph
    assert ga.canonical_etypes == gb.canonical_etypes
    for nt in ga.ntypes:
        assert ga.num_nodes(nt) == gb.num_nodes(nt)
        assert set(ga.nodes[nt].data.keys()) == set(gb.nodes[nt].data.keys())
        for key in ga.nodes[nt].data.keys():
            assert torch.equal(ga.nodes[nt].data[key], gb.nodes[nt].data[key]) or (
                torch.allclose(ga.nodes[nt].data[key], gb.nodes[nt].data[key], equal_nan=True)
            ), (nt, key)
    for et in ga.canonical_etypes:
        for x, y in zip(ga.edges(etype=et), gb.edges(etype=et)):
            assert torch.equal(x, y), et
        assert set(ga.edges[et].data.keys()) == set(gb.edges[et].data.keys())
        for key in ga.edges[et].data.keys():
            assert torch.equal(ga.edges[et].data[key], gb.edges[et].data[key]), (et, key)
    assert a.meta == b.meta
    assert repr(a) == repr(b)


def test_round_trip(tmp_path):
    g = build_graph(random_interactions(3), {"time_slots": 24, "categories": True})
    path = save_graph(g, tmp_path / "sub" / "graph.bin")
    assert path.is_file() and (tmp_path / "sub" / "graph.bin.json").is_file()
    loaded = load_graph(path)
    assert_same(g, loaded)
    assert loaded.meta.item_raw_ids == g.meta.item_raw_ids
    assert loaded.meta.spec["time_slots"] == 24


def test_round_trip_of_a_view_keeps_its_window(toy, tmp_path):
    view = graph_before(build_graph(toy), 25)
    loaded = load_graph(save_graph(view, tmp_path / "view.bin"), device="cpu")
    assert_same(view, loaded)
    assert loaded.meta.window == (None, 25)


def test_string_raw_ids_survive(toy, tmp_path):
    loaded = load_graph(save_graph(build_graph(toy), tmp_path / "g.bin"))
    assert loaded.meta.user_raw_ids == ["a", "b", "c"]
    assert loaded.meta.item_raw_ids == ["w", "x", "y", "z"]


def test_missing_files_and_bad_version(toy, tmp_path):
    with pytest.raises(DataError, match="graph file not found"):
        load_graph(tmp_path / "nothing.bin")
    path = save_graph(build_graph(toy), tmp_path / "g.bin")
    sidecar = tmp_path / "g.bin.json"
    record = json.loads(sidecar.read_text())
    record["format_version"] = 99
    sidecar.write_text(json.dumps(record))
    with pytest.raises(DataError, match="format_version"):
        load_graph(path)
    sidecar.unlink()
    with pytest.raises(DataError, match="g.bin.json"):
        load_graph(path)
