"""GETNext's graph convolution over the trajectory flow graph (Yang et al., SIGIR 2022)."""

from __future__ import annotations

import dgl
import dgl.function as fn
from torch import Tensor, nn


class TrajectoryFlowConv(nn.Module):
    r"""One GCN layer with GETNext's random-walk normalised flow matrix:

    .. math::
        H' = \tilde L\, H W + b, \qquad \tilde L = (D + I)^{-1} (A + I),

    ``A`` the transition counts of the trajectory flow graph, ``D`` their row sums. The graph
    passed in is the message graph of
    :func:`~tgraph.graph.trajectory_flow.random_walk_weights` (an edge ``j -> i`` per
    non-zero :math:`\tilde L_{ij}`), ``weight`` its :math:`\tilde L_{ij}`; the product is DGL's
    built-in ``u_mul_e`` / ``sum`` (a weighted SpMM). The activation and dropout between
    layers are the caller's.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.linear = nn.Linear(in_dim, out_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, graph: dgl.DGLGraph, h: Tensor, weight: Tensor) -> Tensor:
        """``h [N, in_dim]``, ``weight [E]`` -> ``[N, out_dim]``."""
        with graph.local_scope():
            # multiply first when it shrinks the features: L (H W) = (L H) W
            h = self.linear(h) - self.linear.bias if self.out_dim < self.in_dim else h
            graph.srcdata["h"] = h
            graph.edata["w"] = weight.unsqueeze(1)
            graph.update_all(fn.u_mul_e("h", "w", "m"), fn.sum("m", "h"))
            out = graph.dstdata["h"]
        if self.out_dim < self.in_dim:
            return out + self.linear.bias
        return self.linear(out)

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}"
