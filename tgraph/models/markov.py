"""First-order Markov chain over items, backing off to popularity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import NonNegativeInt
from torch import Tensor

from tgraph.data.interactions import Interactions
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.data.transitions import Transitions
from tgraph.models.base import ModelConfig, Recommender
from tgraph.models.registry import register
from tgraph.models.update import NewEvents


@register("markov")
class Markov(Recommender):
    r"""``score(q, j) = c(l_q -> j) + pop(j) / (1 + \sum_i pop(i))``.

    ``c(i -> j)`` counts the training transitions from item ``i`` to item ``j`` (consecutive
    training events of one user, at most ``max_gap`` seconds apart when ``max_gap`` is set),
    ``l_q`` is the query's last history item and ``pop`` the training event counts. The
    popularity term is below 1, so it only orders items with equal transition counts: items
    reached from ``l_q`` come first by count, then every other item by popularity; a query
    without history (or whose last item was never left in training) is ranked by popularity.
    """

    needs_training = False
    supports_update = True

    class Config(ModelConfig):
        #: longest gap (seconds) between two events that still counts as a transition
        #: (``None``: no limit)
        max_gap: NonNegativeInt | None = None

    config: Config
    # buffers: popularity term, and the transition counts as CSR rows of the origin item
    popularity: Tensor
    indptr: Tensor
    indices: Tensor
    counts: Tensor

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.history_len = 1
        self.register_buffer("popularity", torch.zeros(self.n_items))
        self.register_buffer("indptr", torch.zeros(self.n_items + 1, dtype=torch.long))
        self.register_buffer("indices", torch.zeros(0, dtype=torch.long))
        self.register_buffer("counts", torch.zeros(0))
        self.fit(split.train)

    def fit(self, train: Interactions) -> Markov:
        self._item_counts = np.zeros(0, dtype=np.int64)
        self._tails = Transitions(self.config.max_gap)
        self.indptr = torch.zeros(self.n_items + 1, dtype=torch.long, device=self.indptr.device)
        self.indices = self.indices[:0]
        self.counts = self.counts[:0]
        ev = train.events
        user, item, time = (ev[c].to_numpy(np.int64) for c in ("user", "item", "timestamp"))
        self._transitions(user, item, time, self.n_items)
        self._count(item, self.n_items)
        return self

    def fold(self, new: NewEvents) -> None:
        """Adds the new events' counts and transitions (the first new event of a user
        continues from its last folded one), so that they equal :meth:`fit` on all the
        events; each user's new events must not be older than its last folded event."""
        self._transitions(new.user, new.item, new.timestamp, new.n_items)  # checks first
        self._count(new.item, new.n_items)

    def _count(self, item: np.ndarray, n_items: int) -> None:
        counts = np.bincount(item, minlength=n_items)
        counts[: len(self._item_counts)] += self._item_counts
        self._item_counts = counts
        pop = counts.astype(np.float32)
        self.popularity = torch.from_numpy(pop / (1.0 + pop.sum())).to(self.popularity.device)

    def _transitions(
        self, user: np.ndarray, item: np.ndarray, time: np.ndarray, n_items: int
    ) -> None:
        """Merge the transitions of the events (:class:`~tgraph.data.transitions.Transitions`:
        after each user's latest folded event; an event older than it raises DataError and
        changes nothing) into the CSR counts over ``n_items`` items."""
        prev, nxt, *_ = self._tails.steps(user, item, time)
        n = n_items
        indptr = self.indptr.cpu().numpy()
        old_src = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        key = np.r_[old_src * n + self.indices.cpu().numpy(), prev * n + nxt]
        weight = np.r_[self.counts.cpu().numpy(), np.ones(len(prev), dtype=np.float32)]
        key, inverse = np.unique(key, return_inverse=True)
        counts = np.bincount(inverse, weights=weight, minlength=len(key))
        src, dst = key // n, key % n
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
        device = self.popularity.device
        self.indptr = torch.from_numpy(indptr).to(device)
        self.indices = torch.from_numpy(dst).to(device)
        self.counts = torch.from_numpy(counts.astype(np.float32)).to(device)

    def transition_counts(self, queries: Queries) -> Tensor:
        """``[B, n_items]`` :math:`c(l_q \to j)` (0 for a query without history)."""
        counts = self.popularity.new_zeros(len(queries), self.n_items)
        last = queries.last_item
        rows = torch.nonzero(last < self.n_items).squeeze(1)
        src = last[rows]
        start, stop = self.indptr[src], self.indptr[src + 1]
        lengths = stop - start
        row_of = torch.repeat_interleave(rows, lengths)
        # position of each transition: start of its row + rank within the row
        offset = torch.arange(int(lengths.sum()), device=counts.device)
        offset = offset - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
        edge = torch.repeat_interleave(start, lengths) + offset
        counts[row_of, self.indices[edge]] = self.counts[edge]
        return counts

    def full_sort_predict(self, queries: Queries) -> Tensor:
        return self.popularity.unsqueeze(0) + self.transition_counts(queries)

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        scores = self.full_sort_predict(queries)
        if items.dim() == 1:
            return scores.gather(1, items.unsqueeze(1)).squeeze(1)
        return scores.gather(1, items)
