"""GETNext (Yang, Liu & Zhao, SIGIR 2022): trajectory flow map enhanced Transformer.

Re-implemented from the paper and the hyper-parameters its repository documents
(``songyangme/GETNext``, ``param_parser.py``: POI and user embeddings 128, time embedding
32, GCN hidden [32, 64] with dropout 0.3, Transformer 2 layers x 2 heads, feed-forward 1024,
dropout 0.3, attention-map hidden 128, time loss weight 10, lr 1e-3, weight decay 5e-4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, PositiveInt, model_validator
from torch import Tensor, nn

from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import item_coordinates
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.graph.training import has_coordinates
from tgraph.graph.trajectory_flow import random_walk_weights, trajectory_flow_graph
from tgraph.models.base import Batch, Dropout, ModelConfig, Recommender, scored_items
from tgraph.models.losses import Loss, loss_from_scores
from tgraph.models.registry import register
from tgraph.nn.causal_transformer import CausalTransformer
from tgraph.nn.time2vec import Time2Vec
from tgraph.nn.trajectory_flow_conv import TrajectoryFlowConv
from tgraph.nn.transition_attention import TransitionAttentionMap

SECONDS_PER_DAY = 86400


@register("getnext")
class GETNext(Recommender):
    r"""GETNext: POI embeddings from a GCN over the trajectory flow graph, a Transformer over
    the current trajectory, and the transition attention map added to the POI logits.

    **Graph** (:func:`~tgraph.graph.trajectory_flow.trajectory_flow_graph` of
    ``split.train``): POIs, directed transitions inside 24-hour trajectories with their
    counts. Node features :math:`X`: the training check-in count (``log1p``, standardised) and
    the latitude / longitude (standardised; 0 where unknown). GETNext also one-hot encodes the
    POI category: tgraph's items tables carry none for NYC, so there is no category feature,
    no category embedding and no category head here (``poi_id_dim > 0`` adds a learned
    per-POI feature vector instead; 0, the default, is the paper's model without categories).
    POI embeddings :math:`E = \mathrm{GCN}(X, \tilde L)` with
    :math:`\tilde L = (D + I)^{-1}(A + I)`
    (:class:`~tgraph.nn.trajectory_flow_conv.TrajectoryFlowConv` layers
    ``[F, 32, 64, poi_dim]``, LeakyReLU and dropout between them).

    **Sequence.** The query's current trajectory: the tail of its history with no gap over
    ``trajectory_gap_hours`` (the whole history when 0), at most ``max_len`` check-ins. Check-in
    :math:`k` (POI :math:`p_k`, local time of day :math:`\tau_k \in [0, 1)`) is

    .. math::
        x_k = \big[\mathrm{LeakyReLU}(W_f [E_{p_k}; u]) ;\ \mathrm{t2v}(\tau_k)\big]
              \sqrt{d} + \mathrm{PE}_k,

    :math:`u` the user's embedding, t2v = :class:`~tgraph.nn.time2vec.Time2Vec`, PE
    sinusoidal; then a causal Transformer (:class:`~tgraph.nn.causal_transformer.CausalTransformer`,
    pre-LayerNorm, where GETNext's is post-LayerNorm); :math:`h` = its output at the last
    check-in.

    **Scores** over all POIs, :math:`p_n` the last check-in's POI and :math:`\Phi` the
    :class:`~tgraph.nn.transition_attention.TransitionAttentionMap`:

    .. math::
        \mathrm{score}(q, \cdot) = W_{poi} h + b_{poi} + \Phi_{p_n, \cdot}.

    An empty history gives the output at position 0 of an all-padding sequence (plus the
    user embedding) and no :math:`\Phi` term.

    **What a query knows.** The model never reads ``Queries.timestamp`` or ``offset``: only
    the history (items, times, UTC offsets). GETNext's auxiliary time head predicts the next
    check-in's time of day; the time of the check-in to predict is not part of the query
    (``query_time: hidden``), so the head is trained, as in GETNext's sequence-to-sequence
    training, on the next-check-in times *inside* the trajectory (position :math:`k`
    predicts :math:`\tau_{k+1}`, :math:`k < n`), mean squared error weighted by
    ``time_loss_weight``. The prediction only shapes the representation (GETNext does not
    feed it into the POI score either), so scores are unchanged whatever the target's time.

    **Training loss**: ``loss`` (cross-entropy over all POIs by default, GETNext's) on the
    scores plus the time term. Dropout only in training, so eval mode is deterministic.
    """

    class Config(ModelConfig):
        loss: Loss = "ce"
        #: the longest trajectory tail read (= ``history_len``)
        max_len: PositiveInt = 20
        #: a gap over this many hours starts a new trajectory (0: the whole history)
        trajectory_gap_hours: NonNegativeFloat = 24.0
        poi_dim: PositiveInt = 128
        user_dim: PositiveInt = 128
        #: Time2Vec features of the time of day
        time_dim: Annotated[int, Field(ge=2)] = 32
        #: hidden sizes of the GCN layers before the ``poi_dim`` output layer
        gcn_hidden: Annotated[tuple[PositiveInt, ...], Field(strict=False)] = (32, 64)
        gcn_dropout: Dropout = 0.3
        #: learned per-POI input features of the GCN (0: only count and coordinates)
        poi_id_dim: Annotated[int, Field(ge=0)] = 0
        n_layers: PositiveInt = 2
        n_heads: PositiveInt = 2
        ff_dim: PositiveInt = 1024
        dropout: Dropout = 0.3
        #: hidden size of the transition attention map
        attn_hidden: PositiveInt = 128
        use_attention_map: bool = True
        time_loss_weight: NonNegativeFloat = 10.0

        @model_validator(mode="after")
        def _heads_divide_dim(self) -> GETNext.Config:
            dim = self.poi_dim + self.user_dim + self.time_dim
            if dim % self.n_heads:
                raise ValueError(
                    f"the Transformer's width poi_dim + user_dim + time_dim = {dim} is not "
                    f"divisible by n_heads={self.n_heads} (pick n_heads among its divisors)"
                )
            return self

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        self.require_history(cfg.max_len)
        self.gap = cfg.trajectory_gap_hours * 3600
        n_features = 3 + cfg.poi_id_dim
        self.poi_id = None
        if cfg.poi_id_dim:
            self.poi_id = nn.Embedding(self.n_items, cfg.poi_id_dim)
            nn.init.normal_(self.poi_id.weight, std=0.1)
        dims = [n_features, *cfg.gcn_hidden, cfg.poi_dim]
        self.gcn = nn.ModuleList(TrajectoryFlowConv(a, b) for a, b in zip(dims, dims[1:]))
        self.gcn_dropout = nn.Dropout(cfg.gcn_dropout)
        self.attention_map = (
            TransitionAttentionMap(n_features, cfg.attn_hidden) if cfg.use_attention_map else None
        )
        self.user_emb = nn.Embedding(self.n_users, cfg.user_dim)
        nn.init.normal_(self.user_emb.weight, std=0.1)
        fused = cfg.poi_dim + cfg.user_dim
        self.fuse = nn.Linear(fused, fused)
        self.time2vec = Time2Vec(cfg.time_dim)
        self.dim = fused + cfg.time_dim
        self.register_buffer(
            "positional", sinusoidal_positions(cfg.max_len, self.dim), persistent=False
        )
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.encoder = CausalTransformer(
            self.dim, cfg.n_heads, cfg.ff_dim, cfg.dropout, cfg.n_layers
        )
        self.poi_head = nn.Linear(self.dim, self.n_items)
        self.time_head = nn.Linear(self.dim, 1)
        self.observe(split.train)

    # ------------------------------------------------------------------ graph
    def observe(self, interactions: Interactions) -> None:
        """(Re)build the trajectory flow graph and the node features from ``interactions``."""
        device = self.device
        flow = trajectory_flow_graph(interactions, int(self.gap) or 2**62)
        message, weight = random_walk_weights(flow)
        self.register_graph("flow_graph", message.to(device))
        self.register_buffer("flow_weight", weight.to(device), persistent=False)
        # L~ in CSR (row i: the in-edges of i in the message graph)
        dst, src = message.edges()[1], message.edges()[0]
        order = torch.argsort(dst * message.num_nodes() + src)
        counts = torch.bincount(dst, minlength=message.num_nodes())
        indptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(counts, 0)])
        for name, value in (
            ("flow_indptr", indptr),
            ("flow_indices", src[order]),
            ("flow_values", weight[order]),
        ):
            self.register_buffer(name, value.to(device), persistent=False)
        self.register_buffer(
            "node_features", node_features(interactions, flow).to(device), persistent=False
        )
        self._eval_cache = None

    def features(self) -> Tensor:
        """``[N, F]`` the GCN's input: fixed features, then the learned ones (if any)."""
        if self.poi_id is None:
            return self.node_features
        return torch.cat([self.node_features, self.poi_id.weight], 1)

    def poi_embeddings(self) -> Tensor:
        """``[N, poi_dim]`` the GCN's POI embeddings."""
        h = self.features()
        for k, layer in enumerate(self.gcn):
            h = layer(self.flow_graph, h, self.flow_weight)
            if k < len(self.gcn) - 1:
                h = self.gcn_dropout(F.leaky_relu(h, 0.2))
        return h

    # ------------------------------------------------------------------ sequence
    def trajectory(self, queries: Queries) -> tuple[Tensor, Tensor, Tensor]:
        """The current trajectory of each query, left-aligned: ``(items [B, L'], local
        times of day [B, L'] in [0, 1), length [B])``, padding ``n_items`` / 0, ``L'`` the
        longest trajectory of the batch (at least 1)."""
        items, times, length = queries.hist_items, queries.hist_times, queries.hist_len
        if items is None or times is None or length is None:
            raise ValueError(f"{type(self).__name__} needs queries with history")
        n = items.shape[1]
        if n > self.history_len:
            raise ValueError(f"history of length {n} exceeds max_len={self.history_len}")
        local = times if queries.hist_offsets is None else times + queries.hist_offsets
        tau = torch.remainder(local, SECONDS_PER_DAY).float() / SECONDS_PER_DAY
        positions = torch.arange(n, device=items.device)
        start = torch.zeros_like(length)
        if self.gap and n > 1:
            step = times[:, 1:] - times[:, :-1]
            cut = (step > self.gap) & (positions[1:] < length.unsqueeze(1))
            start = (cut * positions[1:]).amax(1)
        length = length - start
        index = (start.unsqueeze(1) + positions).clamp(max=n - 1)
        real = positions < length.unsqueeze(1)
        pad = torch.full_like(items, self.n_items)
        items = torch.where(real, items.gather(1, index), pad)
        tau = torch.where(real, tau.gather(1, index), torch.zeros_like(tau))
        keep = max(int(length.max()) if len(length) else 1, 1)  # causal: trailing padding is inert
        return items[:, :keep], tau[:, :keep], length

    def encode(self, queries: Queries, poi: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Transformer outputs ``[B, L, d]`` over the current trajectories, with their items,
        times of day and lengths (:meth:`trajectory`). Only each query's real positions
        (``< max(length, 1)``) hold outputs; nothing reads the others (zeros, or outputs over
        padding).

        Under the causal mask the trailing padding is inert, so the queries are encoded in
        groups of similar length (lengths in ``(2^(k-1), 2^k]``), each cut to its longest: the
        same outputs at the real positions, without the work on the padding (most of a batch:
        most current trajectories are short, and one long one sets the batch's width)."""
        items, tau, length = self.trajectory(queries)
        table = torch.cat([poi, poi.new_zeros(1, poi.shape[1])])
        user = self.user_emb(queries.user)
        real = length.clamp(min=1)
        group = torch.ceil(torch.log2(real.double())).long()
        if len(group) == 0 or bool((group == group[0]).all()):
            return self._encode_rows(table, items, tau, user), items, tau, length
        out = poi.new_zeros(len(length), items.shape[1], self.dim)
        order = group.argsort(stable=True)
        for rows in torch.split(order, torch.bincount(group[order]).tolist()):
            if len(rows):
                cut = int(real[rows].max())
                out[rows, :cut] = self._encode_rows(
                    table, items[rows, :cut], tau[rows, :cut], user[rows]
                )
        return out, items, tau, length

    def _encode_rows(self, table: Tensor, items: Tensor, tau: Tensor, user: Tensor) -> Tensor:
        """The Transformer over check-ins ``items`` / ``tau`` ``[b, l]`` of users with
        embeddings ``user`` ``[b, user_dim]``; ``table``: the POI embeddings, padding row
        last."""
        user = user.unsqueeze(1).expand(-1, items.shape[1], -1)
        fused = F.leaky_relu(self.fuse(torch.cat([table[items], user], -1)), 0.2)
        x = torch.cat([fused, self.time2vec(tau)], -1) * math.sqrt(self.dim)
        return self.encoder(self.input_dropout(x + self.positional[: items.shape[1]]))

    # ------------------------------------------------------------------ scores
    def _forward(self, queries: Queries) -> tuple[Tensor, Tensor]:
        """``(scores [B, n_items], time loss)``."""
        poi = self.eval_cached(self.poi_embeddings)
        out, items, tau, length = self.encode(queries, poi)
        rows = torch.arange(len(queries), device=out.device)
        last = (length - 1).clamp(min=0)
        scores = self.poi_head(out[rows, last])
        if self.attention_map is not None:
            last_poi = items[rows, last].clamp(max=self.n_items - 1)
            phi = self.attention_map(
                self.features(), last_poi, self.flow_indptr, self.flow_indices, self.flow_values
            )
            scores = scores + phi * (length > 0).unsqueeze(1)
        time_loss = scores.new_zeros(())
        if self.training and self.config.time_loss_weight and items.shape[1] > 1:
            predicted = self.time_head(out[:, :-1]).squeeze(-1)
            follows = torch.arange(1, items.shape[1], device=out.device) < length.unsqueeze(1)
            if bool(follows.any()):
                time_loss = F.mse_loss(predicted[follows], tau[:, 1:][follows])
        return scores, time_loss

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        scores, _ = self._forward(queries)
        if items.dim() == 1:
            return scores.gather(1, items.unsqueeze(1)).squeeze(1)
        return scores.gather(1, items)

    def full_sort_predict(self, queries: Queries) -> Tensor:
        return self._forward(queries)[0]

    def calculate_loss(self, batch: Batch) -> Tensor:
        """``config.loss`` on the scores + ``time_loss_weight`` x the time of day MSE."""
        scores, time_loss = self._forward(batch.queries)
        items = scored_items(batch, self.config.loss)
        if items is not None:
            scores = scores.gather(1, items)
        loss = loss_from_scores(self.config.loss, scores, batch.pos_item)
        return loss + self.config.time_loss_weight * time_loss


def node_features(train: Interactions, flow: Any) -> Tensor:
    """``[N, 3]``: standardised ``log1p`` training check-in count, latitude and longitude
    (training POIs' mean and std; unknown coordinates, or none in the data, give 0)."""
    count = torch.log1p(flow.ndata["visits"]).numpy().astype(np.float64)
    columns = [count]
    if has_coordinates(train):
        lat, lon = item_coordinates(train)
        columns += [lat, lon]
    else:
        columns += [np.zeros_like(count), np.zeros_like(count)]
    seen = flow.ndata["visits"].numpy() > 0
    out = []
    for column in columns:
        known = np.isfinite(column) & seen
        mean = column[known].mean() if known.any() else 0.0
        std = column[known].std() if known.any() else 1.0
        z = (column - mean) / (std if std > 0 else 1.0)
        out.append(np.where(np.isfinite(z), z, 0.0))
    return torch.tensor(np.stack(out, 1), dtype=torch.float32)


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    r"""``[length, dim]`` Vaswani et al.'s encodings: :math:`\sin(k / 10000^{2i/d})` at even,
    :math:`\cos` at odd features."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table
