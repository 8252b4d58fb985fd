"""Temporal views of the heterograph and temporal neighbour sampling.

A relation is *timed* when its edges carry ``timestamp`` (see :mod:`tgraph.graph.spec`).
Views filter the timed relations by time and keep the untimed ones (static attributes);
node ids, node data and parent edge ids (``edata[dgl.EID]``) are preserved and the degree
norms are recomputed for the view. Every function takes a
:class:`~tgraph.graph.hetero.TemporalHeteroGraph` or a plain ``dgl.DGLGraph`` and returns the
same kind; all work happens on the graph's device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

import dgl
import numpy as np
import torch

from tgraph.data.temporal_index import TemporalIndex
from tgraph.graph.build import add_degree_norm
from tgraph.graph.hetero import TIMESTAMP, TemporalHeteroGraph, time_span

G = TypeVar("G", dgl.DGLGraph, TemporalHeteroGraph)


def _unwrap(g: dgl.DGLGraph | TemporalHeteroGraph) -> dgl.DGLGraph:
    return g.graph if isinstance(g, TemporalHeteroGraph) else g


def graph_between(g: G, start: int | None = None, end: int | None = None) -> G:
    """View with the timed edges of ``start <= timestamp < end`` (``None``: unbounded) and
    every untimed edge."""
    graph = _unwrap(g)
    keep = {}
    for et in graph.canonical_etypes:
        data = graph.edges[et].data
        mask = torch.ones(graph.num_edges(et), dtype=torch.bool, device=graph.device)
        if TIMESTAMP in data:
            if start is not None:
                mask &= data[TIMESTAMP] >= start
            if end is not None:
                mask &= data[TIMESTAMP] < end
        keep[et] = torch.nonzero(mask).squeeze(1).to(graph.idtype)
    view = add_degree_norm(dgl.edge_subgraph(graph, keep, relabel_nodes=False, store_ids=True))
    if isinstance(g, TemporalHeteroGraph):
        return g.with_graph(view, window=(start, end))
    return view


def graph_before(g: G, t: int) -> G:
    """View as of time ``t``: timed edges with ``timestamp < t`` only, untimed edges kept."""
    return graph_between(g, None, t)


def snapshots(
    g: G,
    window_seconds: int | None = None,
    n: int | None = None,
    cumulative: bool = False,
) -> list[G]:
    """Split the time span ``[t_min, t_max]`` into consecutive windows ``[b_i, b_{i+1})``.

    Give either ``window_seconds`` (``b_i = t_min + i * window_seconds``) or ``n`` equal
    windows (``b_i = t_min + floor(i * (t_max - t_min + 1) / n)``). Each snapshot holds the
    timed edges of its window (all edges before ``b_{i+1}`` when ``cumulative``) and every
    untimed edge. Every timed edge is in exactly one non-cumulative snapshot.
    """
    if (window_seconds is None) == (n is None):
        raise ValueError("give exactly one of window_seconds and n")
    if (window_seconds is not None and window_seconds <= 0) or (n is not None and n <= 0):
        raise ValueError(f"window_seconds and n must be positive, got {window_seconds}, {n}")
    t_min, t_max = time_span(_unwrap(g))
    if t_min is None or t_max is None:
        raise ValueError("the graph has no timed edge to cut into snapshots")
    if n is not None:
        bounds = [t_min + i * (t_max - t_min + 1) // n for i in range(n + 1)]
    else:
        assert window_seconds is not None  # exactly one of the two, checked above
        count = (t_max - t_min) // window_seconds + 1
        bounds = [t_min + i * window_seconds for i in range(count + 1)]
    return [
        graph_between(g, None if cumulative else lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])
    ]


def events_block(
    src: torch.Tensor,
    dst: torch.Tensor,
    num_dst: int,
    etype: tuple[str, str, str] | None = None,
) -> tuple[dgl.DGLGraph, torch.Tensor]:
    """A DGL block with one edge per event ``src[j] -> dst[j]``: destination nodes
    ``0 .. num_dst - 1`` (the queries), source nodes the distinct ``src`` ids (returned,
    ascending; edge ``j`` starts at the position of ``src[j]`` among them). Repeated events
    are parallel edges. ``etype``: the relation of a heterogeneous block (homogeneous if
    ``None``). Shared by the temporal neighbour sampler and TGAT's neighbourhood."""
    unique, local = torch.unique(src, return_inverse=True)
    if etype is None:
        block = dgl.create_block(
            (local, dst),
            num_src_nodes=len(unique),
            num_dst_nodes=num_dst,
            idtype=src.dtype,
            device=src.device,
        )
    else:
        block = dgl.create_block(
            {etype: (local, dst)},
            num_src_nodes={etype[0]: len(unique)},
            num_dst_nodes={etype[2]: num_dst},
            idtype=src.dtype,
            device=src.device,
        )
    return block, unique


