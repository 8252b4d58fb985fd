"""STHGCN's spatio-temporal hypergraph (Yan et al., SIGIR 2023) as a bipartite DGL graph.

Every check-in is a node; every trajectory (a user's check-ins cut where the gap exceeds
``gap_hours``, 24 h as GETNext / STHGCN) is a hyperedge, stored as a node of its own type
with one ``("checkin", "in", "trajectory")`` edge per member (the incidence matrix as a
bipartite heterograph). Inter-trajectory hyperedges (trajectory -> later trajectory, Jaccard
similarity of their POI sets above a threshold) are found per query by
:func:`trajectory_neighbours`: a query links only to trajectories that ended at or before
its "now" (the last history event), so nothing at or after a target reaches it; among the
training trajectories themselves (:func:`trajectory_links`) a trajectory links only to those
that ended before it began. STHGCN's intra-user relation (a query's own user's earlier
trajectories, whatever their overlap) is :func:`own_trajectories`, with the similarity of
given pairs from :func:`pair_jaccard`.

Built from a split's training events only (:func:`checkin_hypergraph`); a query's own
current trajectory comes from its history (:func:`current_trajectory`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import dgl
import numpy as np
import pandas as pd
import torch
from torch import Tensor

from tgraph.data.interactions import Interactions

#: the incidence relation: check-in -> the trajectory it belongs to
CHECKIN_IN = ("checkin", "in", "trajectory")


@dataclass
class CheckinHypergraph:
    """The hypergraph of a set of events (:func:`checkin_hypergraph`).

    Attributes:
        graph: bipartite heterograph ``checkin -in-> trajectory``; ``ndata`` of ``checkin``:
            ``item``, ``user``, ``time`` (UTC s), ``local`` (local time s); of
            ``trajectory``: ``user``, ``start``, ``end`` (UTC s), ``last_item``,
            ``local_end``; ``edata``: ``dt`` (trajectory end minus check-in time, s, >= 0).
        incidence: ``[n_trajectories, n_items]`` sparse COO 0/1 matrix (POI sets).
        size: ``[n_trajectories]`` number of distinct POIs of each trajectory.
    """

    graph: dgl.DGLGraph
    incidence: Tensor
    size: Tensor

    @property
    def n_trajectories(self) -> int:
        return int(self.graph.num_nodes("trajectory"))

    def to(self, device: torch.device | str) -> CheckinHypergraph:
        return CheckinHypergraph(
            self.graph.to(device), self.incidence.to(device), self.size.to(device)
        )


def split_trajectories(user: np.ndarray, time: np.ndarray, gap_hours: float) -> np.ndarray:
    """Trajectory index (0 ..) of each event: events ordered by (user, time, input order),
    a new trajectory at each new user and where the gap to the previous event exceeds
    ``gap_hours``. Indices follow that order."""
    order = np.lexsort((np.arange(len(user)), time, user))
    u, t = user[order], time[order]
    new = np.r_[True, (u[1:] != u[:-1]) | (np.diff(t) > gap_hours * 3600)]
    index = np.empty(len(user), dtype=np.int64)
    index[order] = np.cumsum(new) - 1
    return index


def checkin_hypergraph(
    inter: Interactions, gap_hours: float = 24.0, n_items: int | None = None
) -> CheckinHypergraph:
    """The check-in / trajectory hypergraph of ``inter``'s events (pass ``split.train``)."""
    events = inter.events
    n_items = inter.n_items if n_items is None else n_items
    user = events["user"].to_numpy(np.int64)
    item = events["item"].to_numpy(np.int64)
    time = events["timestamp"].to_numpy(np.int64).copy()
    offset = events["tz_offset"].to_numpy(np.int64) * 60 if inter.has("tz_offset") else 0
    local = time + offset
    traj = split_trajectories(user, time, gap_hours)
    n_traj = int(traj.max()) + 1 if len(traj) else 0
    frame = pd.DataFrame({"traj": traj, "user": user, "item": item, "time": time, "local": local})
    frame["row"] = np.arange(len(frame))
    last = frame.sort_values(["traj", "time", "row"]).groupby("traj").tail(1).set_index("traj")
    first = frame.groupby("traj")["time"].min()
    graph = dgl.heterograph(
        {CHECKIN_IN: (torch.arange(len(traj)), torch.from_numpy(traj))},
        num_nodes_dict={"checkin": len(traj), "trajectory": n_traj},
    )
    for name, values in (("item", item), ("user", user), ("time", time), ("local", local)):
        graph.nodes["checkin"].data[name] = torch.from_numpy(np.array(values, dtype=np.int64))
    t_data = graph.nodes["trajectory"].data
    t_data["user"] = torch.tensor(last["user"].to_numpy(np.int64))
    t_data["start"] = torch.tensor(first.to_numpy(np.int64))
    t_data["end"] = torch.tensor(last["time"].to_numpy(np.int64))
    t_data["local_end"] = torch.tensor(last["local"].to_numpy(np.int64))
    t_data["last_item"] = torch.tensor(last["item"].to_numpy(np.int64))
    graph.edges[CHECKIN_IN].data["dt"] = t_data["end"][traj] - torch.from_numpy(time)
    pairs = np.unique(traj * np.int64(n_items) + item)
    rows, cols = pairs // n_items, pairs % n_items
    incidence = torch.sparse_coo_tensor(
        torch.from_numpy(np.stack([rows, cols])),
        torch.ones(len(pairs)),
        (n_traj, n_items),
    ).coalesce()
    size = torch.from_numpy(np.bincount(rows, minlength=n_traj).astype(np.float32))
    return CheckinHypergraph(graph, incidence, size)


