"""Temporal views and recent-neighbour sampling: hand-computed cases and randomised checks
against brute force (never a future edge)."""

from __future__ import annotations

import dgl
import numpy as np
import pytest
import torch

from tests.graph.conftest import random_interactions
from tgraph.graph import (
    RecentNeighborSampler,
    build_graph,
    graph_before,
    graph_between,
    sample_recent_neighbors,
    snapshots,
    timed_etypes,
)
from tgraph.graph.spec import IN_LOCATION, INTERACTS, NEAR, TRANSITION


def untimed(graph) -> list:
    return [et for et in graph.canonical_etypes if et not in timed_etypes(graph)]


# ------------------------------------------------------------------------------ views
def test_graph_before_hand_computed(toy):
    g = build_graph(toy, {"time_slots": 24})
    view = graph_before(g, 20)
    graph = view.graph
    assert graph.edges[INTERACTS].data["timestamp"].tolist() == [10, 15]  # strictly before 20
    assert graph.edges[INTERACTS].data[dgl.EID].tolist() == [0, 1]
    assert graph.num_edges(TRANSITION) == 0  # the first transition happens at t = 20
    for et in untimed(graph):
        assert graph.num_edges(et) == g.graph.num_edges(et)
    assert graph.num_nodes("item") == 4 and torch.equal(
        graph.nodes["item"].data["coord"], g.graph.nodes["item"].data["coord"]
    )
    # norms are those of the view: user a has one interaction before t = 20
    assert graph.nodes["user"].data["norm_out_interacts"].tolist() == [1.0, 1.0, 0.0]
    assert view.meta.window == (None, 20)
    assert (view.meta.t_min, view.meta.t_max) == (10, 15)
    assert "view:" in repr(view)
    plain = graph_before(g.graph, 20)  # a plain DGL graph works too
    assert isinstance(plain, dgl.DGLGraph) and plain.num_edges(INTERACTS) == 2


@pytest.mark.parametrize("seed", range(6))
def test_graph_before_keeps_exactly_the_past(seed):
    g = build_graph(random_interactions(seed), {"time_slots": 6, "categories": True}).graph
    rng = np.random.default_rng(seed)
    stamps = g.edges[INTERACTS].data["timestamp"]
    for t in [int(stamps.min()), int(stamps.max()) + 1, *rng.choice(stamps.numpy(), 5)]:
        view = graph_before(g, t)
        for et in timed_etypes(g):
            ts = g.edges[et].data["timestamp"]
            expected = torch.nonzero(ts < t).squeeze(1)
            assert torch.equal(view.edges[et].data[dgl.EID], expected), (et, t)
            assert torch.equal(view.edges(etype=et)[0], g.edges(etype=et)[0][expected])
            if view.num_edges(et):
                assert int(view.edges[et].data["timestamp"].max()) < t
        for et in untimed(g):
            assert torch.equal(view.edges(etype=et)[1], g.edges(etype=et)[1])
        for et in view.canonical_etypes:
            src, dst = view.edges(etype=et)
            deg = view.out_degrees(etype=et)[src] * view.in_degrees(etype=et)[dst]
            assert torch.allclose(view.edges[et].data["norm"], deg.float().rsqrt())


def test_graph_between_bounds(toy):
    g = build_graph(toy).graph
    view = graph_between(g, 15, 40)
    assert view.edges[INTERACTS].data["timestamp"].tolist() == [15, 20, 30]
    assert view.num_edges(IN_LOCATION) == 4 and view.num_edges(NEAR) == g.num_edges(NEAR)


def test_snapshots_partition_the_timed_edges(toy):
    g = build_graph(toy, {"max_gap_seconds": None})
    parts = snapshots(g, n=3)
    # span [10, 100000] -> bounds 10, 33340, 66670, 100001
    assert [p.meta.window for p in parts] == [(10, 33340), (33340, 66670), (66670, 100001)]
    assert [p.graph.num_edges(INTERACTS) for p in parts] == [5, 0, 1]
    for et in timed_etypes(g.graph):
        eids = torch.cat([p.graph.edges[et].data[dgl.EID] for p in parts])
        assert sorted(eids.tolist()) == list(range(g.graph.num_edges(et)))
    hourly = snapshots(g, window_seconds=3600)
    assert len(hourly) == 28  # (100000 - 10) // 3600 + 1
    assert sum(p.graph.num_edges(INTERACTS) for p in hourly) == 6
    growing = snapshots(g, window_seconds=50_000, cumulative=True)
    assert [p.graph.num_edges(INTERACTS) for p in growing] == [5, 6]
    assert growing[-1].meta.window == (None, 100_010)
    for bad in ({}, {"n": 2, "window_seconds": 10}, {"n": 0}):
        with pytest.raises(ValueError):
            snapshots(g, **bad)


