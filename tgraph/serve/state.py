"""The rank-then-ingest state: a model, the events it may look back on, and how to query both.

Histories are not model state (see :mod:`tgraph.data.queries`): whoever ranks owns the events
seen so far. :class:`LiveState` keeps them in a :class:`~tgraph.data.temporal_index.TemporalIndex`
over users (:func:`~tgraph.data.queries.history_index`), so that a query for user ``u`` at time
``t`` carries the ``model.history_len`` most recent events of ``u`` strictly before ``t``
(:func:`~tgraph.data.queries.build_queries`, the evaluator's own query builder).
:meth:`LiveState.ingest` folds events into the model first (``model.update``, no gradient
steps, when the model supports it; a model that does not keeps its trained state and still
sees the new events through the histories), then appends them to the index, so that an update
that refuses the events leaves the state as it was.

Nothing here validates: callers pass codes the model knows (or, for a model that grows, the
next free codes) and times in order (:class:`tgraph.serve.session.Session` checks both).
The streaming evaluator (:mod:`tgraph.eval.streaming`) replays test events through it too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from tgraph.data.queries import Queries, build_queries, history_index
from tgraph.data.temporal_index import TemporalIndex
from tgraph.models.base import Recommender

__all__ = ["LiveState"]


class LiveState:
    """A model in eval mode and the index of the events it may look back on.

    Args:
        model: a trained model (put in eval mode here).
        index: a :class:`TemporalIndex` over users of the events seen so far (feature
            ``item``, and ``tz_offset`` when the events carry one;
            :func:`~tgraph.data.queries.history_index`).
        items: the split's items table; its ``lat``/``lon`` (when present) give the history
            coordinates, as offline. Items the model grows get the coordinates of their first
            event (NaN when it has none).
    """

    def __init__(self, model: Recommender, index: TemporalIndex, items: pd.DataFrame) -> None:
        self.model = model.eval()
        self.index = index
        coords = [c for c in ("lat", "lon") if c in items.columns]
        self.items = items[coords].reset_index(drop=True) if len(coords) == 2 else None

    @classmethod
    def from_events(
        cls, model: Recommender, events: pd.DataFrame, items: pd.DataFrame
    ) -> LiveState:
        """The state over ``events`` (columns user, item, timestamp, optional tz_offset; any
        order)."""
        return cls(model, history_index(events.sort_values("timestamp", kind="stable")), items)

    # ------------------------------------------------------------------ reading
    def queries(
        self,
        users: np.ndarray,
        at: np.ndarray | int,
        offsets: np.ndarray | None = None,
        query_time: str = "known",
        cut: int | None = None,
    ) -> Queries:
        """Queries of ``users`` at times ``at`` (one per user, or one for all) with their last
        ``model.history_len`` events strictly before ``at`` (oldest first, padded with
        ``model.n_items``); ``offsets``: each query's own ``tz_offset`` when it is known;
        ``query_time: hidden`` (a replayed target's time, which the query may not carry):
        each query's time is its user's last event's, else ``cut`` (see
        :func:`~tgraph.data.queries.build_queries`). A served request's time is "now",
        known by definition."""
        users = np.array(users, dtype=np.int64).reshape(-1)
        at = np.broadcast_to(np.asarray(at, dtype=np.int64), users.shape).copy()
        model = self.model
        return build_queries(
            users,
            at,
            self.index,
            model.history_len,
            model.n_items,
            self.items,
            offsets=offsets,
            query_time=query_time,
            cut=cut,
        )

    @torch.no_grad()
    def scores(self, users: np.ndarray, at: np.ndarray | int) -> Tensor:
        """``[B, n_items]`` scores of every item for ``users`` at ``at`` (CPU, float)."""
        queries = self.queries(users, at).to(self.model.device)
        return self.model.full_sort_predict(queries).float().cpu()

    def last_time(self, users: np.ndarray) -> np.ndarray:
        """Each user's latest event time (:data:`~tgraph.data.temporal_index.NO_TIME` for a
        user without events)."""
        return self.index.last_time(np.array(users, dtype=np.int64).reshape(-1))

    # ------------------------------------------------------------------ writing
    def ingest(self, events: pd.DataFrame) -> None:
        """Fold ``events`` (time-ordered per user; columns user, item, timestamp and any event
        columns of :mod:`tgraph.data.interactions`) into the model when it supports updates,
        then append them to the histories. When the histories carry ``tz_offset`` and
        ``events`` do not, each event keeps its user's last offset (0 for a user without
        events): a client sends its offset when it changes, not with every event."""
        ordered = events.sort_values("timestamp", kind="stable").reset_index(drop=True)
        if self.model.supports_update:
            self.model.update(ordered)
            self.model.eval()
        users = ordered["user"].to_numpy(np.int64)
        offsets: dict[str, np.ndarray] = {}
        if "tz_offset" in self.index.feature_names:
            if "tz_offset" in ordered:
                offsets["tz_offset"] = ordered["tz_offset"].to_numpy(np.int64)
            else:
                latest = self.index.recent(users, np.full(len(users), np.iinfo(np.int64).max), 1)
                offsets["tz_offset"] = latest["tz_offset"][:, 0]  # 0 at padding
        self.index.append(
            users,
            ordered["timestamp"].to_numpy(np.int64),
            item=ordered["item"].to_numpy(np.int64),
            **offsets,
        )
        if self.items is not None and len(self.items) < self.model.n_items:
            self._grow_items(ordered)

    def _grow_items(self, events: pd.DataFrame) -> None:
        """Rows for the items the model grew, with the coordinates of their first event."""
        assert self.items is not None
        codes = np.arange(len(self.items), self.model.n_items)
        grown = pd.DataFrame({"lat": np.nan, "lon": np.nan}, index=codes)
        if {"lat", "lon"} <= set(events.columns):
            first = events[events["item"] >= len(self.items)].drop_duplicates("item")
            grown.loc[first["item"].to_numpy(), ["lat", "lon"]] = first[["lat", "lon"]].to_numpy()
        self.items = pd.concat([self.items, grown], ignore_index=True)
