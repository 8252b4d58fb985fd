"""The plain user-item graph of LightGCN-type models.

One homogeneous DGL graph with ``n_users + n_items`` nodes: users are nodes ``0 .. U-1``,
items are nodes ``U .. U+I-1``. Every distinct (user, item) pair of the training events gives
two directed edges, user -> item and item -> user, so that the graph is the symmetric
adjacency :math:`A = [[0, R], [R^T, 0]]` of the interaction matrix ``R`` (repeated
interactions count once, as in LightGCN).
"""

from __future__ import annotations

import logging

import dgl
import numpy as np
import torch

from tgraph.data.interactions import Interactions

log = logging.getLogger(__name__)


def user_item_pairs(train: Interactions) -> np.ndarray:
    """Distinct (user, item) pairs of ``train`` as an ``[E, 2]`` int64 array, sorted."""
    events = train.events
    key = events["user"].to_numpy(np.int64) * train.n_items + events["item"].to_numpy(np.int64)
    key = np.unique(key)
    return np.stack([key // train.n_items, key % train.n_items], axis=1)


def bipartite_graph(train: Interactions) -> dgl.DGLGraph:
    """The symmetric user-item graph of the training events (see the module docstring);
    ``graph.ndata["is_item"]`` marks the item nodes."""
    pairs = user_item_pairs(train)
    users = torch.from_numpy(pairs[:, 0])
    items = torch.from_numpy(pairs[:, 1]) + train.n_users
    n_nodes = train.n_users + train.n_items
    graph = dgl.graph((torch.cat([users, items]), torch.cat([items, users])), num_nodes=n_nodes)
    is_item = torch.zeros(n_nodes, dtype=torch.bool)
    is_item[train.n_users :] = True
    graph.ndata["is_item"] = is_item
    log.info(
        "user-item graph: %d nodes, %d distinct pairs from %d events",
        n_nodes,
        len(pairs),
        len(train),
    )
    return graph
