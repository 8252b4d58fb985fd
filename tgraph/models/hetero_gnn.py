"""A heterogeneous GNN recommender: relation-wise convolutions over the training heterograph
(:func:`~tgraph.graph.training.training_heterograph`, encoded by
:class:`~tgraph.nn.hetero_encoder.HeteroEncoder`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import Tensor

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.graph.append import GraphAppender
from tgraph.graph.sampling import NeighborSampling
from tgraph.graph.spec import ITEM, USER, GraphSpec
from tgraph.graph.training import training_heterograph
from tgraph.models.base import (
    Batch,
    Dropout,
    EmbeddingRecommender,
    InitStd,
    ModelConfig,
    scored_items,
)
from tgraph.models.bprmf import l2_rows
from tgraph.models.losses import loss_from_scores
from tgraph.models.registry import register
from tgraph.models.update import NewEvents, fold_into_heterograph
from tgraph.nn.hetero_encoder import HeteroEncoder
from tgraph.nn.relation_conv import Norm


@register("hetero_gnn")
class HeteroGNN(EmbeddingRecommender):
    r"""``score(u, i) = <z_u, z_i>`` with :math:`Z` from :class:`HeteroEncoder` over the
    training heterograph (users, items, locations; relations ``interacts``, ``visits``,
    ``transition``, ``in_location``, ``near`` and their reverses by default).

    Loss: BPR by default. In eval mode the propagated embeddings are cached until the next
    ``train()``/``eval()``. With ``train.sampling`` each batch propagates over the sampled
    blocks around its users and items (``fanouts[l]`` in-edges per node and relation, sums
    rescaled with the whole graph's degrees, see :class:`~tgraph.nn.relation_conv.RelationConv`)
    and evaluation propagates layer by layer in chunks
    (:meth:`~tgraph.nn.hetero_encoder.HeteroEncoder.layerwise`); with full fanout and no
    dropout both equal the full-graph computation up to float rounding.

    :meth:`update` appends the new events' edges to the heterograph
    (:class:`~tgraph.graph.append.GraphAppender`: the timed relations and their norms equal a
    rebuild on all events); a new user's layer-0 row is the mean of the rows of the items of
    its new events (the mean of all user rows without one). New items are refused
    (NotImplementedError): their region and proximity edges need a rebuild.
    """

    supports_update = True
    supports_sampling = True

    class Config(ModelConfig):
        embedding_dim: PositiveInt = 64
        n_layers: NonNegativeInt = 2
        norm: Norm = "right"
        dropout: Dropout = 0.0
        init_std: InitStd = 0.1
        #: L2 on the layer-0 embeddings of the batch divided by ``2 B``
        reg_weight: NonNegativeFloat = 1e-4
        graph: GraphSpec = Field(default_factory=GraphSpec)
        #: k-means regions fitted on training items
        n_regions: PositiveInt = 100
        #: of the k-means regions
        seed: NonNegativeInt = 0

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        hetero = training_heterograph(split.train, cfg.graph, cfg.n_regions, cfg.seed)
        self.graph_meta = hetero.meta
        self.register_graph("graph", hetero.graph)
        self._appender = GraphAppender.from_train(split.train, cfg.graph)
        self.encoder = HeteroEncoder(
            hetero.graph,
            cfg.embedding_dim,
            cfg.n_layers,
            (USER, ITEM),
            cfg.norm,
            cfg.dropout,
            cfg.init_std,
        )

    def fold(self, new: NewEvents) -> None:
        graph = self._graphs["graph"]  # as of the last flush; reading self.graph flushes
        fold_into_heterograph(graph, self._appender, self.encoder.embedding, new)
        self.defer_graph("graph", lambda: self._appender.flush(graph))

    def propagate(self) -> dict[str, Tensor]:
        """Final embeddings of every node type (layer by layer in chunks in eval mode when
        training is sampled)."""
        if self.sampling is not None and not self.training:
            chunk = self.sampling.inference_chunk
            return self.eval_cached(lambda: self.encoder.layerwise(self.graph, chunk))
        return self.eval_cached(lambda: self.encoder(self.graph))

    def check_sampling(self, sampling: NeighborSampling) -> None:
        self.encoder.check_sampling(sampling)

    def calculate_loss(self, batch: Batch) -> Tensor:
        """The loss of :class:`~tgraph.models.base.Recommender`; with ``train.sampling`` the
        batch's embeddings come from its sampled blocks."""
        if self.sampling is None:
            return super().calculate_loss(batch)
        users = batch.queries.user
        items = scored_items(batch, self.config.loss)
        every = torch.arange(self.n_items, device=users.device) if items is None else items
        nodes = {USER: users, ITEM: every.flatten()}
        out = self.encoder.sampled_forward(self.graph, self.sampling, nodes)
        query_emb, item_emb = out[USER], out[ITEM]
        if items is None:
            scores = query_emb @ item_emb.T
        else:
            scores = torch.einsum("bd,bkd->bk", query_emb, item_emb.view(*items.shape, -1))
        return loss_from_scores(self.config.loss, scores, batch.pos_item) + self.regularization(
            batch
        )

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        out = self.propagate()
        return out[USER][queries.user], out[ITEM]

    def regularization(self, batch: Batch) -> Tensor:
        ego = self.encoder.embedding
        neg = None if batch.neg_item is None else ego[ITEM][batch.neg_item]
        return l2_rows(
            self.config.reg_weight,
            ego[USER][batch.queries.user],
            ego[ITEM][batch.pos_item],
            neg,
        )