# ------------------------------------------------------------------------------ sampling
def brute_force(graph, etype, seeds, times, k) -> list[tuple[int, int]]:
    """(query, eid) of the k most recent edges into each seed strictly before its time,
    oldest first; ties in time broken by edge id."""
    dst = graph.edges(etype=etype)[1].numpy()
    ts = graph.edges[etype].data["timestamp"].numpy()
    out = []
    for q, (v, t) in enumerate(zip(seeds.tolist(), times.tolist())):
        past = np.flatnonzero((dst == v) & (ts < t))  # edge ids, ascending
        past = past[np.argsort(ts[past], kind="stable")]
        keep = past if k is None else past[len(past) - min(k, len(past)) :]
        out += [(q, int(e)) for e in keep]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_recent_neighbours_match_brute_force(seed):
    g = build_graph(random_interactions(seed)).graph
    rng = np.random.default_rng(100 + seed)
    for etype in ("rev_interacts", "interacts", "transition", "rev_visits"):
        et = g.to_canonical_etype(etype)
        sampler = RecentNeighborSampler(g, et)
        ts = g.edges[et].data["timestamp"]
        n_dst = g.num_nodes(et[2])
        seeds = torch.as_tensor(rng.integers(0, n_dst, 60))
        times = torch.as_tensor(rng.integers(int(ts.min()) - 2, int(ts.max()) + 3, 60))
        times[:20] = ts[rng.integers(0, len(ts), 20)]  # exact ties with edge times
        for k in (None, 0, 1, 3, 50):
            got = sampler.sample(seeds, times, k)
            assert list(zip(got.query.tolist(), got.eid.tolist())) == brute_force(
                g, et, seeds, times, k
            ), (etype, k)
            assert bool((got.timestamp < got.times[got.query]).all())  # never a future edge
            src, dst = g.find_edges(got.eid, etype=et)
            assert torch.equal(src, got.src) and torch.equal(dst, seeds[got.query])
            assert torch.equal(got.timestamp, ts[got.eid])


def test_sampling_on_a_view_never_sees_the_future(toy):
    g = build_graph(toy)
    view = graph_before(g, 30)
    users, times = torch.tensor([0, 1]), torch.tensor([10**9] * 2)
    got = sample_recent_neighbors(view, "rev_interacts", users, times, 5)
    assert got.timestamp.tolist() == [10, 20, 15]  # user a: x@10, y@20; user b: y@15 (z@30 cut)


def test_block_of_recent_neighbours(toy):
    g = build_graph(toy, {"max_gap_seconds": None})
    items, times = torch.tensor([1, 2, 1]), torch.tensor([50, 50, 10**6])
    got = sample_recent_neighbors(g, TRANSITION, items, times, 1)
    # into x: y->x at 100000 (not before 50); into y: x->y at 20; into x before 1e6: y->x
    assert got.query.tolist() == [1, 2] and got.src.tolist() == [1, 2]
    block = got.to_block()
    assert block.is_block and block.num_dst_nodes() == 3 and block.num_src_nodes() == 2
    assert block.srcdata[dgl.NID].tolist() == [1, 2]
    assert block.dstdata[dgl.NID].tolist() == [1, 2, 1]
    assert block.edata["dt"].tolist() == [50 - 20, 10**6 - 100_000]
    assert block.in_degrees().tolist() == [0, 1, 1]


def test_sampler_rejects_bad_input(toy):
    g = build_graph(toy)
    with pytest.raises(ValueError, match="timestamp"):
        RecentNeighborSampler(g, IN_LOCATION)
    sampler = RecentNeighborSampler(g, "rev_interacts")
    with pytest.raises(ValueError, match="seed ids"):
        sampler.sample(torch.tensor([3]), torch.tensor([5]), 2)
    with pytest.raises(ValueError, match="one length"):
        sampler.sample(torch.tensor([0, 1]), torch.tensor([5]), 2)


def test_nyc_recent_items_before_each_test_target(nyc_graph, nyc_split):
    targets = nyc_split.test_targets
    seeds = torch.tensor(targets["user"].to_numpy())
    times = torch.tensor(targets["timestamp"].to_numpy())
    got = RecentNeighborSampler(nyc_graph, "rev_interacts").sample(seeds, times, 10)
    assert bool((got.timestamp < times[got.query]).all())
    counts = torch.bincount(got.query, minlength=len(seeds))
    history = np.bincount(nyc_split.train.events["user"], minlength=nyc_split.n_users)
    assert torch.equal(counts, torch.as_tensor(np.minimum(history[seeds.numpy()], 10)))
