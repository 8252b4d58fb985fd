"""The canonical interaction table that every reader produces and every later stage consumes.

An :class:`Interactions` holds three pandas tables:

``events``
    one row per interaction, sorted by time (stable), with the required columns
    ``user``, ``item`` (contiguous int64 codes) and ``timestamp`` (int64 UTC seconds), and any
    of the optional columns in :data:`OPTIONAL_COLUMNS`.

**Time.** ``timestamp`` is always whole UTC seconds (floored), the unit every later stage
uses. A source with a finer clock keeps it exactly: ``meta["time_resolution"]`` names the unit
(``"ms"``, ``"us"`` or ``"ns"``; absent or ``"s"``: whole seconds) and the ``subsecond``
column holds the rest in that unit (``0 <= subsecond < 1000`` for ``"ms"``), so the exact
time is ``timestamp + subsecond / TIME_UNITS[meta["time_resolution"]]``. Events are ordered
and deduplicated on both columns. **Local time** is ``timestamp + 60 * tz_offset`` (minutes,
per event, so daylight saving time is kept); every local-time feature goes through
:meth:`Interactions.local_time` or :func:`tgraph.data.preprocess.time_features`.
``users`` / ``items``
    one row per user / item code (``index == code``) with at least ``raw_id``, the id used by
    the source file. ``items`` may carry ``lat``, ``lon``, ``category``, ``name``; ``users`` may
    carry any metadata (age, zip code, ...). These tables are the id maps. Metadata may be NaN
    (unknown) for some entries; event columns may not.

All tables are validated on construction; a problem raises :class:`~tgraph.data.errors.DataError`
naming the source file, the column, the first bad row and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tgraph.errors import DataError

REQUIRED_COLUMNS = ("user", "item", "timestamp")
#: optional event columns and the dtype kind they must have ("i" integer, "f" float, "O" any)
OPTIONAL_COLUMNS: dict[str, str] = {
    "lat": "f",  # latitude of the event in degrees (WGS84)
    "lon": "f",  # longitude of the event in degrees
    "category": "i",  # item category code
    "region": "i",  # location / region code (grid cell, k-means region, zip code, ...)
    "behaviour": "O",  # behaviour type, e.g. "click", "buy", "checkin"
    "weight": "f",  # interaction weight or rating
    "tz_offset": "i",  # minutes to add to UTC to get the local time of the event
    "trajectory": "O",  # trajectory / session id given by the source
    "subsecond": "i",  # the time's rest below a second, in units of meta["time_resolution"]
}
#: time units finer than or equal to a second -> units per second
TIME_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
COORDINATE_RANGES = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0)}


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_int_column(frame: pd.DataFrame, column: str, source: str) -> pd.Series:
    """Return ``frame[column]`` as int64, or raise naming the first non-integer row."""
    values = frame[column]
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype(np.int64)
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna().to_numpy() | (numeric.to_numpy(dtype=float, na_value=np.nan) % 1 != 0)
    if bad.any():
        row = _first_bad_row(bad)
        raise DataError(
            f"expected integers, found {values.iloc[row]!r}",
            source=source,
            column=column,
            row=row,
            fix=f"convert '{column}' to integers and remove empty values",
        )
    return numeric.astype(np.int64)


def _check_float_column(
    frame: pd.DataFrame, column: str, source: str, allow_nan: bool = False
) -> pd.Series:
    numeric = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
    values = numeric.to_numpy()
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        row = _first_bad_row(bad)
        raise DataError(
            f"expected finite numbers, found {frame[column].iloc[row]!r}",
            source=source,
            column=column,
            row=row,
            fix=f"fill or drop rows with missing '{column}' before loading",
        )
    if column in COORDINATE_RANGES:
        low, high = COORDINATE_RANGES[column]
        out = (numeric < low) | (numeric > high)
        if out.any():
            row = _first_bad_row(out.to_numpy())
            raise DataError(
                f"{column} {numeric.iloc[row]} is outside [{low}, {high}]",
                source=source,
                column=column,
                row=row,
                fix="check that latitude and longitude are not swapped and are in degrees",
            )
    return numeric


def _validate_columns(
    frame: pd.DataFrame, spec: Mapping[str, str], source: str, allow_nan: bool = False
) -> pd.DataFrame:
    frame = frame.copy()
    for column, kind in spec.items():
        if column not in frame.columns:
            continue
        if kind == "i" and not (allow_nan and frame[column].isna().any()):
            frame[column] = _check_int_column(frame, column, source)
        elif kind == "f":
            frame[column] = _check_float_column(frame, column, source, allow_nan)
        elif frame[column].isna().any():
            row = _first_bad_row(frame[column].isna().to_numpy())
            raise DataError(
                "missing value",
                source=source,
                column=column,
                row=row,
                fix=f"fill or drop rows with missing '{column}'",
            )
    return frame


def _validate_id_table(table: pd.DataFrame, kind: str, source: str) -> pd.DataFrame:
    if "raw_id" not in table.columns:
        raise DataError(
            f"the {kind} table has no 'raw_id' column",
            source=source,
            column="raw_id",
            fix=f"build the {kind} table with Interactions.from_frame",
        )
    table = table.reset_index(drop=True)
    # metadata may be unknown for some catalogue entries (NaN), but never out of range
    return _validate_columns(
        table, {"lat": "f", "lon": "f", "category": "i"}, source, allow_nan=True
    )


def require_columns(
    frame: pd.DataFrame,
    columns: Sequence[str],
    source: str | None,
    fix: str | None = None,
    what: str = "column",
) -> None:
    """Raise :class:`DataError` naming the first of ``columns`` that ``frame`` lacks (and
    every missing one), with ``fix`` (default: the header the file needs)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"missing {what}(s) {missing}; found {list(frame.columns)}",
            source=source,
            column=missing[0],
            fix=fix or f"the file needs a header with the columns {list(columns)}",
        )


