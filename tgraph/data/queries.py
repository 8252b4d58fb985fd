"""Ranking requests and their histories: :class:`Queries`, built from a
:class:`~tgraph.data.temporal_index.TemporalIndex` of the events a query may look back on.

History is built from the events strictly before the query's timestamp (the target itself is
never part of it): for a split, train events, plus validation events for validation and test
queries, plus test events for test queries (:func:`context_events`). It is left-aligned,
oldest first, padded at the end with the index ``n_items`` (``Queries.pad``), so that
sequence models can embed it with a padding row. Ties in time keep the order of the events
in the index (their arrival order).

**Local time.** When the events carry ``tz_offset`` (minutes east of UTC, DST-aware: one per
event), the history keeps each event's offset (``hist_offsets``) and each query gets one
(``offset``): its own event's when the query is an event (training samples, targets that
are events of their part), else that of its user's last history event, so that
``timestamp + offset`` is wall-clock time even across a DST change.

**What a query knows** (:attr:`~tgraph.data.split.Split.query_time`). With ``"known"``,
``Queries.timestamp`` is the time of the event the query asks about (the target's). With
``"hidden"`` (next-POI presets), the history is still cut at the target's time, but
``Queries.timestamp`` is the time of the user's last history event (the "now" of the
request), or the protocol's cut (:meth:`~tgraph.data.split.Split.query_cut`) for a user
without history, and ``Queries.offset`` is that last event's: the queries then carry nothing
that depends on the target's time, for training samples, validation and test targets and
streamed queries alike (:func:`build_queries`).

Whoever ranks owns the index: the trainer and the evaluator build it from a split, a
streaming evaluator or a serving session appends to it as events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from tgraph.data.interactions import Interactions
from tgraph.data.split import QUERY_TIMES, Split
from tgraph.data.temporal_index import TemporalIndex
from tgraph.errors import DataError


@dataclass
class Queries:
    """A batch of ranking requests.

    Attributes:
        user: ``[B]`` user codes.
        timestamp: ``[B]`` query times (UTC seconds): the target's time, or with
            ``query_time: hidden`` the last history event's (module docstring); history is
            strictly before the target's time.
        hist_items: ``[B, L]`` item codes, oldest first, padded at the end with ``pad``.
        hist_times: ``[B, L]`` timestamps of the history events (0 at padding).
        hist_lat / hist_lon: ``[B, L]`` coordinates of the history items (items table;
            ``None`` when the items have none; 0 at padding).
        hist_len: ``[B]`` number of real history events (0 .. L).
        offset: ``[B]`` UTC offset of each query's local time, in seconds (module docstring;
            0 when nothing gives one), or ``None`` when the events carry no ``tz_offset``.
        hist_offsets: ``[B, L]`` UTC offset of each history event, in seconds (0 at
            padding), or ``None`` as ``offset``.
        query: ``[B]`` row of each query in the evaluator's per-query table, or ``None``.
        pad: padding item index (= ``n_items``).
    """

    user: Tensor
    timestamp: Tensor
    hist_items: Tensor | None = None
    hist_times: Tensor | None = None
    hist_lat: Tensor | None = None
    hist_lon: Tensor | None = None
    hist_len: Tensor | None = None
    offset: Tensor | None = None
    hist_offsets: Tensor | None = None
    query: Tensor | None = None
    pad: int = -1

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @property
    def hist_mask(self) -> Tensor:
        """``[B, L]`` True at real history positions."""
        if self.hist_items is None:
            raise ValueError("these queries carry no history (history_len was 0)")
        return self.hist_items != self.pad

    @property
    def last_item(self) -> Tensor:
        """``[B]`` the most recent history item (``pad`` when the history is empty)."""
        if self.hist_items is None or self.hist_len is None:
            raise ValueError("these queries carry no history (history_len was 0)")
        index = (self.hist_len - 1).clamp(min=0).unsqueeze(1)
        last = self.hist_items.gather(1, index).squeeze(1)
        return torch.where(self.hist_len > 0, last, torch.full_like(last, self.pad))

    def to(self, device: torch.device | str) -> Queries:
        """A copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)

    def tail(self, n: int) -> Queries:
        """The same queries with only the last ``n`` history events of each (``self`` when no
        history is longer): for a model part that reads less history than another."""
        if self.hist_items is None or self.hist_len is None or self.hist_items.shape[1] <= n:
            return self
        start = (self.hist_len - n).clamp(min=0).unsqueeze(1)
        index = start + torch.arange(n, device=start.device)
        keep = torch.arange(n, device=start.device) < self.hist_len.clamp(max=n).unsqueeze(1)
        index = torch.where(keep, index, torch.zeros_like(index))
        cut: dict[str, Any] = {}
        for name in ("hist_items", "hist_times", "hist_lat", "hist_lon", "hist_offsets"):
            value = getattr(self, name)
            if value is not None:
                fill = self.pad if name == "hist_items" else 0
                picked = value.gather(1, index)
                cut[name] = torch.where(keep, picked, torch.full_like(picked, fill))
        return replace(self, hist_len=self.hist_len.clamp(max=n), **cut)

    def __getitem__(self, index: slice | Tensor | np.ndarray) -> Queries:
        """Rows ``index`` of every tensor."""
        picked = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **picked)


