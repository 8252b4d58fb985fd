"""MostPopular: every query gets the items ranked by their number of training events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tgraph.data.interactions import Interactions
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.models.base import ModelConfig, Recommender
from tgraph.models.registry import register
from tgraph.models.update import NewEvents


@register("pop")
class MostPopular(Recommender):
    """``score(q, i) = #{train events on item i}``; counts come from ``split.train`` only.

    :meth:`update` adds the new events' counts (a new item starts at 0, its own events
    counted), so the counts equal those of :meth:`fit` on all the events seen.
    """

    needs_training = False
    supports_update = True
    counts: Tensor  # buffer

    def __init__(self, split: Split, config: ModelConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.register_buffer("counts", torch.zeros(self.n_items))
        self.fit(split.train)

    def fit(self, train: Interactions) -> MostPopular:
        self.counts.zero_()
        self._count(train.events["item"].to_numpy(), self.n_items)
        return self

    def fold(self, new: NewEvents) -> None:
        self._count(new.item, new.n_items)

    def _count(self, items: np.ndarray, n_items: int) -> None:
        add = torch.from_numpy(np.bincount(items, minlength=n_items).astype(np.float32))
        grown = torch.zeros(n_items, device=self.counts.device)
        grown[: len(self.counts)] = self.counts
        self.counts = grown + add.to(grown.device)

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        return self.counts[items]

    def full_sort_predict(self, queries: Queries) -> Tensor:
        return self.counts.unsqueeze(0).expand(len(queries), -1)
