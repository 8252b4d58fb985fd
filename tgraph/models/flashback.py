"""Flashback (Yang et al., IJCAI 2020): an RNN whose output is a spatio-temporally weighted
average of its past hidden states."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from tgraph.data.interactions import Interactions
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.models.base import ModelConfig, Recommender
from tgraph.models.losses import Loss
from tgraph.models.registry import register

DAY_S = 86400.0
#: added to every weight (as the authors do) so that the normaliser is never zero
EPS = 1e-10


def flashback_weights(
    times: Tensor,
    lat: Tensor | None,
    lon: Tensor | None,
    length: Tensor,
    lambda_t: float,
    lambda_s: float,
) -> Tensor:
    r"""Normalised Flashback weights of the history positions, seen from the last one.

    With :math:`n` the last real position (``length - 1``; position 0 for an empty history),
    :math:`\Delta t_j = t_n - t_j` (seconds) and :math:`\Delta d_j = \lVert (lat, lon)_n -
    (lat, lon)_j \rVert_2` (degrees, as the authors' code),

    .. math::
        w_j = \frac{1 + \cos(2\pi \Delta t_j / 86400)}{2}\, e^{-\lambda_t \Delta t_j / 86400}
              \; e^{-\lambda_s \Delta d_j} + \epsilon, \qquad
        \alpha_j = \frac{w_j}{\sum_{k \le n} w_k} \quad (j \le n), \qquad \alpha_j = 0 \ (j > n).

    The cosine favours hidden states of the same time of day (a daily period), the
    exponentials favour recent and nearby ones. ``lat`` / ``lon`` ``None`` (items without
    coordinates) or NaN (an item without them) drop the spatial factor (:math:`\Delta d = 0`).

    Args:
        times: ``[B, L]`` UTC seconds of the history events.
        lat: ``[B, L]`` their latitudes, or ``None``.
        lon: ``[B, L]`` their longitudes, or ``None``.
        length: ``[B]`` real history lengths.

    Returns:
        ``[B, L]`` weights, each row summing to 1.
    """
    n_pos = times.shape[1]
    last = (length - 1).clamp(min=0).unsqueeze(1)  # [B, 1]
    times = times.to(torch.float64)  # UTC seconds need more than float32's 24 bits
    dt = (times.gather(1, last) - times).clamp(min=0)
    temporal = (torch.cos(dt * (2 * math.pi / DAY_S)) + 1) / 2 * torch.exp(-lambda_t * dt / DAY_S)
    weight = temporal.to(torch.float32)
    if lat is not None and lon is not None:
        dlat = lat.gather(1, last) - lat
        dlon = lon.gather(1, last) - lon
        dist = torch.nan_to_num(torch.sqrt(dlat * dlat + dlon * dlon), nan=0.0)
        weight = weight * torch.exp(-lambda_s * dist)
    keep = torch.arange(n_pos, device=times.device).unsqueeze(0) <= last
    weight = torch.where(keep, weight + EPS, torch.zeros_like(weight))
    return weight / weight.sum(1, keepdim=True)


@register("flashback")
class Flashback(Recommender):
    r"""Flashback: a plain RNN over the history's POI embeddings; the state that predicts the
    next POI is the average of all the RNN's hidden states over the history, weighted by
    how close each is to the present in time of day, recency and space
    (:func:`flashback_weights`), concatenated with a user embedding:

    .. math::
        h_p = \mathrm{RNN}(e_{i_p}, h_{p-1}), \quad h_0 \sim \mathcal{N}(0, H^{-2})\ \text{(fixed)},
        \qquad \tilde h = \sum_{j \le n} \alpha_j h_j, \qquad
        s(q, i) = W_i [\tilde h \,\|\, p_u] + b_i,

    one output row per POI (full ranking, trained with cross-entropy over all POIs).

    **What a query knows.** "Now" is the last history event (position :math:`n`): every
    :math:`\Delta t`, :math:`\Delta d` is measured from it, as in the authors' code (which
    weights the states at step :math:`i` from the input check-in :math:`i`, never from the
    target's time). The model never reads ``Queries.timestamp``, so it behaves the same under
    ``query_time: hidden`` and ``known``.

    **Differences from the authors' code** (facts from ``eXascaleInfolab/Flashback_code``):
    there each user's check-ins are cut into windows of 20, and the hidden state is carried
    from one window to the next while the averaging stays inside the window; the loss is
    taken at every position of the window. Here each query (a training event or a target)
    runs the RNN from :math:`h_0` over its last ``max_len`` (20) check-ins and is scored at
    the last one; every training event is one such query. Defaults are the repository's:
    RNN cell ``rnn`` (tanh), hidden size 10, :math:`\lambda_t = 0.1` (per day),
    :math:`\lambda_s = 100` (per degree: the Foursquare default; Gowalla's is 1000),
    embeddings drawn from :math:`\mathcal{N}(0, 1)` (PyTorch's default), no dropout.
    """

    class Config(ModelConfig):
        loss: Loss = "ce"
        #: check-ins per query (the authors' sequence length)
        max_len: PositiveInt = 20
        #: hidden size of the RNN, of the POI and of the user embeddings
        hidden_dim: PositiveInt = 10
        #: the recurrent cell
        rnn: Literal["rnn", "gru", "lstm"] = "rnn"
        #: temporal decay per day
        lambda_t: float = Field(default=0.1, ge=0)
        #: spatial decay per degree of (lat, lon) distance
        lambda_s: float = Field(default=100.0, ge=0)

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        self.require_history(cfg.max_len)
        dim = cfg.hidden_dim
        self.item_emb = nn.Embedding(self.n_items + 1, dim, padding_idx=self.n_items)
        self.user_emb = nn.Embedding(self.n_users, dim)
        cell = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cfg.rnn]
        self.rnn = cell(dim, dim, batch_first=True)
        self.out = nn.Linear(2 * dim, self.n_items)
        # the authors' fixed initial state: N(0, (1/H)^2), never trained
        self.register_buffer("h0", torch.randn(dim) / dim)

    def observe(self, interactions: Interactions) -> None:
        """Nothing is derived from the training events (histories come with the queries)."""

    def hidden_states(self, hist_items: Tensor) -> Tensor:
        """``[B, L]`` POI codes (padding ``n_items``) -> ``[B, L, H]`` RNN outputs from
        :math:`h_0` (causal, so padding after the last real position changes nothing)."""
        batch = hist_items.shape[0]
        h0 = self.h0.expand(1, batch, -1).contiguous()
        state: Tensor | tuple[Tensor, Tensor] = (h0, h0) if self.config.rnn == "lstm" else h0
        out, _ = self.rnn(self.item_emb(hist_items), state)
        return out

    def query_state(self, queries: Queries) -> Tensor:
        r"""``[B, 2H]``: :math:`[\tilde h \,\|\, p_u]` of each query."""
        items, times, length = queries.hist_items, queries.hist_times, queries.hist_len
        if items is None or times is None or length is None:
            raise ValueError("Flashback needs queries with history (hist_items, hist_times)")
        states = self.hidden_states(items)
        cfg = self.config
        alpha = flashback_weights(
            times, queries.hist_lat, queries.hist_lon, length, cfg.lambda_t, cfg.lambda_s
        )
        mixed = (alpha.unsqueeze(2) * states).sum(1)
        return torch.cat([mixed, self.user_emb(queries.user)], 1)

    def full_sort_predict(self, queries: Queries) -> Tensor:
        return self.out(self.query_state(queries))

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        state = self.query_state(queries)
        weight, bias = self.out.weight[items], self.out.bias[items]
        if items.dim() == 1:
            return (weight * state).sum(-1) + bias
        return torch.einsum("bkd,bd->bk", weight, state) + bias
