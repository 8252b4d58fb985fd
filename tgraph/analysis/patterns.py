"""Sequential spatio-temporal patterns: region transitions by time slot, association rules and
the transition graph.

A *transaction* is a pair of consecutive check-ins ``(a, b)`` of one user at most
``max_gap_hours`` apart (``a`` the earlier one's value, ``b`` the later one's, e.g. their
regions or categories). Over ``N`` such pairs, the rule ``a -> b`` has

.. math::
    \\mathrm{supp}(a \\to b) = \\frac{n_{ab}}{N}, \\quad
    \\mathrm{conf}(a \\to b) = \\frac{n_{ab}}{n_{a\\cdot}}, \\quad
    \\mathrm{lift}(a \\to b) = \\frac{\\mathrm{conf}(a \\to b)}{n_{\\cdot b} / N}
    = \\frac{n_{ab} N}{n_{a\\cdot} n_{\\cdot b}},

with :math:`n_{a\\cdot}` the pairs starting at ``a`` and :math:`n_{\\cdot b}` those ending at
``b``. Lift > 1 means ``b`` follows ``a`` more often than it follows a random check-in.
"""

from __future__ import annotations

import logging
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd

from tgraph.analysis.plots import new_figure, save_png
from tgraph.analysis.spatial import event_coordinates, event_locations
from tgraph.analysis.temporal import consecutive_events
from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import time_features
from tgraph.errors import DataError

logger = logging.getLogger(__name__)

#: default time slots: start hours (local) and names
SLOT_STARTS = (0, 6, 11, 15, 19)
SLOT_NAMES = ("night", "morning", "midday", "afternoon", "evening")


def consecutive_pairs(
    inter: Interactions, column: str = "region", *, max_gap_hours: float = 24.0
) -> pd.DataFrame:
    """Consecutive check-ins of each user at most ``max_gap_hours`` apart, as
    ``user, timestamp, gap_s, src, dst, slot``: ``src``/``dst`` are the two events' ``column``
    codes (an event column, or an items-table column such as the synthetic data's true
    ``region``), ``slot`` the local time slot (:data:`SLOT_NAMES`) of the first event."""
    codes = event_locations(inter, column)
    pairs = consecutive_events(inter, max_gap_s=max_gap_hours * 3600.0)
    src_row = pairs["src_row"].to_numpy()
    hour = time_features(inter)["hour"].to_numpy()[src_row]
    slot = np.searchsorted(SLOT_STARTS, hour, side="right") - 1
    return pd.DataFrame(
        {
            "user": pairs["user"].to_numpy(),
            "timestamp": pairs["timestamp"].to_numpy(),
            "gap_s": pairs["gap_s"].to_numpy(),
            "src": codes[src_row],
            "dst": codes[pairs["dst_row"].to_numpy()],
            "slot": pd.Categorical.from_codes(slot, categories=list(SLOT_NAMES), ordered=True),
        }
    )


# ---------------------------------------------------------------------------- transitions
def transitions(
    inter: Interactions,
    location: str = "region",
    *,
    max_gap_hours: float = 24.0,
    self_loops: bool = False,
    min_count: int = 1,
) -> pd.DataFrame:
    """Counts of location -> location moves by the local time slot of the move's start
    (:data:`SLOT_NAMES`: night 0-6 h, morning 6-11 h, midday 11-15 h, afternoon 15-19 h,
    evening 19-24 h). Returns ``slot, src, dst, count, share`` (share of the slot's moves)
    for pairs with at least ``min_count`` moves, by slot and decreasing count. Stays in the
    same location are left out unless ``self_loops`` (their number is logged)."""
    pairs = consecutive_pairs(inter, location, max_gap_hours=max_gap_hours)
    stays = pairs["src"] == pairs["dst"]
    logger.info(
        "transitions: %d of %d moves stay in the same %s%s",
        int(stays.sum()),
        len(pairs),
        location,
        "" if self_loops else " (left out)",
    )
    if not self_loops:
        pairs = pairs[~stays]
    table = pairs.groupby(["slot", "src", "dst"], observed=True).size().rename("count")
    table = table.reset_index()
    table["share"] = table["count"] / table.groupby("slot", observed=True)["count"].transform("sum")
    table = table[table["count"] >= min_count]
    return table.sort_values(
        ["slot", "count", "src", "dst"], ascending=[True, False, True, True], kind="stable"
    ).reset_index(drop=True)


