"""LightGCN (He et al., SIGIR 2020) on the user-item graph of the training events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import Tensor, nn

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.models.base import Batch, InitStd, ModelConfig, UserItemGraphRecommender, scored_items
from tgraph.models.bprmf import l2_rows
from tgraph.models.losses import loss_from_scores
from tgraph.models.registry import register
from tgraph.nn.lightgcn_conv import LightGCNPropagation, lightgcn_propagate


@register("lightgcn")
class LightGCN(UserItemGraphRecommender):
    r"""``score(u, i) = <e_u, e_i>`` with :math:`E = \frac{1}{K+1}\sum_{k=0}^K \tilde A^k E^{(0)}`,
    :math:`\tilde A = D^{-1/2} A D^{-1/2}` (see :class:`~tgraph.nn.LightGCNConv`).

    Training propagates once per batch (forward and backward are fused sparse products, see
    :meth:`calculate_loss`); in eval mode the propagated embeddings are cached until the next
    call to ``train()`` / ``eval()``.
    """

    class Config(ModelConfig):
        embedding_dim: PositiveInt = 64
        #: ``K``; 0 is matrix factorisation
        n_layers: NonNegativeInt = 3
        #: L2 on the layer-0 embeddings of the batch, divided by ``2 B`` (the official code)
        reg_weight: NonNegativeFloat = 1e-4
        init_std: InitStd = 0.1

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.embedding = nn.Embedding(self.n_users + self.n_items, self.config.embedding_dim)
        nn.init.normal_(self.embedding.weight, std=self.config.init_std)

    def propagate(self) -> Tensor:
        """Final embeddings of all ``n_users + n_items`` nodes."""
        return self.eval_cached(
            lambda: lightgcn_propagate(
                self.graph, self.embedding.weight, self.config.n_layers, norm=self.graph_norm
            )
        )

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        out = self.propagate()
        return out[queries.user], out[self.n_users :]

    def calculate_loss(self, batch: Batch) -> Tensor:
        """``config.loss`` on the scores of the batch plus the L2 term on the layer-0 rows of
        its users, positives and negatives. Only the rows the batch uses are gathered, and the
        gradient flows back through one fused
        :class:`~tgraph.nn.lightgcn_conv.LightGCNPropagation`."""
        users, pos, neg, shift = batch.queries.user, batch.pos_item, batch.neg_item, self.n_users
        sampled = scored_items(batch, self.config.loss)
        items = torch.arange(self.n_items, device=users.device) if sampled is None else sampled
        n = len(users)
        rows = torch.cat([users, items.flatten() + shift])
        ego_rows = [users, pos + shift] + ([] if neg is None else [neg.flatten() + shift])
        final, ego = LightGCNPropagation.apply(
            self.embedding.weight,
            self.graph,
            self.config.n_layers,
            rows,
            torch.cat(ego_rows),
            self.graph_norm,
        )
        query_emb, item_emb = final[:n], final[n:]
        if sampled is None:
            scores = query_emb @ item_emb.T
        else:
            scores = torch.einsum("bd,bkd->bk", query_emb, item_emb.view(n, items.shape[1], -1))
        ego_neg = None if neg is None else ego[2 * n :]
        reg = l2_rows(self.config.reg_weight, ego[:n], ego[n : 2 * n], ego_neg)
        return loss_from_scores(self.config.loss, scores, pos) + reg