def context_events(split: Split, part: str) -> pd.DataFrame:
    """Events a ``part`` ("train", "valid" or "test") query may look back on: train, plus
    valid for valid/test, plus test for test (columns user, item, timestamp, and tz_offset when
    the events carry it), in that order."""
    parts: dict[str, list[Interactions | None]] = {
        "train": [split.train],
        "valid": [split.train, split.valid],
    }
    parts["test"] = [split.train, split.valid, split.test]
    if part not in parts:
        raise KeyError(f"part must be 'train', 'valid' or 'test', got {part!r}")
    offset = ["tz_offset"] if split.train.has("tz_offset") else []
    columns = ["user", "item", "timestamp", *offset]
    frames = [p.events[columns] for p in parts[part] if p is not None]
    return pd.concat(frames, ignore_index=True)


def previous_event_gap(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Seconds from each event's user's previous event strictly before it to the event, among
    these events (``inf`` for a user's first timestamp), in the events' order."""
    events = pd.DataFrame({"user": users, "timestamp": timestamps})
    distinct = events.drop_duplicates().sort_values(["user", "timestamp"])
    distinct["previous"] = distinct.groupby("user")["timestamp"].shift()
    merged = events.merge(distinct, on=["user", "timestamp"], how="left")
    gap = (merged["timestamp"] - merged["previous"]).to_numpy(np.float64)
    return np.where(np.isnan(gap), np.inf, gap)


def history_index(events: pd.DataFrame) -> TemporalIndex:
    """The users' events (columns user, item, timestamp, optional tz_offset) as a
    :class:`TemporalIndex` keyed by user with the feature ``item`` (and ``tz_offset`` when the
    frame has it), arriving in the frame's row order."""
    offsets = {"tz_offset": events["tz_offset"].to_numpy(np.int64)} if "tz_offset" in events else {}
    return TemporalIndex.from_events(
        events["user"].to_numpy(np.int64),
        events["timestamp"].to_numpy(np.int64),
        item=events["item"].to_numpy(np.int64),
        **offsets,
    )


def build_queries(
    users: np.ndarray,
    timestamps: np.ndarray,
    index: TemporalIndex | None,
    history_len: int,
    n_items: int,
    items_table: pd.DataFrame | None = None,
    query_ids: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    query_time: str = "known",
    cut: int | None = None,
) -> Queries:
    """Queries for ``users`` at ``timestamps`` with the last ``history_len`` events of each
    user in ``index`` (a :func:`history_index`; unused, so may be ``None``, when
    ``history_len`` is 0 and the time is known) strictly before its timestamp; the items'
    coordinates from ``items_table`` when it has ``lat`` / ``lon``.

    ``offsets``: the ``tz_offset`` (minutes) of each query's own event, NaN where the query
    is no event; a query without one takes the offset of its last history event when the
    index carries ``tz_offset`` (module docstring).

    ``query_time``: ``"known"`` keeps ``timestamps`` as the queries' times; ``"hidden"``
    (:attr:`~tgraph.data.split.Split.query_time`) replaces each by the time of its user's
    last event in ``index`` strictly before it, or by ``cut`` when there is none, and takes
    the offset of that last event (0 without one), never ``offsets``: the history is cut at
    ``timestamps``, but nothing else in the queries depends on them."""
    users = np.asarray(users, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    hidden = _check_query_time(query_time)
    own = None if offsets is None or hidden else np.asarray(offsets, dtype=np.float64)
    queries = Queries(
        user=torch.from_numpy(users.copy()),
        timestamp=torch.from_numpy(timestamps.copy()),
        query=None if query_ids is None else torch.as_tensor(np.asarray(query_ids)),
        pad=n_items,
    )
    if history_len <= 0 and not hidden:
        queries.offset = None if own is None else _seconds(np.nan_to_num(own, nan=0.0))
        return queries
    if index is None:
        need = f"history_len={history_len}" if history_len > 0 else "query_time 'hidden'"
        raise ValueError(f"{need} needs an index of the context events")
    recent = index.recent(users, timestamps, max(history_len, 1))
    rows = np.arange(len(users))
    last = np.maximum(recent.length - 1, 0)
    has_offsets = "tz_offset" in index.feature_names
    # the offset of each user's last history event (0 at padding, and without offsets)
    last_offset = recent["tz_offset"][rows, last] if has_offsets else np.zeros(len(users))
    if hidden:
        none = recent.length == 0
        if none.any() and cut is None:
            raise ValueError("query_time 'hidden': a user without history needs the cut")
        now = np.where(none, 0 if cut is None else cut, recent.time[rows, last])
        queries.timestamp = torch.from_numpy(now.astype(np.int64))
        if has_offsets:
            queries.offset = _seconds(last_offset)
    if history_len <= 0:
        return queries
    valid = recent.mask
    hist_items = np.where(valid, recent["item"], n_items)
    queries.hist_items = torch.from_numpy(hist_items)
    queries.hist_times = torch.from_numpy(recent.time)
    queries.hist_len = torch.from_numpy(recent.length)
    if has_offsets:
        queries.hist_offsets = _seconds(recent["tz_offset"])
        if not hidden:
            own = last_offset if own is None else np.where(np.isnan(own), last_offset, own)
    if own is not None:
        queries.offset = _seconds(np.nan_to_num(own, nan=0.0))
    if items_table is not None and {"lat", "lon"} <= set(items_table.columns):
        for name in ("lat", "lon"):
            coord = np.append(items_table[name].to_numpy(np.float64), 0.0)
            values = np.where(valid, coord[hist_items], 0.0)
            setattr(queries, f"hist_{name}", torch.from_numpy(values.astype(np.float32)))
    return queries


def _check_query_time(query_time: str) -> bool:
    """Whether ``query_time`` is ``"hidden"`` (ValueError unless one of :data:`QUERY_TIMES`)."""
    if query_time not in QUERY_TIMES:
        raise ValueError(f"query_time must be one of {QUERY_TIMES}, got {query_time!r}")
    return query_time == "hidden"


def _seconds(minutes: np.ndarray) -> Tensor:
    """UTC offsets in minutes (int or integral float) as int64 seconds."""
    return torch.from_numpy(np.asarray(minutes).astype(np.int64) * 60)


def target_queries(split: Split, part: str, history_len: int = 0) -> tuple[Queries, pd.DataFrame]:
    """One :class:`Queries` row per query of ``split.targets(part)`` (sorted by query id),
    history from :func:`context_events`, and the per-query table (columns query, user,
    timestamp: the target's time, which cuts the history). A query's ``offset`` is the
    ``tz_offset`` of its part's event of the same user and time when there is one (the target
    check-in itself), else its last history event's (module docstring). With
    ``split.query_time`` hidden, the queries' times and offsets are those of the last history
    event (or :meth:`~tgraph.data.split.Split.query_cut`; :func:`build_queries`).

    Raises :class:`DataError` when the targets of one query disagree on user or timestamp.
    """
    targets = split.targets(part)
    grouped = targets.groupby("query", sort=True)
    table = grouped.agg(
        user=("user", "first"),
        timestamp=("timestamp", "first"),
        n_user=("user", "nunique"),
        n_time=("timestamp", "nunique"),
    ).reset_index()
    bad = (table["n_user"] > 1) | (table["n_time"] > 1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"query {table['query'].iloc[row]!r} has several users or timestamps",
            source=f"{split.protocol}:{part}_targets",
            column="query",
            row=row,
            fix="give every (user, timestamp) ranking request its own query id",
        )
    table = table[["query", "user", "timestamp"]]
    hidden = split.query_time == "hidden"
    index = history_index(context_events(split, part)) if history_len > 0 or hidden else None
    queries = build_queries(
        table["user"].to_numpy(),
        table["timestamp"].to_numpy(),
        index,
        history_len,
        split.n_items,
        split.train.items,
        query_ids=np.arange(len(table)),
        offsets=own_offsets(split, part, table),
        query_time=split.query_time,
        cut=split.query_cut(part),
    )
    return queries, table


def own_offsets(split: Split, part: str, table: pd.DataFrame) -> np.ndarray | None:
    """``tz_offset`` of the ``part`` event at each query's (user, timestamp), NaN where the
    query is no event of ``part``; ``None`` when the events carry no ``tz_offset``."""
    events = split.valid if part == "valid" else split.test
    if events is None or not events.has("tz_offset"):
        return None
    # one user's events at one instant share a place and so an offset: the first stands for all
    keyed = events.events.drop_duplicates(["user", "timestamp"]).set_index(["user", "timestamp"])
    keys = pd.MultiIndex.from_frame(table[["user", "timestamp"]])
    return keyed["tz_offset"].reindex(keys).to_numpy(np.float64)
