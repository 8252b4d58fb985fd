"""Fold new events into a built temporal heterograph, in place (DGL ``add_edges``).

The timed relations of :mod:`tgraph.graph.spec` keep one edge per event, so new events only
add edges: ``interacts`` and ``visits`` (the item's region) and ``at_slot`` (the local time
slot) one per event, ``transition`` one per consecutive pair of a user's (and trajectory's)
events at most ``max_gap_seconds`` apart, the first new event of a group continuing from the
group's last folded one (:class:`~tgraph.data.transitions.Transitions`, the one counter of
transitions, keeps those tails). Reverse relations get the
same edges reversed, and the degree norms of every changed relation are recomputed
(:func:`~tgraph.graph.build.add_degree_norm`). The result has the edges, edge data and norms
of :func:`~tgraph.graph.build.build_graph` on all the events (edge order aside), provided each
group's new events are not older than its last folded one (checked).

Two steps, because DGL's ``add_edges`` copies every edge array of the relation (O(E) per
call): :meth:`GraphAppender.append` checks the events and derives their edges (and moves the
tails) now, but only queues them; :meth:`GraphAppender.flush` adds everything queued with one
``add_edges`` per relation and recomputes the norms. A model flushes at its next propagation
(:meth:`~tgraph.models.base.Recommender.defer_graph`), so the graph cost of a stream of
updates is paid once per query rather than once per update.

Static relations (``in_location``, ``near``, ``of_category``) depend on the item catalogue,
not on events: new items are refused (their region and proximity edges are not derivable
here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dgl
import numpy as np
import torch

from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import time_features
from tgraph.data.transitions import Transitions
from tgraph.errors import DataError
from tgraph.graph.build import add_degree_norm, transition_data
from tgraph.graph.spec import AT_SLOT, INTERACTS, ITEM, TRANSITION, USER, VISITS, GraphSpec, reverse

SOURCE = "update events"
Etype = tuple[str, str, str]


@dataclass
class GraphAppender:
    """Appends events to a heterograph built with ``spec`` from ``train``
    (:meth:`from_train`); keeps the last event of every transition group and the edges
    appended but not yet flushed into the graph."""

    spec: GraphSpec
    #: the last folded event of every transition group (user, or user and trajectory)
    transitions: Transitions
    #: relation -> queued (src, dst, edge data) blocks, in order
    queued: dict[Etype, list[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]] = field(
        default_factory=dict
    )
    #: user node count the graph must reach at the next flush (0: no growth queued)
    n_users: int = 0

    @classmethod
    def from_train(cls, train: Interactions, spec: GraphSpec) -> GraphAppender:
        transitions = Transitions(spec.max_gap_seconds, train.has("trajectory"))
        transitions.steps_of(train)
        return cls(spec, transitions)

    def append(self, graph: dgl.DGLGraph, events: Interactions, n_users: int) -> None:
        """Queue the edges of ``events`` (time-sorted, codes of ``graph``'s items; users up to
        ``n_users``, new ones become nodes) for :meth:`flush`; bad events raise now. ``graph``
        is only read (relations, edge data names, item regions and coordinates)."""
        self.n_users = max(self.n_users, n_users)
        for et, (src, dst, data) in self._edges(graph, events).items():
            for etype, s, d in ((et, src, dst), (reverse(et), dst, src)):
                if etype not in graph.canonical_etypes:
                    continue
                expected = set(graph.edges[etype].data) - {"norm"}
                if set(data) != expected:
                    raise NotImplementedError(
                        f"relation {etype} carries edge data {sorted(expected)}; appending "
                        f"derives {sorted(data)}"
                    )
                self.queued.setdefault(etype, []).append((s, d, data))

    def flush(self, graph: dgl.DGLGraph) -> dgl.DGLGraph:
        """Add the queued users and edges to ``graph`` in place (one ``add_edges`` per
        relation), recompute the norms of the relations that changed; returns ``graph``."""
        grown = set()
        if USER in graph.ntypes and self.n_users > graph.num_nodes(USER):
            old = graph.num_nodes(USER)
            ids = torch.arange(old, self.n_users, device=graph.device)
            graph.add_nodes(self.n_users - old, {"id": ids}, ntype=USER)
            grown.add(USER)
        changed = {et for et in graph.canonical_etypes if grown & {et[0], et[2]}}
        for etype, blocks in self.queued.items():
            src, dst, data = zip(*blocks, strict=True)
            columns = {k: torch.cat([d[k] for d in data]) for k in data[0]}
            graph.add_edges(torch.cat(src), torch.cat(dst), data=columns, etype=etype)
            changed.add(etype)
        add_degree_norm(graph, sorted(changed))
        self.queued = {}
        return graph

    def _edges(
        self, graph: dgl.DGLGraph, events: Interactions
    ) -> dict[Etype, tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
        device = graph.device
        ev = events.events
        user, item = ev["user"].to_numpy(np.int64), ev["item"].to_numpy(np.int64)
        ts = torch.tensor(ev["timestamp"].to_numpy(np.int64))

        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.tensor(x, device=device)

        present = set(graph.canonical_etypes) | {reverse(et) for et in graph.canonical_etypes}
        out = {}
        if INTERACTS in present:
            data = {"timestamp": ts}
            if "weight" in graph.edges[INTERACTS].data:
                if not events.has("weight"):
                    raise DataError(
                        "the graph's interactions carry a weight; the events lack it",
                        source=SOURCE,
                        column="weight",
                        fix="pass a 'weight' column",
                    )
                data["weight"] = torch.tensor(ev["weight"].to_numpy(), dtype=torch.float32)
            out[INTERACTS] = (user, item, data)
        if VISITS in present:
            region = graph.nodes[ITEM].data["location"].cpu().numpy()[item]
            if (region < 0).any():
                row = int(np.flatnonzero(region < 0)[0])
                raise DataError(
                    f"item {item[row]} has no region",
                    source=SOURCE,
                    column="item",
                    row=row,
                    fix="only items with a region can be folded into a graph with locations",
                )
            out[VISITS] = (user, region, {"timestamp": ts.clone()})
        if TRANSITION in present:
            steps = self.transitions.steps_of(events)
            latlon = graph.nodes[ITEM].data.get("latlon")
            latlon = None if latlon is None else latlon.cpu().numpy()
            out[TRANSITION] = (steps.prev, steps.next, transition_data(steps, latlon))
        if AT_SLOT in present:
            slot = time_features(events, self.spec.time_slots)["slot"].to_numpy()
            out[AT_SLOT] = (item, slot, {"timestamp": ts.clone()})
        return {
            et: (tensor(s), tensor(d), {k: v.to(device) for k, v in data.items()})
            for et, (s, d, data) in out.items()
        }
