"""The temporal index on Foursquare NYC (GETNext split): query and append speed.

    TGRAPH_DATA=/work/shared/data python experiments/benchmarks/temporal_index.py [--threads 1]

Prints, for histories of length 20 of every training event (the trainer's queries) and of
every test query (the evaluator's):

* building the index, and answering the queries with :meth:`TemporalIndex.recent` through
  :func:`~tgraph.data.queries.build_queries`;
* the same histories from the one-shot ``searchsorted`` implementation that
  ``models/base.py:build_queries`` used before the index (kept here, as the baseline only),
  and a check that both give identical histories;
* streaming: the test events appended one at a time, each after a one-query ``recent`` for
  its user (rank-then-ingest), against rebuilding the index per event (on a prefix, then
  extrapolated per event), and appends in batches of 100.

Best of ``--repeats`` runs; compare ratios taken in this one process.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch
from timing import best_of

from tgraph.data import data_root, protocols
from tgraph.data.queries import build_queries, context_events, history_index
from tgraph.data.temporal_index import TemporalIndex


def searchsorted_histories(
    users: np.ndarray, timestamps: np.ndarray, context: pd.DataFrame, history_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: item and length of each history, by one ``searchsorted`` on a composite
    ``(user, timestamp)`` key of the context sorted afresh (the pre-index implementation)."""
    ctx = context.sort_values(["user", "timestamp"], kind="stable")
    ctx_user = ctx["user"].to_numpy(np.int64)
    ctx_time = ctx["timestamp"].to_numpy(np.int64)
    ctx_item = ctx["item"].to_numpy(np.int64)
    t_min, t_max = int(ctx_time.min()), int(ctx_time.max())
    span = t_max - t_min + 2
    ctx_key = ctx_user * span + (ctx_time - t_min)
    query_key = users * span + (np.clip(timestamps, t_min, t_max + 1) - t_min)
    start = np.searchsorted(ctx_user, users, side="left")
    end = np.searchsorted(ctx_key, query_key, side="left")
    length = np.minimum(end - start, history_len)
    offsets = np.arange(history_len)
    valid = offsets[None, :] < length[:, None]
    index = np.where(valid, (end - length)[:, None] + offsets[None, :], 0)
    return np.where(valid, ctx_item[index], -1), length


def time_histories(
    name: str, events: pd.DataFrame, context: pd.DataFrame, n_items: int, k: int, repeats: int
) -> None:
    """Histories of ``events`` from ``context``: index vs. the baseline (one printed line)."""
    users = events["user"].to_numpy(np.int64)
    times = events["timestamp"].to_numpy(np.int64)
    index = history_index(context)
    queries = build_queries(users, times, index, k, n_items)
    items, length = searchsorted_histories(users, times, context, k)
    same = np.array_equal(queries.hist_len.numpy(), length) and np.array_equal(
        np.where(queries.hist_mask.numpy(), queries.hist_items.numpy(), -1), items
    )
    build = best_of(lambda: history_index(context), repeats)
    query = best_of(lambda: index.recent(users, times, k), repeats)
    full = best_of(lambda: build_queries(users, times, index, k, n_items), repeats)
    old = best_of(lambda: searchsorted_histories(users, times, context, k), repeats)
    print(
        f"{name:>13} ({len(users):,} queries over {len(context):,} events): "
        f"index build {build * 1e3:6.1f} ms, recent {query * 1e3:6.1f} ms, "
        f"build_queries {full * 1e3:6.1f} ms | old searchsorted {old * 1e3:6.1f} ms | "
        f"identical: {same}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--history-len", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    k = args.history_len

    split = protocols.getnext_nyc(data_root())
    print(f"NYC: {len(split.train):,} train, {len(split.test):,} test events; k = {k}")
    cases = {
        "train events": (split.train.events, context_events(split, "train")),
        "test events": (split.test.events, context_events(split, "test")),
    }
    for name, (events, context) in cases.items():
        time_histories(name, events, context, split.n_items, k, args.repeats)

    # streaming: rank (one query) then ingest (one append) per test event, in time order
    before = context_events(split, "valid")
    test = split.test.events.sort_values("timestamp", kind="stable")
    users = test["user"].to_numpy(np.int64)
    times = test["timestamp"].to_numpy(np.int64)
    items = test["item"].to_numpy(np.int64)

    def stream() -> TemporalIndex:
        index = history_index(before)
        for j in range(len(test)):
            index.recent(users[j : j + 1], times[j : j + 1], k)
            index.append(users[j : j + 1], times[j : j + 1], item=items[j : j + 1])
        return index

    def batches(size: int) -> None:
        index = history_index(before)
        for lo in range(0, len(test), size):
            sl = slice(lo, lo + size)
            index.append(users[sl], times[sl], item=items[sl])
            index.recent(users[sl], times[sl], k)

    prefix = min(200, len(test))

    def rebuild() -> None:
        for j in range(prefix):
            frame = pd.concat([before, test.iloc[: j + 1][["user", "item", "timestamp"]]])
            history_index(frame).recent(users[j : j + 1], times[j : j + 1], k)

    streamed = best_of(stream, max(1, args.repeats // 2))
    batched = best_of(lambda: batches(100), args.repeats)
    rebuilt = best_of(rebuild, 1) / prefix
    final = stream()
    whole = history_index(context_events(split, "test"))
    probe_users = split.test.events["user"].to_numpy(np.int64)
    probe_times = split.test.events["timestamp"].to_numpy(np.int64) + 1
    a, b = final.recent(probe_users, probe_times, k), whole.recent(probe_users, probe_times, k)
    equal = np.array_equal(a.length, b.length) and np.array_equal(a["item"], b["item"])
    print(
        f"streaming {len(test):,} test events (recent + append each): "
        f"{streamed / len(test) * 1e6:7.1f} us/event ({len(test) / streamed:,.0f} events/s); "
        f"rebuild per event {rebuilt * 1e6:9.1f} us/event; "
        f"batches of 100 {batched / len(test) * 1e6:6.1f} us/event; "
        f"appended == rebuilt: {equal}"
    )


if __name__ == "__main__":
    main()
