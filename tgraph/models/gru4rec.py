"""GRU4Rec (Hidasi et al., ICLR 2016), in the common full-softmax form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import PositiveInt
from torch import Tensor, nn

from tgraph.data.split import Split
from tgraph.models.registry import register
from tgraph.models.sequence import SequenceRecommender


@register("gru4rec")
class GRU4Rec(SequenceRecommender):
    r"""A GRU over the history's item embeddings:

    .. math::
        x_p = \mathrm{Dropout}(e_{i_p}), \qquad
        g_p = \mathrm{GRU}(x_p, g_{p-1}), \quad g_0 = 0, \qquad
        s_p = W \,\mathrm{Dropout}(g_p) + c,

    and ``score(q, i) = <s_{|H_q|}, e_i>`` (see :class:`SequenceRecommender`). The GRU is
    causal, so padding after the last real position changes nothing.

    Dropout between stacked GRU layers is ``dropout``.
    """

    class Config(SequenceRecommender.Config):
        hidden_size: PositiveInt = 128
        n_layers: PositiveInt = 1

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        self.gru = nn.GRU(
            cfg.embedding_dim,
            cfg.hidden_size,
            num_layers=cfg.n_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.n_layers > 1 else 0.0,
        )
        self.out_dropout = nn.Dropout(cfg.dropout)
        self.proj = nn.Linear(cfg.hidden_size, cfg.embedding_dim)

    def sequence_output(self, hist_items: Tensor) -> Tensor:
        out, _ = self.gru(self.emb_dropout(self.item_emb(hist_items)))
        return self.proj(self.out_dropout(out))
