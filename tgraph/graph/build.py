"""Build the temporal heterograph from a split's training interactions.

Only ``split.train`` may be passed: every edge is a training event or a static attribute
(item location, category, region geometry), so nothing of validation or test leaks in.
Nodes and relations are described in :mod:`tgraph.graph.spec`.

Node data
    ``user``: ``id``. ``item``: ``id``, ``latlon`` (degrees, NaN when unknown), ``coord``
    (z-normalised lat/lon, 0 when unknown), ``location`` and ``category`` codes (-1 when
    unknown; present when the data carry them). ``location``: ``id``, ``latlon`` (mean of its
    items), ``coord``. ``timeslot`` / ``category``: ``id``. Plus the degree norms below.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dgl
import numpy as np
import pandas as pd
import torch

from tgraph.config import validate_model
from tgraph.data.geo import haversine
from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import (
    item_codes,
    item_coordinates,
    knn_pois,
    radius_pois,
    time_features,
)
from tgraph.data.transitions import Steps, Transitions
from tgraph.errors import DataError
from tgraph.graph.hetero import GraphMeta, TemporalHeteroGraph, time_span
from tgraph.graph.spec import (
    AT_SLOT,
    CATEGORY,
    IN_LOCATION,
    INTERACTS,
    ITEM,
    LOCATION,
    NEAR,
    OF_CATEGORY,
    TIMESLOT,
    TRANSITION,
    USER,
    VISITS,
    GraphSpec,
    reverse,
)

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------- relations
def transition_data(steps: Steps, latlon: np.ndarray | None) -> dict[str, torch.Tensor]:
    """Edge data of ``transition`` edges: the later event's ``timestamp``, the ``gap`` from
    the earlier one (seconds) and, with item coordinates ``latlon``, ``dist_km``."""
    data = {"timestamp": torch.tensor(steps.time), "gap": torch.tensor(steps.gap)}
    if latlon is not None:
        a, b = latlon[steps.prev], latlon[steps.next]
        km = haversine(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
        data["dist_km"] = torch.tensor(km, dtype=torch.float32)
    return data


def _near(centres: np.ndarray, spec: GraphSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Location pairs (src, dst, km): each centre to its ``near_k`` nearest others, or to all
    others within ``near_radius_km``. Centres with NaN coordinates get no edge."""
    valid = np.flatnonzero(np.isfinite(centres).all(axis=1))
    table = pd.DataFrame({"lat": centres[valid, 0], "lon": centres[valid, 1]})
    if spec.near_radius_km is not None:
        src, dst, km = radius_pois(table, spec.near_radius_km)
    elif min(spec.near_k, len(valid) - 1) >= 1:
        src, dst, km = knn_pois(table, min(spec.near_k, len(valid) - 1))
    else:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    return valid[src], valid[dst], km


def add_degree_norm(
    graph: dgl.DGLGraph, etypes: Sequence[tuple[str, str, str]] | None = None
) -> dgl.DGLGraph:
    r"""Store per-relation degree normalisers of ``etypes`` (default: every relation), in
    place, and return ``graph``.

    For relation :math:`r: s \to d` with out-degree :math:`\deg^{out}_r(u)` of source nodes and
    in-degree :math:`\deg^{in}_r(v)` of destination nodes (edges counted with multiplicity):

    * node data ``norm_out_<r>`` on ``s`` nodes :math:`= \deg^{out}_r(u)^{-1/2}` and
      ``norm_in_<r>`` on ``d`` nodes :math:`= \deg^{in}_r(v)^{-1/2}` (0 for degree 0);
    * edge data ``norm`` :math:`= \deg^{out}_r(u)^{-1/2}\,\deg^{in}_r(v)^{-1/2}`, so that
      :math:`h_v = \sum_{(u,v)\in E_r} \mathrm{norm}_{uv}\, h_u` is the symmetric (GCN /
      LightGCN) propagation on relation :math:`r`. A reverse relation gets the same ``norm``.
    """
    for et in graph.canonical_etypes if etypes is None else etypes:
        src, name, dst = et
        u, v = graph.edges(etype=et)
        out_deg = torch.bincount(u, minlength=graph.num_nodes(src)).float()
        in_deg = torch.bincount(v, minlength=graph.num_nodes(dst)).float()
        out_norm = torch.where(out_deg > 0, out_deg.clamp(min=1).rsqrt(), 0.0)
        in_norm = torch.where(in_deg > 0, in_deg.clamp(min=1).rsqrt(), 0.0)
        graph.nodes[src].data[f"norm_out_{name}"] = out_norm
        graph.nodes[dst].data[f"norm_in_{name}"] = in_norm
        graph.edges[et].data["norm"] = out_norm[u] * in_norm[v]
    return graph


