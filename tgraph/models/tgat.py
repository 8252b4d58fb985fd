"""TGAT (Xu et al., ICLR 2020) on the user's temporal neighbourhood in the user-item graph."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dgl
import numpy as np
from pydantic import PositiveInt, SerializerFunctionWrapHandler, model_serializer, model_validator
from torch import Tensor, nn

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.graph.sampling import TemporalBlocks, temporal_blocks
from tgraph.graph.temporal import (
    InteractionNeighbors,
    TimedNeighbors,
    events_block,
    interaction_key,
)
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
    r"""TGAT: a query (user :math:`u` at time :math:`t`) attends over its temporal
    neighbourhood in the continuous-time user-item graph, over :math:`L` layers.

    **One layer** (the default, ``fanouts`` unset). TGAT's 1-hop sampling of node :math:`u`
    at time :math:`t` takes the most recent events :math:`(u, j, t_e)` with :math:`t_e < t`;
    here these are exactly the ``max_len`` history events a
    :class:`~tgraph.data.queries.Queries` carries (strictly before the event the query asks
    about, from the temporal index, see :func:`~tgraph.data.queries.build_queries`). Each
    batch becomes a DGL block (:func:`~tgraph.graph.temporal.events_block`, as for the
    temporal neighbour sampler): sources = the distinct items of the histories, destinations
    = the queries, one edge per history event carrying its time :math:`t_e` (repeat visits are
    parallel edges; the padding index ``n_items`` is never an edge).
    :class:`~tgraph.nn.temporal_attention.TemporalAttentionConv` then computes TGAT's layer
    with query time :math:`t`:

    .. math::
        z_u = e_u \Vert \Phi(0), \qquad z_e = e_j \Vert \Phi(t - t_e), \qquad
        s_{u,t} = \mathrm{FFN}\Big(\big\Vert_{m} \sum_{e} \alpha_e^m\, (W_V^m z_e + c_V^m)
        \;\Big\Vert\; e_u\Big),

    with :math:`\alpha^m` the softmax over the events of :math:`q^m = W_Q^m z_u` against
    :math:`k_e^m = W_K^m z_e + c_K^m`. The layer-0 features of TGAT are the learned embeddings
    :math:`e_u` (user table) and :math:`e_j` (item table, shared with the output), so
    ``score(q, i) = <s_{u,t}, e_i>``. A query with no history gets
    :math:`s = \mathrm{FFN}(0 \Vert e_u)`.

    Under ``query_time: hidden`` the query's :math:`t` is the time of its last history event
    (the target's is not known), so the layer admits the events *at* :math:`t` as well
    (``strict=False``): the history is strictly before the target by construction, and the
    last event, the most informative one, would otherwise get no attention. With the time
    known nothing changes (every history event is strictly before :math:`t`).

    **L layers** (``fanouts: [k_1, ..., k_L]``, the first layer first, as ``train.sampling``
    orders them; ``k_L`` is the query's own neighbourhood, so it must equal ``max_len``). TGAT's
    recursion, with :math:`h^{(0)}` the embeddings and one
    :class:`~tgraph.nn.temporal_attention.TemporalAttentionConv` per layer (its own weights,
    shared by users and items):

    .. math::
        h^{(l)}_v(t) = \mathrm{Conv}_l\Big(h^{(l-1)}_v(t);\;
            \{(h^{(l-1)}_w(t_e),\, t - t_e) : (v, w, t_e) \in \mathcal{N}_l(v, t)\}\Big),
        \qquad s_{u,t} = h^{(L)}_u(t),

    where :math:`\mathcal{N}_l(v, t)` holds the :math:`k_l` most recent events of :math:`v`
    strictly before :math:`t`: for the query itself the last :math:`k_l` events of its history,
    for any other node (an item reached by a history event at :math:`t_e`, that item's users,
    ...) the events of the **training interactions** (``split.train``, plus those folded in by
    :meth:`update`) from the temporal index
    (:class:`~tgraph.graph.temporal.InteractionNeighbors`, through
    :func:`~tgraph.graph.sampling.temporal_blocks` with the histories as the queries' own
    events). A neighbour reached by an edge at
    :math:`t_e` is looked at at :math:`t_e`, so nothing at or after the time of the node it
    feeds enters (TGAT's rule) and a hidden target time is never read. The cost of a query
    grows as :math:`\prod_l (1 + k_l)` rows, independent of the size of the graph. With
    :math:`L = 1` this is the one-layer model above, parameter for parameter (the first
    layer is ``conv``, the others ``upper``).

    Why a model key and not ``train.sampling``: the sampled neighbourhood *is* TGAT's
    computation, at training and at evaluation alike (there is no full-graph propagation of
    a continuous-time model to fall back to), so it belongs to the model and its fingerprint;
    ``train.sampling`` means "train on samples, evaluate on the full graph" and is refused
    for this model.

    The embeddings' ``init_std`` (0.1) is larger than SASRec's 0.02 so that they are not
    drowned by the time encoding, whose entries are cosines in [-1, 1]: with 0.02 the model
    learned about twice as slowly on synthetic check-ins.

    :meth:`update` folds new events in: a new item's row is the mean of the rows of the known
    items visited by its users in the same update, a new user's the mean of all known user
    rows (the user table is not in the item space); the mean of all known item rows for an
    item without co-visits. With :math:`L > 1` the events join the temporal index of the
    deeper hops.
    """

    supports_update = True
    sampling_note = (
        ": it already trains on sampled time-respecting neighbourhoods (the max_len most "
        "recent events strictly before each query, from the temporal index; set config.max_len, "
        "and config.fanouts for more than one layer)"
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
        #: neighbours per layer, the first layer first (the last one is the query's own
        #: history: ``max_len``); unset: one layer, ``[max_len]``
        fanouts: list[PositiveInt] | None = None

        @model_validator(mode="after")
        def _heads_divide_dim(self) -> TGAT.Config:
            check_heads(self.embedding_dim, self.num_heads, "num_heads")
            if self.fanouts is not None:
                if not self.fanouts:
                    raise ValueError(
                        "fanouts is empty (fix: give one size per layer, e.g. [10, 20], or "
                        "leave fanouts out for one layer)"
                    )
                if self.fanouts[-1] != self.max_len:
                    raise ValueError(
                        f"fanouts[-1] = {self.fanouts[-1]} is the query's own neighbourhood, "
                        f"its history, but max_len = {self.max_len} (fix: make them equal; "
                        "fanouts lists the first layer first)"
                    )
            return self

        @model_serializer(mode="wrap")
        def _without_unset_fanouts(self, handler: SerializerFunctionWrapHandler) -> dict:
            """No ``fanouts`` key while unset: fingerprints of one-layer runs stay those of
            before the option existed."""
            data = handler(self)
            if data.get("fanouts", 0) is None:
                del data["fanouts"]
            return data

        @property
        def layer_fanouts(self) -> list[int]:
            """The neighbours per layer, first layer first (``[max_len]`` by default)."""
            return [self.max_len] if self.fanouts is None else list(self.fanouts)

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
        self.upper = nn.ModuleList(
            TemporalAttentionConv(
                dim, dim, num_heads=cfg.num_heads, time_feats=cfg.time_dim, attn_drop=cfg.dropout
            )
            for _ in cfg.layer_fanouts[1:]
        )
        self.neighbors: InteractionNeighbors | None = None
        if self.upper:
            train = split.train.events
            self.neighbors = InteractionNeighbors(
                train["user"].to_numpy(np.int64),
                train["item"].to_numpy(np.int64),
                train["timestamp"].to_numpy(np.int64),
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

    def layered_neighbourhood(self, queries: Queries) -> TemporalBlocks:
        """The batch's :math:`L`-layer computation graph
        (:func:`~tgraph.graph.sampling.temporal_blocks` over the interaction keys of
        :func:`~tgraph.graph.temporal.interaction_key`, the histories as the queries' own
        events, each layer's rows starting with those of the layer above; needs ``fanouts``
        of two or more)."""
        if self.neighbors is None:
            raise ValueError("a one-layer TGAT has no deeper neighbourhood (set config.fanouts)")
        if queries.hist_items is None or queries.hist_times is None:
            raise ValueError("TGAT needs queries with history (history_len > 0)")
        real = queries.hist_mask
        history = TimedNeighbors(
            query=real.nonzero()[:, 0],
            src=interaction_key(queries.hist_items[real], True),
            timestamp=queries.hist_times[real],
            eid=None,
        )
        return temporal_blocks(
            self.neighbors,
            interaction_key(queries.user, False),
            queries.timestamp,
            self.config.layer_fanouts,
            seed_events=history,
            keep_destinations=True,
        )

    def features(self, keys: Tensor) -> Tensor:
        """Layer-0 features of interaction keys: the user or item embedding."""
        is_item = (keys % 2).bool()
        node = keys // 2
        out = self.user_emb.weight.new_empty(len(keys), self.user_emb.embedding_dim)
        out[~is_item] = self.user_emb(node[~is_item])
        out[is_item] = self.item_emb(node[is_item])
        return out

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        items = self.item_emb.weight[: self.n_items]
        if not self.upper:
            block, src_items, edge_time = self.neighbourhood(queries)
            src_feat = self.feat_dropout(self.item_emb(src_items))
            user_feat = self.user_emb(queries.user)
            out = self.conv(
                block, (src_feat, user_feat), queries.timestamp, edge_time, strict=False
            )
            return out, items
        graph = self.layered_neighbourhood(queries)
        h = self.features(graph.input_nodes)
        for layer, (conv, block) in enumerate(zip([self.conv, *self.upper], graph.blocks)):
            n_dst = block.num_dst_nodes()
            src = h[n_dst:]
            if layer == 0:
                src = self.feat_dropout(src)
            # strict=False: the queries' own rows may sit at their last event's time (hidden)
            h = conv(
                block, (src, h[:n_dst]), block.dstdata["t"], block.edata["timestamp"], strict=False
            )
        return h, items

    def fold(self, new: NewEvents) -> None:
        grow_items_by_co_visits(self.item_emb, new)
        rows = cold_start_rows(self.user_emb.weight, [], [], new.n_users - new.old_users)
        grow_embedding(self.user_emb, [(new.old_users, rows)])
        if self.neighbors is not None:
            self.neighbors.add(new.user, new.item, new.timestamp)