def plot_transitions(
    data: pd.DataFrame, path: str | Path, *, top: int = 15, title: str = ""
) -> Path:
    """One origin x destination heatmap per time slot over the ``top`` busiest locations,
    with a shared colour bar (share of the slot's moves, %)."""
    out_volume = data.groupby("src")["count"].sum()
    volume = out_volume.add(data.groupby("dst")["count"].sum(), fill_value=0)
    keep = volume.sort_values(ascending=False).index[:top].to_numpy()
    slots = [s for s in SLOT_NAMES if (data["slot"] == s).any()]
    fig, axes = new_figure(1, len(slots), width=3.2, height=3.4, squeeze=False)
    sub = data[data["src"].isin(keep) & data["dst"].isin(keep)]
    vmax = 100 * sub["share"].max() if len(sub) else 1.0
    pos = {code: i for i, code in enumerate(keep)}
    image = None
    for ax, slot in zip(axes[0], slots, strict=True):
        grid = np.zeros((len(keep), len(keep)))
        part = sub[sub["slot"] == slot]
        grid[part["src"].map(pos), part["dst"].map(pos)] = 100 * part["share"].to_numpy()
        image = ax.imshow(grid, vmin=0, vmax=vmax, cmap="magma_r")
        ax.set_title(slot)
        ax.set_xticks(range(len(keep)), keep, rotation=90, fontsize=6)
        ax.set_yticks(range(len(keep)), keep, fontsize=6)
        ax.set_xlabel("destination")
        ax.grid(False)
    axes[0, 0].set_ylabel("origin")
    assert image is not None  # set by the loop: there is at least one slot (one panel each)
    fig.colorbar(image, ax=axes[0].tolist(), label="share of the slot's moves (%)", shrink=0.8)
    fig.suptitle(title or f"Transitions between the {len(keep)} busiest locations, by time slot")
    return save_png(fig, path)


# ---------------------------------------------------------------------------- rules
def rules_from_pairs(
    antecedent, consequent, *, min_support: float = 0.0, min_confidence: float = 0.0
) -> pd.DataFrame:
    """Association rules ``a -> b`` from parallel arrays of transactions (see the module
    docstring). Returns ``antecedent, consequent, count, support, confidence, lift,
    antecedent_support, consequent_support`` for rules meeting both thresholds, by
    decreasing support."""
    frame = pd.DataFrame(
        {"antecedent": np.asarray(antecedent), "consequent": np.asarray(consequent)}
    )
    if len(frame) == 0:
        raise DataError(
            "no transactions to mine rules from",
            fix="lower min_count filters or raise max_gap_hours",
        )
    n = len(frame)
    rules = frame.groupby(["antecedent", "consequent"]).size().rename("count").reset_index()
    n_a = frame["antecedent"].value_counts()
    n_b = frame["consequent"].value_counts()
    rules["support"] = rules["count"] / n
    rules["antecedent_support"] = rules["antecedent"].map(n_a).to_numpy() / n
    rules["consequent_support"] = rules["consequent"].map(n_b).to_numpy() / n
    rules["confidence"] = rules["support"] / rules["antecedent_support"]
    rules["lift"] = rules["confidence"] / rules["consequent_support"]
    keep = (rules["support"] >= min_support) & (rules["confidence"] >= min_confidence)
    columns = [
        "antecedent",
        "consequent",
        "count",
        "support",
        "confidence",
        "lift",
        "antecedent_support",
        "consequent_support",
    ]
    return (
        rules.loc[keep, columns]
        .sort_values(
            ["support", "antecedent", "consequent"], ascending=[False, True, True], kind="stable"
        )
        .reset_index(drop=True)
    )


def association_rules(
    inter: Interactions,
    column: str = "region",
    *,
    max_gap_hours: float = 24.0,
    min_support: float = 0.0,
    min_confidence: float = 0.0,
) -> pd.DataFrame:
    """Association rules between the ``column`` values (e.g. ``"region"``, ``"category"``) of
    consecutive check-ins at most ``max_gap_hours`` apart; see :func:`rules_from_pairs`."""
    pairs = consecutive_pairs(inter, column, max_gap_hours=max_gap_hours)
    return rules_from_pairs(
        pairs["src"], pairs["dst"], min_support=min_support, min_confidence=min_confidence
    )


