"""BPR-MF (Rendle et al., 2009): matrix factorisation trained with the BPR loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import NonNegativeFloat, PositiveInt
from torch import Tensor, nn

from tgraph.data.interactions import Interactions
from tgraph.data.split import Split
from tgraph.models.base import Batch, EmbeddingRecommender, InitStd, ModelConfig, Queries
from tgraph.models.registry import register


@register("bprmf")
class BPRMF(EmbeddingRecommender):
    """``score(u, i) = <p_u, q_i>``."""

    class Config(ModelConfig):
        embedding_dim: PositiveInt = 64
        #: the loss adds ``reg_weight * (||p_u||^2 + ||q_pos||^2 + ||q_neg||^2) / (2 B)`` over
        #: the batch's rows
        reg_weight: NonNegativeFloat = 1e-4
        #: normal initialisation
        init_std: InitStd = 0.1

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        dim = self.config.embedding_dim
        self.user_emb = nn.Embedding(self.n_users, dim)
        self.item_emb = nn.Embedding(self.n_items, dim)
        nn.init.normal_(self.user_emb.weight, std=self.config.init_std)
        nn.init.normal_(self.item_emb.weight, std=self.config.init_std)

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        return self.user_emb(queries.user), self.item_emb.weight

    def observe(self, interactions: Interactions) -> None:
        """Nothing to rebuild: BPR-MF derives nothing from the training events."""

    def regularization(self, batch: Batch) -> Tensor:
        return l2_rows(
            self.config.reg_weight,
            self.user_emb(batch.queries.user),
            self.item_emb(batch.pos_item),
            None if batch.neg_item is None else self.item_emb(batch.neg_item),
        )


def l2_rows(weight: float, *rows: Tensor | None) -> Tensor:
    """``weight * sum ||rows||^2 / (2 B)`` with ``B`` the batch size (LightGCN's convention)."""
    present = [r for r in rows if r is not None]
    batch = present[0].shape[0]
    return (
        weight * sum(r.pow(2).sum() for r in present) / (2 * batch)
        if weight
        else (torch.zeros((), device=present[0].device))
    )
