"""A heterogeneous GNN recommender: relation-wise convolutions over the training heterograph
(:func:`~tgraph.graph.training.training_heterograph`, encoded by
:class:`~tgraph.nn.hetero_encoder.HeteroEncoder`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import Tensor

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.graph.append import GraphAppender
from tgraph.graph.spec import ITEM, USER, GraphSpec
from tgraph.graph.training import training_heterograph
from tgraph.models.base import Batch, Dropout, EmbeddingRecommender, InitStd, ModelConfig
from tgraph.models.bprmf import l2_rows
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
    ``train()``/``eval()``.

    :meth:`update` appends the new events' edges to the heterograph
    (:class:`~tgraph.graph.append.GraphAppender`: the timed relations and their norms equal a
    rebuild on all events); a new user's layer-0 row is the mean of the rows of the items of
    its new events (the mean of all user rows without one). New items are refused
    (NotImplementedError): their region and proximity edges need a rebuild.
    """

    supports_update = True

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
        """Final embeddings of every node type."""
        return self.eval_cached(lambda: self.encoder(self.graph))

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
