"""MostPopular: every query gets the items ranked by their number of training events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tgraph.data.interactions import Interactions
from tgraph.data.split import Split
from tgraph.models.base import ModelConfig, Queries, Recommender
from tgraph.models.registry import register


@register("pop")
class MostPopular(Recommender):
    """``score(q, i) = #{train events on item i}``; counts come from ``split.train`` only."""

    needs_training = False

    def __init__(self, split: Split, config: ModelConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.register_buffer("counts", torch.zeros(self.n_items))
        self.fit(split.train)

    def fit(self, train: Interactions) -> MostPopular:
        counts = np.bincount(train.events["item"].to_numpy(), minlength=self.n_items)
        self.counts.copy_(torch.from_numpy(counts.astype(np.float32)))
        return self

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        return self.counts[items]

    def full_sort_predict(self, queries: Queries) -> Tensor:
        return self.counts.unsqueeze(0).expand(len(queries), -1)
