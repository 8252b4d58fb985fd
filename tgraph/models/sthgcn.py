"""STHGCN (Yan et al., SIGIR 2023): a spatio-temporal hypergraph of check-ins and
trajectories, encoded with a hypergraph transformer, for next-POI recommendation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, NamedTuple

import dgl
import numpy as np
import pandas as pd
import torch
from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)
from torch import Tensor, nn

from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import item_coordinates
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.errors import DataError
from tgraph.graph.hypergraph import (
    CHECKIN_IN,
    CheckinHypergraph,
    checkin_hypergraph,
    current_trajectory,
    own_trajectories,
    pair_jaccard,
    trajectory_links,
    trajectory_neighbours,
)
from tgraph.graph.training import has_coordinates
from tgraph.models.base import Dropout, InitStd, ModelConfig, Recommender, check_heads
from tgraph.models.losses import Loss
from tgraph.models.registry import register
from tgraph.models.update import (
    NewEvents,
    co_visits,
    cold_start_rows,
    grow_embedding,
    grow_items_by_co_visits,
)
from tgraph.nn.encodings import DistanceEncoding, TimeEncoding, haversine_km
from tgraph.nn.hypergraph_transformer_conv import HypergraphTransformerConv

SECONDS_PER_HOUR = 3600
#: 1970-01-01 was a Thursday: day ``d`` since the epoch is weekday ``(d + 3) % 7`` (Monday 0)
EPOCH_WEEKDAY = 3
#: the relation of the per-batch inter-trajectory graph (earlier trajectory -> query)
TRAJ_TO_QUERY = ("trajectory", "to", "query")
#: the relation among training trajectories (``n_traj_layers``): earlier -> later
TRAJ_TO_LATER = ("trajectory", "precedes", "later")
#: distinct queries whose neighbours :meth:`STHGCN.neighbours` remembers (then it starts over)
NEIGHBOUR_CACHE_SIZE = 1_000_000
#: edge features a neighbour trajectory adds under ``neighbour_rule: sthgcn`` (Jaccard, own user)
RELATION_DIM = 2


class Neighbours(NamedTuple):
    """The inter-trajectory hyperedges of a batch of queries (:meth:`STHGCN.neighbours`), by
    query: ``trajectory -> query``, the Jaccard similarity of their POI sets, and whether the
    trajectory is the query user's own."""

    trajectory: Tensor
    query: Tensor
    jaccard: Tensor
    own: Tensor


def hour_of_week(local: Tensor) -> Tensor:
    """Slot ``0 .. 167`` (Monday 0 h = 0) of local times in seconds."""
    hours = torch.div(local, SECONDS_PER_HOUR, rounding_mode="floor")
    day = torch.div(hours, 24, rounding_mode="floor")
    return torch.remainder(day + EPOCH_WEEKDAY, 7) * 24 + torch.remainder(hours, 24)


def positions(coords: np.ndarray | None, rows: int) -> tuple[Tensor, Tensor]:
    """``rows`` item positions ``[rows, 2]`` (float32 lat, lon; 0 where unknown) and whether
    each is known, from ``coords`` (``[n <= rows, 2]``, NaN where unknown; None: none known);
    rows past ``n`` are unknown."""
    latlon = np.zeros((rows, 2))
    known = np.zeros(rows, dtype=bool)
    if coords is not None:
        known[: len(coords)] = np.isfinite(coords).all(1)
        latlon[: len(coords)] = np.nan_to_num(coords, nan=0.0)
    return torch.tensor(latlon, dtype=torch.float32), torch.tensor(known)


