"""The temporal index against brute force, and append against rebuild (random data with ties)."""

import numpy as np
import pytest

import tgraph.data.temporal_index as temporal_index
from tgraph.data.temporal_index import NO_TIME, TemporalIndex


def _events(rng: np.random.Generator, n: int, n_nodes: int, n_times: int) -> dict:
    """Few nodes and few distinct times: many ties in time within a node."""
    return {
        "node": rng.integers(0, n_nodes, n),
        "time": rng.integers(0, n_times, n),
        "item": rng.integers(0, 50, n),
        "lat": rng.normal(size=n),
    }


def _brute(events: dict, nodes: np.ndarray, before: np.ndarray, k: int) -> list[list[tuple]]:
    """Per query, the last k (time, edge, item, lat) of the node strictly before the time,
    ordered by (time, arrival)."""
    rows = list(zip(events["node"], events["time"], range(len(events["node"])), events["item"]))
    answer = []
    for v, t in zip(nodes, before):
        hits = sorted((tm, e, it) for n, tm, e, it in rows if n == v and tm < t)
        answer.append(hits[len(hits) - min(len(hits), k) :])
    return answer


def _as_rows(recent, k: int) -> list[list[tuple]]:
    out = []
    for q in range(len(recent.length)):
        n = int(recent.length[q])
        out.append([(recent.time[q, j], recent.edge[q, j], recent["item"][q, j]) for j in range(n)])
        # padding after the real events
        assert (recent.edge[q, n:] == -1).all() and (recent["item"][q, n:] == 0).all()
        assert recent.time.shape[1] == k
    return out


def _build(events: dict) -> TemporalIndex:
    return TemporalIndex.from_events(
        events["node"], events["time"], item=events["item"], lat=events["lat"]
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [0, 1, 3, 7])
def test_recent_equals_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    events = _events(rng, 200, n_nodes=8, n_times=12)
    index = _build(events)
    nodes = rng.integers(0, 10, 60)  # nodes 8 and 9 have no events
    before = rng.integers(-1, 14, 60)
    recent = index.recent(nodes, before, k)
    assert _as_rows(recent, k) == _brute(events, nodes, before, k)
    # the coordinates travel with their events
    lat = np.where(recent.mask, events["lat"][np.maximum(recent.edge, 0)], 0.0)
    np.testing.assert_array_equal(recent["lat"], lat)


@pytest.mark.parametrize("seed", range(3))
def test_huge_times_and_node_ids_use_time_ranks(seed):
    """Nanosecond times near 2**62 and node ids near 10**12: the (node, time) key no longer
    fits a time span, the index keys on time ranks; answers are unchanged."""
    rng = np.random.default_rng(seed)
    events = _events(rng, 150, n_nodes=6, n_times=10)
    events["node"] = events["node"] * 10**11
    events["time"] = events["time"] * 2**58 - 2**61
    index = _build(events)
    nodes = rng.integers(0, 7, 50) * 10**11
    before = rng.integers(-1, 12, 50) * 2**58 - 2**61
    assert _as_rows(index.recent(nodes, before, 3), 3) == _brute(events, nodes, before, 3)
    last = [
        max((t for n, t in zip(events["node"], events["time"]) if n == v), default=NO_TIME)
        for v in nodes
    ]
    np.testing.assert_array_equal(index.last_time(nodes), last)


def test_times_near_the_int64_limits():
    """Span-keyed runs with times just below 2**63 and just above -2**63 (last_time asks at
    the int64 maximum: no overflow)."""
    rng = np.random.default_rng(7)
    for offset in (np.iinfo(np.int64).max - 40, np.iinfo(np.int64).min + 1):
        events = _events(rng, 120, n_nodes=5, n_times=20)
        events["time"] = events["time"] + offset
        index = _build(events)
        nodes, before = rng.integers(0, 6, 40), rng.integers(0, 21, 40) + offset
        assert _as_rows(index.recent(nodes, before, 4), 4) == _brute(events, nodes, before, 4)
        last = [
            max((t for n, t in zip(events["node"], events["time"]) if n == v), default=NO_TIME)
            for v in nodes
        ]
        np.testing.assert_array_equal(index.last_time(nodes), last)


