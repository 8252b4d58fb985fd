"""STHGCN's hypergraph transformer convolution (Yan et al., SIGIR 2023), one layer."""

from __future__ import annotations

import math

import dgl
import dgl.function as fn
from dgl.ops import edge_softmax
from torch import Tensor, nn


class HypergraphTransformerConv(nn.Module):
    r"""Multi-head attention of each destination node (a hyperedge) over its incident
    sources (check-ins, or earlier hyperedges), with an edge encoding (time / distance).

    For a destination :math:`j` with sources :math:`i \in \mathcal{N}(j)` and edge features
    :math:`e_{ij}`, per head :math:`h` (``d_h = dim / n_heads`` features):

    .. math::
        q_j = W_q x_j, \quad k_{ij} = W_k x_i + U_k e_{ij}, \quad v_{ij} = W_v x_i + U_v e_{ij},

        \alpha^h_{ij} = \operatorname{softmax}_{i \in \mathcal{N}(j)}
            \frac{\langle q^h_j, k^h_{ij} \rangle}{\sqrt{d_h}}, \qquad
        m_j = W_o \big\Vert_h \sum_{i \in \mathcal{N}(j)} \alpha^h_{ij} v^h_{ij},

        y_j = \mathrm{LN}(x_j + \mathrm{Drop}(m_j)), \qquad
        \mathrm{out}_j = \mathrm{LN}(y_j + \mathrm{Drop}(\mathrm{FFN}(y_j))).

    A destination without incident edges gets :math:`m_j = 0`. Message passing uses DGL's
    built-ins (``u_add_e``, ``e_dot_v``, ``copy_e`` / ``sum``) and :func:`dgl.ops.edge_softmax`
    on a graph with one edge type (bipartite or not); nothing is written on the graph.
    Dropout also acts on the attention weights, in training only.
    """

    def __init__(self, dim: int, edge_dim: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim={dim} is not divisible by n_heads={n_heads}")
        self.dim, self.edge_dim, self.n_heads = dim, edge_dim, n_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.edge_key = nn.Linear(edge_dim, dim, bias=False)
        self.edge_value = nn.Linear(edge_dim, dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.LayerNorm):
                module.reset_parameters()

    def extra_repr(self) -> str:
        return f"dim={self.dim}, edge_dim={self.edge_dim}, n_heads={self.n_heads}"

    def forward(self, graph: dgl.DGLGraph, src: Tensor, dst: Tensor, edge: Tensor) -> Tensor:
        """``src [N_src, dim]``, ``dst [N_dst, dim]``, ``edge [E, edge_dim]`` ->
        ``[N_dst, dim]``."""
        heads, dh = self.n_heads, self.dim // self.n_heads
        with graph.local_scope():
            graph.srcdata["k"] = self.key(src).view(-1, heads, dh)
            graph.srcdata["v"] = self.value(src).view(-1, heads, dh)
            graph.dstdata["q"] = self.query(dst).view(-1, heads, dh)
            graph.edata["ek"] = self.edge_key(edge).view(-1, heads, dh)
            graph.edata["ev"] = self.edge_value(edge).view(-1, heads, dh)
            graph.apply_edges(fn.u_add_e("k", "ek", "ke"))
            graph.apply_edges(fn.u_add_e("v", "ev", "ve"))
            graph.apply_edges(fn.e_dot_v("ke", "q", "score"))  # [E, H, 1]
            alpha = edge_softmax(graph, graph.edata["score"] / math.sqrt(dh))
            graph.edata["m"] = graph.edata["ve"] * self.dropout(alpha)
            graph.update_all(fn.copy_e("m", "m"), fn.sum("m", "h"))
            message = graph.dstdata["h"].reshape(-1, self.dim)
        y = self.norm1(dst + self.dropout(self.out(message)))
        return self.norm2(y + self.dropout(self.ffn(y)))
