"""Save and load a :class:`~tgraph.graph.hetero.TemporalHeteroGraph`.

``path`` (e.g. ``graph.bin``) holds the DGL graph with all node and edge data
(``dgl.save_graphs``); ``path + ".json"`` holds the metadata record and a format version.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dgl

from tgraph.errors import DataError
from tgraph.graph.hetero import GraphMeta, TemporalHeteroGraph

FORMAT_VERSION = 1


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def save_graph(g: TemporalHeteroGraph, path: str | os.PathLike) -> Path:
    """Write the graph to ``path`` and its metadata to ``path + ".json"``; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dgl.save_graphs(str(path), [g.graph.cpu()])
    record = {"format_version": FORMAT_VERSION, "meta": g.meta.to_dict()}
    _sidecar(path).write_text(json.dumps(record, indent=1, default=str))
    return path


def load_graph(path: str | os.PathLike, device: str | None = None) -> TemporalHeteroGraph:
    """Read a graph written by :func:`save_graph`, optionally moving it to ``device``."""
    path = Path(path)
    sidecar = _sidecar(path)
    for file in (path, sidecar):
        if not file.is_file():
            raise DataError(
                "graph file not found",
                source=str(file),
                fix="save with tgraph.graph.save_graph, which writes both the .bin and .json",
            )
    record = json.loads(sidecar.read_text())
    if record.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"unsupported graph format version {record.get('format_version')!r}",
            source=str(sidecar),
            column="format_version",
            fix=f"rebuild the graph with this tgraph version (format {FORMAT_VERSION})",
        )
    graphs, _ = dgl.load_graphs(str(path))
    g = TemporalHeteroGraph(graphs[0], GraphMeta.from_dict(record["meta"]))
    return g if device is None else g.to(device)
