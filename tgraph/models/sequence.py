"""Shared base of the next-item sequence models (GRU4Rec, SASRec)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import PositiveInt
from torch import Tensor, nn

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.models.base import (
    Dropout,
    EmbeddingRecommender,
    InitStd,
    ModelConfig,
    padded_item_embedding,
)
from tgraph.models.losses import Loss
from tgraph.models.update import NewEvents, grow_items_by_co_visits


class SequenceRecommender(EmbeddingRecommender):
    r"""``score(q, i) = <s_q, e_i>``, :math:`s_q` = the encoder's output at the last real
    position of the query's history (oldest first, padded at the end with ``n_items``).

    Subclasses implement :meth:`sequence_output`, which must be causal (the output at
    position ``p`` depends on positions ``<= p`` only), so that the padding after the last
    real position never changes :math:`s_q`. Input and output item embeddings are shared
    (``item_emb``, row ``n_items`` is the zero padding vector). A query with an empty
    history is represented by the output at position 0 of an all-padding sequence, a learned
    constant.

    :meth:`update` folds new events in trivially (histories are not model state): only new
    items grow ``item_emb``, each new row the mean of the rows of the known items visited by
    the new item's users in the same update (the mean of all known item rows when none).
    """

    supports_update = True

    class Config(ModelConfig):
        loss: Loss = "ce"
        #: history length (= ``history_len``)
        max_len: PositiveInt = 50
        embedding_dim: PositiveInt = 64
        dropout: Dropout = 0.2
        #: normal initialisation of the embeddings
        init_std: InitStd = 0.02

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.require_history(self.config.max_len)
        dim = self.config.embedding_dim
        self.item_emb = padded_item_embedding(self.n_items, dim, self.config.init_std)
        self.emb_dropout = nn.Dropout(self.config.dropout)

    def fold(self, new: NewEvents) -> None:
        grow_items_by_co_visits(self.item_emb, new)

    def sequence_output(self, hist_items: Tensor) -> Tensor:
        """``[B, L]`` item codes (padding ``n_items``) -> ``[B, L, embedding_dim]``."""
        raise NotImplementedError

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        if queries.hist_items is None or queries.hist_len is None:
            raise ValueError(f"{type(self).__name__} needs queries with history")
        out = self.sequence_output(queries.hist_items)
        last = (queries.hist_len - 1).clamp(min=0)
        rows = torch.arange(out.shape[0], device=out.device)
        return out[rows, last], self.item_emb.weight[: self.n_items]