@dataclass
class TimedNeighbors:
    """Sampled timed neighbours, what a :class:`TemporalNeighborhood` returns: row ``j`` is
    the event at ``timestamp[j]`` that joins the node of input row ``query[j]`` to the node
    ``src[j]``, strictly before that row's time; ``eid[j]`` is its edge id where the events
    have one (``None`` otherwise). Rows are grouped by ``query`` in input order, oldest first
    within a query."""

    query: torch.Tensor
    src: torch.Tensor
    timestamp: torch.Tensor
    eid: torch.Tensor | None


class TemporalNeighborhood(Protocol):
    """The temporal-neighbour hook that every time-respecting sampler of tgraph offers and
    :func:`~tgraph.graph.sampling.temporal_blocks` builds multi-hop blocks from.

    ``sample(nodes, times, k)``: for each input row ``(nodes[q], times[q])`` the ``k`` most
    recent events of that node strictly before ``times[q]`` (all of them when ``k`` is
    ``None``), as :class:`TimedNeighbors` on the device the hook keeps its samples on.
    ``etype``: the relation whose nodes the ids are (its source and destination types), or
    ``None`` for ids of no graph's node type (e.g. :func:`interaction_key`)."""

    @property
    def etype(self) -> tuple[str, str, str] | None: ...

    def sample(self, nodes: torch.Tensor, times: torch.Tensor, k: int | None) -> TimedNeighbors: ...


@dataclass
class TemporalNeighbors(TimedNeighbors):
    """Sampled edges of one relation (:class:`RecentNeighborSampler`); row ``j`` is edge
    ``eid[j]`` from ``src[j]`` to ``seeds[query[j]]``, with ``timestamp[j] <
    times[query[j]]``. Within a query, rows run from oldest to most recent."""

    eid: torch.Tensor
    etype: tuple[str, str, str]
    seeds: torch.Tensor
    times: torch.Tensor

    def to_block(self) -> dgl.DGLGraph:
        """A DGL block whose destination nodes are the queries (``dstdata[dgl.NID]`` = seeds,
        ``dstdata["t"]`` = times) and source nodes the distinct sampled neighbours
        (``srcdata[dgl.NID]``); edge data ``dgl.EID``, ``timestamp`` and ``dt = t - timestamp``
        (see :func:`events_block`)."""
        src_type, _, dst_type = self.etype
        block, unique = events_block(self.src, self.query, len(self.seeds), self.etype)
        block.srcnodes[src_type].data[dgl.NID] = unique
        block.dstnodes[dst_type].data[dgl.NID] = self.seeds
        block.dstnodes[dst_type].data["t"] = self.times
        block.edata[dgl.EID] = self.eid
        block.edata[TIMESTAMP] = self.timestamp
        block.edata["dt"] = self.times[self.query] - self.timestamp
        return block


class RecentNeighborSampler:
    """The ``k`` most recent in-neighbours over one timed relation, strictly before a time.

    The relation's edges are the events of a :class:`~tgraph.data.temporal_index.TemporalIndex`
    keyed by destination node, added in edge-id order, so the index's event ids are the edge
    ids and ties in timestamp are broken by edge id (the larger id counts as more recent). A
    batch of queries costs :math:`O(Q \\log E + \\text{output})` with no Python loop (see the
    index). The index lives in host memory; the samples are returned on the graph's device.
    Sample neighbours of a node of the source type with the reverse relation (e.g.
    ``rev_interacts`` for a user's items).
    """

    def __init__(self, g: dgl.DGLGraph | TemporalHeteroGraph, etype: str | tuple[str, str, str]):
        graph = _unwrap(g)
        self.etype = graph.to_canonical_etype(etype)
        if TIMESTAMP not in graph.edges[self.etype].data:
            raise ValueError(f"relation {self.etype} has no '{TIMESTAMP}' edge data")
        src, dst = graph.edges(form="uv", etype=self.etype, order="eid")
        ts = graph.edges[self.etype].data[TIMESTAMP]
        self.device, self.idtype = src.device, src.dtype
        self.num_dst = graph.num_nodes(self.etype[2])
        self.index = TemporalIndex.from_events(
            dst.cpu().numpy(), ts.cpu().numpy().astype(np.int64), src=src.cpu().numpy()
        )

    def sample(self, seeds: torch.Tensor, times: torch.Tensor, k: int | None) -> TemporalNeighbors:
        """For each query ``(seeds[q], times[q])`` the ``k`` most recent edges with
        ``timestamp < times[q]`` (all of them when ``k`` is ``None``)."""
        seeds = torch.as_tensor(seeds).to(torch.int64).cpu()
        times = torch.as_tensor(times).to(torch.int64).cpu()
        if seeds.shape != times.shape or seeds.dim() != 1:
            raise ValueError("seeds and times must be 1-D tensors of one length")
        if seeds.numel() and (seeds.min() < 0 or seeds.max() >= self.num_dst):
            raise ValueError(f"seed ids must lie in [0, {self.num_dst})")
        recent = self.index.recent(seeds.numpy(), times.numpy(), k)
        query, position = recent.flat()

        def tensor(values: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(values)).to(self.device, dtype)

        return TemporalNeighbors(
            etype=self.etype,
            seeds=seeds.to(self.device),
            times=times.to(self.device),
            src=tensor(recent["src"][query, position], self.idtype),
            query=tensor(query, torch.int64),
            eid=tensor(recent.edge[query, position], self.idtype),
            timestamp=tensor(recent.time[query, position], torch.int64),
        )


