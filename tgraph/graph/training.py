"""The heterograph a model trains on: :func:`training_heterograph` of a split's training part.

Regions are fitted here (k-means on the training items' coordinates) and the graph is then
built by :func:`~tgraph.graph.build.build_graph`, so that every model that propagates over the
temporal heterograph (HeteroGNN, the flagship) sees the same graph for the same config.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import dgl
import numpy as np

from tgraph.config import validate_model
from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import add_regions, fit_kmeans, item_coordinates
from tgraph.data.split import Split
from tgraph.graph.build import build_graph
from tgraph.graph.hetero import TemporalHeteroGraph
from tgraph.graph.spec import ITEM, GraphSpec

logger = logging.getLogger(__name__)


def has_coordinates(train: Interactions) -> bool:
    """Whether the items (or the events) carry lat/lon."""
    return {"lat", "lon"} <= set(train.items.columns) or (train.has("lat") and train.has("lon"))


def training_heterograph(
    train: Interactions,
    spec: GraphSpec | Mapping[str, Any] | None = None,
    n_regions: int = 100,
    seed: int = 0,
    drop_ntypes: Sequence[str] = (),
) -> TemporalHeteroGraph:
    """The heterograph of ``train`` (a split's training part) for a model.

    When ``spec.locations`` is set and the items have coordinates, ``n_regions`` k-means
    regions (seeded) are fitted on the coordinates of the items that occur in ``train``'s
    events only, and every item gets its nearest region (no validation/test information
    enters). Without coordinates an existing ``region`` column is used; without either,
    location nodes are left out (logged, and recorded in ``meta.report``).
    ``drop_ntypes`` removes node types and every relation touching them.
    """
    spec = validate_model(GraphSpec, spec, "graph")
    report: dict[str, Any] = {}
    if spec.locations and has_coordinates(train):
        lat, lon = item_coordinates(train)
        seen = np.unique(train.events["item"].to_numpy())
        seen = seen[np.isfinite(lat[seen]) & np.isfinite(lon[seen])]
        distinct = len(np.unique(np.round(np.stack([lat[seen], lon[seen]], 1), 9), axis=0))
        k = min(n_regions, distinct)
        train, _ = add_regions(train, fit_kmeans(lat[seen], lon[seen], k, seed=seed))
        report["regions"] = {"method": "kmeans", "k": k, "fitted_on_items": len(seen)}
    elif spec.locations and not ("region" in train.items.columns or train.has("region")):
        report["locations_left_out"] = "no coordinates and no region column"
        logger.info("%s: location nodes left out (no coordinates, no region)", train.name)
        spec = spec.model_copy(update={"locations": False})
    graph = build_graph(train, spec)
    graph.meta.report.update(report)
    if drop_ntypes:
        keep = [
            et
            for et in graph.graph.canonical_etypes
            if et[0] not in drop_ntypes and et[2] not in drop_ntypes
        ]
        if not keep:
            raise ValueError(f"dropping node types {list(drop_ntypes)} leaves no relation")
        graph = graph.with_graph(dgl.edge_type_subgraph(graph.graph, keep))
    return graph


def check_graph_leakage(split: Split, graph: TemporalHeteroGraph) -> dict[str, Any]:
    """:meth:`Split.check_no_leakage` extended to a graph built for ``split``: its item node
    features ``latlon`` and ``category`` must be the training part's (not positions or
    categories seen in validation/test), and every timed edge's ``timestamp`` a training
    event's. Returns what was checked."""
    g = graph.graph
    data = g.nodes[ITEM].data if ITEM in g.ntypes else {}
    features = {n: data[n].cpu().numpy() for n in ("latlon", "category") if n in data}
    edge_times = {
        "-".join(et): g.edges[et].data["timestamp"].cpu().numpy()
        for et in g.canonical_etypes
        if "timestamp" in g.edges[et].data
    }
    return split.check_no_leakage(item_features=features, edge_times=edge_times)
