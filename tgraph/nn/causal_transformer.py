"""A causal (left-to-right) Transformer encoder over padded histories."""

from __future__ import annotations

from torch import Tensor, nn


class CausalTransformer(nn.Module):
    r"""Pre-LayerNorm self-attention where position :math:`t` attends to positions
    :math:`\le t` only.

    .. math::
        \mathrm{Attn}(Q, K, V)_t = \mathrm{softmax}\Big(\frac{Q_t K^\top}{\sqrt{d}} + M_t\Big) V,
        \quad M_{t,s} = \begin{cases} 0 & s \le t \\ -\infty & s > t \end{cases}

    Histories are left-aligned and padded at the end, so the causal mask alone keeps padding
    away from every real position (no key-padding mask, no NaN for empty histories).
    """

    def __init__(self, dim: int, n_heads: int, ff_dim: int, dropout: float, n_layers: int):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim, n_heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, n_layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, L, d]`` -> ``[B, L, d]``."""
        causal = nn.Transformer.generate_square_subsequent_mask(
            x.shape[1], device=x.device, dtype=x.dtype
        )
        return self.encoder(x, mask=causal, is_causal=True)
