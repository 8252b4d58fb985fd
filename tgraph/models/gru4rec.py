"""GRU4Rec (Hidasi et al., ICLR 2016), in the common full-softmax form."""

from __future__ import annotations

from typing import Any

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

    Config (besides the shared sequence keys): ``hidden_size`` (128), ``n_layers`` (1;
    dropout between stacked layers is ``dropout``).
    """

    defaults = {**SequenceRecommender.defaults, "hidden_size": 128, "n_layers": 1}

    def __init__(self, split: Split, config: dict[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        n_layers = int(cfg["n_layers"])
        self.gru = nn.GRU(
            cfg["embedding_dim"],
            cfg["hidden_size"],
            num_layers=n_layers,
            batch_first=True,
            dropout=cfg["dropout"] if n_layers > 1 else 0.0,
        )
        self.out_dropout = nn.Dropout(cfg["dropout"])
        self.proj = nn.Linear(cfg["hidden_size"], cfg["embedding_dim"])

    def sequence_output(self, hist_items: Tensor) -> Tensor:
        out, _ = self.gru(self.emb_dropout(self.item_emb(hist_items)))
        return self.proj(self.out_dropout(out))
