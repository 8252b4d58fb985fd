"""Any CSV / TSV / Parquet interaction table, given a column mapping.

Example::

    read_table(
        "checkins.csv.gz",
        {"user": "uid", "item": "venue", "timestamp": "time", "lat": "lat", "lon": "lng"},
        time_format="%Y-%m-%d %H:%M:%S",
        timezone="America/New_York",
    )
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.data.interactions import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    Interactions,
    require_columns,
)
from tgraph.data.readers import _io
from tgraph.errors import DataError

TIME_UNITS = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}
_TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}


def read_table(
    path: str | os.PathLike,
    columns: Mapping[str, str],
    *,
    name: str | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
    time_format: str = "unix",
    time_unit: str = "s",
    timezone: str = "UTC",
    item_columns: Mapping[str, str] | None = None,
    user_columns: Mapping[str, str] | None = None,
) -> Interactions:
    """Read an interaction table and map its columns to tgraph's.

    Args:
        path: ``.csv``, ``.tsv``, ``.txt`` (optionally ``.gz``) with a header row, or
            ``.parquet``. Errors name the file line for text files and the 0-based row for
            Parquet.
        columns: tgraph column -> source column; needs ``user``, ``item``, ``timestamp`` and
            may map any of ``lat, lon, category, region, behaviour, weight, tz_offset,
            trajectory``. A non-integer ``category`` is coded in sorted order
            (``meta["categories"]`` lists the values).
        sep: field separator of a text file (default from the suffix: ``,`` or tab).
        time_format: ``"unix"`` for integer epoch times in ``time_unit``; ``"infer"`` to let
            pandas parse datetime strings; else a ``strptime`` format such as
            ``"%Y-%m-%d %H:%M:%S"``. Times without an offset are wall time in ``timezone``.
        item_columns / user_columns: item / user table column -> source column, taken from
            the first row of each item / user. Items get median ``lat``/``lon`` when events
            have coordinates.

    Ids that are all integers become int64 (so codes follow numeric order), else strings.
    """
    path = _io.resolve(path)
    source = str(path)
    _check_mapping(columns, source)
    frame, lines = _read_any(path, sep, encoding)
    extra = {**(item_columns or {}), **(user_columns or {})}
    require_columns(frame, [*columns.values(), *extra.values()], source)

    events = pd.DataFrame(index=frame.index)
    for key in ("user", "item"):
        events[key] = _ids(frame, columns[key], lines, source)
    events["timestamp"] = _timestamps(
        frame, columns["timestamp"], lines, source, time_format, time_unit, timezone
    )
    meta: dict = {}
    if "lat" in columns:
        events["lat"], events["lon"] = _io.parse_coordinates(
            frame, columns["lat"], columns["lon"], lines, source
        )
    if "weight" in columns:
        events["weight"] = _io.parse_float(frame, columns["weight"], lines, source)
    for key in ("region", "tz_offset"):
        if key in columns:
            events[key] = _io.parse_int(frame, columns[key], lines, source)
    for key in ("behaviour", "trajectory"):
        if key in columns:
            events[key] = _io.require_text(frame, columns[key], lines, source).to_numpy()
    if "category" in columns:
        events["category"], meta["categories"] = _category(
            frame, columns["category"], lines, source
        )

    item_meta = _first_values(frame, events["item"], item_columns)
    if "lat" in events:
        coords = _io.item_coordinates(events)
        item_meta = coords if item_meta is None else item_meta.join(coords)
    user_meta = _first_values(frame, events["user"], user_columns)
    return Interactions.from_frame(
        events.reset_index(drop=True),
        name=name or path.name.split(".")[0],
        source=source,
        item_meta=item_meta,
        user_meta=user_meta,
        meta=meta,
    )


def _check_mapping(columns: Mapping[str, str], source: str) -> None:
    allowed = [*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS]
    for key in columns:
        if key not in allowed:
            raise DataError(
                f"unknown tgraph column {key!r} in the column mapping",
                source=source,
                column=key,
                fix=f"map only {allowed}; put other attributes in item_columns/user_columns",
            )
    if ("lat" in columns) != ("lon" in columns):
        raise DataError(
            "the column mapping has only one of lat and lon",
            source=source,
            column="lon" if "lat" in columns else "lat",
            fix="map both lat and lon, or neither",
        )
    missing = [key for key in REQUIRED_COLUMNS if key not in columns]
    if missing:
        raise DataError(
            f"the column mapping lacks {missing}",
            source=source,
            column=missing[0],
            fix="map user, item and timestamp to columns of the file",
        )


def _read_any(path: Path, sep: str | None, encoding: str) -> tuple[pd.DataFrame, np.ndarray]:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    suffix = suffixes[-1].lower() if suffixes else ""
    if suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
        if len(frame) == 0:
            raise DataError("the file has no data rows", source=str(path), fix="check the file")
        return frame.reset_index(drop=True), np.arange(len(frame), dtype=np.int64)
    if sep is None:
        if suffix not in _TEXT_SUFFIXES:
            raise DataError(
                f"cannot tell the format from the suffix {suffix!r}",
                source=str(path),
                fix="use .csv/.tsv/.txt/.parquet (optionally .gz) or pass sep=",
            )
        sep = _TEXT_SUFFIXES[suffix]
    return _io.read_delimited(path, sep=sep, encoding=encoding)


def _ids(frame: pd.DataFrame, column: str, lines: np.ndarray, source: str) -> np.ndarray:
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return _io.parse_int(frame, column, lines, source, fix="ids must be integers or strings")
    text = _io.require_text(frame, column, lines, source)
    numeric = pd.to_numeric(text, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    if np.isfinite(numeric).all() and (numeric % 1 == 0).all():
        return numeric.astype(np.int64)
    return text.to_numpy(dtype=object)


def _timestamps(
    frame: pd.DataFrame,
    column: str,
    lines: np.ndarray,
    source: str,
    time_format: str,
    time_unit: str,
    timezone: str,
) -> np.ndarray:
    if time_format != "unix":
        raw = frame[column]
        if pd.api.types.is_datetime64_any_dtype(raw.dtype):
            raw = raw.astype(str).where(raw.notna(), "")
        return _io.parse_datetime(
            raw,
            column,
            lines,
            source,
            format=None if time_format == "infer" else time_format,
            timezone=timezone,
        )
    if time_unit not in TIME_UNITS:
        raise KeyError(f"unknown time_unit {time_unit!r}; choose one of {list(TIME_UNITS)}")
    raw = frame[column]
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        raise DataError(
            "the column holds datetimes, not epoch numbers",
            source=source,
            column=column,
            fix="pass time_format='infer'",
        )
    values = _io.parse_int(
        frame,
        column,
        lines,
        source,
        fix="use epoch integers, or pass time_format= for datetime strings",
    )
    return values // TIME_UNITS[time_unit]


def _category(
    frame: pd.DataFrame, column: str, lines: np.ndarray, source: str
) -> tuple[np.ndarray, pd.Series]:
    values = _ids(frame, column, lines, source)
    if values.dtype == np.int64:
        return values, pd.Series(np.unique(values))
    categories = pd.Index(np.unique(values.astype(str)))
    return categories.get_indexer(values.astype(str)).astype(np.int64), pd.Series(categories)


def _first_values(
    frame: pd.DataFrame, ids: pd.Series, mapping: Mapping[str, str] | None
) -> pd.DataFrame | None:
    if not mapping:
        return None
    table = pd.DataFrame({target: frame[col].to_numpy() for target, col in mapping.items()})
    table.index = pd.Index(ids.to_numpy())
    return table[~table.index.duplicated()]
