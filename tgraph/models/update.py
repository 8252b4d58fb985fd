"""Incremental updates: the events a model folds in and the rows of new users and items.

:meth:`~tgraph.models.base.Recommender.update` turns its argument into :class:`NewEvents`
(:func:`new_events`: validated like any :class:`~tgraph.data.interactions.Interactions`, so a
bad value raises :class:`~tgraph.errors.DataError` naming the column and row) and hands them
to the model's ``fold``.

Codes at or above the model's ``n_users`` / ``n_items`` are new users / items; the catalogue
grows to cover them (to the ``Interactions``' own ``n_users`` / ``n_items`` when larger, so
that a model updated with a part of a bigger split has that split's sizes).

**Cold start** (:func:`cold_start_rows`): the embedding row of a new user or item is the mean
of the rows of its *known* neighbours (nodes the model had before this update), and the mean
of all known rows of the table when it has none. Which rows are a node's neighbours is each
model's choice (documented in its docstring): the items of a new user's events, the users of a
new item's events, or the known items visited by the same users in the update (co-visits).
"""

from __future__ import annotations

from dataclasses import dataclass

import dgl
import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn

from tgraph.data.interactions import REQUIRED_COLUMNS, Interactions, require_columns
from tgraph.graph.append import GraphAppender
from tgraph.graph.spec import ITEM, USER

SOURCE = "update events"


@dataclass(frozen=True)
class NewEvents:
    """Validated events to fold in, sorted by timestamp (stable: ties keep arrival order).

    Attributes:
        interactions: the events (columns user, item, timestamp + the optional event columns
            given); its ``items`` table carries the metadata of new items when the caller
            passed an ``Interactions``.
        old_users / old_items: the model's catalogue sizes before the update.
        n_users / n_items: the catalogue sizes after it (``>=`` the old ones).
    """

    interactions: Interactions
    old_users: int
    old_items: int
    n_users: int
    n_items: int

    @property
    def events(self) -> pd.DataFrame:
        return self.interactions.events

    @property
    def user(self) -> np.ndarray:
        return self.events["user"].to_numpy(np.int64)

    @property
    def item(self) -> np.ndarray:
        return self.events["item"].to_numpy(np.int64)

    @property
    def timestamp(self) -> np.ndarray:
        return self.events["timestamp"].to_numpy(np.int64)


def new_events(events: Interactions | pd.DataFrame, n_users: int, n_items: int) -> NewEvents | None:
    """Validate ``events`` against a model with ``n_users`` users and ``n_items`` items;
    ``None`` when there is no event (an update with nothing to fold in)."""
    if isinstance(events, Interactions):
        grown_users, grown_items = max(n_users, events.n_users), max(n_items, events.n_items)
        return NewEvents(events, n_users, n_items, grown_users, grown_items)
    if not isinstance(events, pd.DataFrame):
        raise TypeError(f"events must be Interactions or a DataFrame, got {type(events).__name__}")
    if len(events) == 0:
        return None
    require_columns(
        events,
        REQUIRED_COLUMNS,
        SOURCE,
        fix="pass user, item and timestamp in the split's codes",
        what="required column",
    )
    sizes = {}
    for column, known in (("user", n_users), ("item", n_items)):
        codes = pd.to_numeric(events[column], errors="coerce")
        top = codes.max()
        sizes[column] = max(known, int(top) + 1) if np.isfinite(top) else known
    tables = {c: pd.DataFrame({"raw_id": np.arange(n)}) for c, n in sizes.items()}
    checked = Interactions(events, tables["user"], tables["item"], name=SOURCE, source=SOURCE)
    return NewEvents(checked, n_users, n_items, sizes["user"], sizes["item"])


