"""TGAT (Xu et al., ICLR 2020) on the user's temporal neighbourhood in the user-item graph."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dgl
from pydantic import PositiveInt, model_validator
from torch import Tensor, nn

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.graph.temporal import events_block
from tgraph.models.base import (
    Dropout,
    EmbeddingRecommender,
    InitStd,
    ModelConfig,
    check_heads,
    padded_item_embedding,
)
from tgraph.models.losses import Loss
from tgraph.models.registry import register
from tgraph.models.update import (
    NewEvents,
    cold_start_rows,
    grow_embedding,
    grow_items_by_co_visits,
)
from tgraph.nn.temporal_attention import TemporalAttentionConv


@register("tgat")
class TGAT(EmbeddingRecommender):
    r"""One TGAT layer: a query (user :math:`u` at time :math:`t`) attends over its temporal
    neighbourhood in the continuous-time user-item graph.

    TGAT's 1-hop sampling of node :math:`u` at time :math:`t` takes the most recent events
    :math:`(u, j, t_e)` with :math:`t_e < t`; here these are exactly the ``max_len`` history
    events a :class:`~tgraph.data.queries.Queries` carries (strictly before the query time,
    from the temporal index, see :func:`~tgraph.data.queries.build_queries`). Each batch
    becomes a DGL block (:func:`~tgraph.graph.temporal.events_block`, as for the temporal
    neighbour sampler): sources = the distinct items of the histories, destinations = the
    queries, one edge per history
    event carrying its time :math:`t_e` (repeat visits are parallel edges; the padding index
    ``n_items`` is never an edge). :class:`~tgraph.nn.temporal_attention.TemporalAttentionConv`
    then computes TGAT's layer with query time :math:`t`:

    .. math::
        z_u = e_u \Vert \Phi(0), \qquad z_e = e_j \Vert \Phi(t - t_e), \qquad
        s_{u,t} = \mathrm{FFN}\Big(\big\Vert_{m} \sum_{e} \alpha_e^m\, (W_V^m z_e + c_V^m)
        \;\Big\Vert\; e_u\Big),

    with :math:`\alpha^m` the softmax over the events of :math:`q^m = W_Q^m z_u` against
    :math:`k_e^m = W_K^m z_e + c_K^m`. The layer-0 features of TGAT are the learned embeddings
    :math:`e_u` (user table) and :math:`e_j` (item table, shared with the output), so
    ``score(q, i) = <s_{u,t}, e_i>``. A query with no history gets
    :math:`s = \mathrm{FFN}(0 \Vert e_u)`. TGAT's second layer (the neighbours' own
    neighbourhoods) is left out: this is the 1-layer form.

    The embeddings' ``init_std`` (0.1) is larger than SASRec's 0.02 so that they are not
    drowned by the time encoding, whose entries are cosines in [-1, 1]: with 0.02 the model
    learned about twice as slowly on synthetic check-ins.

    :meth:`update` folds new events in trivially (the neighbourhood is the query's history,
    not model state): a new item's row is the mean of the rows of the known items visited by
    its users in the same update, a new user's the mean of all known user rows (the user
    table is not in the item space); the mean of all known item rows for an item without
    co-visits.
    """

    supports_update = True
    sampling_note = (
        ": it already trains on sampled time-respecting neighbourhoods (the max_len most "
        "recent events strictly before each query, from the temporal index; set config.max_len)"
    )

    class Config(ModelConfig):
        loss: Loss = "ce"
        #: the neighbourhood size ``k`` (= ``history_len``)
        max_len: PositiveInt = 20
        embedding_dim: PositiveInt = 64
        num_heads: PositiveInt = 2
        #: size of :math:`\Phi`
        time_dim: PositiveInt = 64
        #: on the neighbour features and the attention weights
        dropout: Dropout = 0.1
        #: normal initialisation of the embeddings
        init_std: InitStd = 0.1

        @model_validator(mode="after")
        def _heads_divide_dim(self) -> TGAT.Config:
            check_heads(self.embedding_dim, self.num_heads, "num_heads")
            return self

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        self.require_history(cfg.max_len)
        dim = cfg.embedding_dim
        self.user_emb = nn.Embedding(self.n_users, dim)
        nn.init.normal_(self.user_emb.weight, std=cfg.init_std)
        self.item_emb = padded_item_embedding(self.n_items, dim, cfg.init_std)
        self.feat_dropout = nn.Dropout(cfg.dropout)
        self.conv = TemporalAttentionConv(
            dim, dim, num_heads=cfg.num_heads, time_feats=cfg.time_dim, attn_drop=cfg.dropout
        )

    def neighbourhood(self, queries: Queries) -> tuple[dgl.DGLGraph, Tensor, Tensor]:
        """The batch's block (:func:`~tgraph.graph.temporal.events_block`: distinct history
        items -> queries), the source item codes and the edge times."""
        if queries.hist_items is None or queries.hist_times is None:
            raise ValueError("TGAT needs queries with history (history_len > 0)")
        real = queries.hist_mask
        block, src_items = events_block(
            queries.hist_items[real], real.nonzero()[:, 0], len(queries)
        )
        return block, src_items, queries.hist_times[real]

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        block, src_items, edge_time = self.neighbourhood(queries)
        src_feat = self.feat_dropout(self.item_emb(src_items))
        user_feat = self.user_emb(queries.user)
        out = self.conv(block, (src_feat, user_feat), queries.timestamp, edge_time)
        return out, self.item_emb.weight[: self.n_items]

    def fold(self, new: NewEvents) -> None:
        grow_items_by_co_visits(self.item_emb, new)
        rows = cold_start_rows(self.user_emb.weight, [], [], new.n_users - new.old_users)
        grow_embedding(self.user_emb, [(new.old_users, rows)])