@register("sthgcn")
class STHGCN(Recommender):
    r"""STHGCN: check-ins and trajectories as a hypergraph, a hypergraph transformer over it.

    **Hypergraph** (:func:`~tgraph.graph.hypergraph.checkin_hypergraph` of ``split.train``):
    every training check-in :math:`c = (u, p, t)` is a node, every training trajectory (a
    user's check-ins cut at gaps above ``gap_hours``) a hyperedge (intra-trajectory
    incidence ``checkin -> trajectory`` in a bipartite DGL heterograph). A check-in's
    feature is

    .. math:: x_c = E_{poi}[p] + E_{user}[u] + E_{slot}[\mathrm{hour\_of\_week}(t_{local})].

    **Intra-trajectory convolution** (:class:`~tgraph.nn.hypergraph_transformer_conv.
    HypergraphTransformerConv`, ``conv_intra``): a trajectory :math:`T` with last check-in
    :math:`c_T` (time :math:`t_T`, POI :math:`p_T`) starts from :math:`x_{c_T}` and attends
    over its check-ins with the edge encoding :math:`e_{cT} = [\Phi(t_T - t_c),
    \psi(d(p_c, p_T))]` (:class:`~tgraph.nn.encodings.TimeEncoding`, RBF
    :class:`~tgraph.nn.encodings.DistanceEncoding`): :math:`h_T`.

    With ``trajectory_query: global`` every hyperedge starts from one learned vector
    :math:`g` instead of :math:`x_{c_T}` (STHGCN's aggregation: a learned global query, no
    residual to the last check-in, which still enters as a message with zero time gap and
    distance).

    **Query.** Its current trajectory is the tail of its history with no gap above
    ``gap_hours`` (:func:`~tgraph.graph.hypergraph.current_trajectory`, at most ``max_len``
    check-ins); it is a hyperedge :math:`Q` of the same kind, encoded by ``conv_intra``
    relative to its last check-in (time :math:`t_Q`, "now"), giving :math:`h_Q`.

    **Inter-trajectory convolution** (``conv_inter``): :math:`Q` attends over training
    trajectories :math:`T` that *ended at or before* :math:`t_Q` (:meth:`neighbours`), with
    :math:`e_{TQ} = [\Phi(t_Q - t_T), \psi(d(p_T, p_Q))]`. Which ones is ``neighbour_rule``:

    * ``jaccard``: at most ``n_neighbours`` trajectories of any user whose POI sets have
      Jaccard similarity above ``jaccard_threshold`` with :math:`Q`'s, the most similar first
      (:func:`~tgraph.graph.hypergraph.trajectory_neighbours`);
    * ``sthgcn``: STHGCN's two relations. Intra-user: the latest ``n_own_neighbours`` earlier
      trajectories of :math:`Q`'s own user, whatever their overlap
      (:func:`~tgraph.graph.hypergraph.own_trajectories`); inter-user: at most
      ``n_neighbours`` of other users' above ``jaccard_threshold``, the most similar first.
      Each edge also carries the relation and the Jaccard similarity :math:`J_{TQ}`:
      :math:`e_{TQ} = [\Phi(t_Q - t_T), \psi(d(p_T, p_Q)), J_{TQ}, [u_T = u_Q]]`.

    Then

    .. math:: z_Q = \mathrm{conv\_inter}(h_Q, \{h_T\}), \qquad
              \mathrm{score}(Q, i) = W_{out}[i] \cdot z_Q + b_i

    (full ranking over all POIs; trained with full cross-entropy).

    **Trajectory -> trajectory layers** (``n_traj_layers`` :math:`L > 0`, ``conv_traj``):
    before a query attends, every training trajectory :math:`T` attends :math:`L` times over
    the (at most ``n_neighbours``) training trajectories :math:`T'` that ended strictly before
    :math:`T` started and whose POI sets pass the same Jaccard rule
    (:func:`~tgraph.graph.hypergraph.trajectory_links`), with :math:`e_{T'T} = [\Phi(t_T -
    t_{T'}), \psi(d(p_{T'}, p_T))]`; the query then attends over these :math:`h^{(L)}_T`
    (the paper's stacked inter-trajectory layers). Each training step then encodes every
    training trajectory, not only those its queries attend over.

    **What a query uses** (the ``query_time`` contract): its history only. "Now" is the time
    of its last history event; ``Queries.timestamp`` is read only for a query with an empty
    history (then there is no trajectory: :math:`z_Q` comes from the user embedding and the
    slot of ``timestamp``, which under ``query_time: hidden`` is the protocol's cut). Training
    trajectories that contain a training target end after it, so they are never neighbours of
    its query.

    **Departures from the paper** (said where the numbers are reported): one intra- and one
    inter-trajectory layer, and training trajectories not linked to each other, unless
    ``n_traj_layers`` is set (those links follow the ``jaccard`` rule); neighbours are the
    top ones by Jaccard (and the latest own ones) instead of sampled anew in every batch;
    edge times and distances are between trajectory ends, not means and centroids; POI, user
    and time features are summed rather than concatenated; no auxiliary category / region
    features.
    **Streaming** (``update``, ``eval.mode: streaming``): new events join the hypergraph (a
    user's new check-ins extend or start trajectories by the same gap rule), so a later query
    also attends over trajectories that ended in the validation and test periods, as in
    STHGCN's hypergraph of every period (time-filtered); the weights stay as trained. New
    POIs get the mean of their co-visited POIs' rows (embedding and decoder) and their own
    coordinates, new users the mean user row.
    Ablations: ``n_neighbours: 0`` (no inter-trajectory hyperedges), ``use_time_encoding``,
    ``use_distance`` (off without coordinates). Dropout only in training.
    """

    class Config(ModelConfig):
        loss: Loss = "ce"
        #: history length; the current trajectory is at most this long
        max_len: PositiveInt = 20
        embedding_dim: PositiveInt = 128
        n_heads: PositiveInt = 4
        dropout: Dropout = 0.1
        time_dim: PositiveInt = 16
        #: RBF distance features (at least 2)
        dist_dim: Annotated[int, Field(ge=2)] = 16
        #: trajectories are cut where two check-ins are more than this apart
        gap_hours: PositiveFloat = 24.0
        #: inter-trajectory hyperedges need a Jaccard similarity above this
        jaccard_threshold: Annotated[float, Field(ge=0, lt=1)] = 0.005
        #: most similar earlier trajectories per query (0: no inter-trajectory hyperedges
        #: under the ``jaccard`` rule; no other users' under ``sthgcn``)
        n_neighbours: NonNegativeInt = 100
        #: which earlier trajectories a query attends over (class docstring)
        neighbour_rule: Literal["jaccard", "sthgcn"] = "jaccard"
        #: ``sthgcn`` rule: the query user's latest earlier trajectories it attends over
        n_own_neighbours: PositiveInt = 50
        init_std: InitStd = 0.1
        use_time_encoding: bool = True
        use_distance: bool = True
        #: trajectory -> trajectory layers over the training hypergraph before a query
        #: attends (class docstring; 0: each trajectory's own encoding)
        n_traj_layers: NonNegativeInt = 0
        #: what a trajectory hyperedge attends from (class docstring): its ``last`` check-in
        #: (kept by the residual), or one learned ``global`` vector for every hyperedge
        trajectory_query: Literal["last", "global"] = "last"

        @model_serializer(mode="wrap")
        def _without_unset_options(self, handler: SerializerFunctionWrapHandler) -> dict:
            """No ``n_traj_layers`` key while 0, no ``trajectory_query`` key while ``last``, no
            neighbour-rule keys under the ``jaccard`` rule: fingerprints of runs from before
            those options existed stay the same."""
            data = handler(self)
            if data.get("n_traj_layers") == 0:
                del data["n_traj_layers"]
            if data.get("trajectory_query") == "last":
                del data["trajectory_query"]
            if data.get("neighbour_rule") == "jaccard":
                del data["neighbour_rule"]
                data.pop("n_own_neighbours", None)
            return data

        @model_validator(mode="after")
        def _heads_divide_dim(self) -> STHGCN.Config:
            check_heads(self.embedding_dim, self.n_heads, "n_heads")
            if self.n_traj_layers and not self.n_neighbours:
                raise ValueError(
                    "n_traj_layers links trajectories through their n_neighbours most similar "
                    "earlier ones, and n_neighbours is 0 (fix: set n_neighbours > 0, or "
                    "n_traj_layers: 0)"
                )
            return self

    config: Config
    supports_update = True
    #: buffers: each POI's (lat, lon) and whether it is known (padding row last)
    item_latlon: Tensor
    item_known: Tensor

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        self.require_history(cfg.max_len)
        dim = cfg.embedding_dim
        self.poi_emb = nn.Embedding(self.n_items + 1, dim, padding_idx=self.n_items)
        self.user_emb = nn.Embedding(self.n_users, dim)
        self.slot_emb = nn.Embedding(168, dim)
        for table in (self.poi_emb, self.user_emb, self.slot_emb):
            nn.init.normal_(table.weight, std=cfg.init_std)
        with torch.no_grad():
            self.poi_emb.weight[self.n_items].zero_()
        self.time_enc = TimeEncoding(cfg.time_dim)
        self.dist_enc = DistanceEncoding(cfg.dist_dim)
        self.use_time = cfg.use_time_encoding
        self.use_distance = cfg.use_distance and has_coordinates(split.train)
        coords = np.stack(item_coordinates(split.train), 1) if self.use_distance else None
        latlon, known = positions(coords, self.n_items + 1)  # the padding row unknown
        self.register_buffer("item_latlon", latlon)
        self.register_buffer("item_known", known)
        edge_dim = cfg.time_dim + cfg.dist_dim
        self.conv_intra = HypergraphTransformerConv(dim, edge_dim, cfg.n_heads, cfg.dropout)
        self.relations = cfg.neighbour_rule == "sthgcn"
        inter_dim = edge_dim + (RELATION_DIM if self.relations else 0)
        self.conv_inter = HypergraphTransformerConv(dim, inter_dim, cfg.n_heads, cfg.dropout)
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.global_query = (
            nn.Parameter(torch.randn(dim) * cfg.init_std)
            if cfg.trajectory_query == "global"
            else None
        )
        self.decoder = nn.Linear(dim, self.n_items)
        self.conv_traj = nn.ModuleList(
            HypergraphTransformerConv(dim, edge_dim, cfg.n_heads, cfg.dropout)
            for _ in range(cfg.n_traj_layers)
        )
        self.observe(split.train)

    # ------------------------------------------------------------------ the hypergraph
    def observe(self, interactions: Interactions) -> None:
        """Rebuild the hypergraph from ``interactions`` (the refit's train + valid)."""
        self._events = interactions
        hyper = checkin_hypergraph(interactions, self.config.gap_hours, self.n_items)
        device = self.item_latlon.device
        self.register_graph("hypergraph", hyper.graph.to(device))
        self.register_buffer("incidence", hyper.incidence.to(device), persistent=False)
        self.register_buffer("traj_size", hyper.size.to(device), persistent=False)
        # each trajectory's check-ins, contiguous (CSR): members[ptr[T] : ptr[T + 1]]
        _, traj = hyper.graph.edges(etype=CHECKIN_IN)  # edge id == check-in id
        counts = torch.bincount(traj, minlength=hyper.n_trajectories)
        ptr = torch.zeros(hyper.n_trajectories + 1, dtype=torch.long)
        ptr[1:] = counts.cumsum(0)
        self.register_buffer("traj_members", traj.argsort(stable=True).to(device), persistent=False)
        self.register_buffer("traj_ptr", ptr.to(device), persistent=False)
        # the distance encodings of the check-in -> trajectory edges depend on data only
        if self.use_distance:
            checkin, traj_data = (
                hyper.graph.nodes["checkin"].data,
                hyper.graph.nodes["trajectory"].data,
            )
            with torch.no_grad():
                dist = self._distance(checkin["item"], traj_data["last_item"][traj])
            self.register_buffer("checkin_dist", dist.to(device), persistent=False)
        if self.config.n_traj_layers:
            self._link_trajectories(hyper)
        #: per query (its POI set, "now", and its user under the sthgcn rule): its
        #: neighbours' ids and Jaccard similarities (see neighbours)
        self._neighbour_cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self._eval_cache = None

    def fold(self, new: NewEvents) -> None:
        """Grow the catalogues for ``new``'s users and POIs (class docstring), then rebuild
        the hypergraph from every event seen so far plus ``new``'s."""
        grow_items_by_co_visits(self.poi_emb, new)
        users = cold_start_rows(self.user_emb.weight, [], [], new.n_users - new.old_users)
        grow_embedding(self.user_emb, [(new.old_users, users)])
        if new.n_items > new.old_items:
            self._grow_decoder(new)
            self._grow_coordinates(new)
        columns = [c for c in self._events.events.columns if c in new.events.columns]
        events = pd.concat([self._events.events[columns], new.events[columns]], ignore_index=True)
        seen = new.interactions.with_events(events.sort_values("timestamp", kind="stable"))
        self.n_users, self.n_items = new.n_users, new.n_items  # update sets them too
        self.observe(seen)

    def _grow_decoder(self, new: NewEvents) -> None:
        """Decoder rows (weight and bias) of ``new``'s POIs: their co-visited POIs' mean."""
        n_new = new.n_items - new.old_items
        with torch.no_grad():
            old = self.decoder
            table = torch.cat([old.weight, old.bias.unsqueeze(1)], 1)
            rows = cold_start_rows(table, *co_visits(new), n_new)
            self.decoder = nn.Linear(old.in_features, old.out_features + n_new).to(table.device)
            self.decoder.weight.copy_(torch.cat([old.weight, rows[:, :-1]]))
            self.decoder.bias.copy_(torch.cat([old.bias, rows[:, -1]]))

    def _grow_coordinates(self, new: NewEvents) -> None:
        """Coordinates of ``new``'s POIs (unknown without any), before the padding row."""
        coords = None
        if self.use_distance:
            try:
                coords = np.stack(item_coordinates(new.interactions), 1)
                coords = coords[new.old_items : new.n_items]
            except DataError:  # events and items without coordinates: unknown positions
                pass
        device = self.item_latlon.device
        grown_latlon, grown_known = (
            t.to(device) for t in positions(coords, new.n_items - new.old_items)
        )
        pad = new.old_items
        self.item_latlon = torch.cat([self.item_latlon[:pad], grown_latlon, self.item_latlon[pad:]])
        self.item_known = torch.cat([self.item_known[:pad], grown_known, self.item_known[pad:]])

    def _link_trajectories(self, hyper: CheckinHypergraph) -> None:
        """The trajectory -> later trajectory graph of ``n_traj_layers`` and the data parts
        of its edges (time gaps between the ends, last POIs, distance encodings)."""
        cfg = self.config
        earlier, later, _ = trajectory_links(hyper, cfg.jaccard_threshold, cfg.n_neighbours)
        n_traj = hyper.n_trajectories
        links = dgl.heterograph(
            {TRAJ_TO_LATER: (earlier, later)},
            num_nodes_dict={"trajectory": n_traj, "later": n_traj},
        )
        device = self.item_latlon.device
        self.register_graph("traj_links", links.to(device))
        data = hyper.graph.nodes["trajectory"].data
        last, end = data["last_item"], data["end"]
        for name, value in (
            ("link_dt", end[later] - end[earlier]),
            ("link_src_item", last[earlier]),
            ("link_dst_item", last[later]),
        ):
            self.register_buffer(name, value.to(device), persistent=False)
        if self.use_distance:
            with torch.no_grad():
                dist = self._distance(last[earlier].to(device), last[later].to(device))
            self.register_buffer("link_dist", dist, persistent=False)

    def _km(self, a: Tensor, b: Tensor) -> Tensor:
        """Distances between items ``a`` and ``b`` (same shape); 0 where either is unknown."""
        pa, pb = self.item_latlon[a], self.item_latlon[b]
        km = haversine_km(pa[..., 0], pa[..., 1], pb[..., 0], pb[..., 1])
        return torch.where(self.item_known[a] & self.item_known[b], km, torch.zeros_like(km))

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        """``[E, dist_dim]``: the encodings of the distances between items ``a`` and ``b``."""
        return self.dist_enc(self._km(a, b))

    def _edge(self, dt: Tensor, a: Tensor, b: Tensor, dist: Tensor | None = None) -> Tensor:
        """Edge encodings ``[E, time_dim + dist_dim]`` of gaps ``dt`` (s) and the distances
        between items ``a`` and ``b`` (``dist``: their encodings, computed before); the
        disabled parts are zero."""
        cfg = self.config
        time = self.time_enc(dt.clamp(min=0))
        if not self.use_time:
            time = torch.zeros_like(time)
        if self.use_distance:
            dist = self._distance(a, b) if dist is None else dist
        else:
            dist = time.new_zeros(len(dt), cfg.dist_dim)
        return torch.cat([time, dist], 1)

    def _checkin(self, item: Tensor, user: Tensor, local: Tensor) -> Tensor:
        x = self.poi_emb(item) + self.user_emb(user)
        if self.use_time:
            x = x + self.slot_emb(hour_of_week(local))
        return self.input_dropout(x)

    def _start(self, last_item: Tensor, user: Tensor, local: Tensor) -> Tensor:
        """What trajectory hyperedges attend from (``trajectory_query``)."""
        if self.global_query is not None:
            return self.global_query.expand(len(last_item), -1)
        return self._checkin(last_item, user, local)

    def trajectory_embeddings(self, which: Tensor | None = None) -> Tensor:
        """``[n_trajectories, d]``: :math:`h_T` of every training trajectory (cached in
        eval mode), or ``[len(which), d]``: those of the trajectories ``which``.

        :math:`h_T` depends only on :math:`T`'s own check-ins, so a training step encodes
        only the trajectories its queries attend over (``which``): the same values as rows
        ``which`` of the full pass, at a fraction of its cost. In eval mode the full pass is
        computed once per evaluation and indexed. With ``n_traj_layers`` :math:`h_T` depends
        on earlier trajectories too, and every step runs the full pass."""
        if which is None or not self.training or self.config.n_traj_layers:
            full = self.eval_cached(self._trajectories)
            return full if which is None else full[which]
        return self._trajectories(which)

    def _trajectories(self, which: Tensor | None = None) -> Tensor:
        graph = self.hypergraph
        checkin, traj = graph.nodes["checkin"].data, graph.nodes["trajectory"].data
        if which is None:
            members, dst = graph.edges(etype=CHECKIN_IN)
            sub = graph
            which = torch.arange(graph.num_nodes("trajectory"), device=members.device)
        else:  # the check-ins of ``which``, in check-in order within each trajectory
            start, counts = self.traj_ptr[which], self.traj_ptr[which + 1] - self.traj_ptr[which]
            dst = torch.repeat_interleave(torch.arange(len(which), device=which.device), counts)
            offset = torch.arange(len(dst), device=which.device) - (counts.cumsum(0) - counts)[dst]
            members = self.traj_members[start[dst] + offset]
            sub = dgl.heterograph(
                {CHECKIN_IN: (torch.arange(len(members), device=which.device), dst)},
                num_nodes_dict={"checkin": len(members), "trajectory": len(which)},
                device=which.device,
            )
        item = checkin["item"][members]
        x = self._checkin(item, checkin["user"][members], checkin["local"][members])
        last_item = traj["last_item"][which]
        start_x = self._start(last_item, traj["user"][which], traj["local_end"][which])
        dt = graph.edges[CHECKIN_IN].data["dt"][members]
        dist = self.checkin_dist[members] if self.use_distance else None
        edge = self._edge(dt, item, last_item[dst], dist)
        h = self.conv_intra(sub, x, start_x, edge)
        if self.config.n_traj_layers:  # only in the full pass (trajectory_embeddings)
            links = self.traj_links
            dist = self.link_dist if self.use_distance else None
            edge = self._edge(self.link_dt, self.link_src_item, self.link_dst_item, dist)
            for conv in self.conv_traj:
                h = conv(links, h, h, edge)
        return h

    # ------------------------------------------------------------------ queries
    def _now(self, queries: Queries) -> tuple[Tensor, Tensor, Tensor]:
        """Each query's history presence, last history position and "now" (the time of its
        last history event; ``timestamp - 1`` without history)."""
        items, times, length = queries.hist_items, queries.hist_times, queries.hist_len
        if items is None or times is None or length is None:
            raise ValueError(f"{type(self).__name__} needs queries with history")
        if items.shape[1] > self.history_len:
            raise ValueError(
                f"history of length {items.shape[1]} exceeds max_len={self.history_len}"
            )
        rows = torch.arange(len(queries), device=items.device)
        last_pos = (length - 1).clamp(min=0)
        has = length > 0
        return has, last_pos, torch.where(has, times[rows, last_pos], queries.timestamp - 1)

    def query_embedding(self, queries: Queries) -> Tensor:
        """``[B, d]``: :math:`z_Q` of each query (class docstring)."""
        has, last_pos, now = self._now(queries)
        items, times, length = queries.hist_items, queries.hist_times, queries.hist_len
        assert items is not None and times is not None and length is not None  # _now checked
        device, batch = items.device, len(queries)
        rows = torch.arange(batch, device=device)
        local = times if queries.hist_offsets is None else times + queries.hist_offsets
        last_item = torch.where(has, items[rows, last_pos], torch.full_like(length, self.n_items))
        query_offset = (
            queries.offset if queries.offset is not None else torch.zeros_like(queries.timestamp)
        )
        now_local = torch.where(has, local[rows, last_pos], queries.timestamp + query_offset)
        start = self._checkin(last_item, queries.user, now_local)
        if self.global_query is not None:  # a query without history keeps its user and slot
            start = torch.where(has.unsqueeze(1), self.global_query.expand_as(start), start)
        # intra: the current trajectory's check-ins -> the query hyperedge
        member = current_trajectory(times, length, self.config.gap_hours)
        qrow, pos = member.nonzero(as_tuple=True)
        x = self._checkin(items[qrow, pos], queries.user[qrow], local[qrow, pos])
        graph = dgl.heterograph(
            {CHECKIN_IN: (torch.arange(len(qrow), device=device), qrow)},
            num_nodes_dict={"checkin": len(qrow), "trajectory": batch},
            device=device,
        )
        edge = self._edge(now[qrow] - times[qrow, pos], items[qrow, pos], last_item[qrow])
        h = self.conv_intra(graph, x, start, edge)
        if self.config.n_neighbours == 0 and not self.relations:
            return h
        # inter: earlier training trajectories -> the query hyperedge
        traj_data = self.hypergraph.nodes["trajectory"].data
        src, dst, jaccard, own = self.neighbours(queries)
        # only the trajectories attended over are encoded (renumbered 0 .. in ``which``)
        which, local_src = torch.unique(src, return_inverse=True)
        traj_h = self.trajectory_embeddings(which)
        inter = dgl.heterograph(
            {TRAJ_TO_QUERY: (local_src, dst)},
            num_nodes_dict={"trajectory": len(which), "query": batch},
            device=device,
        )
        edge = self._edge(
            now[dst] - traj_data["end"][src], traj_data["last_item"][src], last_item[dst]
        )
        if self.relations:
            edge = torch.cat([edge, jaccard.unsqueeze(1), own.float().unsqueeze(1)], 1)
        return self.conv_inter(inter, traj_h, h, edge)

    def neighbours(self, queries: Queries) -> Neighbours:
        """The inter-trajectory hyperedges of these queries under ``neighbour_rule`` (class
        docstring): the earlier training trajectories each query attends over.

        They depend only on the training hypergraph and on the query's current trajectory,
        "now" (and, under the ``sthgcn`` rule, its user), not on the parameters: each distinct
        query is searched once and remembered until the hypergraph is rebuilt
        (:meth:`observe`), so the training queries are searched in the first epoch and the
        validation queries at the first validation."""
        _, _, now = self._now(queries)
        items, times, length = queries.hist_items, queries.hist_times, queries.hist_len
        assert items is not None and times is not None and length is not None  # _now checked
        member = current_trajectory(times, length, self.config.gap_hours)
        device = items.device
        cache = self._neighbour_cache
        if len(cache) > NEIGHBOUR_CACHE_SIZE:
            cache.clear()
        masked = torch.where(member, items, torch.full_like(items, -1)).cpu().numpy()
        users = queries.user.cpu().numpy() if self.relations else np.zeros(len(queries), int)
        keys = [
            row.tobytes() + t.tobytes() + u.tobytes()
            for row, t, u in zip(masked, now.cpu().numpy(), users)
        ]
        missing: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if key not in cache:
                missing.setdefault(key, index)
        if missing:
            rows = torch.tensor(list(missing.values()), dtype=torch.long, device=device)
            found, by, similar = self._search(
                items[rows], member[rows], now[rows], queries.user[rows]
            )
            bounds = np.searchsorted(by.cpu().numpy(), np.arange(len(rows) + 1))
            src, jaccard = found.cpu().numpy(), similar.cpu().numpy()
            for position, key in enumerate(missing):
                part = slice(bounds[position], bounds[position + 1])
                cache[key] = (src[part], jaccard[part])
        parts = [cache[key] for key in keys]
        counts = torch.tensor([len(part[0]) for part in parts], dtype=torch.long)
        query = torch.repeat_interleave(torch.arange(len(keys)), counts).to(device)
        src, jaccard = (
            torch.from_numpy(np.concatenate([part[i] for part in parts])).to(device)
            if parts
            else torch.zeros(0, device=device)
            for i in range(2)
        )
        src = src.long()
        owner = self.hypergraph.nodes["trajectory"].data["user"]
        return Neighbours(src, query, jaccard.float(), owner[src] == queries.user[query])

    def _search(
        self, items: Tensor, member: Tensor, now: Tensor, user: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The ``(trajectory, query, jaccard)`` edges of :meth:`neighbours` computed afresh, by
        query (POIs ``items`` where ``member``)."""
        cfg = self.config
        traj = self.hypergraph.nodes["trajectory"].data
        owner, end = traj["user"], traj["end"]
        exclude = (owner, user) if self.relations else None
        src, dst, jaccard = trajectory_neighbours(
            self.incidence,
            self.traj_size,
            end,
            items,
            member,
            now,
            cfg.jaccard_threshold,
            cfg.n_neighbours,
            exclude,
        )
        if self.relations:
            own_src, own_dst = own_trajectories(owner, end, user, now, cfg.n_own_neighbours)
            own_jaccard = pair_jaccard(
                self.incidence, self.traj_size, items, member, own_dst, own_src
            )
            # by query: the own trajectories first, then the others (stable)
            src, dst = torch.cat([own_src, src]), torch.cat([own_dst, dst])
            jaccard = torch.cat([own_jaccard, jaccard])
            order = dst.argsort(stable=True)
            src, dst, jaccard = src[order], dst[order], jaccard[order]
        return src, dst, jaccard

    # ------------------------------------------------------------------ scores
    def full_sort_predict(self, queries: Queries) -> Tensor:
        return self.decoder(self.query_embedding(queries))

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        z = self.query_embedding(queries)
        weight, bias = self.decoder.weight[items], self.decoder.bias[items]
        if items.dim() == 1:
            return (z * weight).sum(-1) + bias
        return torch.einsum("bd,bkd->bk", z, weight) + bias