def sample_recent_neighbors(
    g: dgl.DGLGraph | TemporalHeteroGraph,
    etype: str | tuple[str, str, str],
    seeds: torch.Tensor,
    times: torch.Tensor,
    k: int | None,
) -> TemporalNeighbors:
    """One-off :meth:`RecentNeighborSampler.sample`; build the sampler once to reuse its index."""
    return RecentNeighborSampler(g, etype).sample(seeds, times, k)


def interaction_key(node: torch.Tensor, is_item: bool | torch.Tensor) -> torch.Tensor:
    """The key of a user (``2 * node``) or an item (``2 * node + 1``) in an
    :class:`InteractionNeighbors` index: one id space for both sides that stays valid when
    either catalogue grows."""
    return 2 * node.to(torch.int64) + torch.as_tensor(is_item, dtype=torch.int64)


class InteractionNeighbors:
    """The ``k`` most recent neighbours on both sides of the user-item interaction graph,
    strictly before a time: a user's items and an item's users.

    One :class:`~tgraph.data.temporal_index.TemporalIndex` holds every event ``(u, i, t)``
    twice, keyed by the user (``2u``, neighbour ``2i + 1``) and by the item (``2i + 1``,
    neighbour ``2u``; :func:`interaction_key`), so a batch mixing users and items is one
    vectorised query. Events arrive in the order given (ties in time: the later one is the
    more recent); :meth:`add` appends new ones (streaming updates) and new users or items
    need no re-keying. The index lives in host memory; samples come back on the device of
    the keys asked about. Its ``etype`` is ``None``: keys are no graph's node ids.
    """

    etype = None

    def __init__(self, user: np.ndarray, item: np.ndarray, timestamp: np.ndarray) -> None:
        self.index = TemporalIndex({"other": np.dtype(np.int64)})
        self.add(user, item, timestamp)

    def add(self, user: np.ndarray, item: np.ndarray, timestamp: np.ndarray) -> None:
        """Append events ``(user[j], item[j], timestamp[j])`` (after every event already in)."""
        user_key = 2 * np.asarray(user, dtype=np.int64)
        item_key = 2 * np.asarray(item, dtype=np.int64) + 1
        time = np.asarray(timestamp, dtype=np.int64)
        if not user_key.shape == item_key.shape == time.shape:
            raise ValueError("user, item and timestamp must have one length")
        self.index.append(
            np.concatenate([user_key, item_key]),
            np.concatenate([time, time]),
            other=np.concatenate([item_key, user_key]),
        )

    def sample(self, keys: torch.Tensor, times: torch.Tensor, k: int | None) -> TimedNeighbors:
        """For each row ``(keys[q], times[q])`` the ``k`` most recent events of that node
        with ``timestamp < times[q]`` (all of them when ``k`` is ``None``)."""
        device = torch.as_tensor(keys).device
        keys = torch.as_tensor(keys).to(torch.int64).cpu()
        times = torch.as_tensor(times).to(torch.int64).cpu()
        if keys.shape != times.shape or keys.dim() != 1:
            raise ValueError("keys and times must be 1-D tensors of one length")
        recent = self.index.recent(keys.numpy(), times.numpy(), k)
        query, position = recent.flat()

        def tensor(values: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64)).to(device)

        return TimedNeighbors(
            query=tensor(query),
            src=tensor(recent["other"][query, position]),
            timestamp=tensor(recent.time[query, position]),
            eid=None,
        )