def current_trajectory(hist_times: Tensor, hist_len: Tensor, gap_hours: float = 24.0) -> Tensor:
    """``[B, L]`` True at the positions of each query's current trajectory: the tail of its
    history (left-aligned, ``hist_len`` real positions) with no gap above ``gap_hours``."""
    length = hist_times.shape[1]
    positions = torch.arange(length, device=hist_times.device).expand_as(hist_times)
    real = positions < hist_len.unsqueeze(1)
    gap = torch.zeros_like(hist_times)
    gap[:, 1:] = hist_times[:, 1:] - hist_times[:, :-1]
    cut = real & (gap > gap_hours * 3600)
    start = torch.where(cut, positions, torch.zeros_like(positions)).amax(1, keepdim=True)
    return real & (positions >= start)


def trajectory_neighbours(
    incidence: Tensor,
    size: Tensor,
    end: Tensor,
    query_items: Tensor,
    query_mask: Tensor,
    now: Tensor,
    threshold: float,
    k: int,
    exclude_own: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Inter-trajectory hyperedges of a batch of queries: for query ``b`` with POI set
    :math:`A_b` (``query_items[b]`` where ``query_mask``), the (at most ``k``) trajectories
    :math:`T` (rows of ``incidence``, :attr:`CheckinHypergraph.incidence`; ``size`` their
    POI counts, ``end`` their last times) with ``end <= now[b]`` and

    .. math:: J(A_b, T) = \frac{|A_b \cap T|}{|A_b \cup T|} > \text{threshold},

    the most similar first (ties: later ``end`` first, then the lower trajectory index).
    ``exclude_own = (owner, user)`` (each trajectory's user, each query's user) leaves out a
    query's own user's trajectories (STHGCN's inter-user relation).
    Returns ``(trajectory, query, jaccard)`` edge arrays, by query. A query's edges do not
    depend on the other queries of the batch."""
    n_traj = incidence.shape[0]
    device = query_items.device
    batch = query_items.shape[0]
    if n_traj == 0 or batch == 0 or k == 0 or not bool(query_mask.any()):
        return _no_edges(device)
    sets, set_size = _query_sets(query_items, query_mask, incidence.shape[1])
    return _most_similar(sets, set_size, incidence, size, end, now, threshold, k, exclude_own)


def own_trajectories(
    owner: Tensor, end: Tensor, user: Tensor, now: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """STHGCN's intra-user hyperedges of a batch of queries: for query ``b``, the (at most
    ``k``) trajectories of its user ``user[b]`` (``owner``: each trajectory's user) with
    ``end <= now[b]``, whatever their POI overlap, the latest first (ties: the higher
    trajectory index first). Returns ``(trajectory, query)`` edge arrays, by query."""
    device = user.device
    if len(owner) == 0 or len(user) == 0 or k == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    # trajectories by (owner, end) as one int64 key: owner in the high 32 bits
    first = end.min()
    key = owner.long() * 2**32 + (end - first)
    order = key.argsort(stable=True)
    key = key[order]
    since = (now - first).clamp(min=-1, max=2**32 - 1)
    hi = torch.searchsorted(key, user.long() * 2**32 + since, right=True)
    lo = torch.searchsorted(key, user.long() * 2**32)
    take = (hi - lo).clamp(min=0, max=k)
    query = torch.repeat_interleave(torch.arange(len(user), device=device), take)
    step = torch.arange(len(query), device=device) - (take.cumsum(0) - take)[query]
    return order[hi[query] - 1 - step], query


def pair_jaccard(
    incidence: Tensor,
    size: Tensor,
    query_items: Tensor,
    query_mask: Tensor,
    query: Tensor,
    traj: Tensor,
) -> Tensor:
    """The Jaccard similarity of query ``query[i]``'s POI set (``query_items`` where
    ``query_mask``) and trajectory ``traj[i]``'s, for each pair ``i`` (0 where they share
    nothing)."""
    if len(query) == 0:
        return torch.zeros(0, device=query_items.device)
    sets, set_size = _query_sets(query_items, query_mask, incidence.shape[1])
    common_at = _intersections(sets, incidence)
    n_traj = incidence.shape[0]
    hit_query, hit_traj = common_at.indices()  # coalesced: sorted by (query, trajectory)
    keys = hit_query * n_traj + hit_traj
    wanted = query * n_traj + traj
    common = torch.zeros(len(query), device=query_items.device)
    if len(keys):
        pos = torch.searchsorted(keys, wanted).clamp(max=len(keys) - 1)
        found = keys[pos] == wanted
        common = torch.where(found, common_at.values()[pos], common)
    return common / (set_size[query] + size[traj] - common)


def trajectory_links(
    hyper: CheckinHypergraph, threshold: float, k: int, chunk: int = 1024
) -> tuple[Tensor, Tensor, Tensor]:
    """Inter-trajectory hyperedges among ``hyper``'s own trajectories, as STHGCN links its
    training trajectories: for each trajectory :math:`T` (as a query with its POI set), the
    (at most ``k``) trajectories that ended strictly before :math:`T` started with Jaccard
    similarity above ``threshold``, the most similar first (:func:`trajectory_neighbours`'s
    rule). Returns ``(earlier, later, jaccard)`` edge arrays, by ``later``; ``chunk``
    trajectories are searched at a time, which bounds the similarity product's memory."""
    incidence, size = hyper.incidence, hyper.size
    data = hyper.graph.nodes["trajectory"].data
    start, end = data["start"], data["end"]
    n_traj, n_items = incidence.shape
    if n_traj == 0 or k == 0:
        return _no_edges(incidence.device)
    rows, cols = incidence.indices()  # coalesced: by row
    parts = []
    for lo in range(0, n_traj, chunk):
        hi = min(lo + chunk, n_traj)
        a, b = torch.searchsorted(rows, torch.tensor([lo, hi], device=rows.device)).tolist()
        sets = torch.sparse_coo_tensor(
            torch.stack([rows[a:b] - lo, cols[a:b]]),
            torch.ones(b - a, device=rows.device),
            (hi - lo, n_items),
        )
        earlier, later, jaccard = _most_similar(
            sets, size[lo:hi], incidence, size, end, start[lo:hi] - 1, threshold, k
        )
        parts.append((earlier, later + lo, jaccard))
    return tuple(torch.cat(column) for column in zip(*parts))  # type: ignore[return-value]


