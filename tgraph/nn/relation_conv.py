"""Relation-wise graph convolution over a heterograph (R-GCN / GraphSAGE style)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import dgl
import dgl.function as fn
from torch import Tensor, nn

#: how messages are normalised (see :class:`RelationConv`)
Norm = Literal["right", "both", "none"]
NORMS: tuple[str, ...] = get_args(Norm)
EType = tuple[str, str, str]


class RelationConv(nn.Module):
    r"""One layer of per-relation message passing (Schlichtkrull et al., ESWC 2018).

    For a node :math:`v` of type :math:`\tau(v)` and the relations :math:`r: s \to d` given
    in ``etypes`` with :math:`d = \tau(v)`:

    .. math::
        h_v' = W_0^{\tau(v)} h_v + b^{\tau(v)}
            + \sum_{r:\, d(r) = \tau(v)} W_r \sum_{u \in \mathcal{N}_r(v)} c_{r,uv}\, h_u

    with :math:`\mathcal{N}_r(v)` the in-neighbours of :math:`v` over :math:`r` (edges counted
    with multiplicity) and

    * ``norm="right"``: :math:`c_{r,uv} = 1 / |\mathcal{N}_r(v)|` (mean, as in R-GCN);
    * ``norm="both"``: :math:`c_{r,uv} = 1 / \sqrt{\deg^{out}_r(u)\,|\mathcal{N}_r(v)|}`
      (symmetric, as in GCN / LightGCN);
    * ``norm="none"``: :math:`c_{r,uv} = 1` (sum).

    The normaliser is folded into node scaling: source features are multiplied by
    :math:`\deg^{out}_r(u)^{-1/2}` (``"both"`` only), summed per relation with the built-in
    ``copy_u`` / ``sum`` (one fused SpMM per relation), and the sum is multiplied by
    :math:`|\mathcal{N}_r(v)|^{-1}` or :math:`^{-1/2}`; degrees are clamped at 1, so a node
    without neighbours over :math:`r` receives nothing from it. :math:`W_r` is applied after
    the sum (it is linear). There is no non-linearity: models add their own.

    Args:
        in_dim: input feature size (every node type shares it).
        out_dim: output feature size (every node type shares it).
        ntypes: node types that get an output (and a self weight :math:`W_0^{\tau}`).
        etypes: canonical relations of the graph to propagate over; one :math:`W_r` each.
        norm: ``"right"``, ``"both"`` or ``"none"``.
        self_loop: keep the :math:`W_0^{\tau} h_v + b^{\tau}` term.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        ntypes: Sequence[str],
        etypes: Sequence[EType],
        norm: Norm = "right",
        self_loop: bool = True,
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        self.in_dim, self.out_dim, self.norm = in_dim, out_dim, norm
        self.ntypes = list(ntypes)
        self.etypes: list[EType] = [(src, name, dst) for src, name, dst in etypes]
        missing = sorted({et[2] for et in self.etypes} - set(self.ntypes))
        if missing:
            raise ValueError(f"relations end in node types {missing} not listed in ntypes")
        self.rel_weight = nn.ModuleDict(
            {_key(et): nn.Linear(in_dim, out_dim, bias=False) for et in self.etypes}
        )
        self.self_weight = (
            nn.ModuleDict({nt: nn.Linear(in_dim, out_dim) for nt in self.ntypes})
            if self_loop
            else None
        )

    def forward(
        self,
        graph: dgl.DGLGraph,
        feats: dict[str, Tensor],
        degrees: dict[EType, tuple[Tensor, Tensor]] | None = None,
    ) -> dict[str, Tensor]:
        """``feats[ntype] [N_ntype, in_dim]`` -> ``{ntype: [N_ntype, out_dim]}`` for ``ntypes``.

        On a DGL block (sampled training) ``feats`` are the source features, the destination
        features their first rows (DGL's convention), and ``degrees[etype]`` gives the whole
        graph's (out-degree of the block's sources, in-degree of its destinations): the
        neighbour sum over the sampled in-edges is then multiplied by ``in_degree / sampled
        in_degree`` (so ``"right"`` is the mean of the sampled neighbours and ``"both"`` /
        ``"none"`` unbiased estimates); with every in-edge sampled, equal to the full layer.
        """
        with graph.local_scope():
            out: dict[str, Tensor] = {}
            for nt in self.ntypes:
                n = graph.num_dst_nodes(nt)
                dst_feat = feats[nt][:n] if graph.is_block else feats[nt]
                if self.self_weight is not None:
                    out[nt] = self.self_weight[nt](dst_feat)
                else:
                    out[nt] = feats[nt].new_zeros(n, self.out_dim)
            for et in self.etypes:
                src, _, dst = et
                key = _key(et)
                h = feats[src]
                given = None if degrees is None else degrees[et]
                if self.norm == "both":
                    out_deg = graph.out_degrees(etype=et) if given is None else given[0]
                    h = h * out_deg.clamp(min=1).to(h.dtype).pow(-0.5).unsqueeze(-1)
                graph.srcnodes[src].data[f"h_{key}"] = h
                graph.update_all(fn.copy_u(f"h_{key}", "m"), fn.sum("m", f"a_{key}"), etype=et)
                agg = graph.dstnodes[dst].data[f"a_{key}"]
                in_deg = graph.in_degrees(etype=et).clamp(min=1).to(agg.dtype)
                if given is not None:  # sampled: the whole graph's degree, sum rescaled
                    full = given[1].clamp(min=1).to(agg.dtype)
                    agg = agg * (full / in_deg).unsqueeze(-1)
                    in_deg = full
                if self.norm != "none":
                    power = -1.0 if self.norm == "right" else -0.5
                    agg = agg * in_deg.pow(power).unsqueeze(-1)
                out[dst] = out[dst] + self.rel_weight[key](agg)
            return out

    def reset_parameters(self) -> None:
        """Redraw every weight with ``nn.Linear``'s initialisation."""
        for linear in self.modules():
            if isinstance(linear, nn.Linear):
                linear.reset_parameters()

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, relations={len(self.etypes)}, norm={self.norm!r}"


def _key(etype: EType) -> str:
    """A ModuleDict / data key for a canonical relation (``src:name:dst``; dots not allowed)."""
    return ":".join(etype)
