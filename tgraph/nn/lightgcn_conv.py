"""LightGCN's propagation (He et al., SIGIR 2020): one layer, and the fused ``K``-layer mean."""

from __future__ import annotations

from typing import Any

import dgl
import dgl.function as fn
import torch
from torch import Tensor, nn

#: ``(out_norm, in_norm)``, each ``[N, 1]``: see :func:`symmetric_norm`
Norms = tuple[Tensor, Tensor]


def symmetric_norm(graph: dgl.DGLGraph, dtype: torch.dtype = torch.float32) -> Norms:
    r"""``(out_norm, in_norm)``: :math:`d_{out}^{-1/2}` and :math:`d_{in}^{-1/2}` per node,
    ``[N, 1]`` of ``dtype``, degrees clamped at 1.

    A pure function of the graph's structure: nothing is written on ``graph``. A model whose
    graph does not change computes them once and passes them to the layers (``norm=``); after
    adding edges it computes them again.
    """
    return degree_norm(graph.out_degrees(), dtype), degree_norm(graph.in_degrees(), dtype)


def degree_norm(degrees: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    r""":math:`d^{-1/2}` of each node's degree ``[N]``, ``[N, 1]`` of ``dtype``, degrees
    clamped at 1 (for a model that keeps the degrees of a graph it extends)."""
    return degrees.clamp(min=1).to(dtype).rsqrt().unsqueeze(1)


def norms_for(graph: dgl.DGLGraph, dtype: torch.dtype, norm: Norms | None) -> Norms:
    """``norm`` when given in ``dtype``, else :func:`symmetric_norm` in ``dtype`` (computed
    from the degrees in that dtype, not cast, so that float64 checks are exact)."""
    if norm is not None and norm[0].dtype == dtype:
        return norm
    return symmetric_norm(graph, dtype)


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
    isolated node gets a zero vector instead of a division by zero. The norms
    (:func:`symmetric_norm`) are computed per call unless the caller passes them (``norm=``);
    the graph is never written to. There are no weights, no self-loops and no
    non-linearity.

    Example::

        >>> g = dgl.graph(([0, 1, 1], [1, 0, 2]))
        >>> LightGCNConv()(g, torch.eye(3))[2]
        tensor([0.7071, 0.0000, 0.0000])
    """

    def forward(self, graph: dgl.DGLGraph, feat: Tensor, norm: Norms | None = None) -> Tensor:
        """``feat [N, d]`` -> ``[N, d]``; ``norm``: the graph's :func:`symmetric_norm`."""
        out_norm, in_norm = norms_for(graph, feat.dtype, norm)
        with graph.local_scope():
            graph.srcdata["h"] = feat * out_norm
            graph.update_all(fn.copy_u("h", "m"), fn.sum("m", "h"))
            return graph.dstdata["h"] * in_norm


def _layer_sum(graph: dgl.DGLGraph, x: Tensor, n_layers: int, norm: Norms) -> Tensor:
    r""":math:`\sum_{k=1}^{K} z_k` with :math:`z_1 = A x`,
    :math:`z_{k+1} = A D_{out}^{-1/2} D_{in}^{-1/2} z_k`, without autograd.

    With :math:`x = D_{out}^{-1/2} H^{(0)}` this gives :math:`H^{(k)} = D_{in}^{-1/2} z_k`:
    each layer is one SpMM and two vector passes, and the in-degree scaling of all layers is
    applied once, by the caller. ``x`` is overwritten. ``norm``: ``graph``'s norms.
    """
    out_norm, in_norm = norm
    between = in_norm * out_norm
    total = dgl.ops.copy_u_sum(graph, x)
    if n_layers > 1:
        x = torch.mul(total, between, out=x)  # reuse the input's memory
    for k in range(1, n_layers):
        z = dgl.ops.copy_u_sum(graph, x)
        total.add_(z)
        if k < n_layers - 1:
            x = z.mul_(between)
    return total


class LightGCNPropagation(torch.autograd.Function):
    r"""Rows of the LightGCN embeddings :math:`E = \frac{1}{K+1}\sum_{k=0}^{K}\tilde A^k X`,
    :math:`\tilde A = D_{in}^{-1/2} A D_{out}^{-1/2}`, and rows of :math:`X` itself.

    ``LightGCNPropagation.apply(feat, graph, n_layers, rows, ego_rows, norm)`` returns
    ``(E[rows], feat[ego_rows])`` (``rows=None``: all of ``E``; ``ego_rows`` may be ``None``;
    ``norm``: the graph's :func:`symmetric_norm`, computed when omitted).
    The backward pass is the same fused computation on the reverse graph,
    :math:`\partial X = \frac{1}{K+1}\sum_k (\tilde A^\top)^k \partial E`, so no intermediate
    layer is stored and no autograd bookkeeping happens per layer; the gradient of the
    ``ego_rows`` output (e.g. an L2 penalty) is added to it in place.
    """

    @staticmethod
    def forward(
        ctx: Any,
        feat: Tensor,
        graph: dgl.DGLGraph,
        n_layers: int,
        rows: Tensor | None,
        ego_rows: Tensor | None,
        norm: Norms | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        norm = norms_for(graph, feat.dtype, norm)
        ctx.graph, ctx.n_layers, ctx.shape, ctx.norm = graph, n_layers, feat.shape, norm
        ctx.save_for_backward(rows, ego_rows)
        ctx.set_materialize_grads(False)
        ego = None if ego_rows is None else feat[ego_rows]
        if n_layers == 0:
            return (feat.clone() if rows is None else feat[rows]), ego
        out_norm, in_norm = norm
        scale = 1.0 / (n_layers + 1)
        # E = (X + D_in^{-1/2} S) / (K + 1), S the layer sum; only ``rows`` of E are formed
        total = _layer_sum(graph, feat * out_norm, n_layers, norm)
        if rows is None:
            return total.mul_(in_norm * scale).add_(feat, alpha=scale), ego
        return (feat[rows] + in_norm[rows] * total[rows]) * scale, ego

    @staticmethod
    def backward(ctx: Any, grad: Tensor | None, grad_ego: Tensor | None) -> tuple:
        rows, ego_rows = ctx.saved_tensors
        grad_feat = None
        if grad is not None:
            grad_feat = _mean_backward(ctx.graph, ctx.norm, ctx.n_layers, ctx.shape, grad, rows)
        if grad_ego is not None:
            grad_feat = grad_ego.new_zeros(ctx.shape) if grad_feat is None else grad_feat
            grad_feat.index_add_(0, ego_rows, grad_ego)
        return grad_feat, None, None, None, None, None


def _mean_backward(
    graph: dgl.DGLGraph,
    norm: Norms,
    n_layers: int,
    shape: torch.Size,
    grad: Tensor,
    rows: Tensor | None,
) -> Tensor:
    r""":math:`\partial X = \frac{1}{K+1}(G + D_{out}^{-1/2} S^\top)` for the gradient ``G`` of
    ``E[rows]``, :math:`S^\top` the layer sum on the reverse graph started from
    :math:`D_{in}^{-1/2} G`; ``G`` is scattered into a full matrix only once."""
    scale = 1.0 / (n_layers + 1)
    if n_layers == 0:
        full = grad.new_zeros(shape)
        return full.add_(grad) if rows is None else full.index_add_(0, rows, grad)
    out_norm, in_norm = norm
    reverse = dgl.reverse(graph, copy_ndata=False)
    if rows is None:
        start = grad * in_norm
    else:
        start = grad.new_zeros(shape).index_add_(0, rows, grad * in_norm[rows])
    # the reverse graph's norms are the swapped ones
    grad_feat = _layer_sum(reverse, start, n_layers, (in_norm, out_norm)).mul_(out_norm * scale)
    if rows is None:
        return grad_feat.add_(grad, alpha=scale)
    return grad_feat.index_add_(0, rows, grad, alpha=scale)


def lightgcn_propagate(
    graph: dgl.DGLGraph,
    feat: Tensor,
    n_layers: int,
    rows: Tensor | None = None,
    norm: Norms | None = None,
) -> Tensor:
    r"""Layer combination :math:`E = \frac{1}{K+1} \sum_{k=0}^{K} H^{(k)}`, ``K = n_layers``,
    :math:`H^{(k+1)} =` :class:`LightGCNConv` :math:`(H^{(k)})`; differentiable in ``feat``.

    Returns ``E[rows]`` (all of ``E`` when ``rows`` is ``None``); see
    :class:`LightGCNPropagation`.
    """
    return LightGCNPropagation.apply(feat, graph, n_layers, rows, None, norm)[0]