def plot_association_rules(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Support vs confidence of every rule (log support axis), coloured by lift (colour bar,
    log scale centred on 1)."""
    from matplotlib.colors import LogNorm

    fig, ax = new_figure(width=6.5, height=4.5)
    lift = data["lift"].clip(lower=1e-3)
    span = float(max(lift.max(), 1 / lift.min(), 1.01))
    points = ax.scatter(
        data["support"],
        data["confidence"],
        c=lift,
        s=10,
        cmap="coolwarm",
        norm=LogNorm(1 / span, span),
        alpha=0.8,
    )
    ax.set_xscale("log")
    ax.set_xlabel("support (share of consecutive pairs, log scale)")
    ax.set_ylabel("confidence P(consequent | antecedent)")
    ax.set_title(title or f"{len(data):,} association rules")
    fig.colorbar(points, ax=ax, label="lift (log scale; > 1: positive association)")
    return save_png(fig, path)


# ---------------------------------------------------------------------------- graph
def location_positions(inter: Interactions, location: str = "region") -> pd.DataFrame:
    """Mean check-in position of every location code: ``location, lat, lon, n_events``."""
    codes = event_locations(inter, location)
    lat, lon = event_coordinates(inter)
    frame = pd.DataFrame({"location": codes, "lat": lat, "lon": lon})
    return (
        frame.groupby("location")
        .agg(lat=("lat", "mean"), lon=("lon", "mean"), n_events=("lat", "size"))
        .reset_index()
    )


def transition_graph(
    rules: pd.DataFrame,
    positions: pd.DataFrame | None = None,
    *,
    min_support: float = 0.0,
    self_loops: bool = False,
) -> nx.DiGraph:
    """A directed graph of the rules (from :func:`association_rules` on locations): one node
    per location in a kept rule, one edge ``a -> b`` per rule with support >= ``min_support``
    (self-loops only if ``self_loops``), carrying ``count, support, confidence, lift``. With
    ``positions`` (:func:`location_positions`) nodes get ``lat``, ``lon``, ``n_events`` and
    ``pos = (lon, lat)`` for drawing; a rule location missing from ``positions`` raises."""
    kept = rules[rules["support"] >= min_support]
    if not self_loops:
        kept = kept[kept["antecedent"] != kept["consequent"]]
    graph: nx.DiGraph = nx.DiGraph()
    nodes = pd.unique(np.concatenate([kept["antecedent"], kept["consequent"]])).tolist()
    if positions is not None:
        table = positions.set_index("location")
        missing = np.setdiff1d(nodes, table.index)
        if len(missing):
            raise DataError(
                f"{len(missing)} rule location(s) have no position, e.g. {missing[0]}",
                column="location",
                fix="compute positions with location_positions on the same data and location",
            )
        for node in nodes:
            lat, lon = float(table.at[node, "lat"]), float(table.at[node, "lon"])
            n_events = int(table.at[node, "n_events"])
            graph.add_node(node, lat=lat, lon=lon, n_events=n_events, pos=(lon, lat))
    else:
        graph.add_nodes_from(nodes)
    for row in kept.itertuples(index=False):
        graph.add_edge(
            row.antecedent,
            row.consequent,
            count=int(row.count),
            support=float(row.support),
            confidence=float(row.confidence),
            lift=float(row.lift),
        )
    return graph


def plot_transition_graph(
    graph: nx.DiGraph, path: str | Path, *, top: int = 60, title: str = ""
) -> Path:
    """The ``top`` edges by support drawn on the map (node ``pos``; spring layout without):
    width ~ support, colour = lift (colour bar), node size ~ check-ins."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm

    if graph.number_of_nodes() == 0:
        raise DataError("the transition graph is empty", fix="lower min_support")
    edges = sorted(graph.edges(data=True), key=lambda e: -e[2]["support"])[:top]
    if nx.get_node_attributes(graph, "pos"):
        pos = nx.get_node_attributes(graph, "pos")
    else:
        pos = nx.spring_layout(graph, seed=0)
    fig, ax = new_figure(width=7.0, height=6.0)
    lifts = np.array([e[2]["lift"] for e in edges]) if edges else np.ones(1)
    span = float(max(lifts.max(), 1 / lifts.min(), 1.01))
    norm = LogNorm(1 / span, span)
    support = np.array([e[2]["support"] for e in edges]) if edges else np.ones(1)
    sizes = nx.get_node_attributes(graph, "n_events")
    node_size = [30 + 400 * sizes.get(n, 1) / max(sizes.values(), default=1) for n in graph]
    nx.draw_networkx_nodes(
        graph,
        pos,
        ax=ax,
        node_size=node_size,
        node_color="lightgrey",
        edgecolors="k",
        linewidths=0.5,
    )
    nx.draw_networkx_labels(graph, pos, ax=ax, font_size=6)
    nx.draw_networkx_edges(
        graph,
        pos,
        ax=ax,
        edgelist=[(u, v) for u, v, _ in edges],
        width=0.5 + 5 * support / support.max(),
        edge_color=colormaps["coolwarm"](norm(lifts)),
        arrowsize=8,
        connectionstyle="arc3,rad=0.15",
        node_size=node_size,
    )
    fig.colorbar(
        ScalarMappable(norm=norm, cmap="coolwarm"), ax=ax, shrink=0.8, label="lift (log scale)"
    )
    ax.tick_params(left=True, bottom=True, labelleft=True, labelbottom=True)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title(
        title
        or f"Transition graph: top {len(edges)} of {graph.number_of_edges()} "
        "edges by support (width ∝ support)"
    )
    return save_png(fig, path)