def _normalise(latlon: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    z = np.nan_to_num((latlon - mean) / std, nan=0.0)
    return torch.tensor(z, dtype=torch.float32)


@dataclass
class _Parts:
    """Nodes, edges and features collected before the DGL graph is made."""

    num_nodes: dict[str, int]
    edges: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    edata: dict[tuple[str, str, str], dict[str, torch.Tensor]] = field(default_factory=dict)
    ndata: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    latlon: np.ndarray | None = None  # (n_items, 2) degrees
    mean: np.ndarray | None = None  # lat/lon statistics for ``coord``
    std: np.ndarray | None = None

    def add(self, etype, src, dst, **data: torch.Tensor) -> None:
        self.edges[etype] = (np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64))
        self.edata[etype] = data

    def to_graph(self, with_reverse: bool) -> dgl.DGLGraph:
        if with_reverse:
            for et in list(self.edges):
                self.edges[reverse(et)] = self.edges[et][::-1]
                self.edata[reverse(et)] = {k: v.clone() for k, v in self.edata[et].items()}
        graph = dgl.heterograph(
            {et: (torch.tensor(s), torch.tensor(d)) for et, (s, d) in self.edges.items()},
            num_nodes_dict=self.num_nodes,
            idtype=torch.int64,
        )
        for nt, data in self.ndata.items():
            graph.nodes[nt].data.update(data)
        for et, data in self.edata.items():
            graph.edges[et].data.update(data)
        return add_degree_norm(graph)


def _coordinates(train: Interactions, parts: _Parts) -> None:
    """Item ``latlon`` / ``coord`` features, when the data carry coordinates."""
    if not ({"lat", "lon"} <= set(train.items.columns) or (train.has("lat") and train.has("lon"))):
        return
    latlon = np.stack(item_coordinates(train), axis=1)
    known = np.isfinite(latlon).all(axis=1)
    parts.report["items_without_coordinates"] = int((~known).sum())
    if not known.any():
        return
    parts.latlon, parts.mean = latlon, latlon[known].mean(axis=0)
    parts.std = np.where(latlon[known].std(axis=0) > 0, latlon[known].std(axis=0), 1.0)
    parts.ndata[ITEM]["latlon"] = torch.tensor(latlon)
    parts.ndata[ITEM]["coord"] = _normalise(latlon, parts.mean, parts.std)


def _locations(train: Interactions, spec: GraphSpec, parts: _Parts) -> None:
    """``location`` nodes, ``in_location``, ``visits`` and ``near``."""
    region = item_codes(train, "region")
    if region is None:
        raise DataError(
            "the graph spec asks for locations but there is no 'region' column in the "
            "items table or the events",
            source=train.source,
            column="region",
            fix="assign regions first (tgraph.data.preprocess.add_regions) or set locations=False",
        )
    user, item = train.events["user"].to_numpy(), train.events["item"].to_numpy()
    unplaced = region[item] < 0
    if unplaced.any():
        row = int(np.flatnonzero(unplaced)[0])
        raise DataError(
            f"item {item[row]} of a training event has no region",
            source=train.source,
            column="region",
            row=row,
            fix="give every item of the training events a region in the items table",
        )
    has = np.flatnonzero(region >= 0)
    n_loc = int(region.max()) + 1 if len(has) else 0
    parts.num_nodes[LOCATION] = n_loc
    parts.report["items_without_location"] = int(train.n_items - len(has))
    parts.ndata[ITEM]["location"] = torch.tensor(region)
    parts.ndata[LOCATION] = {"id": torch.arange(n_loc)}
    parts.add(IN_LOCATION, has, region[has])
    parts.add(VISITS, user, region[item], timestamp=parts.edata[INTERACTS]["timestamp"].clone())
    wants_near = spec.near_k > 0 or spec.near_radius_km is not None
    if parts.latlon is None:
        if wants_near:
            raise DataError(
                "near-location edges need coordinates (lat/lon in the items table or events)",
                source=train.source,
                column="lat",
                fix="add coordinates or set near_k=0 and near_radius_km=None",
            )
        return
    assert parts.mean is not None and parts.std is not None  # set with latlon (_coordinates)
    centres = np.full((n_loc, 2), np.nan)
    mean = pd.DataFrame(parts.latlon[has], columns=["lat", "lon"]).groupby(region[has]).mean()
    centres[mean.index.to_numpy()] = mean.to_numpy()
    parts.ndata[LOCATION]["latlon"] = torch.tensor(centres)
    parts.ndata[LOCATION]["coord"] = _normalise(centres, parts.mean, parts.std)
    parts.report["locations_without_coordinates"] = int((~np.isfinite(centres[:, 0])).sum())
    if wants_near:
        src, dst, km = _near(centres, spec)
        parts.add(NEAR, src, dst, dist_km=torch.tensor(km, dtype=torch.float32))


