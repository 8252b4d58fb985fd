"""STHeteroRec ("sthrec"): the flagship next-POI model of tgraph.

A spatio-temporal heterograph encoder (users, POIs, regions; visits, transitions and
proximity) feeding a causal self-attention encoder of the query's recent check-ins, each
check-in described by its POI's graph embedding, the time gap and the distance to the
previous check-in and its time of day. Every ablation is a config flag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveInt, model_validator
from torch import Tensor, nn

from tgraph.data.preprocess import item_coordinates
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.data.transitions import Transitions
from tgraph.graph.append import GraphAppender
from tgraph.graph.sampling import NeighborSampling
from tgraph.graph.spec import ITEM, USER, GraphSpec
from tgraph.graph.training import has_coordinates, training_heterograph
from tgraph.models.base import (
    Batch,
    Dropout,
    InitStd,
    ModelConfig,
    Recommender,
    check_heads,
    scored_items,
)
from tgraph.models.losses import Loss, loss_from_scores
from tgraph.models.registry import register
from tgraph.models.revisit import Revisit
from tgraph.models.update import (
    NewEvents,
    cold_start_rows,
    fold_into_heterograph,
    grow_embedding,
)
from tgraph.nn.causal_transformer import CausalTransformer
from tgraph.nn.encodings import DistanceEncoding, TimeEncoding, haversine_km
from tgraph.nn.hetero_encoder import HeteroEncoder
from tgraph.nn.relation_conv import Norm

SECONDS_PER_DAY = 86400
#: the ``[n_items, n_items]`` table of distance penalties is kept in memory up to this many
#: POIs (400 MB); above it the penalties are computed per batch, one row per distinct last POI
MAX_DISTANCE_TABLE_ITEMS = 10_000

log = logging.getLogger(__name__)


@register("sthrec")
class STHeteroRec(Recommender):
    r"""Next-POI scores from a temporal heterograph and a causal sequence encoder.

    **Graph.** :class:`~tgraph.nn.hetero_encoder.HeteroEncoder` over the heterograph of
    ``split.train`` (:func:`~tgraph.graph.training.training_heterograph`: k-means regions
    fitted on training POIs) gives :math:`z_i` (POIs) and :math:`z_u` (users); region and
    other nodes pass messages only.

    **Sequence.** For the history :math:`(i_1, t_1), \dots, (i_n, t_n)` (oldest first):

    .. math::
        x_p = z_{i_p} + P_p + W_t\,\Phi(t_p - t_{p-1}) + S_{\mathrm{slot}(t_p)}
              + W_d\,\psi(d(i_{p-1}, i_p)),

    (gap and distance 0 at :math:`p = 1`), :math:`\Phi` =
    :class:`~tgraph.nn.encodings.TimeEncoding`, :math:`\psi` =
    :class:`~tgraph.nn.encodings.DistanceEncoding` (RBF), :math:`S` a time-of-day slot
    embedding of the local time (each event's own UTC offset, ``Queries.hist_offsets``; the
    query's is ``Queries.offset``; UTC when the events carry no ``tz_offset``), then a causal
    pre-LayerNorm Transformer; :math:`s` = its output at the last real position (a learned
    constant for an empty history).

    **Scores.** With the query time :math:`t_q` (the time of the check-in to predict: only
    with ``use_query_time``, which needs a split with ``query_time: known``, the
    "time-aware next-POI" task) and :math:`i_n` the last POI,

    .. math::
        q = s + z_u + S'_{\mathrm{slot}(t_q)} + W'_t\,\Phi(t_q - t_n), \qquad
        \mathrm{score}(q, i) = \langle q, z_i \rangle
            - \mathrm{softplus}(\beta) \log\big(1 + d(i_n, i) / 0.1\,\mathrm{km}\big)
            + \sum_{p=1}^{n} r_{n-p}\,[i_p = i]
            + a \log\big(1 + C_{i_n i}\big).

    The **repeat** term gives each POI of the history a learned weight :math:`r_k` per
    position :math:`k` from the end (next-POI targets are often revisits; a POI seen twice
    gets both weights); it reads the last ``repeat_len`` events (default ``max_len``; the
    sum above then starts at :math:`p = n - \text{repeat\_len} + 1`), the sequence encoder
    the last ``max_len``. The **transition prior** reads :math:`C_{ij}`, the number of times
    ``split.train`` has a user go from POI :math:`i` straight to :math:`j` (consecutive
    events of a user, no gap limit); in training, a sample's own transition (its last
    history POI to its target) is left out of :math:`C` (leave-one-out), so that :math:`a`
    is fitted on counts that do not contain the answer, as in validation and test.
    Distances are read from an ``[n_items, n_items]`` table computed once (up to
    :data:`MAX_DISTANCE_TABLE_ITEMS` POIs; the same values as computing them per batch);
    above it, each batch computes one row per distinct last POI (the same values up to float
    rounding).

    **Blend with the revisit rule** (``revisit``: the settings of
    :class:`~tgraph.models.revisit.Revisit`): the scores above plus :math:`w` times the rule's,
    :math:`w` chosen among ``revisit_weights`` on validation after the epoch is selected
    (:meth:`calibrate`; training runs with :math:`w = 0`). The rule reads its own history
    length (queries carry the longest any part reads).

    **Ablations** (config flags): ``graph.locations: false`` (no region nodes: no ``visits``,
    ``in_location``, ``near``), ``graph.transitions: false`` (no ``transition`` edges),
    ``use_user_relation`` (no user nodes in the graph; :math:`z_u` is then a free ID
    embedding), ``use_time_encoding`` (no :math:`W_t \Phi` and :math:`S` terms in :math:`x_p`),
    ``use_distance`` (no :math:`\psi` and no distance score; off without coordinates),
    ``use_query_time`` (off by default: no :math:`S'` and :math:`W'_t` terms; the query
    then reads no timestamp of its own, only its history's), ``use_repeat`` (no :math:`r`
    term), ``use_transition_prior`` (no :math:`C` term). Trained with full
    cross-entropy by default; dropout only in training, so eval mode is deterministic.

    **Sampled training** (``train.sampling: {fanouts: [k_1, ..., k_L]}``, one fanout per
    graph layer; full-graph propagation without it). Each training batch propagates the
    graph encoder over the blocks sampled around the nodes it reads: its users, its history
    POIs and the scored POIs (every POI for the default ``ce`` loss), ``k_l`` in-edges per
    node and relation, the means over the sampled neighbours
    (:meth:`~tgraph.nn.hetero_encoder.HeteroEncoder.sampled_forward`, built from the training
    graph only); the sequence encoder and the other terms are unchanged. Evaluation
    propagates the whole graph layer by layer in chunks
    (:meth:`~tgraph.nn.hetero_encoder.HeteroEncoder.layerwise`). With full fanout (``-1``)
    and no graph dropout a sampled step equals the full-graph one to float rounding.

    **Update.** :meth:`update` appends the new events' edges to the heterograph
    (:class:`~tgraph.graph.append.GraphAppender`; the timed relations and their norms equal a
    rebuild on all events); histories come with the queries. A new user's graph row is the
    mean of the rows of the POIs of its new events (the mean of all user rows without one);
    with ``use_user_relation: false`` its ID embedding is the mean of all user rows. New POIs
    are refused (NotImplementedError): their region and proximity edges need a rebuild.
    The new events' transitions (from each user's latest earlier event) are added to
    :math:`C`.
    """

    supports_update = True
    supports_sampling = True

    class Config(ModelConfig):
        loss: Loss = "ce"
        #: history length
        max_len: PositiveInt = 20
        embedding_dim: PositiveInt = 64
        # the graph encoder
        #: what the heterograph contains (regions, ``near`` links, transitions, ...)
        graph: GraphSpec = Field(default_factory=GraphSpec)
        n_layers: NonNegativeInt = 2
        norm: Norm = "right"
        graph_dropout: Dropout = 0.0
        #: k-means regions fitted on training POIs
        n_regions: PositiveInt = 100
        #: of the k-means regions
        seed: NonNegativeInt = 0
        # the sequence encoder
        n_attn_layers: PositiveInt = 1
        n_heads: PositiveInt = 2
        ff_dim: PositiveInt = 128
        dropout: Dropout = 0.2
        # the encodings
        time_dim: PositiveInt = 16
        #: RBF distance features (at least 2)
        dist_dim: Annotated[int, Field(ge=2)] = 16
        #: slots of the local day
        time_slots: Annotated[int, Field(ge=1, le=86400)] = 24
        init_std: InitStd = 0.1
        # ablations
        use_user_relation: bool = True
        use_time_encoding: bool = True
        use_distance: bool = True
        #: read the time of the check-in to predict (the "time-aware next-POI" task; refused
        #: when the split hides it, ``query_time: hidden``)
        use_query_time: bool = False
        #: the repeat term over the history's POIs
        use_repeat: bool = True
        #: history events the repeat term reads (unset: ``max_len``, the sequence encoder's);
        #: queries then carry the longer of the two
        repeat_len: PositiveInt | None = None
        #: blend in the non-learned revisit rule (:class:`~tgraph.models.revisit.Revisit`,
        #: these settings; unset: no blend), its weight chosen on validation after training
        revisit: Revisit.Config | None = None
        #: the blend weights tried on validation (0 included: the learned scores alone)
        revisit_weights: Annotated[
            tuple[NonNegativeFloat, ...], Field(strict=False, min_length=1)
        ] = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0)
        #: the first-order transition prior from ``split.train``'s transition counts
        use_transition_prior: bool = True

        @model_validator(mode="after")
        def _heads_divide_dim(self) -> STHeteroRec.Config:
            check_heads(self.embedding_dim, self.n_heads, "n_heads")
            return self

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        self.repeat_len = cfg.max_len if cfg.repeat_len is None else cfg.repeat_len
        self.revisit_rule = None if cfg.revisit is None else Revisit(split, cfg.revisit)
        if self.revisit_rule is not None:  # (so that runs without the blend keep their state)
            self.register_buffer("revisit_weight", torch.zeros(()))
        self.require_history(
            max(
                cfg.max_len,
                self.repeat_len if cfg.use_repeat else 0,
                0 if cfg.revisit is None else cfg.revisit.max_len,
            )
        )
        if cfg.use_query_time:
            self.require_query_time("use_query_time")
        dim = cfg.embedding_dim
        train = split.train
        drop = () if cfg.use_user_relation else (USER,)
        hetero = training_heterograph(train, cfg.graph, cfg.n_regions, cfg.seed, drop_ntypes=drop)
        self.graph_meta = hetero.meta
        self.register_graph("graph", hetero.graph)
        self._appender = GraphAppender.from_train(train, cfg.graph)
        self.encoder = HeteroEncoder(
            hetero.graph,
            dim,
            cfg.n_layers,
            [nt for nt in (USER, ITEM) if nt in hetero.graph.ntypes],
            cfg.norm,
            cfg.graph_dropout,
            cfg.init_std,
        )
        self.user_emb = None if cfg.use_user_relation else nn.Embedding(self.n_users, dim)
        if self.user_emb is not None:
            nn.init.normal_(self.user_emb.weight, std=cfg.init_std)
        # sequence encoder
        self.pos_emb = nn.Embedding(cfg.max_len, dim)
        nn.init.normal_(self.pos_emb.weight, std=cfg.init_std)
        self.empty = nn.Parameter(torch.zeros(dim))
        self.use_time = cfg.use_time_encoding
        self.use_query_time = cfg.use_query_time
        if self.use_time or self.use_query_time:
            self.time_enc = TimeEncoding(cfg.time_dim)
            self.slots = cfg.time_slots
        if self.use_time:
            self.time_proj = nn.Linear(cfg.time_dim, dim)
            self.slot_emb = nn.Embedding(self.slots, dim)
        if self.use_query_time:
            self.query_time_proj = nn.Linear(cfg.time_dim, dim)
            self.query_slot_emb = nn.Embedding(self.slots, dim)
        self.use_distance = cfg.use_distance and has_coordinates(train)
        if self.use_distance:
            lat, lon = item_coordinates(train)
            latlon = np.stack([lat, lon], 1)
            known = np.isfinite(latlon).all(1)
            latlon = np.nan_to_num(np.concatenate([latlon, np.zeros((1, 2))]), nan=0.0)
            self.register_buffer("item_latlon", torch.tensor(latlon, dtype=torch.float32))
            self.register_buffer("item_known", torch.tensor(np.append(known, False)))
            self.dist_enc = DistanceEncoding(cfg.dist_dim)
            self.dist_proj = nn.Linear(cfg.dist_dim, dim)
            self.dist_weight = nn.Parameter(torch.zeros(()))
            if self.n_items <= MAX_DISTANCE_TABLE_ITEMS:
                self.register_buffer("log_km", self._log_km_table(), persistent=False)
        self.repeat_weight = nn.Parameter(torch.zeros(self.repeat_len)) if cfg.use_repeat else None
        self.transition_weight = nn.Parameter(torch.zeros(())) if cfg.use_transition_prior else None
        if cfg.use_transition_prior:
            events = train.events
            self._tails = Transitions()
            self._counts = sp.csr_matrix((self.n_items + 1, self.n_items), dtype=np.float32)
            self._add_transitions(
                *(events[c].to_numpy(np.int64) for c in ("user", "item", "timestamp"))
            )
        self.seq_encoder = CausalTransformer(
            dim, cfg.n_heads, cfg.ff_dim, cfg.dropout, cfg.n_attn_layers
        )
        self.input_dropout = nn.Dropout(cfg.dropout)

    # ------------------------------------------------------------------ graph
    def fold(self, new: NewEvents) -> None:
        graph = self._graphs["graph"]  # as of the last flush; reading self.graph flushes
        fold_into_heterograph(graph, self._appender, self.encoder.embedding, new)
        self.defer_graph("graph", lambda: self._appender.flush(graph))
        if self.user_emb is not None:
            rows = cold_start_rows(self.user_emb.weight, [], [], new.n_users - new.old_users)
            grow_embedding(self.user_emb, [(new.old_users, rows)])
        if self.transition_weight is not None:
            self._add_transitions(new.user, new.item, new.timestamp)
        if self.revisit_rule is not None:
            self.revisit_rule.fold(new)
            self.revisit_rule.n_users, self.revisit_rule.n_items = new.n_users, new.n_items

    def _add_transitions(self, user: np.ndarray, item: np.ndarray, time: np.ndarray) -> None:
        """Add the transitions of the events to the counts :math:`C`, each user's first event
        continuing from its latest folded one (:class:`~tgraph.data.transitions.Transitions`;
        row ``n_items``, the padding item of an empty history, stays zero)."""
        prev, nxt, *_ = self._tails.steps(user, item, time)
        ones = np.ones(len(prev), dtype=np.float32)
        shape = self._counts.shape
        self._counts = (self._counts + sp.csr_matrix((ones, (prev, nxt)), shape=shape)).tocsr()

    def propagate(self) -> dict[str, Tensor]:
        """Graph embeddings of the users and POIs (cached in eval mode; layer by layer in
        chunks in eval mode when training is sampled)."""
        if self.sampling is not None and not self.training:
            chunk = self.sampling.inference_chunk
            return self.eval_cached(lambda: self.encoder.layerwise(self.graph, chunk))
        return self.eval_cached(lambda: self.encoder(self.graph))

    def check_sampling(self, sampling: NeighborSampling) -> None:
        self.encoder.check_sampling(sampling)

    def sampled_propagate(self, queries: Queries, items: Tensor | None) -> dict[str, Tensor]:
        """:meth:`propagate`'s tables for a training batch from its sampled blocks
        (``train.sampling``): the rows it reads (the queries' users, their history POIs and
        the scored ``items``, ``None``: every POI) come from the blocks around those nodes,
        the other rows are zero (and read by nothing)."""
        queries = queries.tail(self.config.max_len)  # the POIs the sequence encoder reads
        assert self.sampling is not None and queries.hist_items is not None
        every = torch.arange(self.n_items, device=queries.user.device)
        scored = every if items is None else items.flatten()
        hist = queries.hist_items[queries.hist_mask]
        nodes = {ITEM: torch.unique(torch.cat([hist, scored]))}
        if USER in self.encoder.outputs:
            nodes[USER] = torch.unique(queries.user)
        rows = self.encoder.sampled_forward(self.graph, self.sampling, nodes)
        return {
            nt: x.new_zeros(self.graph.num_nodes(nt), x.shape[1]).index_put((nodes[nt],), x)
            for nt, x in rows.items()
        }

    # ------------------------------------------------------------------ sequence
    def time_slots(self, queries: Queries) -> tuple[Tensor, Tensor]:
        """Time-of-day slots (``0 .. time_slots - 1``) of the local times of the history
        events (``[B, L]``) and of the queries (``[B]``): each time plus its own UTC offset
        (0 where the queries carry none), so that DST changes nothing."""
        if queries.hist_times is None:
            raise ValueError(f"{type(self).__name__} needs queries with history")
        hist = queries.hist_times
        if queries.hist_offsets is not None:
            hist = hist + queries.hist_offsets
        query = queries.timestamp if queries.offset is None else queries.timestamp + queries.offset
        return self._slot(hist), self._slot(query)

    def _slot(self, local: Tensor) -> Tensor:
        second = torch.remainder(local, SECONDS_PER_DAY)
        return second * self.slots // SECONDS_PER_DAY

    def _pair_km(self, a: Tensor, b: Tensor) -> Tensor:
        """Distances between items ``a`` and ``b`` (same shape); 0 where either is unknown."""
        pa, pb = self.item_latlon[a], self.item_latlon[b]
        km = haversine_km(pa[..., 0], pa[..., 1], pb[..., 0], pb[..., 1])
        return torch.where(self.item_known[a] & self.item_known[b], km, torch.zeros_like(km))

    def _log_km_table(self) -> Tensor:
        """``[n_items + 1, n_items]`` distance penalties :math:`\\log(1 + d / 0.1)` from every
        POI (and the padding item, row of zeros) to every POI."""
        items = torch.arange(self.n_items)
        rows = [
            torch.log1p(self._pair_km(a.unsqueeze(1).expand(-1, self.n_items), items) / 0.1)
            for a in torch.arange(self.n_items + 1).split(512)
        ]
        return torch.cat(rows)

    def _log_km(self, last: Tensor, targets: Tensor | None) -> Tensor:
        """:math:`\\log(1 + d(i_n, i) / 0.1)` for the ``[B]`` last items and ``targets``
        (``None``: every POI, ``[B, n_items]``; else ``[B]`` or ``[B, K]``)."""
        if hasattr(self, "log_km"):
            rows = self.log_km[last]
            if targets is None:
                return rows
            if targets.dim() == 1:
                return rows.gather(1, targets.unsqueeze(1)).squeeze(1)
            return rows.gather(1, targets)
        if targets is None:
            return self._log_km_rows(last)
        last_ = last.view(-1, *([1] * (targets.dim() - 1))).expand(targets.shape)
        return torch.log1p(self._pair_km(last_, targets) / 0.1)

    def _log_km_rows(self, last: Tensor) -> Tensor:
        """``[B, n_items]`` penalties from each of the ``[B]`` last items to every POI, without
        the table: one row per distinct last item, the haversine of its coordinates broadcast
        against every POI's (no ``[B, n_items]`` gathers of coordinates); the values of
        :meth:`_pair_km` up to float rounding."""
        distinct, inverse = torch.unique(last, return_inverse=True)
        a, b = self.item_latlon[distinct].unsqueeze(1), self.item_latlon[:-1]
        km = haversine_km(a[..., 0], a[..., 1], b[:, 0], b[:, 1])
        known = self.item_known[distinct].unsqueeze(1) & self.item_known[:-1]
        rows = torch.log1p(torch.where(known, km, torch.zeros_like(km)) / 0.1)
        return rows[inverse]

    def _transition_entries(
        self, last: Tensor, exclude: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The non-zero entries ``(row, item, log(1 + C))`` of the ``[B, n_items]`` rows
        :math:`\\log(1 + C_{i_n \\cdot})`; with ``exclude`` (``[B]`` training targets), each
        sample's own transition is taken out of its row."""
        coo = self._counts[last.cpu().numpy()].tocoo()
        row, col = (
            torch.from_numpy(x.astype(np.int64)).to(last.device) for x in (coo.row, coo.col)
        )
        count = torch.from_numpy(coo.data).to(last.device)
        if exclude is not None:
            count = torch.where(col == exclude[row], (count - 1).clamp(min=0), count)
        return row, col, torch.log1p(count)

    def _transition_rows(self, last: Tensor, exclude: Tensor | None) -> Tensor:
        """``[B, n_items]`` :math:`\\log(1 + C_{i_n \\cdot})` (see :meth:`_transition_entries`)."""
        row, col, value = self._transition_entries(last, exclude)
        return value.new_zeros(len(last), self.n_items).index_put((row, col), value)

    def _repeat_entries(self, queries: Queries) -> tuple[Tensor, Tensor]:
        """``([B, L] items, [B, L] weights)``: history POI ``p`` gets :math:`r_{n-p}` (0 for
        padding, whose item is then 0)."""
        assert self.repeat_weight is not None
        queries = queries.tail(self.repeat_len)
        items, length, mask = queries.hist_items, queries.hist_len, queries.hist_mask
        assert items is not None and length is not None
        n = items.shape[1]
        back = length.unsqueeze(1) - 1 - torch.arange(n, device=items.device)  # 0 = last
        weight = self.repeat_weight[back.clamp(min=0)] * mask
        return torch.where(mask, items, torch.zeros_like(items)), weight

    def _repeat_scores(self, queries: Queries) -> Tensor:
        """``[B, n_items]`` :math:`\\sum_p r_{n-p} [i_p = i]`."""
        items, weight = self._repeat_entries(queries)
        return weight.new_zeros(len(items), self.n_items).scatter_add(1, items, weight)

    def query_embedding(self, queries: Queries, z: dict[str, Tensor]) -> Tensor:
        """``[B, d]`` query vectors :math:`q` (see the class docstring)."""
        if queries.hist_items is not None and queries.hist_items.shape[1] > self.history_len:
            raise ValueError(
                f"history of length {queries.hist_items.shape[1]} exceeds {self.history_len}"
            )
        queries = queries.tail(self.config.max_len)  # the sequence encoder's history
        items, times, length = queries.hist_items, queries.hist_times, queries.hist_len
        if items is None or times is None or length is None:
            raise ValueError(f"{type(self).__name__} needs queries with history")
        n = items.shape[1]
        mask = queries.hist_mask
        if self.use_time or self.use_query_time:
            hist_slot, query_slot = self.time_slots(queries)
        item_table = torch.cat([z[ITEM], z[ITEM].new_zeros(1, z[ITEM].shape[1])])
        positions = torch.arange(n, device=items.device)
        x = item_table[items] + self.pos_emb(positions)
        prev_items = torch.cat([items[:, :1], items[:, :-1]], 1)
        if self.use_time:
            prev_times = torch.cat([times[:, :1], times[:, :-1]], 1)
            gap = torch.where(mask, (times - prev_times).clamp(min=0), torch.zeros_like(times))
            x = x + self.time_proj(self.time_enc(gap)) + self.slot_emb(hist_slot)
        if self.use_distance:
            x = x + self.dist_proj(self.dist_enc(self._pair_km(prev_items, items)))
        x = self.input_dropout(x * mask.unsqueeze(-1))
        out = self.seq_encoder(x)
        rows = torch.arange(len(queries), device=x.device)
        seq = out[rows, (length - 1).clamp(min=0)]
        seq = torch.where((length > 0).unsqueeze(1), seq, self.empty.expand_as(seq))
        user = z[USER][queries.user] if self.user_emb is None else self.user_emb(queries.user)
        q = seq + user
        if self.use_query_time:
            last_time = times[rows, (length - 1).clamp(min=0)]
            gap = torch.where(
                length > 0, queries.timestamp - last_time, torch.zeros_like(last_time)
            )
            q = q + self.query_time_proj(self.time_enc(gap.clamp(min=0)))
            q = q + self.query_slot_emb(query_slot)
        return q

    # ------------------------------------------------------------------ scores
    def _scores(
        self,
        queries: Queries,
        items: Tensor | None,
        exclude: Tensor | None = None,
        z: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """Scores of ``items`` (``None``: every POI); ``z``: the graph embeddings
        (default: :meth:`propagate`)."""
        z = self.propagate() if z is None else z
        q = self.query_embedding(queries, z)
        if items is None:
            scores = q @ z[ITEM].T
        elif items.dim() == 1:
            scores = (q * z[ITEM][items]).sum(-1)
        else:
            scores = torch.einsum("bd,bkd->bk", q, z[ITEM][items])
        if self.use_distance:
            scores = scores - F.softplus(self.dist_weight) * self._log_km(queries.last_item, items)
        if self.revisit_rule is not None and float(self.revisit_weight) != 0.0:
            rule = self.revisit_rule.full_sort_predict(queries.tail(self.revisit_rule.history_len))
            scores = scores + self.revisit_weight * _pick(rule, items)
        if items is None:  # sparse additions to the full rows
            if self.repeat_weight is not None:
                scores = scores.scatter_add(1, *self._repeat_entries(queries))
            if self.transition_weight is not None:
                row, col, value = self._transition_entries(queries.last_item, exclude)
                scores = scores.index_put((row, col), self.transition_weight * value, True)
            return scores
        if self.repeat_weight is not None:
            scores = scores + _pick(self._repeat_scores(queries), items)
        if self.transition_weight is not None:
            rows = self._transition_rows(queries.last_item, exclude)
            scores = scores + self.transition_weight * _pick(rows, items)
        return scores

    def calculate_loss(self, batch: Batch) -> Tensor:
        """The base class's loss, each training sample's own transition left out of the
        transition prior (see the class docstring); with ``train.sampling`` the graph
        embeddings come from the batch's sampled blocks (:meth:`sampled_propagate`)."""
        items = scored_items(batch, self.config.loss)
        queries = batch.queries
        z = None if self.sampling is None else self.sampled_propagate(queries, items)
        scores = self._scores(queries, items, exclude=batch.pos_item, z=z)
        loss = loss_from_scores(self.config.loss, scores, batch.pos_item)
        return loss + self.regularization(batch)

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        return self._scores(queries, items)

    def calibrate(self, score: Callable[[], float]) -> bool:
        """With ``revisit``: the blend weight among ``revisit_weights`` that maximises
        ``score()`` (the validation metric), the first of equal ones; training never sees it
        (it is 0 until now)."""
        if self.revisit_rule is None:
            return False
        values = []
        for weight in self.config.revisit_weights:
            self.revisit_weight.fill_(weight)
            values.append(score())
        best = int(np.argmax(values))
        self.revisit_weight.fill_(self.config.revisit_weights[best])
        log.info(
            "revisit blend weight %g (validation %s)",
            self.config.revisit_weights[best],
            ", ".join(f"{w:g}: {v:.4f}" for w, v in zip(self.config.revisit_weights, values)),
        )
        return True

    def full_sort_predict(self, queries: Queries) -> Tensor:
        return self._scores(queries, None)


def _pick(rows: Tensor, items: Tensor | None) -> Tensor:
    """Columns ``items`` (``[B]`` or ``[B, K]``; ``None``: all) of ``[B, n_items]`` rows."""
    if items is None:
        return rows
    if items.dim() == 1:
        return rows.gather(1, items.unsqueeze(1)).squeeze(1)
    return rows.gather(1, items)
