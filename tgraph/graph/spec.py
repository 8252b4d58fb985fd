"""What the temporal heterograph contains: :class:`GraphSpec` and the relation names.

Node types
    ``user`` and ``item`` (one node per catalogue code, so node ids are the split's codes),
    ``location`` (one node per region code, ``0 .. max(region)``), ``timeslot`` (``time_slots``
    slots of the local day) and ``category`` (one node per category code).

Relations (canonical edge types ``(src, name, dst)``; every one has a reverse
``(dst, "rev_" + name, src)`` with identical edge data):

==============  ==============================  =====  =================================
name            src -> dst                      timed  edge data
==============  ==============================  =====  =================================
``interacts``   user -> item, one per event     yes    ``timestamp`` (+ ``weight``)
``visits``      user -> location, one per event yes    ``timestamp``
``transition``  item -> item, consecutive       yes    ``timestamp`` (of the later event),
                events of one user                     ``gap`` (s), ``dist_km``
``at_slot``     item -> timeslot, one per event yes    ``timestamp``
``in_location`` item -> location, one per item  no     (none)
``near``        location -> location            no     ``dist_km``
``of_category`` item -> category, one per item  no     (none)
==============  ==============================  =====  =================================

Timed relations keep one edge per event, so a view "as of time t" is an exact edge filter
(:func:`tgraph.graph.temporal.graph_before`); counts are edge multiplicities (aggregate with
``dgl.to_simple(g, return_counts="count")`` when needed). Every relation also carries ``norm``
(see :func:`tgraph.graph.build.add_degree_norm`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from tgraph.data.errors import DataError

USER, ITEM, LOCATION, TIMESLOT, CATEGORY = "user", "item", "location", "timeslot", "category"

INTERACTS = (USER, "interacts", ITEM)
VISITS = (USER, "visits", LOCATION)
TRANSITION = (ITEM, "transition", ITEM)
AT_SLOT = (ITEM, "at_slot", TIMESLOT)
IN_LOCATION = (ITEM, "in_location", LOCATION)
NEAR = (LOCATION, "near", LOCATION)
OF_CATEGORY = (ITEM, "of_category", CATEGORY)

REVERSE_PREFIX = "rev_"


_TYPES: dict[str, tuple[type, ...]] = {
    "locations": (bool,),
    "near_k": (int,),
    "near_radius_km": (int, float, type(None)),
    "transitions": (bool,),
    "max_gap_seconds": (int, type(None)),
    "time_slots": (int,),
    "categories": (bool,),
    "reverse": (bool,),
}


def reverse(etype: tuple[str, str, str]) -> tuple[str, str, str]:
    """The reverse of a canonical edge type: ``(s, r, d) -> (d, rev_r, s)`` and back."""
    src, name, dst = etype
    if name.startswith(REVERSE_PREFIX):
        return dst, name[len(REVERSE_PREFIX) :], src
    return dst, REVERSE_PREFIX + name, src


@dataclass(frozen=True)
class GraphSpec:
    """Which nodes and relations :func:`~tgraph.graph.build.build_graph` creates.

    Attributes:
        locations: add ``location`` nodes and the ``in_location`` and ``visits`` relations
            (needs a ``region`` column in ``items`` or in the events).
        near_k: number of nearest region centres (haversine) each location links to with
            ``near``; 0 disables unless ``near_radius_km`` is set.
        near_radius_km: link every pair of regions whose centres are at most this far apart
            instead of the k nearest.
        transitions: add ``transition`` edges between consecutive events of the same user
            (and the same trajectory when the events carry ``trajectory``).
        max_gap_seconds: longest gap between two consecutive events that still makes a
            transition (``None``: no limit).
        time_slots: number of equal slots of the local day (24: hourly); 0 disables
            ``timeslot`` nodes.
        categories: add ``category`` nodes and ``of_category`` (needs ``category``).
        reverse: add the reverse of every relation.
    """

    locations: bool = True
    near_k: int = 5
    near_radius_km: float | None = None
    transitions: bool = True
    max_gap_seconds: int | None = 24 * 3600
    time_slots: int = 0
    categories: bool = False
    reverse: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            kinds = _TYPES[f.name]
            if isinstance(value, bool) != (kinds == (bool,)) or not isinstance(value, kinds):
                raise DataError(
                    f"graph spec {f.name}={value!r} has the wrong type",
                    column=f.name,
                    fix=f"{f.name} must be {' or '.join(k.__name__ for k in kinds)}",
                )
        checks = {
            "near_k": self.near_k >= 0,
            "near_radius_km": self.near_radius_km is None or self.near_radius_km > 0,
            "max_gap_seconds": self.max_gap_seconds is None or self.max_gap_seconds >= 0,
            "time_slots": 0 <= self.time_slots <= 86400,
        }
        for key, ok in checks.items():
            if not ok:
                raise DataError(
                    f"invalid graph spec value {key}={getattr(self, key)!r}",
                    column=key,
                    fix="near_k, max_gap_seconds and time_slots must be >= 0 (time_slots <= "
                    "86400); near_radius_km must be > 0 or None",
                )

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | None) -> GraphSpec:
        """Build from a config mapping; an unknown key raises :class:`DataError` naming it."""
        config = dict(config or {})
        known = [f.name for f in fields(cls)]
        for key in config:
            if key not in known:
                raise DataError(
                    f"unknown graph spec key {key!r}",
                    column=key,
                    fix=f"use only {known}",
                )
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