def cold_start_rows(known: Tensor, new: ArrayLike, neighbour: ArrayLike, n_new: int) -> Tensor:
    """``[n_new, d]`` rows: row ``j`` is the mean of ``known[neighbour[e]]`` over the pairs
    ``e`` with ``new[e] == j`` (repeats count: a neighbour seen twice weighs twice), and the
    mean of all of ``known`` for a ``j`` without pairs.

    ``new`` holds indices ``0 .. n_new-1`` of the new rows, ``neighbour`` row indices of
    ``known``.
    """
    if n_new == 0:
        return known.new_zeros(0, known.shape[1])
    with torch.no_grad():
        device = known.device
        new_t = torch.tensor(new, dtype=torch.long, device=device)
        nbr_t = torch.tensor(neighbour, dtype=torch.long, device=device)
        total = known.new_zeros(n_new, known.shape[1]).index_add_(0, new_t, known[nbr_t])
        count = torch.bincount(new_t, minlength=n_new).to(known.dtype).unsqueeze(1)
        prior = known.mean(0, keepdim=True).expand(n_new, -1)
        return torch.where(count > 0, total / count.clamp(min=1), prior)


def pairs_to_new(
    new_codes: np.ndarray, other: np.ndarray, first_new: int, other_known: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(new index, neighbour)`` pairs of the events whose ``new_codes`` are new
    (``>= first_new``) and whose ``other`` end is known (``< other_known``)."""
    keep = (new_codes >= first_new) & (other < other_known)
    return new_codes[keep] - first_new, other[keep]


def co_visits(events: NewEvents) -> tuple[np.ndarray, np.ndarray]:
    """``(new item index, known item)`` pairs: a new item's users' events in ``events`` on
    known items (a two-hop neighbourhood item -> user -> item)."""
    user, item = events.user, events.item
    new = item >= events.old_items
    frame = pd.DataFrame({"user": user[new], "new": item[new] - events.old_items})
    known = pd.DataFrame({"user": user[~new], "known": item[~new]})
    pairs = frame.merge(known, on="user")
    return pairs["new"].to_numpy(np.int64), pairs["known"].to_numpy(np.int64)


def grow_embedding(table: nn.Embedding, rows: list[tuple[int, Tensor]]) -> None:
    """Insert ``rows`` (``(position in the old table, [n, d] rows)``, positions ascending)
    into ``table``, in place: the weight becomes a new parameter (a trainer's optimiser
    must be rebuilt), ``padding_idx`` moves with the rows after it. Nothing changes when
    every block is empty."""
    if all(len(block) == 0 for _, block in rows):
        return
    with torch.no_grad():
        old = table.weight
        pieces, start = [], 0
        for position, block in rows:
            pieces += [old[start:position], block.to(old.dtype)]
            start = position
        pieces.append(old[start:])
        weight = torch.cat(pieces)
    if table.padding_idx is not None:
        table.padding_idx += sum(len(b) for p, b in rows if p <= table.padding_idx)
    table.weight = nn.Parameter(weight, requires_grad=old.requires_grad)
    table.num_embeddings = weight.shape[0]


def grow_items_by_co_visits(table: nn.Embedding, new: NewEvents) -> None:
    """Rows for ``new``'s new items in an item table (a padding row at ``old_items`` moves to
    the end): each the mean of its :func:`co_visits`' rows."""
    known = table.weight[: new.old_items]
    rows = cold_start_rows(known, *co_visits(new), new.n_items - new.old_items)
    grow_embedding(table, [(new.old_items, rows)])


def fold_into_heterograph(
    graph: dgl.DGLGraph, appender: GraphAppender, embedding: nn.ParameterDict, new: NewEvents
) -> None:
    """Queue ``new``'s edges for a training heterograph (checked now, added to ``graph`` by
    :meth:`~tgraph.graph.append.GraphAppender.flush`) and grow the user rows of a
    :class:`~tgraph.nn.hetero_encoder.HeteroEncoder`'s ``embedding`` (each new user: the mean
    of its known items' rows). New items are refused: their region (the k-means regions are
    not kept) and proximity edges are not derivable."""
    if new.n_items > new.old_items:
        raise NotImplementedError(
            f"items {new.old_items}..{new.n_items - 1} are new: a heterograph model cannot "
            "place a new item (region, proximity edges) without rebuilding; retrain with the "
            "item in the catalogue"
        )
    appender.append(graph, new.interactions, new.n_users)
    if USER in embedding:
        pairs = pairs_to_new(new.user, new.item, new.old_users, new.old_items)
        rows = cold_start_rows(embedding[ITEM], *pairs, new.n_users - new.old_users)
        embedding[USER] = nn.Parameter(torch.cat([embedding[USER].detach(), rows]))
