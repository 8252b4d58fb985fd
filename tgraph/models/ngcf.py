"""NGCF (Wang et al., SIGIR 2019) on the user-item graph of the training events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import Tensor, nn

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.graph.sampling import SampledBlocks, chunk_blocks
from tgraph.models.base import (
    Batch,
    Dropout,
    ModelConfig,
    UserItemGraphRecommender,
    scored_items,
)
from tgraph.models.bprmf import l2_rows
from tgraph.models.losses import loss_from_scores
from tgraph.models.registry import register
from tgraph.nn.ngcf_conv import NGCFConv


@register("ngcf")
class NGCF(UserItemGraphRecommender):
    r"""``score(u, i) = <e_u, e_i>`` with
    :math:`e = E^{(0)} \,\Vert\, \bar E^{(1)} \Vert \dots \Vert\, \bar E^{(K)}`, where
    :math:`E^{(k)} =` :class:`~tgraph.nn.NGCFConv` :math:`(E^{(k-1)})` and
    :math:`\bar E^{(k)}` is :math:`E^{(k)}` with every row L2-normalised (as in the official
    code; the next layer takes the unnormalised :math:`E^{(k)}`).

    Embeddings are Xavier-uniform initialised. The final size is
    ``embedding_dim + n_layers * hidden_dim``. Training propagates the whole graph once per
    batch; in eval mode the propagated embeddings are cached until the next call to
    ``train()`` / ``eval()``. With ``train.sampling`` each batch propagates over the sampled
    blocks around its users and items (:meth:`block_embeddings`) and evaluation propagates
    layer by layer in chunks (:meth:`layerwise_propagate`); with full fanout and no dropout
    both equal the full-graph computation up to float rounding. Not implemented: the official
    code's node dropout (off by default there).
    """

    class Config(ModelConfig):
        #: size of :math:`E^{(0)}`
        embedding_dim: PositiveInt = 64
        #: output size of every layer
        hidden_dim: PositiveInt = 64
        n_layers: NonNegativeInt = 3
        #: message dropout after each layer
        mess_dropout: Dropout = 0.1
        #: of the LeakyReLU
        negative_slope: NonNegativeFloat = 0.2
        #: L2 on the layer-0 embeddings of the batch's users, positives and negatives, divided
        #: by ``2 B`` (the official code)
        reg_weight: NonNegativeFloat = 1e-5

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        self.embedding = nn.Embedding(self.n_users + self.n_items, cfg.embedding_dim)
        nn.init.xavier_uniform_(self.embedding.weight)
        dims = [cfg.embedding_dim] + [cfg.hidden_dim] * cfg.n_layers
        self.layers = nn.ModuleList(
            NGCFConv(d_in, d_out, cfg.mess_dropout, cfg.negative_slope)
            for d_in, d_out in zip(dims[:-1], dims[1:])
        )

    def propagate(self) -> Tensor:
        """Final embeddings of all ``n_users + n_items`` nodes,
        ``[N, embedding_dim + n_layers * hidden_dim]`` (layer by layer in chunks in eval mode
        when training is sampled)."""
        if self.sampling is not None and not self.training:
            chunk = self.sampling.inference_chunk
            return self.eval_cached(lambda: self.layerwise_propagate(chunk))
        return self.eval_cached(self._propagate)

    @torch.no_grad()
    def layerwise_propagate(self, chunk: int) -> Tensor:
        """:meth:`propagate`'s result computed layer by layer, each layer over blocks of at
        most ``chunk`` destination nodes (:func:`~tgraph.graph.sampling.chunk_blocks`)."""
        out_norm, in_norm = self.graph_norm
        h = self.embedding.weight.detach()
        outputs = [h]
        for layer in self.layers:
            new = h.new_empty(len(h), layer.W1.out_features)
            for lo, hi, block in chunk_blocks(self.graph, chunk):
                new[lo:hi] = layer(block, (h, h[lo:hi]), (out_norm, in_norm[lo:hi]))
            h = new
            outputs.append(F.normalize(h, dim=1))
        return torch.cat(outputs, dim=1)

    def block_embeddings(self, sample: SampledBlocks) -> Tensor:
        """Final embeddings of the sample's seed nodes over its blocks (the whole graph's
        norms, sampled sums rescaled); differentiable."""
        h = self.embedding(sample.input_nodes.long())  # sparse gradient with sampling.sparse
        n = len(sample.seeds)
        outputs = [h[:n]]
        for layer, block in zip(self.layers, sample.blocks):
            h = layer(block, h, self.block_norms(block))
            outputs.append(F.normalize(h[:n], dim=1))
        return torch.cat(outputs, dim=1)

    def calculate_loss(self, batch: Batch) -> Tensor:
        """The loss of :class:`~tgraph.models.base.Recommender`; with ``train.sampling``
        the batch's embeddings come from its sampled blocks."""
        if self.sampling is None:
            return super().calculate_loss(batch)
        users, shift = batch.queries.user, self.n_users
        items = scored_items(batch, self.config.loss)
        every = torch.arange(self.n_items, device=users.device) if items is None else items
        sample = self.sample_blocks(torch.cat([users, every.flatten() + shift]))
        final = self.block_embeddings(sample)[sample.inverse]
        query_emb, item_emb = final[: len(users)], final[len(users) :]
        if items is None:
            scores = query_emb @ item_emb.T
        else:
            scores = torch.einsum("bd,bkd->bk", query_emb, item_emb.view(*items.shape, -1))
        return loss_from_scores(self.config.loss, scores, batch.pos_item) + self.regularization(
            batch
        )

    def _propagate(self) -> Tensor:
        h = self.embedding.weight
        outputs = [h]
        for layer in self.layers:
            h = layer(self.graph, h, self.graph_norm)
            outputs.append(F.normalize(h, dim=1))
        return torch.cat(outputs, dim=1)

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        out = self.propagate()
        return out[queries.user], out[self.n_users :]

    def regularization(self, batch: Batch) -> Tensor:
        emb, shift = self.embedding, self.n_users
        return l2_rows(
            self.config.reg_weight,
            emb(batch.queries.user),
            emb(batch.pos_item + shift),
            None if batch.neg_item is None else emb(batch.neg_item + shift),
        )
