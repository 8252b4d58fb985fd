"""NGCF's embedding propagation layer (Wang et al., SIGIR 2019)."""

from __future__ import annotations

import dgl
import dgl.function as fn
import torch.nn.functional as F
from dgl.utils import expand_as_pair
from torch import Tensor, nn

from tgraph.nn.lightgcn_conv import Norms, norms_for


class NGCFConv(nn.Module):
    r"""One NGCF layer: normalised neighbour sum plus a bi-interaction term.

    With :math:`\mathcal{L} = D_{in}^{-1/2} A D_{out}^{-1/2}` (edge weight
    :math:`1/\sqrt{d_i d_j}`, the symmetric Laplacian norm of the paper) and the message sum
    :math:`m_i = \sum_j \mathcal{L}_{ij} h_j`,

    .. math::
        h_i' = \mathrm{Dropout}\Big(\mathrm{LeakyReLU}\big(W_1 (h_i + m_i)
        + W_2 (m_i \odot h_i) + b\big)\Big)
        \quad\Longleftrightarrow\quad
        H' = \sigma\big((\mathcal{L} + I) H W_1 + (\mathcal{L} H \odot H) W_2\big)

    (Eq. 8 of the paper, with ``b = b_1 + b_2`` the biases of the official code). The
    affinity messages :math:`\sum_j \mathcal{L}_{ij} (h_j \odot h_i) = h_i \odot m_i` need no
    edge-wise product, so one fused ``copy_u`` / ``sum`` gives both terms; the edge norm is
    folded into node scaling as in :class:`~tgraph.nn.LightGCNConv` (degrees clamped at 1,
    norms cached on the graph). The graph is homogeneous: node ``i`` is both a source and a
    destination; on a DGL block (sampled training) the destination features are the first
    rows of the source features (DGL's block convention) unless ``feat`` is a pair
    ``(source, destination)``, and ``norm`` should hold the whole graph's norms of the
    block's sources and destinations. ``dropout`` is NGCF's message dropout on the layer
    output (active in training mode only).

    Args:
        in_dim: input feature size.
        out_dim: output feature size.
        dropout: message dropout probability.
        negative_slope: LeakyReLU slope (0.2, as ``tf.nn.leaky_relu`` in the official code).
        bias: learn the bias ``b``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        dropout: float = 0.0,
        negative_slope: float = 0.2,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.W1 = nn.Linear(in_dim, out_dim, bias=bias)
        self.W2 = nn.Linear(in_dim, out_dim, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.negative_slope = negative_slope
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights (as the official code), zero bias."""
        nn.init.xavier_uniform_(self.W1.weight)
        nn.init.xavier_uniform_(self.W2.weight)
        if self.W1.bias is not None:
            nn.init.zeros_(self.W1.bias)

    def forward(
        self, graph: dgl.DGLGraph, feat: Tensor | tuple[Tensor, Tensor], norm: Norms | None = None
    ) -> Tensor:
        """``feat [N_src, in_dim]`` (or ``(source, destination)`` features) ->
        ``[N_dst, out_dim]``; ``norm``: the graph's
        :func:`~tgraph.nn.lightgcn_conv.symmetric_norm` (computed when omitted)."""
        feat_src, feat_dst = expand_as_pair(feat, graph)
        out_norm, in_norm = norms_for(graph, feat_src.dtype, norm)
        with graph.local_scope():
            graph.srcdata["h"] = feat_src * out_norm
            graph.update_all(fn.copy_u("h", "m"), fn.sum("m", "m"))
            message = graph.dstdata["m"] * in_norm
        out = self.W1(feat_dst + message) + self.W2(message * feat_dst)
        return self.dropout(F.leaky_relu(out, self.negative_slope))

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"
