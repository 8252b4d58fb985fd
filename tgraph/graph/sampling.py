"""Neighbour sampling for mini-batch training, and chunks for layer-wise inference.

* :class:`NeighborSampling`: DGL's ``MultiLayerNeighborSampler`` over a static graph. A batch's
  seed nodes (its users and items, each once) give one block per layer; ``fanouts[l]``
  in-neighbours of every destination node of layer ``l`` (``-1``: all of them). The seeds are
  the first destination nodes of every block (DGL's block convention), so a model reads the
  seeds' ``k``-th layer output as the first rows of the ``k``-th block's output.
* :func:`neighbor_scale`: the factor that makes a sampled neighbour *sum* an unbiased estimate
  of the full one (``in_degree / sampled in_degree``; exactly 1 with full fanout).
* :func:`chunk_blocks`: the full graph cut into blocks of at most ``chunk`` destination
  nodes (every in-edge of each), for layer-wise full-graph inference whose message memory
  is bounded by one chunk's edges.
* :func:`temporal_blocks`: multi-hop time-respecting blocks from any temporal-neighbour
  hook (:class:`~tgraph.graph.temporal.TemporalNeighborhood`: a graph relation's
  :class:`~tgraph.graph.temporal.RecentNeighborSampler` or the interaction events'
  :class:`~tgraph.graph.temporal.InteractionNeighbors`): a seed ``(v, t)`` takes its ``k``
  most recent events strictly before ``t`` (or its given history), and a neighbour reached by
  an edge at time ``t_e`` takes its own strictly before ``t_e`` (TGAT's rule), so no block
  holds an edge at or after the time of the node it feeds. TGAT's ``L`` layers are built by it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dgl
import torch
from torch import Tensor

from tgraph.errors import ConfigError
from tgraph.graph.temporal import TemporalNeighborhood, TimedNeighbors


@dataclass
class SampledBlocks:
    """One batch's sampled computation graph.

    Attributes:
        input_nodes: ``[N_0]`` graph ids of the first block's source nodes (whose layer-0
            features the model gathers).
        seeds: ``[S]`` the distinct seed nodes (the last block's destinations, in order).
        inverse: position in ``seeds`` of every node the batch asked for (``seeds[inverse]``
            are those nodes, in the order given).
        blocks: one DGL block per layer, the first layer first.
    """

    input_nodes: Tensor
    seeds: Tensor
    inverse: Tensor
    blocks: list[dgl.DGLGraph]


class NeighborSampling:
    """Blocks of ``len(fanouts)`` layers for a batch's nodes (see the module docstring).

    ``fanouts[l]``: in-neighbours sampled per destination node in layer ``l`` (the first
    layer, next to the input features, first; ``-1``: all); ``replace``: with replacement.
    ``inference_chunk``: destination nodes per block in layer-wise inference
    (:func:`chunk_blocks`). Draws come from DGL's generator (``dgl.seed``, which
    :func:`~tgraph.train.seed.seed_everything` sets).
    """

    def __init__(
        self, fanouts: Sequence[int], replace: bool = False, inference_chunk: int = 65536
    ) -> None:
        if not fanouts or any(f == 0 or f < -1 for f in fanouts):
            raise ValueError(f"fanouts must be positive or -1 (all), got {list(fanouts)}")
        self.fanouts = [int(f) for f in fanouts]
        self.replace = replace
        self.inference_chunk = inference_chunk
        self._sampler = dgl.dataloading.MultiLayerNeighborSampler(self.fanouts, replace=replace)

    @property
    def n_layers(self) -> int:
        return len(self.fanouts)

    def require_layers(self, n_layers: int, owner: str) -> None:
        """Refuse (ConfigError, key ``train.sampling.fanouts``) fanouts for another number of
        layers than ``owner``'s (e.g. "a model", "a graph encoder") ``n_layers``."""
        if self.n_layers != n_layers:
            raise ConfigError(
                f"{self.n_layers} fanouts {self.fanouts} for {owner} with {n_layers} layers",
                key="train.sampling.fanouts",
                fix=f"give one fanout per layer ({n_layers})",
            )

    def sample(self, graph: dgl.DGLGraph, nodes: Tensor) -> SampledBlocks:
        """Blocks whose last destinations are the distinct ``nodes`` (graph ids, any order,
        repeats allowed)."""
        seeds, inverse = torch.unique(nodes.to(graph.idtype), return_inverse=True)
        input_nodes, output, blocks = self._sampler.sample_blocks(graph, seeds)
        return SampledBlocks(input_nodes, output, inverse, blocks)

    def sample_types(self, graph: dgl.DGLGraph, nodes: dict[str, Tensor]) -> SampledTypedBlocks:
        """:meth:`sample` on a heterograph: ``nodes`` per node type (``fanouts[l]`` in-edges
        per destination node and relation)."""
        seeds, inverse = {}, {}
        for ntype, ids in nodes.items():
            seeds[ntype], inverse[ntype] = torch.unique(ids.to(graph.idtype), return_inverse=True)
        input_nodes, output, blocks = self._sampler.sample_blocks(graph, seeds)
        return SampledTypedBlocks(input_nodes, output, inverse, blocks)

    def __repr__(self) -> str:
        return f"NeighborSampling(fanouts={self.fanouts}, replace={self.replace})"


