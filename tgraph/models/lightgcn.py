"""LightGCN (He et al., SIGIR 2020) on the user-item graph of the training events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dgl
import torch
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import Tensor, nn

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.graph.sampling import SampledBlocks, chunk_blocks
from tgraph.models.base import Batch, InitStd, ModelConfig, UserItemGraphRecommender, scored_items
from tgraph.models.bprmf import l2_rows
from tgraph.models.losses import loss_from_scores
from tgraph.models.registry import register
from tgraph.nn.lightgcn_conv import LightGCNConv, LightGCNPropagation, lightgcn_propagate


@register("lightgcn")
class LightGCN(UserItemGraphRecommender):
    r"""``score(u, i) = <e_u, e_i>`` with :math:`E = \frac{1}{K+1}\sum_{k=0}^K \tilde A^k E^{(0)}`,
    :math:`\tilde A = D^{-1/2} A D^{-1/2}` (see :class:`~tgraph.nn.LightGCNConv`).

    Training propagates once per batch (forward and backward are fused sparse products, see
    :meth:`calculate_loss`); in eval mode the propagated embeddings are cached until the next
    call to ``train()`` / ``eval()``.

    **Sampled training** (``train.sampling``, :meth:`~tgraph.models.base.Recommender.use_sampling`):
    each batch propagates over the sampled blocks around its users and items
    (:meth:`block_embeddings`) instead of the whole graph, and evaluation propagates the
    whole graph layer by layer in chunks (:meth:`layerwise_propagate`). With full fanout
    (``-1`` in every layer) both equal the full-graph computation up to float rounding.
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
        self.conv = LightGCNConv()  # the sampled and layer-wise paths (no parameters)

    def propagate(self) -> Tensor:
        """Final embeddings of all ``n_users + n_items`` nodes (layer by layer in chunks in
        eval mode when training is sampled)."""
        if self.sampling is not None and not self.training:
            return self.eval_cached(lambda: self.layerwise_propagate(self.sampling_chunk))
        return self.eval_cached(
            lambda: lightgcn_propagate(
                self.graph, self.embedding.weight, self.config.n_layers, norm=self.graph_norm
            )
        )

    @property
    def sampling_chunk(self) -> int:
        return 65536 if self.sampling is None else self.sampling.inference_chunk

    @torch.no_grad()
    def layerwise_propagate(self, chunk: int) -> Tensor:
        """The final embeddings of all nodes computed layer by layer, each layer over blocks
        of at most ``chunk`` destination nodes (:func:`~tgraph.graph.sampling.chunk_blocks`):
        besides the ``[N, d]`` tables, memory holds one chunk's edges and messages. Equals
        :meth:`propagate`'s full-graph result up to float rounding."""
        out_norm, in_norm = self.graph_norm
        h = self.embedding.weight.detach()
        total = h.clone()
        for _ in range(self.config.n_layers):
            scaled = h * out_norm
            h = torch.empty_like(h)
            for lo, hi, block in chunk_blocks(self.graph, chunk):
                # LightGCNConv's sum, the source scaling done once for all chunks
                h[lo:hi] = dgl.ops.copy_u_sum(block, scaled) * in_norm[lo:hi]
            total += h
        return total / (self.config.n_layers + 1)

    def block_embeddings(self, sample: SampledBlocks) -> Tensor:
        """Final embeddings ``[S, d]`` of the sample's seed nodes, propagated over its blocks
        with the whole graph's norms (sampled sums rescaled, see
        :meth:`~tgraph.models.base.UserItemGraphRecommender.block_norms`); differentiable."""
        h = self.embedding(sample.input_nodes.long())  # sparse gradient with sampling.sparse
        n = len(sample.seeds)
        total = h[:n]
        for block in sample.blocks:
            h = self.conv(block, h, self.block_norms(block))
            total = total + h[:n]
        return total / (self.config.n_layers + 1)

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
        ego_rows = torch.cat(
            [users, pos + shift] + ([] if neg is None else [neg.flatten() + shift])
        )
        if self.sampling is not None:  # over the batch's sampled blocks
            sample = self.sample_blocks(rows)
            final = self.block_embeddings(sample)[sample.inverse]
            ego = self.embedding(ego_rows)
        else:
            final, ego = LightGCNPropagation.apply(
                self.embedding.weight,
                self.graph,
                self.config.n_layers,
                rows,
                ego_rows,
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