def test_ties_keep_arrival_order_and_time_is_strict():
    """Node 0: items 1, 2, 3 at t=5 (in that order), item 4 at t=6."""
    index = TemporalIndex.from_events(
        np.array([0, 1, 0, 0, 0]), np.array([5, 5, 6, 5, 5]), item=np.array([1, 9, 4, 2, 3])
    )
    recent = index.recent(np.array([0, 0, 0, 0]), np.array([5, 6, 7, 7]), 2)
    np.testing.assert_array_equal(recent.length, [0, 2, 2, 2])
    np.testing.assert_array_equal(recent["item"], [[0, 0], [2, 3], [3, 4], [3, 4]])
    np.testing.assert_array_equal(recent.edge[1], [3, 4])


@pytest.mark.parametrize("seed", range(8))
def test_append_then_query_equals_rebuild(seed, monkeypatch):
    """Random chunks (single events and batches; some nodes appear only in later chunks),
    with a tail small enough to be merged several times; after every append the index
    answers like one built from scratch over every event so far."""
    monkeypatch.setattr(temporal_index, "MIN_TAIL", 16)
    monkeypatch.setattr(temporal_index, "TAIL_FACTOR", 1)
    rng = np.random.default_rng(100 + seed)
    events = _events(rng, 400, n_nodes=6, n_times=20)
    events["node"][200:] += rng.integers(0, 2, 200) * 6  # nodes 6..11 only after appends
    cuts = np.unique(np.concatenate([[0, 400], rng.integers(1, 400, 40)]))
    first = {name: values[: cuts[1]] for name, values in events.items()}
    index = _build(first)
    nodes = rng.integers(0, 13, 80)
    before = rng.integers(0, 22, 80)
    for lo, hi in zip(cuts[1:-1], cuts[2:]):
        chunk = {name: values[lo:hi] for name, values in events.items()}
        index.append(chunk["node"], chunk["time"], item=chunk["item"], lat=chunk["lat"])
        rebuilt = _build({name: values[:hi] for name, values in events.items()})
        assert len(index) == len(rebuilt) == hi
        for k in (1, 4, None):
            got, want = index.recent(nodes, before, k), rebuilt.recent(nodes, before, k)
            for name in ("length", "time", "edge"):
                np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
            for name in ("item", "lat"):
                np.testing.assert_array_equal(got[name], want[name])
        np.testing.assert_array_equal(index.last_time(nodes), rebuilt.last_time(nodes))
    assert _as_rows(index.recent(nodes, before, 5), 5) == _brute(events, nodes, before, 5)


def test_all_events_flat_and_last_time():
    index = TemporalIndex.from_events(np.array([2, 2, 0, 2]), np.array([3, 1, 4, 2]))
    recent = index.recent(np.array([2, 0, 1]), np.array([10, 10, 10]), None)
    assert recent.time.shape == (3, 3)
    query, position = recent.flat()
    np.testing.assert_array_equal(query, [0, 0, 0, 1])
    np.testing.assert_array_equal(recent.time[query, position], [1, 2, 3, 4])
    np.testing.assert_array_equal(index.last_time(np.array([0, 1, 2])), [4, NO_TIME, 3])


def test_empty_index_and_bad_input():
    index = TemporalIndex.from_events(np.zeros(0, np.int64), np.zeros(0, np.int64), item=[])
    recent = index.recent(np.array([0, 3]), np.array([5, 5]), 2)
    np.testing.assert_array_equal(recent.length, [0, 0])
    assert recent["item"].shape == (2, 2)
    with pytest.raises(ValueError, match="exactly the features"):
        index.append(np.array([0]), np.array([1]))
    with pytest.raises(TypeError, match="integers"):
        index.append(np.array([0]), np.array([1.5]), item=np.array([1]))
    with pytest.raises(ValueError, match="non-negative"):
        index.append(np.array([-1]), np.array([1]), item=np.array([1]))
    with pytest.raises(ValueError, match="reserved"):
        TemporalIndex.from_events(np.array([0]), np.array([1]), edge=np.array([1]))
