"""Queries built on the temporal index against a brute-force history."""

import numpy as np
import pandas as pd
import pytest

from tgraph.data.queries import build_queries, history_index


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
