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

from typing import Annotated

from pydantic import ConfigDict, Field, NonNegativeInt, PositiveFloat

from tgraph.config import StrictModel

USER, ITEM, LOCATION, TIMESLOT, CATEGORY = "user", "item", "location", "timeslot", "category"

INTERACTS = (USER, "interacts", ITEM)
VISITS = (USER, "visits", LOCATION)
TRANSITION = (ITEM, "transition", ITEM)
AT_SLOT = (ITEM, "at_slot", TIMESLOT)
IN_LOCATION = (ITEM, "in_location", LOCATION)
NEAR = (LOCATION, "near", LOCATION)
OF_CATEGORY = (ITEM, "of_category", CATEGORY)

REVERSE_PREFIX = "rev_"


def reverse(etype: tuple[str, str, str]) -> tuple[str, str, str]:
    """The reverse of a canonical edge type: ``(s, r, d) -> (d, rev_r, s)`` and back."""
    src, name, dst = etype
    if name.startswith(REVERSE_PREFIX):
        return dst, name[len(REVERSE_PREFIX) :], src
    return dst, REVERSE_PREFIX + name, src


class GraphSpec(StrictModel):
    """Which nodes and relations :func:`~tgraph.graph.build.build_graph` creates: the ``graph``
    section of a model config (``GraphSpec.model_validate(mapping)``, or keyword arguments).
    Frozen: a built graph's ``meta.spec`` records it."""

    model_config = ConfigDict(frozen=True)

    #: add ``location`` nodes and the ``in_location`` and ``visits`` relations (needs a
    #: ``region`` column in ``items`` or in the events)
    locations: bool = True
    #: number of nearest region centres (haversine) each location links to with ``near``;
    #: 0 disables unless ``near_radius_km`` is set
    near_k: NonNegativeInt = 5
    #: link every pair of regions whose centres are at most this far apart instead of the k
    #: nearest
    near_radius_km: PositiveFloat | None = None
    #: add ``transition`` edges between consecutive events of the same user (and the same
    #: trajectory when the events carry ``trajectory``)
    transitions: bool = True
    #: longest gap between two consecutive events that still makes a transition (``None``: no
    #: limit)
    max_gap_seconds: NonNegativeInt | None = 24 * 3600
    #: number of equal slots of the local day (24: hourly); 0 disables ``timeslot`` nodes
    time_slots: Annotated[int, Field(ge=0, le=86400)] = 0
    #: add ``category`` nodes and ``of_category`` (needs ``category``)
    categories: bool = False
    #: add the reverse of every relation
    reverse: bool = True
