"""The temporal heterograph: built from a split's training part, viewed as of time t, sampled.

See :mod:`tgraph.graph.spec` for node types and relation names.
"""

from tgraph.graph.build import add_degree_norm, build_graph
from tgraph.graph.hetero import GraphMeta, TemporalHeteroGraph, time_span, timed_etypes
from tgraph.graph.io import load_graph, save_graph
from tgraph.graph.sampling import NeighborSampling, chunk_blocks, temporal_blocks
from tgraph.graph.spec import GraphSpec, reverse
from tgraph.graph.temporal import (
    RecentNeighborSampler,
    TemporalNeighborhood,
    TemporalNeighbors,
    TimedNeighbors,
    events_block,
    graph_before,
    graph_between,
    sample_recent_neighbors,
    snapshots,
)
from tgraph.graph.training import check_graph_leakage, has_coordinates, training_heterograph

__all__ = [
    "GraphMeta",
    "GraphSpec",
    "NeighborSampling",
    "RecentNeighborSampler",
    "TemporalHeteroGraph",
    "TemporalNeighborhood",
    "TemporalNeighbors",
    "TimedNeighbors",
    "add_degree_norm",
    "build_graph",
    "check_graph_leakage",
    "chunk_blocks",
    "events_block",
    "graph_before",
    "graph_between",
    "has_coordinates",
    "load_graph",
    "reverse",
    "sample_recent_neighbors",
    "save_graph",
    "snapshots",
    "temporal_blocks",
    "time_span",
    "timed_etypes",
    "training_heterograph",
]