@dataclass
class SampledTypedBlocks:
    """:class:`SampledBlocks` of a heterograph: every node set is a ``{ntype: ids}``."""

    input_nodes: dict[str, Tensor]
    seeds: dict[str, Tensor]
    inverse: dict[str, Tensor]
    blocks: list[dgl.DGLGraph]


Degrees = dict[tuple[str, str, str], tuple[Tensor, Tensor]]


def block_degrees(graph: dgl.DGLGraph, block: dgl.DGLGraph) -> Degrees:
    """``{relation: (out-degrees of the block's sources, in-degrees of its destinations)}`` in
    the whole ``graph`` (a block's own degrees count only the sampled edges)."""
    out: Degrees = {}
    for etype in block.canonical_etypes:
        src = block.srcnodes[etype[0]].data[dgl.NID]
        dst = block.dstnodes[etype[2]].data[dgl.NID]
        out[etype] = (graph.out_degrees(src, etype=etype), graph.in_degrees(dst, etype=etype))
    return out


def full_blocks(
    graph: dgl.DGLGraph, ntype: str, chunk: int
) -> Iterator[tuple[int, int, dgl.DGLGraph]]:
    """``(lo, hi, block)``: the nodes ``lo .. hi-1`` of ``ntype`` as destinations (chunks of at
    most ``chunk``) with all their in-edges over every relation, sources relabelled
    (``srcdata[dgl.NID]``): layer-wise inference on a heterograph."""
    sampler = dgl.dataloading.MultiLayerFullNeighborSampler(1)
    n = graph.num_nodes(ntype)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        dst = torch.arange(lo, hi, dtype=graph.idtype, device=graph.device)
        _, _, (block,) = sampler.sample_blocks(graph, {ntype: dst})
        yield lo, hi, block


def neighbor_scale(block: dgl.DGLGraph, in_degrees: Tensor) -> Tensor:
    """``[num_dst, 1]``: each destination node's full in-degree (``in_degrees``, indexed by
    graph id) over its in-degree in ``block``, both clamped at 1: a sampled neighbour sum times
    it is an unbiased estimate of the full sum under uniform sampling without replacement,
    and equals it exactly when every in-edge was taken."""
    full = in_degrees[block.dstdata[dgl.NID].long()].to(torch.float32)
    sampled = block.in_degrees().to(full.device, torch.float32)
    return (full.clamp(min=1) / sampled.clamp(min=1)).unsqueeze(1)


