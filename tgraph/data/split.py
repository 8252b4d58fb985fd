"""Train / validation / test splits and the targets each protocol scores.

A :class:`Split` keeps three event tables that share one id space (the same ``users`` and
``items`` tables) and, for validation and test, a *targets* table: one row per
(query, ground-truth item) to rank. Everything a model may learn from (graph, features,
normalisation, popularity) comes from ``split.train`` only; validation and test events are
context available at inference time, strictly before each query's timestamp.

Generic builders: :func:`chronological_split` (one global cut by time), :func:`leave_last_out`
(per user), :func:`trajectories` (24-hour style sessions) and :func:`last_of_trajectory`
(next-POI targets). Every builder checks the result with :meth:`Split.check_no_leakage`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.errors import DataError, LeakageError

logger = logging.getLogger(__name__)

TARGET_COLUMNS = ("query", "user", "item", "timestamp")
EVENT_KEY = ("user", "item", "timestamp")
#: values of :attr:`Split.time_order`
TIME_ORDERS = ("global", "per_user", None)


def empty_targets() -> pd.DataFrame:
    """A targets table with no rows (for protocols without validation)."""
    return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in TARGET_COLUMNS})


@dataclass
class Split:
    """A protocol's split.

    Attributes:
        train: the events a model may learn from.
        valid: events of the validation period (``None`` when the protocol has none).
        test: events of the test period.
        valid_targets / test_targets: columns ``query, user, item, timestamp``; ``query`` groups
            the ground-truth items of one ranking request (one per user for top-K protocols,
            one per target check-in for next-POI protocols).
        mask_history: whether items the user interacted with before (train, and train plus
            validation for test) are removed from the candidates (LightGCN protocol: yes;
            next-POI protocol: no, revisits are valid targets). See :meth:`history_items`.
        protocol: name of the protocol preset that built the split.
        report: counts of every row a filter dropped, by reason.
        time_order: what :meth:`check_no_leakage` requires of time: ``"global"`` (every train
            event strictly before every validation/test event), ``"per_user"`` (each user's
            train events not after that user's targets) or ``None`` (no time in the data).
        require_seen: whether every target's user and item must occur in ``train``.
        time_resolution: seconds; events are compared at ``timestamp // time_resolution``
            (60 when a source only has minutes, so the same check-in matches across files).
    """

    train: Interactions
    valid: Interactions | None
    test: Interactions
    valid_targets: pd.DataFrame
    test_targets: pd.DataFrame
    mask_history: bool
    protocol: str
    report: dict[str, Any] = field(default_factory=dict)
    time_order: str | None = "global"
    require_seen: bool = False
    time_resolution: int = 1

    def __post_init__(self) -> None:
        for part, targets in (
            ("valid_targets", self.valid_targets),
            ("test_targets", self.test_targets),
        ):
            missing = [c for c in TARGET_COLUMNS if c not in targets.columns]
            if missing:
                raise DataError(f"{part} lacks column(s) {missing}", column=missing[0])
        if len(self.test_targets) == 0:
            raise DataError(
                f"protocol {self.protocol!r} produced no test targets",
                fix="check the split ratios or timestamps and the filters applied before",
            )
        for events in (self.valid, self.test):
            if events is not None and (
                events.n_users != self.train.n_users or events.n_items != self.train.n_items
            ):
                raise DataError(
                    "train, valid and test must share one id space (users/items tables)"
                )
        if self.time_order not in TIME_ORDERS:
            raise DataError(
                f"unknown time_order {self.time_order!r}",
                column="time_order",
                fix=f"use one of {TIME_ORDERS}",
            )

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def targets(self, part: str) -> pd.DataFrame:
        """Targets of ``part`` ("valid" or "test")."""
        if part not in ("valid", "test"):
            raise KeyError(f"part must be 'valid' or 'test', got {part!r}")
        return self.valid_targets if part == "valid" else self.test_targets

    def history_pairs(self, part: str) -> pd.DataFrame:
        """Unique ``(user, item)`` pairs to remove from ``part``'s candidates.

        The rule: nothing when ``mask_history`` is False; otherwise the training events for
        ``"valid"``, and the training plus validation events for ``"test"`` (for LightGCN this
        is the whole released ``train.txt``).
        """
        self.targets(part)
        if not self.mask_history:
            return pd.DataFrame(
                {"user": pd.Series(dtype=np.int64), "item": pd.Series(dtype=np.int64)}
            )
        frames = [self.train.events[["user", "item"]]]
        if part == "test" and self.valid is not None:
            frames.append(self.valid.events[["user", "item"]])
        pairs = pd.concat(frames, ignore_index=True).drop_duplicates()
        return pairs.sort_values(["user", "item"], kind="stable").reset_index(drop=True)

    def history_items(self, part: str) -> dict[int, np.ndarray]:
        """Per user code, the sorted item codes to mask when ranking ``part`` (see above)."""
        pairs = self.history_pairs(part)
        users = pairs["user"].to_numpy()
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else users[:0]
        chunks = np.split(pairs["item"].to_numpy(), starts[1:])
        return {int(users[s]): chunk for s, chunk in zip(starts, chunks, strict=False)}

    def check_no_leakage(self) -> dict[str, Any]:
        """Raise :class:`LeakageError` unless the split is clean; return what was checked.

        Checks: (1) no validation/test event ``(user, item, timestamp // time_resolution)`` is
        also a training event, and no test event is a validation event; (2) every target is an
        event of its part; (3) ``time_order == "global"``: every training event is strictly
        earlier than every validation/test event and target; ``"per_user"``: no training event
        of a user is later than that user's targets; (4) ``require_seen``: every target's user
        and item occur in training.
        """
        checked: dict[str, Any] = {}
        train = self.train.events
        train_keys = _event_keys(train, self.time_resolution)
        parts = {"valid": self.valid, "test": self.test}
        for name, inter in parts.items():
            if inter is None:
                continue
            keys = _event_keys(inter.events, self.time_resolution)
            shared = np.isin(keys, train_keys)
            if shared.any():
                row = int(np.flatnonzero(shared)[0])
                raise LeakageError(
                    f"{int(shared.sum())} {name} event(s) are also training events, first "
                    f"{inter.events.loc[row, list(EVENT_KEY)].to_dict()}",
                    source=self.protocol,
                    row=row,
                    fix="build train from events strictly outside the validation/test periods",
                )
            if name == "test" and self.valid is not None:
                valid_keys = _event_keys(self.valid.events, self.time_resolution)
                if np.isin(keys, valid_keys).any():
                    raise LeakageError(
                        "some test events are also validation events", source=self.protocol
                    )
            targets = self.targets(name)
            missing = ~np.isin(_event_keys(targets, self.time_resolution), keys)
            if missing.any():
                raise LeakageError(
                    f"{int(missing.sum())} {name} target(s) are not {name} events",
                    source=self.protocol,
                    row=int(np.flatnonzero(missing)[0]),
                    fix="take targets from the events of their own part",
                )
            checked[f"{name}_events_not_in_train"] = len(keys)
            self._check_time(name, inter.events, targets)
            if self.require_seen:
                self._check_seen(name, targets)
        checked["time_order"] = self.time_order
        checked["require_seen"] = self.require_seen
        return checked

    def _check_time(self, name: str, events: pd.DataFrame, targets: pd.DataFrame) -> None:
        train = self.train.events
        if self.time_order == "global":
            last = int(train["timestamp"].max())
            times = np.r_[events["timestamp"].to_numpy(), targets["timestamp"].to_numpy()]
            first = int(times.min())
            if first <= last:
                raise LeakageError(
                    f"a training event (t={last}) is not earlier than a {name} event or target "
                    f"(t={first})",
                    source=self.protocol,
                    column="timestamp",
                    fix="cut train strictly before the first validation/test timestamp",
                )
        elif self.time_order == "per_user" and len(targets):
            latest = train.groupby("user")["timestamp"].max()
            after = latest.reindex(targets["user"]).to_numpy() > targets["timestamp"].to_numpy()
            if after.any():
                row = int(np.flatnonzero(after)[0])
                raise LeakageError(
                    f"user {int(targets['user'].iloc[row])} has training events after a {name} "
                    "target",
                    source=self.protocol,
                    row=row,
                    fix="hold out each user's latest events",
                )

    def _check_seen(self, name: str, targets: pd.DataFrame) -> None:
        for column in ("user", "item"):
            unseen = ~targets[column].isin(self.train.events[column]).to_numpy()
            if unseen.any():
                row = int(np.flatnonzero(unseen)[0])
                raise LeakageError(
                    f"{int(unseen.sum())} {name} target(s) have a {column} unseen in training",
                    source=self.protocol,
                    column=column,
                    row=row,
                    fix=f"drop targets whose {column} is not in train (the protocol requires it)",
                )

    def summary(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "train_events": len(self.train),
            "valid_events": 0 if self.valid is None else len(self.valid),
            "test_events": len(self.test),
            "valid_queries": int(self.valid_targets["query"].nunique()),
            "test_queries": int(self.test_targets["query"].nunique()),
            "users": self.n_users,
            "items": self.n_items,
            "report": self.report,
        }


def _event_keys(frame: pd.DataFrame, resolution: int) -> np.ndarray:
    """One int64 key per ``(user, item, timestamp // resolution)`` row (exact, no hashing)."""
    keys = frame[list(EVENT_KEY)].to_numpy(dtype=np.int64).copy()
    keys[:, 2] //= resolution
    return keys.view([("", np.int64)] * 3).ravel()


# ---------------------------------------------------------------------------------- helpers
def require_no_duplicates(inter: Interactions) -> None:
    duplicated = inter.events.duplicated(list(EVENT_KEY)).to_numpy()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(
            f"{int(duplicated.sum())} exact duplicate event(s) (same user, item and timestamp)",
            source=inter.source,
            column="timestamp",
            row=row,
            fix="drop exact duplicates before splitting "
            "(inter.with_events(inter.events.drop_duplicates(['user', 'item', 'timestamp'])))",
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


def event_targets(events: pd.DataFrame, query: str = "event") -> pd.DataFrame:
    """Targets from events: one query per event (``"event"``) or per user (``"user"``)."""
    targets = events[list(EVENT_KEY)].reset_index(drop=True)
    if query == "event":
        ids = np.arange(len(targets), dtype=np.int64)
    elif query == "user":
        ids = targets["user"].to_numpy()
    else:
        raise DataError(
            f"unknown query kind {query!r}", column="query", fix="use 'event' or 'user'"
        )
    return targets.assign(query=ids)[list(TARGET_COLUMNS)]


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


# ---------------------------------------------------------------------------------- builders
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
    targets = chosen[[*EVENT_KEY, "trajectory"]].reset_index(drop=True)
    targets.insert(0, "query", np.arange(len(targets), dtype=np.int64))
    report = {
        "trajectories": int(last.sum()),
        "single_event_trajectories": int((last & (sizes < 2)).sum()),
        "targets": len(targets),
    }
    return targets, report
