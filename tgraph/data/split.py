"""Train / validation / test splits and the targets each protocol scores.

A :class:`Split` keeps three event tables that share one id space (the same ``users`` and
``items`` tables) and, for validation and test, a *targets* table: one row per
(query, ground-truth item) to rank. Everything a model may learn from (graph, features,
normalisation, popularity) comes from ``split.train`` only; validation and test events are
context available at inference time, strictly before each query's timestamp.

The builders that make splits (presets and generic ones) live in :mod:`tgraph.data.protocols`;
this module keeps the :class:`Split` type, its targets tables and the invariants
(:meth:`Split.check_no_leakage`) every builder ends with.

**What a query knows** (:attr:`Split.query_time`, :data:`QUERY_TIMES`): with ``"known"`` a
ranking request carries the time of the event it asks about (a top-K protocol's "now", or
the "time-aware next-POI" task); with ``"hidden"`` (the next-POI presets' default, as in
GETNext and STHGCN) it carries only the time of the user's last event before the target, or
the protocol's cut (:meth:`Split.query_cut`) for a user without one, so that no model can
read the target's time (:func:`tgraph.data.queries.build_queries`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import from_items_table, item_codes, item_coordinates
from tgraph.errors import DataError, LeakageError

TARGET_COLUMNS = ("query", "user", "item", "timestamp")
EVENT_KEY = ("user", "item", "timestamp")
#: values of :attr:`Split.time_order`
TIME_ORDERS = ("global", "per_user", None)
#: values of :attr:`Split.query_time`
QUERY_TIMES = ("hidden", "known")
#: :attr:`Split.task` of the next-POI presets
NEXT_POI = "next_poi"
#: item attributes events carry: coordinates (per-item median) and codes (most frequent)
COORDINATE_ATTRIBUTES = ("lat", "lon")
CODE_ATTRIBUTES = ("category", "region")


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
        query_time: what a ranking request knows of the time of the event it asks about
            (module docstring): ``"known"`` (its own time) or ``"hidden"`` (its user's last
            event's, else :meth:`query_cut`). Set by the preset, overridden by
            ``dataset.query_time``.
        task: what the protocol asks (``"next_poi"`` for the next-POI presets; ``None``
            otherwise); with it, :attr:`task_label` names the task in run records.
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
    query_time: str = "known"
    task: str | None = None

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
        if self.query_time not in QUERY_TIMES:
            raise DataError(
                f"unknown query_time {self.query_time!r}",
                column="query_time",
                fix=f"use one of {QUERY_TIMES}",
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

    @property
    def task_label(self) -> str | None:
        """The task as run records and leaderboards name it: ``"next-POI"`` (next-POI
        protocol, time hidden), ``"time-aware next-POI"`` (next-POI protocol, the target's
        time known), else ``None`` (a protocol that names no task)."""
        if self.task != NEXT_POI:
            return self.task
        return "next-POI" if self.query_time == "hidden" else "time-aware next-POI"

    def query_cut(self, part: str) -> int:
        """The "now" of a ``part`` ("train", "valid" or "test") query whose user has no
        earlier event, under ``query_time: hidden``: the latest event time of the parts
        before it (the training part's latest for validation, the validation part's latest,
        else the training part's, for test; the earliest training event for training
        samples, which nothing precedes). It never depends on the query's own target."""
        train = self.train.events["timestamp"]
        if part == "train":
            return int(train.min())
        if part == "valid":
            return int(train.max())
        if part == "test":
            before = self.valid if self.valid is not None and len(self.valid) else self.train
            return int(before.events["timestamp"].max())
        raise KeyError(f"part must be 'train', 'valid' or 'test', got {part!r}")

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

    def check_no_leakage(
        self,
        item_features: Mapping[str, np.ndarray] | None = None,
        edge_times: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """Raise :class:`LeakageError` unless the split is clean; return what was checked.

        Checks: (1) no validation/test event ``(user, item, timestamp // time_resolution)`` is
        also a training event, and no test event is a validation event; (2) every target is an
        event of its part; (3) ``time_order == "global"``: every training event is strictly
        earlier than every validation/test event and target; ``"per_user"``: no training event
        of a user is later than that user's targets; (4) ``require_seen``: every target's user
        and item occur in training; (5) item attributes the events carry (``lat``, ``lon``,
        ``category``, ``region``) that sit in the items table without being declared static
        (``meta["static_item_columns"]``) equal what the training events give (median
        position, most frequent code; unknown for items without training events).

        Features a model or graph uses are checked when given: ``item_features`` maps
        ``"latlon"`` (``n_items x 2``), ``"lat"``, ``"lon"``, ``"category"`` or ``"region"``
        to per-item values, which must equal :func:`~tgraph.data.preprocess.item_coordinates`
        / :func:`~tgraph.data.preprocess.item_codes` of ``train`` (NaN and -1 for unknown);
        ``edge_times`` maps a relation name to its edges' timestamps, each of which must be a
        training event's (see :func:`tgraph.graph.training.check_graph_leakage`).
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
                    f"{inter.events.loc[row, event_key(inter.events)].to_dict()}",
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
            common = [c for c in event_key(inter.events) if c in targets.columns]
            missing = ~np.isin(
                _event_keys(targets, self.time_resolution, common),
                _event_keys(inter.events, self.time_resolution, common),
            )
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
        checked["items_table_attributes"] = self._check_items_table()
        if item_features:
            checked["item_features"] = self._check_item_features(item_features)
        if edge_times:
            checked["edge_times"] = self._check_edge_times(edge_times)
        return checked

    def _training_attribute(self, name: str) -> np.ndarray:
        """Per-item value of attribute ``name`` a model may use (:meth:`check_no_leakage`, (5))."""
        if name in ("latlon", *COORDINATE_ATTRIBUTES):
            lat, lon = item_coordinates(self.train)
            return {"lat": lat, "lon": lon, "latlon": np.stack([lat, lon], axis=1)}[name]
        codes = item_codes(self.train, name) if name in CODE_ATTRIBUTES else None
        if codes is None:
            raise DataError(
                f"no training attribute {name!r} to check a feature against",
                source=self.protocol,
                column=name,
                fix="check item features among 'latlon', 'lat', 'lon', 'category', 'region' "
                "that the training part carries",
            )
        return codes

    def _mismatch(self, what: str, name: str, actual: np.ndarray, expected: np.ndarray) -> None:
        actual = np.asarray(actual, dtype=float)
        expected = np.asarray(expected, dtype=float)
        if actual.shape != expected.shape:
            raise LeakageError(
                f"{what} {name!r} has shape {actual.shape}, the training part gives "
                f"{expected.shape}",
                source=self.protocol,
                column=name,
                fix="one row per item code of the split",
            )
        same = (actual == expected) | (np.isnan(actual) & np.isnan(expected))
        differs = ~same.reshape(len(same), -1).all(axis=1)
        if differs.any():
            item = int(np.flatnonzero(differs)[0])
            raw = self.train.items["raw_id"].iloc[item]
            raise LeakageError(
                f"{what} {name!r} differs from the training events' value for "
                f"{int(differs.sum())} item(s), first item {raw!r} (code {item}): "
                f"{actual[item].tolist()} vs {expected[item].tolist()} from training; it was "
                "derived from validation/test events",
                source=self.protocol,
                column=name,
                row=item,
                fix="derive item attributes from split.train (tgraph.data.preprocess."
                "item_coordinates / item_codes), or declare an item table read from a static "
                "file in meta['static_item_columns']",
            )

    def _check_items_table(self) -> list[str]:
        items = self.train.items
        checked = []
        for name in (*COORDINATE_ATTRIBUTES, *CODE_ATTRIBUTES):
            if name not in items.columns or from_items_table(self.train, name):
                continue
            if name in CODE_ATTRIBUTES:
                values = pd.to_numeric(items[name], errors="coerce").to_numpy(dtype=float)
                actual = np.where(np.isfinite(values) & (values >= 0), values, -1)
            else:
                actual = items[name].to_numpy(dtype=float)
            self._mismatch("items column", name, actual, self._training_attribute(name))
            checked.append(name)
        return checked

    def _check_item_features(self, features: Mapping[str, np.ndarray]) -> list[str]:
        for name, values in features.items():
            self._mismatch("item feature", name, values, self._training_attribute(name))
        return sorted(features)

    def _check_edge_times(self, edge_times: Mapping[str, np.ndarray]) -> dict[str, int]:
        train_times = np.unique(self.train.events["timestamp"].to_numpy())
        checked = {}
        for relation, times in edge_times.items():
            times = np.asarray(times, dtype=np.int64)
            foreign = ~np.isin(times, train_times)
            if foreign.any():
                raise LeakageError(
                    f"{int(foreign.sum())} edge(s) of relation {relation!r} carry a time that "
                    f"is no training event's, first t={int(times[foreign][0])}",
                    source=self.protocol,
                    column="timestamp",
                    row=int(np.flatnonzero(foreign)[0]),
                    fix="build the graph from split.train only",
                )
            checked[relation] = len(times)
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
            "query_time": self.query_time,
            "task": self.task_label,
            "report": self.report,
        }


def event_key(frame: pd.DataFrame) -> list[str]:
    """Columns that identify an event of ``frame``: :data:`EVENT_KEY`, plus ``subsecond`` when
    the events keep a finer time (two events 800 ms apart are two events)."""
    return [*EVENT_KEY, "subsecond"] if "subsecond" in frame.columns else list(EVENT_KEY)


def _event_keys(
    frame: pd.DataFrame, resolution: int, columns: Sequence[str] | None = None
) -> np.ndarray:
    """One exact key (no hashing) per row: ``(user, item, timestamp // resolution)`` and, at
    whole-second resolution, ``subsecond`` when ``columns`` (default :func:`event_key`) has it."""
    columns = list(columns or event_key(frame))
    if resolution != 1 and "subsecond" in columns:
        columns.remove("subsecond")  # coarser than a second: the rest below it cannot matter
    keys = frame[columns].to_numpy(dtype=np.int64).copy()
    keys[:, 2] //= resolution
    return keys.view([("", np.int64)] * len(columns)).ravel()


def event_targets(events: pd.DataFrame, query: str = "event") -> pd.DataFrame:
    """Targets from events: one query per event (``"event"``) or per user (``"user"``)."""
    key = event_key(events)
    targets = events[key].reset_index(drop=True)
    if query == "event":
        ids = np.arange(len(targets), dtype=np.int64)
    elif query == "user":
        ids = targets["user"].to_numpy()
    else:
        raise DataError(
            f"unknown query kind {query!r}", column="query", fix="use 'event' or 'user'"
        )
    return targets.assign(query=ids)[[*TARGET_COLUMNS, *key[len(EVENT_KEY) :]]]