def chunk_blocks(graph: dgl.DGLGraph, chunk: int) -> Iterator[tuple[int, int, dgl.DGLGraph]]:
    """``(lo, hi, block)`` for consecutive destination ranges ``[lo, hi)`` of at most
    ``chunk`` nodes: ``block`` has every node of ``graph`` as a source (so a layer reads the
    full feature table without a gather), destinations ``lo .. hi-1`` and all their in-edges.
    Only one chunk's edges exist at a time."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    indptr, indices, _ = graph.adj_tensors("csc")
    n = graph.num_nodes()
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        start, end = int(indptr[lo]), int(indptr[hi])
        src = indices[start:end]
        counts = indptr[lo + 1 : hi + 1] - indptr[lo:hi]
        dst = torch.repeat_interleave(torch.arange(hi - lo, device=src.device), counts)
        block = dgl.create_block(
            (src, dst.to(src.dtype)),
            num_src_nodes=n,
            num_dst_nodes=hi - lo,
            idtype=graph.idtype,
            device=graph.device,
        )
        yield lo, hi, block


@dataclass
class TemporalBlocks:
    """Multi-hop time-respecting blocks (:func:`temporal_blocks`), the first layer first.

    Rows are timed nodes ``(node, t)``: a node looked at at time ``t`` (one node looked at
    at two times is two rows). ``blocks[l]``'s destinations are the rows of layer ``l + 1``
    (the last block's are the seeds, in the order given); its sources are one row per
    sampled edge, the neighbour looked at at the edge's time. The rows of layer ``l`` are the
    sources of ``blocks[l]``, preceded by its destinations when they were kept
    (``keep_destinations``; then a layer's output for its destinations is the first rows of
    its input to the next layer, DGL's block convention, and the seeds are the first rows of
    every layer). Every block carries ``dstdata[dgl.NID]``, ``dstdata["t"]``,
    ``srcdata[dgl.NID]``, ``srcdata["t"]`` and edge data ``timestamp`` (= the source's
    ``t``), ``dt`` (the destination's ``t`` minus it) and ``dgl.EID`` where every edge has an
    id.

    Attributes:
        blocks: one block per layer.
        input_nodes / input_times: ``[N_0]`` the rows of layer 0 (whose features a model
            gathers).
    """

    blocks: list[dgl.DGLGraph]
    input_nodes: Tensor
    input_times: Tensor


def _recency(query: Tensor, n_rows: int) -> Tensor:
    """How recent each event is within its row (0: the most recent), for events grouped by
    ``query`` and oldest first within a row."""
    counts = torch.bincount(query, minlength=n_rows)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(query), device=query.device) - starts[query]
    return counts[query] - 1 - position


def temporal_blocks(
    neighbors: TemporalNeighborhood,
    seeds: Tensor,
    times: Tensor,
    fanouts: Sequence[int],
    *,
    seed_events: TimedNeighbors | None = None,
    keep_destinations: bool = False,
) -> TemporalBlocks:
    """``len(fanouts)`` hops of time-respecting neighbourhoods from a temporal-neighbour hook
    (:class:`~tgraph.graph.temporal.TemporalNeighborhood`: the temporal index of a graph
    relation, :class:`~tgraph.graph.temporal.RecentNeighborSampler`, or of the interaction
    events, :class:`~tgraph.graph.temporal.InteractionNeighbors`), TGAT's sampling.

    ``fanouts[l]``: the most recent neighbours of each destination of layer ``l`` (the first
    layer first, so ``fanouts[-1]`` is the seeds'; ``-1``: all). A destination row ``(v, t)``
    takes the ``fanouts[l]`` most recent events of ``v`` strictly before ``t``; every sampled
    event ``(v, w, t_e)`` makes ``(w, t_e)`` a row of the layer below, whose own events are
    then taken strictly before ``t_e``. So every edge below the seeds' is strictly earlier
    than the time of the row it feeds, which is at most its seed's time.

    ``seed_events``: the seeds' own neighbourhoods, given instead of asked from the hook
    (e.g. :class:`~tgraph.data.queries.Queries` histories, strictly before the event a query
    asks about): ``query`` indexes ``seeds``, grouped by seed and oldest first within one;
    wherever the seeds are destinations they take their ``fanouts[l]`` most recent of them.
    ``keep_destinations``: each layer's rows start with the rows of the layer above (the
    nodes themselves, for a model that combines a node's own state with its neighbours', as
    TGAT does); otherwise a layer's rows are the sampled neighbours only.

    A hook with an ``etype`` gives blocks of that relation (its source and destination
    types must be one, e.g. a symmetric user-item graph: the neighbours of one hop are the
    destinations of the next); without one, homogeneous blocks.
    """
    if not fanouts or any(f == 0 or f < -1 for f in fanouts):
        raise ValueError(f"fanouts must be positive or -1 (all), got {list(fanouts)}")
    etype = neighbors.etype
    if etype is not None and etype[0] != etype[2]:
        raise ValueError(f"temporal_blocks samples one node type through hops, got {etype}")
    nodes = torch.as_tensor(seeds).to(torch.int64)
    at = torch.as_tensor(times).to(torch.int64)
    n_seeds = len(nodes)
    recency = None if seed_events is None else _recency(seed_events.query, n_seeds)
    blocks: list[dgl.DGLGraph] = []
    for fanout in reversed(list(fanouts)):
        # the seeds are the first rows of the top layer, and of every layer when kept
        given = n_seeds if recency is not None and (keep_destinations or not blocks) else 0
        sampled = neighbors.sample(nodes[given:], at[given:], None if fanout == -1 else fanout)
        query, src = sampled.query + given, sampled.src.to(torch.int64)
        stamp, eid = sampled.timestamp, sampled.eid
        if given:
            assert seed_events is not None and recency is not None  # given > 0 only then
            own = recency < fanout if fanout != -1 else torch.ones_like(recency, dtype=torch.bool)
            query = torch.cat([seed_events.query[own], query])
            src = torch.cat([seed_events.src[own].to(torch.int64), src])
            stamp = torch.cat([seed_events.timestamp[own].to(torch.int64), stamp])
            given_eid = seed_events.eid
            eid = None if eid is None or given_eid is None else torch.cat([given_eid[own], eid])
        device = src.device
        nodes, at = nodes.to(device), at.to(device)
        n_edges = len(src)
        edge_src = torch.arange(n_edges, device=device)
        if etype is None:
            block = dgl.create_block(
                (edge_src, query),
                num_src_nodes=n_edges,
                num_dst_nodes=len(nodes),
                idtype=torch.int64,
                device=device,
            )
        else:
            block = dgl.create_block(
                {etype: (edge_src, query)},
                num_src_nodes={etype[0]: n_edges},
                num_dst_nodes={etype[2]: len(nodes)},
                idtype=torch.int64,
                device=device,
            )
        block.dstdata[dgl.NID], block.dstdata["t"] = nodes, at
        block.srcdata[dgl.NID], block.srcdata["t"] = src, stamp
        block.edata["timestamp"] = stamp
        block.edata["dt"] = at[query] - stamp
        if eid is not None:
            block.edata[dgl.EID] = eid.to(torch.int64)
        blocks.insert(0, block)
        if keep_destinations:
            nodes, at = torch.cat([nodes, src]), torch.cat([at, stamp])
        else:
            nodes, at = src, stamp
    return TemporalBlocks(blocks, nodes, at)
