"""First-order Markov chain over items, backing off to popularity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from pydantic import NonNegativeInt
from torch import Tensor

from tgraph.data.interactions import Interactions
from tgraph.data.split import Split
from tgraph.models.base import ModelConfig, Queries, Recommender
from tgraph.models.registry import register


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

    class Config(ModelConfig):
        #: longest gap (seconds) between two events that still counts as a transition
        #: (``None``: no limit)
        max_gap: NonNegativeInt | None = None

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.history_len = 1
        self.register_buffer("popularity", torch.zeros(self.n_items))
        self.register_buffer("indptr", torch.zeros(self.n_items + 1, dtype=torch.long))
        self.register_buffer("indices", torch.zeros(0, dtype=torch.long))
        self.register_buffer("counts", torch.zeros(0))
        self.fit(split.train)

    def fit(self, train: Interactions) -> Markov:
        events = train.events.sort_values(["user", "timestamp"], kind="stable")
        user = events["user"].to_numpy()
        item = events["item"].to_numpy(np.int64)
        time = events["timestamp"].to_numpy()
        keep = user[1:] == user[:-1]
        if self.config.max_gap is not None:
            keep &= (time[1:] - time[:-1]) <= self.config.max_gap
        key = item[:-1][keep] * self.n_items + item[1:][keep]
        key, counts = np.unique(key, return_counts=True)
        src, dst = key // self.n_items, key % self.n_items
        indptr = np.zeros(self.n_items + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=self.n_items), out=indptr[1:])
        pop = np.bincount(item, minlength=self.n_items).astype(np.float32)
        device = self.popularity.device
        self.popularity = torch.from_numpy(pop / (1.0 + pop.sum())).to(device)
        self.indptr = torch.from_numpy(indptr).to(device)
        self.indices = torch.from_numpy(dst).to(device)
        self.counts = torch.from_numpy(counts.astype(np.float32)).to(device)
        return self

    def full_sort_predict(self, queries: Queries) -> Tensor:
        scores = self.popularity.unsqueeze(0).repeat(len(queries), 1)
        last = queries.last_item
        has = last < self.n_items
        rows = torch.nonzero(has).squeeze(1)
        src = last[rows]
        start, stop = self.indptr[src], self.indptr[src + 1]
        lengths = stop - start
        row_of = torch.repeat_interleave(rows, lengths)
        # position of each transition: start of its row + rank within the row
        offset = torch.arange(int(lengths.sum()), device=scores.device)
        offset = offset - torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
        edge = torch.repeat_interleave(start, lengths) + offset
        scores[row_of, self.indices[edge]] += self.counts[edge]
        return scores

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        scores = self.full_sort_predict(queries)
        if items.dim() == 1:
            return scores.gather(1, items.unsqueeze(1)).squeeze(1)
        return scores.gather(1, items)
