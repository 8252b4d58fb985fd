"""A heterogeneous GNN recommender: relation-wise convolutions over the training heterograph.

Also home of the pieces the flagship model reuses: :func:`training_heterograph` (regions
fitted on training items, then :func:`~tgraph.graph.build.build_graph`) and
:class:`HeteroEncoder` (node embeddings propagated by :class:`~tgraph.nn.RelationConv`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dgl
import numpy as np
import torch
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt
from torch import Tensor, nn

from tgraph.config import validate_model
from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import add_regions, fit_kmeans, item_coordinates
from tgraph.data.split import Split
from tgraph.graph.build import build_graph
from tgraph.graph.hetero import TemporalHeteroGraph
from tgraph.graph.spec import ITEM, USER, GraphSpec
from tgraph.models.base import (
    Batch,
    Dropout,
    EmbeddingRecommender,
    InitStd,
    ModelConfig,
    Queries,
)
from tgraph.models.bprmf import l2_rows
from tgraph.models.registry import register
from tgraph.nn.relation_conv import Norm, RelationConv

logger = logging.getLogger(__name__)


def has_coordinates(train: Interactions) -> bool:
    """Whether the items (or the events) carry lat/lon."""
    return {"lat", "lon"} <= set(train.items.columns) or (train.has("lat") and train.has("lon"))


def training_heterograph(
    train: Interactions,
    spec: GraphSpec | Mapping[str, Any] | None = None,
    n_regions: int = 100,
    seed: int = 0,
    drop_ntypes: Sequence[str] = (),
) -> TemporalHeteroGraph:
    """The heterograph of ``train`` (a split's training part) for a model.

    When ``spec.locations`` is set and the items have coordinates, ``n_regions`` k-means
    regions (seeded) are fitted on the coordinates of the items that occur in ``train``'s
    events only, and every item gets its nearest region (no validation/test information
    enters). Without coordinates an existing ``region`` column is used; without either,
    location nodes are left out (logged, and recorded in ``meta.report``).
    ``drop_ntypes`` removes node types and every relation touching them.
    """
    spec = validate_model(GraphSpec, spec, "graph")
    report: dict[str, Any] = {}
    if spec.locations and has_coordinates(train):
        lat, lon = item_coordinates(train)
        seen = np.unique(train.events["item"].to_numpy())
        seen = seen[np.isfinite(lat[seen]) & np.isfinite(lon[seen])]
        distinct = len(np.unique(np.round(np.stack([lat[seen], lon[seen]], 1), 9), axis=0))
        k = min(n_regions, distinct)
        train, _ = add_regions(train, fit_kmeans(lat[seen], lon[seen], k, seed=seed))
        report["regions"] = {"method": "kmeans", "k": k, "fitted_on_items": len(seen)}
    elif spec.locations and not ("region" in train.items.columns or train.has("region")):
        report["locations_left_out"] = "no coordinates and no region column"
        logger.info("%s: location nodes left out (no coordinates, no region)", train.name)
        spec = spec.model_copy(update={"locations": False})
    graph = build_graph(train, spec)
    graph.meta.report.update(report)
    if drop_ntypes:
        keep = [
            et
            for et in graph.graph.canonical_etypes
            if et[0] not in drop_ntypes and et[2] not in drop_ntypes
        ]
        if not keep:
            raise ValueError(f"dropping node types {list(drop_ntypes)} leaves no relation")
        graph = graph.with_graph(dgl.edge_type_subgraph(graph.graph, keep))
    return graph


class HeteroEncoder(nn.Module):
    r"""Learned embeddings of every node type, propagated by ``n_layers`` :class:`RelationConv`:

    .. math::
        H^{(0)}_\tau = E_\tau, \qquad
        H^{(l+1)} = \mathrm{Dropout}(\tanh(\mathrm{RelationConv}_l(H^{(l)}))), \qquad
        Z_\tau = \frac{1}{L+1} \sum_{l=0}^{L} H^{(l)}_\tau

    over every relation of ``graph``; ``forward`` returns ``{ntype: Z_ntype}`` for the
    ``outputs`` node types only. The last layer computes only those (and the relations
    ending in them), so every parameter reaches the outputs.
    """

    def __init__(
        self,
        graph: dgl.DGLGraph,
        dim: int,
        n_layers: int,
        outputs: Sequence[str],
        norm: Norm = "right",
        dropout: float = 0.0,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.outputs = list(outputs)
        missing = sorted(set(self.outputs) - set(graph.ntypes))
        if missing:
            raise ValueError(f"output node types {missing} are not in the graph {graph.ntypes}")
        self.embedding = nn.ParameterDict(
            {
                nt: nn.Parameter(torch.randn(graph.num_nodes(nt), dim) * init_std)
                for nt in graph.ntypes
            }
        )
        layers = []
        for index in range(n_layers):
            ntypes = self.outputs if index == n_layers - 1 else list(graph.ntypes)
            etypes = [et for et in graph.canonical_etypes if et[2] in ntypes]
            layers.append(RelationConv(dim, dim, ntypes, etypes, norm=norm))
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)

    def forward(self, graph: dgl.DGLGraph) -> dict[str, Tensor]:
        h = dict(self.embedding.items())
        total = {nt: h[nt] for nt in self.outputs}
        for layer in self.layers:
            h = {nt: self.dropout(torch.tanh(x)) for nt, x in layer(graph, h).items()}
            total = {nt: total[nt] + h[nt] for nt in total}
        return {nt: x / (len(self.layers) + 1) for nt, x in total.items()}


@register("hetero_gnn")
class HeteroGNN(EmbeddingRecommender):
    r"""``score(u, i) = <z_u, z_i>`` with :math:`Z` from :class:`HeteroEncoder` over the
    training heterograph (users, items, locations; relations ``interacts``, ``visits``,
    ``transition``, ``in_location``, ``near`` and their reverses by default).

    Loss: BPR by default. In eval mode the propagated embeddings are cached until the next
    ``train()``/``eval()``.
    """

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
        self.encoder = HeteroEncoder(
            hetero.graph,
            cfg.embedding_dim,
            cfg.n_layers,
            (USER, ITEM),
            cfg.norm,
            cfg.dropout,
            cfg.init_std,
        )

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
