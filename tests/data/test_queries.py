"""Queries built on the temporal index against a brute-force history."""

import numpy as np
import pandas as pd
import pytest

from tgraph.data.queries import build_queries, history_index, previous_event_gap


@pytest.mark.parametrize("seed", range(5))
def test_histories_equal_brute_force(seed):
    """Few users and times: ties in time keep the frame's row order; the target time is
    strict; users without events get an empty, padded history."""
    rng = np.random.default_rng(seed)
    n, n_items, history_len = 150, 9, 4
    context = pd.DataFrame(
        {
            "user": rng.integers(0, 5, n),
            "item": rng.integers(0, n_items, n),
            "timestamp": rng.integers(0, 15, n),
        }
    )
    items = pd.DataFrame({"lat": rng.normal(size=n_items), "lon": rng.normal(size=n_items)})
    users, times = rng.integers(0, 7, 40), rng.integers(0, 17, 40)
    q = build_queries(users, times, history_index(context), history_len, n_items, items)
    rows = list(context.itertuples(index=False))
    for b, (u, t) in enumerate(zip(users, times)):
        past = sorted(
            (
                (r.timestamp, i, r.item)
                for i, r in enumerate(rows)
                if r.user == u and r.timestamp < t
            )
        )[-history_len:]
        pad = history_len - len(past)
        assert q.hist_len[b] == len(past)
        assert q.hist_items[b].tolist() == [p[2] for p in past] + [n_items] * pad
        assert q.hist_times[b].tolist() == [p[0] for p in past] + [0] * pad
        lat = [np.float32(items["lat"][p[2]]) for p in past] + [0.0] * pad
        np.testing.assert_array_equal(q.hist_lat[b].numpy(), np.array(lat, np.float32))


def test_no_history_needs_no_index():
    q = build_queries(np.array([0, 1]), np.array([5, 6]), None, 0, n_items=3)
    assert q.hist_items is None and q.pad == 3
    with pytest.raises(ValueError, match="needs an index"):
        build_queries(np.array([0]), np.array([5]), None, 2, n_items=3)


def test_offsets_per_event_and_per_query():
    """History events keep their own tz_offset (seconds, 0 at padding); a query takes its own
    event's offset, else its last history event's, else 0."""
    context = pd.DataFrame(
        {"user": [0, 0, 1], "item": [1, 2, 0], "timestamp": [10, 20, 10]}
    ).assign(tz_offset=[60, 120, -300])
    index = history_index(context)
    users, times = np.array([0, 0, 1, 2]), np.array([30, 30, 30, 30])
    own = np.array([60.0, np.nan, np.nan, np.nan])  # query 0 is an event (back to winter)
    q = build_queries(users, times, index, 3, n_items=3, offsets=own)
    assert q.hist_offsets.tolist() == [[3600, 7200, 0], [3600, 7200, 0], [-18000, 0, 0], [0] * 3]
    assert q.offset.tolist() == [3600, 7200, -18000, 0]
    assert build_queries(users, times, index, 3, n_items=3).offset.tolist() == [
        7200,
        7200,
        -18000,
        0,
    ]
    plain = build_queries(users, times, history_index(context.drop(columns="tz_offset")), 3, 3)
    assert plain.offset is None and plain.hist_offsets is None
    no_history = build_queries(users, times, None, 0, n_items=3, offsets=own)
    assert no_history.offset.tolist() == [3600, 0, 0, 0]


def test_tail_keeps_each_querys_last_events():
    import torch

    from tgraph.data.queries import Queries

    pad = 9
    queries = Queries(
        user=torch.tensor([0, 1, 2]),
        timestamp=torch.tensor([50, 50, 50]),
        hist_items=torch.tensor([[1, 2, 3, 4, 5], [6, 7, pad, pad, pad], [pad] * 5]),
        hist_times=torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [0] * 5]),
        hist_len=torch.tensor([5, 2, 0]),
        pad=pad,
    )
    cut = queries.tail(3)
    assert cut.hist_items.tolist() == [[3, 4, 5], [6, 7, pad], [pad, pad, pad]]
    assert cut.hist_times.tolist() == [[3, 4, 5], [6, 7, 0], [0, 0, 0]]
    assert cut.hist_len.tolist() == [3, 2, 0] and cut.last_item.tolist() == [5, 7, pad]
    assert cut.hist_lat is None and cut.user is queries.user
    assert queries.tail(5) is queries and queries.tail(8) is queries


def test_previous_event_gap_is_to_the_last_strictly_earlier_event_in_row_order():
    users = np.array([1, 0, 0, 1, 0, 0])
    times = np.array([50, 10, 10, 40, 25, 100])
    # user 0: 10 and 10 have no strictly earlier event, 25 - 10, 100 - 25; user 1: 50 - 40
    expected = [10, np.inf, np.inf, np.inf, 15, 75]
    np.testing.assert_array_equal(previous_event_gap(users, times), expected)
