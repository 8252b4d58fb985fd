"""LightGCN's propagation layer (He et al., SIGIR 2020)."""

from __future__ import annotations

import dgl
import dgl.function as fn
from torch import Tensor, nn


class LightGCNConv(nn.Module):
    r"""One parameter-free LightGCN layer: symmetric-normalised neighbour sum.

    .. math::
        h_i^{(k+1)} = \sum_{j \in \mathcal{N}(i)} \frac{1}{\sqrt{|\mathcal{N}(i)|}
        \sqrt{|\mathcal{N}(j)|}} h_j^{(k)}
        \quad\Longleftrightarrow\quad
        H^{(k+1)} = D_{in}^{-1/2} A D_{out}^{-1/2} H^{(k)}

    The edge weight :math:`1/\sqrt{d_i d_j}` is folded into node scaling: the source
    features are multiplied by :math:`d_j^{-1/2}` (out-degree), summed with the built-in
    ``copy_u`` / ``sum`` (DGL's fused SpMM, as fast as a CSR sparse-dense product), and the
    result is multiplied by :math:`d_i^{-1/2}` (in-degree). Degrees are clamped at 1, so an
    isolated node gets a zero vector instead of a division by zero. There are no weights, no
    self-loops and no non-linearity.
    """

    def forward(self, graph: dgl.DGLGraph, feat: Tensor) -> Tensor:
        """``feat [N, d]`` -> ``[N, d]``."""
        with graph.local_scope():
            out_norm = graph.out_degrees().clamp(min=1).to(feat.dtype).pow(-0.5)
            in_norm = graph.in_degrees().clamp(min=1).to(feat.dtype).pow(-0.5)
            graph.srcdata["h"] = feat * out_norm.unsqueeze(-1)
            graph.update_all(fn.copy_u("h", "m"), fn.sum("m", "h"))
            return graph.dstdata["h"] * in_norm.unsqueeze(-1)


def lightgcn_propagate(
    graph: dgl.DGLGraph, feat: Tensor, n_layers: int, conv: LightGCNConv
) -> Tensor:
    r"""Layer combination :math:`E = \frac{1}{K+1} \sum_{k=0}^{K} H^{(k)}` with ``K = n_layers``."""
    total = feat
    h = feat
    for _ in range(n_layers):
        h = conv(graph, h)
        total = total + h
    return total / (n_layers + 1)
