"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the history."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import PositiveInt, model_validator
from torch import Tensor, nn

from tgraph.data.split import Split
from tgraph.models.base import check_heads
from tgraph.models.registry import register
from tgraph.models.sequence import SequenceRecommender
from tgraph.nn.causal_transformer import CausalTransformer


@register("sasrec")
class SASRec(SequenceRecommender):
    r"""A causal Transformer encoder over item + learnable position embeddings:

    .. math::
        X^{(0)}_p = \mathrm{Dropout}(e_{i_p} + P_p), \qquad
        X^{(l)} = \mathrm{Block}_l(X^{(l-1)}), \qquad s = \mathrm{LayerNorm}(X^{(n)}),

    each block a pre-LayerNorm multi-head self-attention (position ``p`` attends to positions
    ``<= p`` only) and a GELU feed-forward layer, both with residual connections; then
    ``score(q, i) = <s_{|H_q|}, e_i>`` (see :class:`SequenceRecommender`). Positions count
    from the oldest history event (the history is left-aligned). Because the history is
    padded at the end, the causal mask alone keeps padding away from every real position
    (no key-padding mask is needed, and an empty history never yields an all-masked row).

    """

    class Config(SequenceRecommender.Config):
        n_layers: PositiveInt = 2
        #: attention heads; each gets ``embedding_dim / n_heads`` features
        n_heads: PositiveInt = 2
        ff_dim: PositiveInt = 256

        @model_validator(mode="after")
        def _heads_divide_dim(self) -> SASRec.Config:
            check_heads(self.embedding_dim, self.n_heads, "n_heads")
            return self

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        self.pos_emb = nn.Embedding(self.history_len, cfg.embedding_dim)
        nn.init.normal_(self.pos_emb.weight, std=cfg.init_std)
        self.encoder = CausalTransformer(
            cfg.embedding_dim, cfg.n_heads, cfg.ff_dim, cfg.dropout, cfg.n_layers
        )

    def sequence_output(self, hist_items: Tensor) -> Tensor:
        length = hist_items.shape[1]
        if length > self.history_len:
            raise ValueError(f"history of length {length} exceeds max_len={self.history_len}")
        positions = torch.arange(length, device=hist_items.device)
        x = self.emb_dropout(self.item_emb(hist_items) + self.pos_emb(positions))
        return self.encoder(x)
