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
* :func:`temporal_blocks`: multi-hop time-respecting blocks from a
  :class:`~tgraph.graph.temporal.RecentNeighborSampler` (the temporal index): a seed
  ``(v, t)`` takes its ``k`` most recent in-edges strictly before ``t``, and a neighbour
  reached by an edge at time ``t_e`` takes its own strictly before ``t_e`` (TGAT's rule), so no
  block holds an edge at or after the time of the node it feeds.
* :func:`history_blocks`: the same rule on the user-item interaction graph for TGAT's ``L``
  layers, the queries' own neighbourhoods being their histories
  (:class:`~tgraph.graph.temporal.InteractionNeighbors`, :class:`HistoryBlocks`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import dgl
import torch
from torch import Tensor

from tgraph.graph.temporal import InteractionNeighbors, RecentNeighborSampler


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

    ``blocks[l]``'s destination nodes are the source nodes of ``blocks[l + 1]`` (the last
    block's are the seeds); each block carries ``dstdata[dgl.NID]``, ``dstdata["t"]`` (the
    time each destination is looked at), ``srcdata[dgl.NID]`` and edge data ``dgl.EID``,
    ``timestamp`` and ``dt`` (> 0). ``src_times[l]``: the time each source node of
    ``blocks[l]`` is looked at (the timestamp of the edge that reached it), which is the
    ``dstdata["t"]`` of ``blocks[l - 1]``.
    """

    blocks: list[dgl.DGLGraph]
    src_times: list[Tensor]


def temporal_blocks(
    sampler: RecentNeighborSampler, seeds: Tensor, times: Tensor, fanouts: Sequence[int]
) -> TemporalBlocks:
    """``len(fanouts)`` hops of the ``fanouts[l]`` most recent in-neighbours (``-1``: all)
    over the sampler's timed relation (its source and destination types must be one node
    type, e.g. a symmetric user-item graph; for a bipartite relation, sample each hop with
    the right direction yourself).

    Hop 1 samples the edges of every seed ``(seeds[q], times[q])`` strictly before
    ``times[q]``; every sampled edge ``(u -> v, t_e)`` makes ``(u, t_e)`` a destination of the
    next hop, which takes ``u``'s edges strictly before ``t_e``. Destinations are per
    (node, time): one node looked at at two times is two destination rows. So every edge in
    every block is strictly earlier than the time of the destination it feeds, which is at
    most the seed's time.
    """
    etype = sampler.etype
    if etype[0] != etype[2]:
        raise ValueError(f"temporal_blocks samples one node type through hops, got {etype}")
    blocks: list[dgl.DGLGraph] = []
    src_times: list[Tensor] = []
    dst_nodes = torch.as_tensor(seeds).to(torch.int64)
    dst_times = torch.as_tensor(times).to(torch.int64)
    for fanout in reversed(list(fanouts)):
        sampled = sampler.sample(dst_nodes, dst_times, None if fanout == -1 else fanout)
        # one source row per sampled edge: it is looked at at that edge's time
        n_edges = len(sampled.src)
        block = dgl.create_block(
            {etype: (torch.arange(n_edges, device=sampled.src.device), sampled.query)},
            num_src_nodes={etype[0]: n_edges},
            num_dst_nodes={etype[2]: len(sampled.seeds)},
            idtype=torch.int64,
            device=sampled.src.device,
        )
        block.srcdata[dgl.NID] = sampled.src.to(torch.int64)
        block.dstdata[dgl.NID] = sampled.seeds
        block.dstdata["t"] = sampled.times
        block.edata[dgl.EID] = sampled.eid.to(torch.int64)
        block.edata["timestamp"] = sampled.timestamp
        block.edata["dt"] = sampled.times[sampled.query] - sampled.timestamp
        blocks.insert(0, block)
        src_times.insert(0, sampled.timestamp)
        dst_nodes, dst_times = sampled.src.to(torch.int64), sampled.timestamp
    return TemporalBlocks(blocks, src_times)


@dataclass
class HistoryBlocks:
    """TGAT's computation graph for a batch of queries (:func:`history_blocks`), the first
    layer first.

    Rows are timed nodes ``(key, t)`` (:func:`~tgraph.graph.temporal.interaction_key`: a
    user or an item looked at at time ``t``). ``blocks[l]``'s destinations are the rows of
    layer ``l + 1`` (the last block's are the queries); its sources are one row per edge,
    the neighbour looked at at the edge's time; the rows of layer ``l`` are the destinations
    of ``blocks[l]`` followed by its sources, so a layer's output for its destinations is the
    first rows of its input to the next layer (DGL's block convention). Every block carries
    ``dstdata["key"]``, ``dstdata["t"]``, ``srcdata["key"]``, ``srcdata["t"]`` and edge data
    ``timestamp`` (= the source's ``t``) and ``dt`` (the destination's time minus it). The
    first rows of every layer are the queries themselves.

    Attributes:
        blocks: one block per layer.
        input_keys / input_times: ``[N_0]`` the rows of layer 0 (whose features are the
            embeddings of the keys).
    """

    blocks: list[dgl.DGLGraph]
    input_keys: Tensor
    input_times: Tensor


def history_blocks(
    neighbors: InteractionNeighbors,
    seed_keys: Tensor,
    seed_times: Tensor,
    history: tuple[Tensor, Tensor, Tensor],
    fanouts: Sequence[int],
) -> HistoryBlocks:
    """``len(fanouts)`` layers of time-respecting neighbourhoods for queries whose own
    neighbourhood is given (their histories), TGAT's sampling.

    ``history = (query, key, time)``: the events of each query (``seed_keys[query[j]]`` at
    ``seed_times[query[j]]``) with the node ``key[j]`` at ``time[j]``, oldest first within a
    query (e.g. :class:`~tgraph.data.queries.Queries` histories, strictly before the event a
    query asks about). ``fanouts[l]``: the neighbours of each destination of layer ``l`` (the
    first layer first, so ``fanouts[-1]`` is the queries' own): a query takes its
    ``fanouts[l]`` most recent history events; any other row ``(v, t)`` the
    ``fanouts[l]`` most recent events of ``v`` strictly before ``t`` from ``neighbors``. A
    node reached by an edge at ``t_e`` is looked at at ``t_e``, so every edge below the
    queries' is strictly earlier than the time of the row it feeds."""
    if not fanouts or min(fanouts) < 1:
        raise ValueError(f"fanouts must be positive, got {list(fanouts)}")
    hist_query, hist_key, hist_time = history
    n_seeds = len(seed_keys)
    device = seed_keys.device
    # how recent each history event is within its query (0: the most recent)
    counts = torch.bincount(hist_query, minlength=n_seeds)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(hist_query), device=device) - starts[hist_query]
    recency = counts[hist_query] - 1 - position
    keys, times = seed_keys.to(torch.int64), seed_times.to(torch.int64)
    blocks: list[dgl.DGLGraph] = []
    for fanout in reversed(list(fanouts)):
        own = recency < fanout
        sampled = neighbors.sample(keys[n_seeds:], times[n_seeds:], fanout)
        dst = torch.cat([hist_query[own], sampled.query + n_seeds])
        src_key = torch.cat([hist_key[own].to(torch.int64), sampled.key])
        src_time = torch.cat([hist_time[own].to(torch.int64), sampled.timestamp])
        n_edges = len(dst)
        block = dgl.create_block(
            (torch.arange(n_edges, device=device), dst),
            num_src_nodes=n_edges,
            num_dst_nodes=len(keys),
            idtype=torch.int64,
            device=device,
        )
        block.dstdata["key"], block.dstdata["t"] = keys, times
        block.srcdata["key"], block.srcdata["t"] = src_key, src_time
        block.edata["timestamp"] = src_time
        block.edata["dt"] = times[dst] - src_time
        blocks.insert(0, block)
        keys, times = torch.cat([keys, src_key]), torch.cat([times, src_time])
    return HistoryBlocks(blocks, keys, times)
