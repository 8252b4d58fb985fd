"""Learned node embeddings of a heterograph propagated by :class:`RelationConv` layers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dgl
import torch
from torch import Tensor, nn

from tgraph.graph.sampling import Degrees, NeighborSampling, block_degrees, full_blocks
from tgraph.nn.relation_conv import Norm, RelationConv


class HeteroEncoder(nn.Module):
    r"""Learned embeddings of every node type, propagated by ``n_layers`` :class:`RelationConv`:

    .. math::
        H^{(0)}_\tau = E_\tau, \qquad
        H^{(l+1)} = \mathrm{Dropout}(\tanh(\mathrm{RelationConv}_l(H^{(l)}))), \qquad
        Z_\tau = \frac{1}{L+1} \sum_{l=0}^{L} H^{(l)}_\tau

    over every relation of ``graph``; ``forward`` returns ``{ntype: Z_ntype}`` for the
    ``outputs`` node types only. The last layer computes only those (and the relations
    ending in them), so every parameter reaches the outputs. :math:`E_\tau` is one
    ``nn.Parameter`` per node type of shape ``[N_tau, dim]`` drawn from
    :math:`\mathcal{N}(0, \text{init\_std}^2)`; the graph passed to ``forward`` must have the
    node counts and relations of the one given at construction (it is not modified).

    Example::

        >>> g = dgl.heterograph({("user", "interacts", "item"): ([0, 1], [1, 0]),
        ...                      ("item", "rev_interacts", "user"): ([1, 0], [0, 1])})
        >>> enc = HeteroEncoder(g, dim=8, n_layers=2, outputs=["user", "item"])
        >>> {nt: tuple(z.shape) for nt, z in enc(g).items()}
        {'user': (2, 8), 'item': (2, 8)}
    """

    def __init__(
        self,
        graph: dgl.DGLGraph,
        dim: int,
        n_layers: int,
        outputs: Sequence[str],
        norm: Norm = "right",
        dropout: float = 0.0,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.outputs = list(outputs)
        missing = sorted(set(self.outputs) - set(graph.ntypes))
        if missing:
            raise ValueError(f"output node types {missing} are not in the graph {graph.ntypes}")
        self.dim, self.init_std = dim, init_std
        self.embedding = nn.ParameterDict(
            {nt: nn.Parameter(torch.empty(graph.num_nodes(nt), dim)) for nt in graph.ntypes}
        )
        self.reset_embeddings()
        layers = []
        for index in range(n_layers):
            ntypes = self.outputs if index == n_layers - 1 else list(graph.ntypes)
            etypes = [et for et in graph.canonical_etypes if et[2] in ntypes]
            layers.append(RelationConv(dim, dim, ntypes, etypes, norm=norm))
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)

    def reset_embeddings(self) -> None:
        """Redraw the layer-0 embeddings from :math:`\\mathcal{N}(0, \\mathrm{init\\_std}^2)`."""
        with torch.no_grad():
            for table in self.embedding.values():
                table.normal_().mul_(self.init_std)

    def reset_parameters(self) -> None:
        """Redraw the embeddings and reset every layer."""
        self.reset_embeddings()
        for layer in self.layers:
            layer.reset_parameters()

    def forward(self, graph: dgl.DGLGraph) -> dict[str, Tensor]:
        """``{ntype: Z_ntype [N_ntype, dim]}`` for the ``outputs`` node types."""
        h = dict(self.embedding.items())
        total = {nt: h[nt] for nt in self.outputs}
        for layer in self.layers:
            h = {nt: self.dropout(torch.tanh(x)) for nt, x in layer(graph, h).items()}
            total = {nt: total[nt] + h[nt] for nt in total}
        return {nt: x / (len(self.layers) + 1) for nt, x in total.items()}

    def block_forward(
        self, blocks: Sequence[dgl.DGLGraph], degrees: Sequence[Degrees]
    ) -> dict[str, Tensor]:
        """:meth:`forward` over sampled blocks (one per layer, DGL's block convention):
        ``{ntype: Z}`` of the last block's destination nodes of the ``outputs`` types;
        ``degrees``: each block's whole-graph degrees
        (:func:`~tgraph.graph.sampling.block_degrees`)."""
        first, last = blocks[0], blocks[-1]
        h = {
            nt: self.embedding[nt][first.srcnodes[nt].data[dgl.NID].long()] for nt in first.srctypes
        }
        n_out = {nt: last.num_dst_nodes(nt) for nt in self.outputs}
        total = {nt: h[nt][: n_out[nt]] for nt in self.outputs}
        for layer, block, degree in zip(self.layers, blocks, degrees):
            out = layer(block, h, degree)
            h = {nt: self.dropout(torch.tanh(x)) for nt, x in out.items()}
            total = {nt: total[nt] + h[nt][: n_out[nt]] for nt in total}
        return {nt: x / (len(self.layers) + 1) for nt, x in total.items()}

    def sampled_forward(
        self, graph: dgl.DGLGraph, sampling: NeighborSampling, nodes: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """:meth:`block_forward` over ``sampling``'s blocks of ``graph`` around ``nodes``
        (``{ntype: ids}`` of ``outputs`` types, any order, repeats allowed): ``{ntype: [len(ids),
        dim]}``, the rows of ``nodes[ntype]`` in their order. With full fanout (``-1``) and no
        dropout it equals :meth:`forward`'s rows to float rounding."""
        sample = sampling.sample_types(graph, dict(nodes))
        degrees = [block_degrees(graph, block) for block in sample.blocks]
        out = self.block_forward(sample.blocks, degrees)
        return {nt: out[nt][sample.inverse[nt]] for nt in nodes}

    def check_sampling(self, sampling: NeighborSampling) -> None:
        """Refuse (ConfigError) a sampler whose number of fanouts is not the number of layers."""
        sampling.require_layers(len(self.layers), "a graph encoder")

    @torch.no_grad()
    def layerwise(self, graph: dgl.DGLGraph, chunk: int) -> dict[str, Tensor]:
        """:meth:`forward`'s result computed layer by layer, each layer over blocks of at most
        ``chunk`` destination nodes of one type with all their in-edges
        (:func:`~tgraph.graph.sampling.full_blocks`): memory holds the ``[N, dim]`` tables
        and one chunk's edges."""
        h = {nt: table.detach() for nt, table in self.embedding.items()}
        total = {nt: h[nt].clone() for nt in self.outputs}
        for layer in self.layers:
            new = {}
            for nt in layer.ntypes:
                new[nt] = h[nt].new_empty(graph.num_nodes(nt), layer.out_dim)
                for lo, hi, block in full_blocks(graph, nt, chunk):
                    feats = {t: h[t][block.srcnodes[t].data[dgl.NID].long()] for t in h}
                    out = layer(block, feats, block_degrees(graph, block))
                    new[nt][lo:hi] = self.dropout(torch.tanh(out[nt]))
            h = new
            for nt in total:
                total[nt] += h[nt]
        return {nt: x / (len(self.layers) + 1) for nt, x in total.items()}

    def extra_repr(self) -> str:
        sizes = {nt: int(table.shape[0]) for nt, table in self.embedding.items()}
        return f"dim={self.dim}, n_layers={len(self.layers)}, outputs={self.outputs}, nodes={sizes}"
