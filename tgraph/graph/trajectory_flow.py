"""GETNext's trajectory flow graph (Yang et al., SIGIR 2022): POIs and their transitions.

The graph is built from a split's training events only (what a model may see). Trajectories
are each user's check-ins cut where the gap between two consecutive check-ins exceeds
``gap`` seconds (24 hours, as GETNext and STHGCN); a directed edge ``i -> j`` counts how
often ``j`` directly follows ``i`` inside one trajectory. Every item code is a node (POIs
never seen in training are isolated), carrying its training check-in count.
"""

from __future__ import annotations

import dgl
import numpy as np
import pandas as pd
import torch

from tgraph.data.interactions import Interactions
from tgraph.data.transitions import Transitions

#: GETNext's / STHGCN's trajectory cut: a gap of more than 24 hours starts a new trajectory
TRAJECTORY_GAP = 24 * 3600


def flow_transitions(events: pd.DataFrame, gap: int = TRAJECTORY_GAP) -> pd.DataFrame:
    """The distinct transitions ``(src, dst, count)`` of ``events`` (columns user, item,
    timestamp): consecutive check-ins of one user at most ``gap`` seconds apart (inside one
    trajectory), counted; sorted by (src, dst). Ties in time keep the frame's row order."""
    user, item, time = (events[c].to_numpy(np.int64) for c in ("user", "item", "timestamp"))
    steps = Transitions(max_gap=gap).steps(user, item, time)
    pairs = pd.DataFrame({"src": steps.prev, "dst": steps.next})
    counts = pairs.groupby(["src", "dst"]).size().rename("count").reset_index()
    return counts.astype(np.int64)


def trajectory_flow_graph(train: Interactions, gap: int = TRAJECTORY_GAP) -> dgl.DGLGraph:
    """The trajectory flow graph of ``train`` (a split's training part).

    Nodes: the ``train.n_items`` item codes, ``ndata["visits"]`` (float) the number of
    training check-ins. Edges: the distinct transitions ``i -> j`` of
    :func:`flow_transitions` (self-transitions, a repeated check-in at one POI, included),
    ``edata["count"]`` (float) how often each occurs.
    """
    flows = flow_transitions(train.events, gap)
    graph = dgl.graph(
        (torch.tensor(flows["src"].to_numpy()), torch.tensor(flows["dst"].to_numpy())),
        num_nodes=train.n_items,
    )
    graph.edata["count"] = torch.tensor(flows["count"].to_numpy(), dtype=torch.float32)
    visits = np.bincount(train.events["item"].to_numpy(np.int64), minlength=train.n_items)
    graph.ndata["visits"] = torch.from_numpy(visits).float()
    return graph


def random_walk_weights(graph: dgl.DGLGraph) -> tuple[dgl.DGLGraph, torch.Tensor]:
    r"""GETNext's normalised flow matrix :math:`\tilde L = (D + I)^{-1} (A + I)` as a graph
    for message passing: ``A_{ij}`` = the count of transition ``i -> j``, ``D`` its row sums
    (weighted out-degrees). Returns ``(message_graph, weight)``: the message graph has an edge
    ``j -> i`` for every non-zero :math:`\tilde L_{ij}` (the transitions reversed, plus a
    self-loop on every node; one edge per pair), ``weight`` its :math:`\tilde L_{ij}`
    (``[E]``), so that summing ``weight * h_src`` over the in-edges of ``i`` gives
    :math:`(\tilde L H)_i`: each POI aggregates over the POIs that follow it. Rows sum to 1.
    """
    src, dst = graph.edges()
    n = graph.num_nodes()
    loops = torch.arange(n, dtype=src.dtype)
    count = torch.cat([graph.edata["count"], torch.ones(n)])
    # one entry per (i, j): a self-transition and the added self-loop are summed
    key, inverse = torch.unique(
        torch.cat([src, loops]) * n + torch.cat([dst, loops]), return_inverse=True
    )
    count = torch.zeros(len(key)).index_add_(0, inverse, count)
    rows, cols = key // n, key % n
    degree = torch.zeros(n).index_add_(0, rows, count)
    weight = count / degree[rows]
    message = dgl.graph((cols, rows), num_nodes=n)
    return message, weight
