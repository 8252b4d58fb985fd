"""Generic split builders: one global cut by time, leave-last-out, trajectories and their
next-POI targets.

:func:`chronological_split` (one global cut by time), :func:`leave_last_out` (per user),
:func:`trajectories` (24-hour style sessions) and :func:`last_of_trajectory` (next-POI
targets). Every builder checks its result with :meth:`~tgraph.data.split.Split.check_no_leakage`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.data.split import Split, empty_targets, event_key, event_targets
from tgraph.errors import DataError

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------- helpers
def require_no_duplicates(inter: Interactions) -> None:
    duplicated = inter.events.duplicated(event_key(inter.events)).to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(
            f"{int(duplicated.sum())} exact duplicate event(s) (same user, item and time)",
            source=inter.source,
            column="timestamp",
            row=row,
            fix="drop exact duplicates before splitting (tgraph.data.preprocess.deduplicate)",
        )


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(r) for r in ratios)
    if (
        len(values) != 3
        or not all(np.isfinite(values))
        or min(values) < 0
        or values[0] <= 0
        or values[2] <= 0
        or abs(sum(values) - 1.0) > 1e-9
    ):
        raise DataError(
            f"invalid ratios {tuple(ratios)!r}",
            column="ratios",
            fix="give three fractions (train, valid, test) >= 0 that sum to 1, "
            "with train and test > 0",
        )
    return values


def _part(inter: Interactions, mask: np.ndarray, name: str) -> Interactions:
    if not mask.any():
        raise DataError(
            f"the {name} part is empty",
            source=inter.source,
            fix="change the ratios or cut timestamps so every part has events",
        )
    return inter.with_events(inter.events[mask], name=f"{inter.name}_{name}")


def drop_unseen(targets: pd.DataFrame, train: Interactions) -> tuple[pd.DataFrame, dict[str, int]]:
    """Drop targets whose user or item never occurs in ``train``; return the counts."""
    user_seen = targets["user"].isin(train.events["user"]).to_numpy()
    item_seen = targets["item"].isin(train.events["item"]).to_numpy()
    keep = user_seen & item_seen
    report = {
        "before": len(targets),
        "unseen_user": int((~user_seen).sum()),
        "unseen_item": int((~item_seen).sum()),
        "dropped": int((~keep).sum()),
        "after": int(keep.sum()),
    }
    return targets[keep].reset_index(drop=True), report


def chronological_split(
    inter: Interactions,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    cuts: tuple[int, int] | None = None,
    query: str = "event",
) -> Split:
    """One global cut by time: train ``< t_valid <=`` valid ``< t_test <=`` test.

    With ``ratios`` the cut timestamps are those of the events at positions
    ``ratio_train * n`` and ``(ratio_train + ratio_valid) * n`` of the time-sorted table; events
    tied with a cut go to the later part, so every training event is strictly earlier than
    every validation/test event (the realised fractions are in ``report``). ``cuts`` gives the
    two timestamps directly. Every validation/test event is a target (``query``: see
    :func:`event_targets`). Exact duplicate events raise (drop them first).
    """
    require_no_duplicates(inter)
    ts = inter.events["timestamp"].to_numpy()
    if cuts is None:
        train_r, valid_r, _ = check_ratios(ratios)
        n = len(ts)
        t_valid = int(ts[min(n - 1, int(round(train_r * n)))])
        t_test = int(ts[min(n - 1, int(round((train_r + valid_r) * n)))])
    else:
        t_valid, t_test = (int(c) for c in cuts)
        if t_valid > t_test:
            raise DataError(
                f"cut timestamps {cuts} are not increasing",
                column="cuts",
                fix="give (t_valid, t_test)",
            )
    train = _part(inter, ts < t_valid, "train")
    valid_mask = (ts >= t_valid) & (ts < t_test)
    asked_valid = cuts is None and ratios[1] > 0
    valid = _part(inter, valid_mask, "valid") if asked_valid or valid_mask.any() else None
    test = _part(inter, ts >= t_test, "test")
    report = {
        "cut_valid": t_valid,
        "cut_test": t_test,
        "train_events": len(train),
        "valid_events": 0 if valid is None else len(valid),
        "test_events": len(test),
        "train_fraction": len(train) / len(ts),
    }
    logger.info("chronological split: %s", report)
    split = Split(
        train=train,
        valid=valid,
        test=test,
        valid_targets=empty_targets() if valid is None else event_targets(valid.events, query),
        test_targets=event_targets(test.events, query),
        mask_history=False,
        protocol="chronological",
        report=report,
        time_order="global",
        time_resolution=int(inter.meta.get("time_resolution_s", 1)),
    )
    split.report["leakage_checks"] = split.check_no_leakage()
    return split


def leave_last_out(
    inter: Interactions, n_valid: int = 1, n_test: int = 1, mask_history: bool = False
) -> Split:
    """Per user: the last ``n_test`` events are test, the ``n_valid`` before them validation.

    Users with at most ``n_valid + n_test`` events stay wholly in train (counted in
    ``report["users_train_only"]``). Targets: one query per user. Ties in time keep the
    table's (stable) order. Exact duplicate events raise (drop them first).
    """
    if n_valid < 0 or n_test < 1:
        raise DataError(
            f"n_valid={n_valid}, n_test={n_test}",
            column="n_test",
            fix="use n_valid >= 0, n_test >= 1",
        )
    require_no_duplicates(inter)
    events = inter.events
    users = events["user"].to_numpy()
    counts = np.bincount(users, minlength=inter.n_users)[users]
    order = np.lexsort((np.arange(len(users)), users))  # user, then time order (table is sorted)
    rank_from_end = np.empty(len(users), dtype=np.int64)
    position = np.arange(len(users)) - np.searchsorted(users[order], users[order])
    rank_from_end[order] = counts[order] - 1 - position
    eligible = counts > n_valid + n_test
    test_mask = eligible & (rank_from_end < n_test)
    valid_mask = eligible & (rank_from_end >= n_test) & (rank_from_end < n_test + n_valid)
    train = _part(inter, ~(test_mask | valid_mask), "train")
    valid = _part(inter, valid_mask, "valid") if n_valid else None
    test = _part(inter, test_mask, "test")
    report = {
        "train_events": len(train),
        "valid_events": int(valid_mask.sum()),
        "test_events": int(test_mask.sum()),
        "users_train_only": int(np.unique(users[~eligible]).size),
    }
    logger.info("leave-last-out split: %s", report)
    split = Split(
        train=train,
        valid=valid,
        test=test,
        valid_targets=empty_targets() if valid is None else event_targets(valid.events, "user"),
        test_targets=event_targets(test.events, "user"),
        mask_history=mask_history,
        protocol="leave_last_out",
        report=report,
        time_order="per_user",
        time_resolution=int(inter.meta.get("time_resolution_s", 1)),
    )
    split.report["leakage_checks"] = split.check_no_leakage()
    return split


def trajectories(
    inter: Interactions, gap_hours: float = 24.0, prefix: str = ""
) -> tuple[Interactions, dict[str, Any]]:
    """Add a ``trajectory`` column: each user's events cut where the gap exceeds ``gap_hours``.

    Ids are ``f"{prefix}{user}_{k}"`` (user code, k-th trajectory of that user from 0). No
    event is dropped; the report counts trajectories and those of a single event.
    """
    if not gap_hours > 0:
        raise DataError(f"gap_hours={gap_hours}", column="gap_hours", fix="use a positive number")
    events = inter.events
    order = np.lexsort((np.arange(len(events)), events["user"].to_numpy()))
    users = events["user"].to_numpy()[order]
    ts = events["timestamp"].to_numpy()[order]
    new_user = np.r_[True, users[1:] != users[:-1]]
    new_traj = new_user | np.r_[False, np.diff(ts) > gap_hours * 3600]
    traj_index = np.cumsum(new_traj) - 1
    user_first = np.maximum.accumulate(np.where(new_user, traj_index, 0))
    k = traj_index - user_first
    ids = np.empty(len(events), dtype=object)
    ids[order] = [f"{prefix}{u}_{j}" for u, j in zip(users.tolist(), k.tolist(), strict=True)]
    sizes = np.bincount(traj_index)
    report: dict[str, Any] = {
        "gap_hours": gap_hours,
        "events": len(events),
        "trajectories": int(len(sizes)),
        "single_event_trajectories": int((sizes == 1).sum()),
        "mean_length": float(sizes.mean()),
    }
    if inter.has("trajectory"):
        report["replaced_column"] = "trajectory"
    logger.info("trajectories: %s", report)
    return inter.with_events(events.assign(trajectory=ids)), report


def last_of_trajectory(events: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Next-POI targets: the last event of each trajectory with at least two events.

    The earlier events of the trajectory are the query's context, so the first event of a
    trajectory is never a target. Events must be time-sorted (as in :class:`Interactions`).
    Returns the targets (``query`` numbered in time order, plus ``trajectory``) and counts.
    """
    if "trajectory" not in events.columns:
        raise DataError(
            "events have no trajectory column", column="trajectory", fix="call trajectories() first"
        )
    sizes = events.groupby("trajectory", sort=False)["user"].transform("size").to_numpy()
    last = ~events.duplicated("trajectory", keep="last").to_numpy()
    chosen = events[last & (sizes >= 2)]
    targets = chosen[[*event_key(chosen), "trajectory"]].reset_index(drop=True)
    targets.insert(0, "query", np.arange(len(targets), dtype=np.int64))
    report = {
        "trajectories": int(last.sum()),
        "single_event_trajectories": int((last & (sizes < 2)).sum()),
        "targets": len(targets),
    }
    return targets, report
