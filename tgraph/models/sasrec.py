"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the history."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from tgraph.data.split import Split
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

    Config (besides the shared sequence keys): ``n_layers`` (2), ``n_heads`` (2), ``ff_dim``
    (256).
    """

    defaults = {**SequenceRecommender.defaults, "n_layers": 2, "n_heads": 2, "ff_dim": 256}

    def __init__(self, split: Split, config: dict[str, Any] | None = None) -> None:
        super().__init__(split, config)
        cfg = self.config
        dim = cfg["embedding_dim"]
        self.pos_emb = nn.Embedding(self.history_len, dim)
        nn.init.normal_(self.pos_emb.weight, std=cfg["init_std"])
        self.encoder = CausalTransformer(
            dim, cfg["n_heads"], cfg["ff_dim"], cfg["dropout"], cfg["n_layers"]
        )

    def sequence_output(self, hist_items: Tensor) -> Tensor:
        length = hist_items.shape[1]
        if length > self.history_len:
            raise ValueError(f"history of length {length} exceeds max_len={self.history_len}")
        positions = torch.arange(length, device=hist_items.device)
        x = self.emb_dropout(self.item_emb(hist_items) + self.pos_emb(positions))
        return self.encoder(x)