def _categories(train: Interactions, spec: GraphSpec, parts: _Parts) -> None:
    """Item ``category`` feature; ``category`` nodes and ``of_category`` when asked for."""
    category = item_codes(train, "category")
    if category is not None:
        parts.ndata[ITEM]["category"] = torch.tensor(category)
    if not spec.categories:
        return
    if category is None:
        raise DataError(
            "the graph spec asks for categories but there is no 'category' column",
            source=train.source,
            column="category",
            fix="add item categories or set categories=False",
        )
    has = np.flatnonzero(category >= 0)
    parts.report["items_without_category"] = int(train.n_items - len(has))
    parts.num_nodes[CATEGORY] = int(category.max()) + 1 if len(has) else 0
    parts.ndata[CATEGORY] = {"id": torch.arange(parts.num_nodes[CATEGORY])}
    parts.add(OF_CATEGORY, has, category[has])


# ---------------------------------------------------------------------- build
def build_graph(
    train: Interactions, spec: GraphSpec | Mapping[str, Any] | None = None
) -> TemporalHeteroGraph:
    """Build the temporal heterograph of ``train`` (a split's training part).

    ``user`` / ``item`` node counts are the catalogue sizes ``train.n_users`` /
    ``train.n_items``, so node ids are the split's codes. ``spec`` is a :class:`GraphSpec` or
    a mapping of its fields (a bad key raises :class:`~tgraph.errors.ConfigError` naming
    ``graph.<key>``).
    """
    spec = validate_model(GraphSpec, spec, "graph")
    ev = train.events
    item = ev["item"].to_numpy(dtype=np.int64)
    ts = torch.tensor(ev["timestamp"].to_numpy(dtype=np.int64))
    parts = _Parts(num_nodes={USER: train.n_users, ITEM: train.n_items})
    parts.report["events"] = len(ev)
    parts.ndata[USER] = {"id": torch.arange(train.n_users)}
    parts.ndata[ITEM] = {"id": torch.arange(train.n_items)}
    weight = {}
    if train.has("weight"):
        weight["weight"] = torch.tensor(ev["weight"].to_numpy(), dtype=torch.float32)
    parts.add(INTERACTS, ev["user"].to_numpy(), item, timestamp=ts, **weight)
    _coordinates(train, parts)
    if spec.locations:
        _locations(train, spec, parts)
    if spec.transitions:
        steps = Transitions(spec.max_gap_seconds, train.has("trajectory")).steps_of(train)
        parts.add(TRANSITION, steps.prev, steps.next, **transition_data(steps, parts.latlon))
        parts.report["transitions"] = len(steps.prev)
    if spec.time_slots:
        parts.num_nodes[TIMESLOT] = spec.time_slots
        parts.ndata[TIMESLOT] = {"id": torch.arange(spec.time_slots)}
        slot = time_features(train, spec.time_slots)["slot"].to_numpy()
        parts.add(AT_SLOT, item, slot, timestamp=ts.clone())
    _categories(train, spec, parts)
    graph = parts.to_graph(spec.reverse)
    for key, value in parts.report.items():
        if "without" in key and value:
            logger.info("graph %s: %d %s", train.name, value, key.replace("_", " "))
    t_min, t_max = time_span(graph)
    meta = GraphMeta(
        name=train.name,
        spec=spec.model_dump(),
        user_raw_ids=train.users["raw_id"].tolist(),
        item_raw_ids=train.items["raw_id"].tolist(),
        t_min=t_min,
        t_max=t_max,
        coord_mean=None if parts.mean is None else parts.mean.tolist(),
        coord_std=None if parts.std is None else parts.std.tolist(),
        report=parts.report,
    )
    return TemporalHeteroGraph(graph, meta)
