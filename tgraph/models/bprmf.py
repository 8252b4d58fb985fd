"""BPR-MF (Rendle et al., 2009): matrix factorisation trained with the BPR loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import NonNegativeFloat, PositiveInt
from torch import Tensor, nn

from tgraph.data.interactions import Interactions
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.models.base import Batch, EmbeddingRecommender, InitStd, ModelConfig
from tgraph.models.registry import register
from tgraph.models.update import NewEvents, cold_start_rows, grow_embedding, pairs_to_new


@register("bprmf")
class BPRMF(EmbeddingRecommender):
    """``score(u, i) = <p_u, q_i>``.

    :meth:`update` only grows the tables (BPR-MF derives nothing else from events): a new
    user's row is the mean of the rows of the known items of its new events, a new item's
    the mean of the rows of its known users (the mean of all known rows when it has none).
    """

    supports_update = True

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

    def fold(self, new: NewEvents) -> None:
        n_users, n_items = self.n_users, self.n_items
        user_rows = cold_start_rows(
            self.item_emb.weight,
            *pairs_to_new(new.user, new.item, n_users, n_items),
            new.n_users - n_users,
        )
        item_rows = cold_start_rows(
            self.user_emb.weight,
            *pairs_to_new(new.item, new.user, n_items, n_users),
            new.n_items - n_items,
        )
        grow_embedding(self.user_emb, [(n_users, user_rows)])
        grow_embedding(self.item_emb, [(n_items, item_rows)])

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
        weight * sum((r.pow(2).sum() for r in present), present[0].new_zeros(())) / (2 * batch)
        if weight
        else (torch.zeros((), device=present[0].device))
    )
