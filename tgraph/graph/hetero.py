"""The temporal heterograph: a plain ``dgl.DGLGraph`` plus a small metadata record.

:class:`TemporalHeteroGraph` only pairs the DGL graph (``.graph``, usable by every DGL tool)
with :class:`GraphMeta` (spec, id maps, time span, build report); it adds no graph logic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import dgl
import pandas as pd
import torch

TIMESTAMP = "timestamp"


def timed_etypes(graph: dgl.DGLGraph) -> list[tuple[str, str, str]]:
    """Canonical edge types whose edges carry a ``timestamp``."""
    return [et for et in graph.canonical_etypes if TIMESTAMP in graph.edges[et].data]


def time_span(graph: dgl.DGLGraph) -> tuple[int | None, int | None]:
    """Smallest and largest edge timestamp over all timed relations (``None`` when no edge)."""
    stamps = [graph.edges[et].data[TIMESTAMP] for et in timed_etypes(graph)]
    stamps = [s for s in stamps if s.numel()]
    if not stamps:
        return None, None
    return min(int(s.min()) for s in stamps), max(int(s.max()) for s in stamps)


@dataclass
class GraphMeta:
    """What a graph was built from.

    Attributes:
        name: dataset name of the training interactions.
        spec: the :class:`~tgraph.graph.spec.GraphSpec` as a dict.
        user_raw_ids / item_raw_ids: raw id of each user / item node (node id = code).
        t_min / t_max: time span of the timed edges (UTC seconds).
        window: ``(start, end)`` of the temporal view, ``start <= t < end``; ``None`` = open.
        coord_mean / coord_std: (lat, lon) statistics used to normalise ``coord`` features.
        report: counts from the build (e.g. items without a location), nothing dropped silently.
    """

    name: str
    spec: dict[str, Any]
    user_raw_ids: list[Any]
    item_raw_ids: list[Any]
    t_min: int | None
    t_max: int | None
    window: tuple[int | None, int | None] = (None, None)
    coord_mean: list[float] | None = None
    coord_std: list[float] | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["window"] = list(self.window)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphMeta:
        data = dict(data)
        data["window"] = tuple(data.get("window", (None, None)))
        return cls(**data)


def _iso(t: int | None) -> str:
    return "-" if t is None else str(pd.to_datetime(t, unit="s"))


@dataclass
class TemporalHeteroGraph:
    """A heterograph built from training interactions; ``.graph`` is the plain DGL graph."""

    graph: dgl.DGLGraph
    meta: GraphMeta

    @property
    def device(self) -> torch.device:
        return self.graph.device

    def to(self, device: str | torch.device) -> TemporalHeteroGraph:
        """A copy whose graph, node and edge features live on ``device``."""
        return TemporalHeteroGraph(self.graph.to(device), self.meta)

    def with_graph(self, graph: dgl.DGLGraph, **changes: Any) -> TemporalHeteroGraph:
        """A copy with another graph (a view of this one); the time span is recomputed."""
        t_min, t_max = time_span(graph)
        meta = dataclasses.replace(self.meta, t_min=t_min, t_max=t_max, **changes)
        return TemporalHeteroGraph(graph, meta)

    def summary(self) -> dict[str, Any]:
        """Node and edge counts per type and the time span, for logs and reports."""
        g = self.graph
        return {
            "name": self.meta.name,
            "num_nodes": {nt: g.num_nodes(nt) for nt in g.ntypes},
            "num_edges": {"-".join(et): g.num_edges(et) for et in g.canonical_etypes},
            "timed_relations": ["-".join(et) for et in timed_etypes(g)],
            "start": _iso(self.meta.t_min),
            "end": _iso(self.meta.t_max),
            "window": [_iso(t) for t in self.meta.window],
            "device": str(g.device),
        }

    def __repr__(self) -> str:
        s = self.summary()
        width = max(len(k) for k in [*s["num_nodes"], *s["num_edges"]])
        lines = [f"TemporalHeteroGraph({s['name']!r}, {s['start']} .. {s['end']}, {s['device']})"]
        if self.meta.window != (None, None):
            lines.append(f"  view: {s['window'][0]} <= t < {s['window'][1]}")
        lines.append("  nodes:")
        lines += [f"    {k:<{width}} {v:>12,}" for k, v in s["num_nodes"].items()]
        lines.append("  edges (* timed):")
        timed = set(s["timed_relations"])
        lines += [
            f"    {k:<{width}} {v:>12,}{' *' if k in timed else ''}"
            for k, v in s["num_edges"].items()
        ]
        return "\n".join(lines)