def _check_subsecond(values: np.ndarray, meta: Mapping[str, Any], source: str) -> None:
    resolution = meta.get("time_resolution")
    if resolution not in TIME_UNITS or resolution == "s":
        raise DataError(
            f"events have a 'subsecond' column but meta['time_resolution'] is {resolution!r}",
            source=source,
            column="subsecond",
            fix="set meta['time_resolution'] to 'ms', 'us' or 'ns'",
        )
    bad = (values < 0) | (values >= TIME_UNITS[resolution])
    if bad.any():
        row = _first_bad_row(bad)
        raise DataError(
            f"subsecond {values[row]} is outside [0, {TIME_UNITS[resolution]}) ({resolution})",
            source=source,
            column="subsecond",
            row=row,
            fix="keep whole seconds in 'timestamp' and only the rest in 'subsecond'",
        )


@dataclass
class Interactions:
    """A validated event table plus its user and item id maps (see the module docstring)."""

    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    name: str = "interactions"
    source: str = "<memory>"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        source = self.source
        if len(self.events) == 0:
            raise DataError(
                "the interaction table is empty",
                source=source,
                fix="check the file path and any filters applied before loading",
            )
        require_columns(
            self.events,
            REQUIRED_COLUMNS,
            source,
            fix="rename the columns or pass a column mapping to the reader",
            what="required column",
        )
        unknown = set(self.events.columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS)
        if unknown:
            raise DataError(
                f"unknown column(s) {sorted(unknown)}",
                source=source,
                column=sorted(unknown)[0],
                fix=f"keep only {list(REQUIRED_COLUMNS) + list(OPTIONAL_COLUMNS)}; "
                "put other attributes in the users/items tables",
            )
        self.users = _validate_id_table(self.users, "users", source)
        self.items = _validate_id_table(self.items, "items", source)
        spec = {"user": "i", "item": "i", "timestamp": "i", **OPTIONAL_COLUMNS}
        events = _validate_columns(self.events, spec, source)
        for column, table in (("user", self.users), ("item", self.items)):
            codes = events[column].to_numpy()
            bad = (codes < 0) | (codes >= len(table))
            if bad.any():
                row = _first_bad_row(bad)
                raise DataError(
                    f"{column} code {codes[row]} is outside [0, {len(table)})",
                    source=source,
                    column=column,
                    row=row,
                    fix="build the table with Interactions.from_frame, which assigns codes",
                )
        keys = [events["timestamp"].to_numpy()]
        if "subsecond" in events.columns:
            _check_subsecond(events["subsecond"].to_numpy(), self.meta, source)
            keys.insert(0, events["subsecond"].to_numpy())  # lexsort: last key is primary
        order = np.lexsort(keys)
        self.events = events.iloc[order].reset_index(drop=True)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        name: str,
        source: str = "<memory>",
        item_meta: pd.DataFrame | None = None,
        user_meta: pd.DataFrame | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Interactions:
        """Build from raw ids: ``frame`` has columns user, item, timestamp (+ optional ones).

        ``item_meta`` / ``user_meta`` are indexed by raw id; items or users that appear only in
        the metadata are kept (so a catalogue can be larger than the interacted set). Codes are
        assigned in sorted raw-id order, which makes them independent of row order.
        """
        require_columns(
            frame,
            REQUIRED_COLUMNS,
            source,
            fix="rename the columns or pass a column mapping to the reader",
            what="required column",
        )
        events = frame.copy()
        tables = {}
        for column, extra in (("user", user_meta), ("item", item_meta)):
            if events[column].isna().any():
                row = _first_bad_row(events[column].isna().to_numpy())
                raise DataError(
                    "missing id", source=source, column=column, row=row, fix="drop rows without ids"
                )
            raw = pd.Index(events[column].unique())
            if extra is not None:
                raw = raw.union(pd.Index(extra.index))
            raw = raw.sort_values()
            events[column] = raw.get_indexer(events[column]).astype(np.int64)
            table = pd.DataFrame({"raw_id": raw.to_numpy()})
            if extra is not None:
                table = table.join(extra.reindex(raw).reset_index(drop=True))
            tables[column] = table
        return cls(
            events=events,
            users=tables["user"],
            items=tables["item"],
            name=name,
            source=source,
            meta=dict(meta or {}),
        )

    # ------------------------------------------------------------------ views
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return len(self.events)

    def has(self, column: str) -> bool:
        """Whether the events carry ``column``."""
        return column in self.events.columns

    def with_events(self, events: pd.DataFrame, **changes: Any) -> Interactions:
        """A copy with other events but the same id maps (used by filters and splits)."""
        return Interactions(
            events=events.reset_index(drop=True),
            users=changes.get("users", self.users),
            items=changes.get("items", self.items),
            name=changes.get("name", self.name),
            source=changes.get("source", self.source),
            meta=changes.get("meta", dict(self.meta)),
        )

    def local_time(self) -> pd.Series:
        """Local wall-clock time of each event (UTC plus ``tz_offset`` when present), with
        its ``subsecond`` part when present."""
        seconds = self.events["timestamp"]
        if self.has("tz_offset"):
            seconds = seconds + self.events["tz_offset"] * 60
        local = pd.to_datetime(seconds, unit="s")
        if self.has("subsecond"):
            per_second = TIME_UNITS[self.meta["time_resolution"]]
            nanoseconds = self.events["subsecond"] * (1_000_000_000 // per_second)
            local = local.dt.as_unit("ns") + pd.to_timedelta(nanoseconds, unit="ns")
        return local

    def summary(self) -> dict[str, Any]:
        """Counts and time span, for logs and ``tgraph data describe``."""
        ts = self.events["timestamp"]
        return {
            "name": self.name,
            "events": len(self),
            "users": int(self.events["user"].nunique()),
            "items": int(self.events["item"].nunique()),
            "catalogue_users": self.n_users,
            "catalogue_items": self.n_items,
            "start": str(pd.to_datetime(ts.min(), unit="s")),
            "end": str(pd.to_datetime(ts.max(), unit="s")),
            "columns": list(self.events.columns),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"Interactions(name={s['name']!r}, events={s['events']:,}, users={s['users']:,}, "
            f"items={s['items']:,}, span={s['start']} .. {s['end']})"
        )
