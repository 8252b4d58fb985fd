"""Partitions of the user-item graph for DGL's distributed engine (``tgraph partition``).

:func:`partition` writes the symmetric user-item graph of a split's training events
(:func:`~tgraph.graph.bipartite.bipartite_graph`: distinct pairs, so no duplicate edge reaches
METIS, which crashes on them) as ``parts`` partitions with
:func:`dgl.distributed.partition_graph` (METIS, balanced edges; one part is written as is).
Node data travel with the partitions: ``deg`` (float32, each node's full degree, for the
LightGCN norms of sampled neighbourhoods) and ``is_item`` (uint8: a ``DistTensor`` cannot be
bool).

Partitioning renumbers the nodes. Beside DGL's files (``<out>/<graph_name>.json`` and one
folder per part) tgraph writes ``tgraph_ids.npy`` (the distributed id of every tgraph node:
users ``0 .. U-1``, then items ``U .. U+I-1``) and ``tgraph_partition.json`` (the counts and
the split's summary, checked by every trainer against the split it loads).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import dgl
import numpy as np
import torch

from tgraph.data.split import Split
from tgraph.errors import ConfigError
from tgraph.graph.bipartite import bipartite_graph

log = logging.getLogger(__name__)

GRAPH_NAME = "tgraph"
IDS_FILE = "tgraph_ids.npy"
META_FILE = "tgraph_partition.json"


def partition(split: Split, parts: int, out: str | Path, graph_name: str = GRAPH_NAME) -> Path:
    """Write the training graph of ``split`` in ``parts`` partitions under ``out``; returns
    the partition config (``<out>/<graph_name>.json``) that servers and trainers read."""
    if parts < 1:
        raise ConfigError(f"--parts {parts}: give at least 1 partition", key="parts")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    graph = bipartite_graph(split.train)
    graph.ndata["is_item"] = graph.ndata["is_item"].to(torch.uint8)
    graph.ndata["deg"] = graph.in_degrees().to(torch.float32)  # symmetric: in = out
    orig_nids, _ = dgl.distributed.partition_graph(
        graph,
        graph_name,
        parts,
        str(out),
        part_method="metis" if parts > 1 else "random",
        balance_edges=parts > 1,
        return_mapping=True,
    )
    ids = np.empty(graph.num_nodes(), dtype=np.int64)
    ids[np.asarray(orig_nids)] = np.arange(graph.num_nodes())
    np.save(out / IDS_FILE, ids)
    meta = {
        "graph_name": graph_name,
        "parts": parts,
        "n_users": split.n_users,
        "n_items": split.n_items,
        "n_nodes": graph.num_nodes(),
        "n_edges": graph.num_edges(),
        "split": split.summary(),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    log.info(
        "partitioned %d nodes, %d edges into %d parts: %s",
        graph.num_nodes(),
        graph.num_edges(),
        parts,
        out / f"{graph_name}.json",
    )
    return out / f"{graph_name}.json"


def read_partition(part_config: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    """The metadata :func:`partition` wrote beside ``part_config`` and the distributed id of
    every tgraph node."""
    folder = Path(part_config).parent
    meta = json.loads((folder / META_FILE).read_text())
    return meta, np.load(folder / IDS_FILE)
