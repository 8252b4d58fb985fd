"""TGAT's temporal graph attention layer (Xu et al., ICLR 2020)."""

from __future__ import annotations

import math

import dgl
import dgl.function as fn
import torch
from dgl.nn.functional import edge_softmax
from dgl.utils import expand_as_pair
from torch import Tensor, nn

from tgraph.nn.encodings import TimeEncoding


class TemporalAttentionConv(nn.Module):
    r"""Multi-head attention of each destination node over its *past* in-edges.

    Destination node :math:`i` is queried at time :math:`t_i`; its admissible in-edges are
    :math:`\mathcal{N}(i) = \{e = (j \to i) : t_e < t_i\}` (an edge at or after the query
    time is ignored: it gets zero attention and never reaches the output). With
    :math:`\Phi` the :class:`~tgraph.nn.encodings.TimeEncoding`, :math:`x_e` optional edge
    features and :math:`\Vert` concatenation:

    .. math::
        z_i = h_i \Vert \Phi(0), \qquad
        z_e = h_j \Vert x_e \Vert \Phi(t_i - t_e),

        q_i^m = W_Q^m z_i, \quad k_e^m = W_K^m z_e + c_K^m, \quad v_e^m = W_V^m z_e + c_V^m
        \qquad (m = 1 \dots M \text{ heads of size } D),

        \alpha_e^m = \frac{\exp(q_i^m \cdot k_e^m / \sqrt{D})}
                          {\sum_{e' \in \mathcal{N}(i)} \exp(q_i^m \cdot k_{e'}^m / \sqrt{D})},
        \qquad
        a_i = \big\Vert_{m=1}^{M} \sum_{e \in \mathcal{N}(i)} \alpha_e^m v_e^m
        \quad (a_i = 0 \text{ when } \mathcal{N}(i) = \emptyset),

        h_i' = W_2\, \mathrm{ReLU}(W_1 [a_i \Vert h_i] + b_1) + b_2 .

    The last line is TGAT's merge layer. Keys and values are split as
    :math:`W z_e = W^{h} h_j + W^{e} [x_e \Vert \Phi(t_i - t_e)]`: the node part is computed
    once per source node and added on the edges with the built-in ``u_add_e``; the scores
    use ``e_dot_v`` and :func:`dgl.nn.functional.edge_softmax` (inadmissible edges are set
    to the lowest float before it and to exactly 0 after it); the weighted values are
    summed with ``copy_e`` / ``sum``. Gaps :math:`t_i - t_e` are taken in the dtype of the
    given times (exact for integer seconds) before the encoding. Dropout (``attn_drop``)
    acts on :math:`\alpha` in training mode only.

    ``strict=False`` admits the edges *at* the query time too (:math:`t_e \le t_i`), for
    destinations whose in-edges are known to precede the event they stand for although the
    given time does not show it: a query under ``query_time: hidden`` is looked at at the
    time of its last history event (:mod:`tgraph.data.queries`), and with the strict rule that
    event, the most recent one, would get no attention.

    Args:
        in_feats: node feature size, or ``(source, destination)`` sizes.
        out_feats: output size (also the merge layer's hidden size).
        num_heads: ``M``.
        attn_feats: ``M * D`` (default ``out_feats``); must be divisible by ``num_heads``.
        time_feats: size of :math:`\Phi` (default: the destination feature size).
        edge_feats: size of :math:`x_e` (0: none).
        attn_drop: dropout on the attention weights.
    """

    def __init__(
        self,
        in_feats: int | tuple[int, int],
        out_feats: int,
        num_heads: int = 2,
        attn_feats: int | None = None,
        time_feats: int | None = None,
        edge_feats: int = 0,
        attn_drop: float = 0.0,
    ) -> None:
        super().__init__()
        src_feats, dst_feats = expand_as_pair(in_feats)
        attn_feats = out_feats if attn_feats is None else attn_feats
        if attn_feats % num_heads:
            raise ValueError(f"attn_feats={attn_feats} is not divisible by num_heads={num_heads}")
        self.num_heads, self.head_feats = num_heads, attn_feats // num_heads
        self.edge_feats = edge_feats
        self.time_enc = TimeEncoding(dst_feats if time_feats is None else time_feats)
        time_feats = self.time_enc.dim
        self.fc_q = nn.Linear(dst_feats + time_feats, attn_feats, bias=False)
        self.fc_kv_src = nn.Linear(src_feats, 2 * attn_feats, bias=False)
        self.fc_kv_edge = nn.Linear(edge_feats + time_feats, 2 * attn_feats)
        self.attn_drop = nn.Dropout(attn_drop)
        self.merge = nn.Sequential(
            nn.Linear(attn_feats + dst_feats, out_feats),
            nn.ReLU(),
            nn.Linear(out_feats, out_feats),
        )

    def forward(
        self,
        graph: dgl.DGLGraph,
        feat: Tensor | tuple[Tensor, Tensor],
        query_time: Tensor,
        edge_time: Tensor,
        edge_feat: Tensor | None = None,
        get_attention: bool = False,
        strict: bool = True,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend over past in-edges.

        Args:
            graph: a graph or block with one edge type.
            feat: ``[N_src, d]`` (or a ``(src, dst)`` pair) node features.
            query_time: ``[N_dst]`` query time of each destination node.
            edge_time: ``[E]`` edge timestamps (same units as ``query_time``).
            edge_feat: ``[E, edge_feats]`` when the layer was built with ``edge_feats > 0``.
            get_attention: also return :math:`\\alpha` as ``[E, num_heads]``.
            strict: admit only edges strictly before the query time (``False``: at or before).

        Returns:
            ``[N_dst, out_feats]``, and the attention weights when asked.
        """
        if (edge_feat is None) != (self.edge_feats == 0):
            raise ValueError(f"this layer was built with edge_feats={self.edge_feats}")
        with graph.local_scope():
            h_src, h_dst = expand_as_pair(feat, graph)
            _, dst = graph.edges()
            dt = query_time[dst.long()] - edge_time
            valid = (dt > 0 if strict else dt >= 0).view(-1, 1, 1)
            heads, size = self.num_heads, self.head_feats
            phi0 = self.time_enc(torch.zeros(h_dst.shape[0], device=h_dst.device))
            q = self.fc_q(torch.cat([h_dst, phi0.to(h_dst.dtype)], -1))
            edge_in = self.time_enc(dt).to(h_src.dtype)
            if edge_feat is not None:
                edge_in = torch.cat([edge_feat, edge_in], -1)
            k_src, v_src = self.fc_kv_src(h_src).view(-1, 2, heads, size).unbind(1)
            k_edge, v_edge = self.fc_kv_edge(edge_in).view(-1, 2, heads, size).unbind(1)
            graph.srcdata.update({"k": k_src, "v": v_src})
            graph.dstdata["q"] = q.view(-1, heads, size)
            graph.edata.update({"k_edge": k_edge, "v_edge": v_edge})
            graph.apply_edges(fn.u_add_e("k", "k_edge", "k"))
            graph.apply_edges(fn.u_add_e("v", "v_edge", "v"))
            graph.apply_edges(fn.e_dot_v("k", "q", "score"))
            score = graph.edata["score"] / math.sqrt(size)
            score = score.masked_fill(~valid, torch.finfo(score.dtype).min)
            alpha = edge_softmax(graph, score) * valid
            graph.edata["m"] = self.attn_drop(alpha) * graph.edata["v"]
            graph.update_all(fn.copy_e("m", "m"), fn.sum("m", "a"))
            agg = graph.dstdata["a"].reshape(-1, heads * size)
            out = self.merge(torch.cat([agg, h_dst], -1))
            if get_attention:
                return out, alpha.squeeze(-1)
            return out