def _no_edges(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    empty = torch.zeros(0, dtype=torch.long, device=device)
    return empty, empty, empty.float()


def _query_sets(query_items: Tensor, query_mask: Tensor, n_items: int) -> tuple[Tensor, Tensor]:
    """The queries' POI sets as a sparse 0/1 matrix ``[B, n_items]``, and their sizes."""
    batch = query_items.shape[0]
    qrow, pos = query_mask.nonzero(as_tuple=True)
    keys = torch.unique(qrow * n_items + query_items[qrow, pos])
    rows, cols = keys // n_items, keys % n_items
    sets = torch.sparse_coo_tensor(
        torch.stack([rows, cols]),
        torch.ones(len(keys), device=query_items.device),
        (batch, n_items),
    )
    return sets, torch.bincount(rows, minlength=batch).float()


def _intersections(sets: Tensor, incidence: Tensor) -> Tensor:
    """``|A_b ∩ T|`` where non-zero: a sparse, coalesced ``[B, n_trajectories]`` product."""
    with warnings.catch_warnings():  # torch < 2.3: "sparse CSR support is in beta"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support")
        return torch.sparse.mm(sets, incidence.t()).coalesce()


def _most_similar(
    sets: Tensor,
    set_size: Tensor,
    incidence: Tensor,
    size: Tensor,
    end: Tensor,
    now: Tensor,
    threshold: float,
    k: int,
    exclude_own: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`trajectory_neighbours` of the POI sets ``sets`` (sparse 0/1 ``[B, n_items]``,
    ``set_size`` of them) at times ``now``."""
    inter = _intersections(sets, incidence)
    query, traj = inter.indices()
    common = inter.values()
    jaccard = common / (set_size[query] + size[traj] - common)
    keep = (end[traj] <= now[query]) & (jaccard > threshold)
    if exclude_own is not None:
        owner, user = exclude_own
        keep &= owner[traj] != user[query]
    query, traj, jaccard = query[keep], traj[keep], jaccard[keep]
    if len(query) == 0:
        return _no_edges(sets.device)
    # per query, the most similar first (ties: the later end first), then at most k of them
    span = max(float(end.max() - end.min()), 1.0)
    recency = (end[traj] - end.min()).double() / span
    key = query.double() * 4.0 + (2.0 - jaccard.double()) - recency * 1e-6
    order = key.argsort(stable=True)  # the product's entries are by (query, trajectory)
    query, traj, jaccard = query[order], traj[order], jaccard[order]
    first = torch.searchsorted(query, query, right=False)
    rank = torch.arange(len(query), device=sets.device) - first
    keep = rank < k
    return traj[keep], query[keep], jaccard[keep]
