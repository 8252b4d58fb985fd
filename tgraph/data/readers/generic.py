"""Any CSV / TSV / Parquet interaction table, given a column mapping; also the ``table``
dataset, which reads one from a config file.

Example::

    read_table(
        "checkins.csv.gz",
        {"user": "uid", "item": "venue", "timestamp": "time", "lat": "lat", "lon": "lng"},
        time_format="%Y-%m-%d %H:%M:%S",
        timezone="America/New_York",
    )

or, in an experiment config::

    dataset:
      name: table
      options:
        path: /data/checkins.csv
        columns: {user: uid, item: venue, timestamp: time, lat: lat, lon: lng}
        timezone: America/New_York
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from tgraph.config import StrictModel, validate_model
from tgraph.data.interactions import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    TIME_UNITS,
    Interactions,
    require_columns,
)
from tgraph.data.readers import _io
from tgraph.errors import ConfigError, DataError, DatasetNotFoundError

logger = logging.getLogger(__name__)

_TEXT_SUFFIXES = {".csv": ",", ".tsv": "\t", ".txt": ","}
#: event columns a reader computes or that no file maps directly
_DERIVED = ("subsecond",)


class ItemTable(StrictModel):
    """A static item table (e.g. a POI file): one row per item, read from ``path`` (same
    formats as the events); ``id`` is its item id column, ``columns`` maps items-table columns
    (``lat``, ``lon``, ``category`` (integer codes), any other name) to its columns."""

    path: str
    id: str
    columns: dict[str, str]
    sep: str | None = None
    encoding: str = "utf-8"


class TableOptions(StrictModel):
    """The options of the ``table`` dataset (``dataset.options``): the arguments of
    :func:`read_table`. A relative ``path`` is read from the current working directory (not
    from the config file's folder): an absolute path is safer."""

    path: str
    columns: dict[str, str]
    name: str | None = None
    sep: str | None = None
    encoding: str = "utf-8"
    time_format: str | None = None
    time_unit: Literal["s", "ms", "us", "ns"] = "s"
    timezone: str | None = None
    tz_column: str | None = None
    item_columns: dict[str, str] = Field(default_factory=dict)
    user_columns: dict[str, str] = Field(default_factory=dict)
    items: ItemTable | None = None


def table_options(options: dict[str, Any]) -> TableOptions:
    """``dataset.options`` of the ``table`` dataset, typed (an unknown or mistyped option is a
    :class:`ConfigError` naming ``dataset.options.<key>``)."""
    return validate_model(TableOptions, options, "dataset.options")


def read_table_dataset(**options: Any) -> Interactions:
    """The ``table`` dataset: :func:`table_options`, then :func:`read_table`."""
    checked = table_options(options)
    path = Path(checked.path)
    if not (path.is_file() or path.with_name(path.name + ".gz").is_file()):
        raise DatasetNotFoundError(
            f"key 'dataset.options.path': the file {checked.path} (or {path.name}.gz) does not "
            f"exist; a relative path is read from the current working directory ({Path.cwd()}), "
            "not from the config file's folder: give an absolute path"
        )
    return read_table(**{**checked.model_dump(), "items": checked.items})


def read_table(
    path: str | os.PathLike,
    columns: Mapping[str, str],
    *,
    name: str | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
    time_format: str | None = None,
    time_unit: str = "s",
    timezone: str | None = None,
    tz_column: str | None = None,
    item_columns: Mapping[str, str] | None = None,
    user_columns: Mapping[str, str] | None = None,
    items: ItemTable | Mapping[str, Any] | None = None,
) -> Interactions:
    """Read an interaction table and map its columns to tgraph's.

    Args:
        path: ``.csv``, ``.tsv``, ``.txt`` (optionally ``.gz``; both present is an error) with
            a header row, or ``.parquet``. Errors name the file line for text files and the
            0-based row for Parquet.
        columns: tgraph column -> source column; needs ``user``, ``item``, ``timestamp`` and
            may map any of ``lat, lon, category, region, behaviour, weight, tz_offset,
            trajectory``. A non-integer ``category`` is coded in sorted order
            (``meta["categories"]`` lists the values).
        name: the dataset's name in results (default: the file name before its first dot).
        sep: field separator of a text file (default from the suffix: ``,`` or tab).
        encoding: text encoding of a text file.
        time_format: ``"unix"`` for integer epoch times in ``time_unit``; ``"infer"`` to let
            pandas parse datetime strings (ISO 8601 with fractions kept; a ``d/d/y`` date
            where every day and month is <= 12 is refused as ambiguous); else a ``strptime``
            format such as ``"%Y-%m-%d %H:%M:%S"``. ``None``: ``"unix"`` when the first value
            is an integer, else ``"infer"``.
        time_unit: unit of epoch integers: ``"s"``, ``"ms"``, ``"us"`` or ``"ns"``.
        timezone: IANA name (``"Europe/Berlin"``): times without an offset are wall time
            there, and each event gets ``tz_offset``, its local offset from UTC in minutes
            (daylight saving time included), so local-time features see local time.
        tz_column: like ``timezone`` but one IANA name per row, from this source column.
            Without either, naive times are UTC and no ``tz_offset`` is stored.
        item_columns: items table column -> source column: attributes that must be the same
            on every line of an item (a static table; a value that changes is an error
            naming the line). Listed in ``meta["static_item_columns"]``. Per-event values
            (coordinates, categories) stay on the events: nothing is aggregated over events
            into the items table.
        user_columns: users table column -> source column, the same rule per user.
        items: a static item table file (:class:`ItemTable`), e.g. POI coordinates. Its
            items without events stay in the catalogue; ``meta["item_table"]`` counts the
            event items it lacks (their attributes are NaN). Its columns are static too.

    Ids are mapped exactly (see :func:`~tgraph.data.readers._io.parse_ids`): ``"007"`` and
    ``"7"`` stay two users; ``meta["ids"]`` reports, per id column, the type, the distinct
    count and how many values had surrounding whitespace stripped. Times keep their
    resolution: ``meta["time_resolution"]`` is ``"s"``, ``"ms"``, ``"us"`` or ``"ns"`` and,
    finer than seconds, the ``subsecond`` event column holds the rest (see
    :class:`~tgraph.data.interactions.Interactions`).
    """
    path = _io.resolve(path)
    source = str(path)
    _check_options(columns, timezone, tz_column, time_unit, source)
    frame, lines = _read_any(path, sep, encoding)
    extra = {**(item_columns or {}), **(user_columns or {})}
    needed = [*columns.values(), *extra.values(), *([tz_column] if tz_column else [])]
    require_columns(frame, needed, source)

    events = pd.DataFrame(index=frame.index)
    meta: dict[str, Any] = {"ids": {}}
    for key in ("user", "item"):
        events[key], meta["ids"][key] = _io.parse_ids(frame, columns[key], lines, source)
        stripped = meta["ids"][key]["stripped"]
        if stripped:
            logger.info("%s: stripped whitespace around %d %s id(s)", source, stripped, key)
    zones = (
        _io.require_text(frame, tz_column, lines, source).to_numpy(dtype=object)
        if tz_column
        else timezone
    )
    seconds, subsecond, meta["time_resolution"] = _timestamps(
        frame, columns["timestamp"], lines, source, time_format, time_unit, zones
    )
    events["timestamp"] = seconds
    if subsecond is not None:
        events["subsecond"] = subsecond
    if zones is not None:
        events["tz_offset"] = _io.utc_offsets(seconds * 1_000_000_000, zones)
        meta["timezone"] = timezone if timezone else f"per event, from column {tz_column!r}"
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
    meta["static_item_columns"] = list(item_columns or {})
    file_meta = None
    if items is not None:
        table = validate_model(ItemTable, items, "items")
        both = sorted(set(table.columns) & set(item_columns or {}))
        if both:
            raise ConfigError(
                f"{both} come from both item_columns and the item file",
                key="items.columns",
                fix="take each item attribute from one place",
            )
        file_meta, events["item"], meta["item_table"] = _item_file(table, events["item"].to_numpy())
        if events["item"].dtype == object:  # compared as text with the file's ids
            meta["ids"]["item"]["type"] = "string"
        meta["static_item_columns"] += list(table.columns)
    item_meta = _static_table(frame, events["item"], item_columns, lines, source, "item")
    user_meta = _static_table(frame, events["user"], user_columns, lines, source, "user")
    if file_meta is not None:
        item_meta = file_meta if item_meta is None else item_meta.join(file_meta, how="outer")
    return Interactions.from_frame(
        events.reset_index(drop=True),
        name=name or path.name.split(".")[0],
        source=source,
        item_meta=item_meta,
        user_meta=user_meta,
        meta=meta,
    )


def _check_options(
    columns: Mapping[str, str],
    timezone: str | None,
    tz_column: str | None,
    time_unit: str,
    source: str,
) -> None:
    _check_mapping(columns, source)
    given = [name for name, value in (("timezone", timezone), ("tz_column", tz_column)) if value]
    if "tz_offset" in columns:
        given.append("columns.tz_offset")
    if len(given) > 1:
        raise ConfigError(
            f"{' and '.join(given)} both say where local time is",
            key=given[1],
            fix="give one: timezone (one IANA name), tz_column (a column of IANA names) or "
            "columns.tz_offset (a column of offsets in minutes)",
        )
    if time_unit not in TIME_UNITS:
        raise ConfigError(
            f"unknown time_unit {time_unit!r}",
            key="time_unit",
            fix=f"use one of {list(TIME_UNITS)}",
        )


def _check_mapping(columns: Mapping[str, str], source: str) -> None:
    allowed = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c not in _DERIVED)]
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


def _timestamps(
    frame: pd.DataFrame,
    column: str,
    lines: np.ndarray,
    source: str,
    time_format: str | None,
    time_unit: str,
    zones: str | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """UTC seconds, the sub-second rest (None at second resolution) and the resolution."""
    raw = frame[column]
    if time_format is None:
        first = raw.iloc[:1].astype(object).astype(str).str.strip()
        unix = pd.api.types.is_integer_dtype(raw.dtype) or bool(_io.integer_text(first).all())
        time_format = "unix" if unix else "infer"
    if time_format == "unix":
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
        resolution, per_second = time_unit, TIME_UNITS[time_unit]
    else:
        values = _io.parse_datetime(
            raw,
            column,
            lines,
            source,
            format=None if time_format == "infer" else time_format,
            zones="UTC" if zones is None else zones,
        )
        # the coarsest unit that holds every time exactly
        resolution = next(
            unit for unit, per in TIME_UNITS.items() if (values % (10**9 // per) == 0).all()
        )
        per_second = TIME_UNITS[resolution]
        values = values // (10**9 // per_second)
    seconds = np.floor_divide(values, per_second)
    subsecond = values - seconds * per_second if per_second > 1 else None
    return seconds, subsecond, resolution


def _item_file(
    table: ItemTable, event_items: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """The item table by raw id, the event item ids in the same id type, and a report."""
    path = _io.resolve(table.path)
    source = str(path)
    frame, lines = _read_any(path, table.sep, table.encoding)
    require_columns(frame, [table.id, *table.columns.values()], source)
    ids, _ = _io.parse_ids(frame, table.id, lines, source)
    if ids.dtype != event_items.dtype:  # one side has ids that are not integers: compare text
        ids, event_items = ids.astype(str).astype(object), event_items.astype(str).astype(object)
    _io.fail_at(
        pd.Index(ids).duplicated(),
        ids,
        "item {value!r} appears twice",
        column=table.id,
        lines=lines,
        source=source,
        fix="keep one row per item in a static item table",
    )
    parsed: dict[str, Any] = {}
    for target, column in table.columns.items():
        if target == "lat" or target == "lon":
            low, high = (-90.0, 90.0) if target == "lat" else (-180.0, 180.0)
            parsed[target] = _io.parse_float(frame, column, lines, source, low=low, high=high)
        elif target == "category":
            parsed[target] = _io.parse_int(frame, column, lines, source)
        else:
            parsed[target] = frame[column].to_numpy()
    attributes = pd.DataFrame(parsed, index=pd.Index(ids))
    missing = int((~pd.Index(pd.unique(event_items)).isin(attributes.index)).sum())
    if missing:
        logger.warning(
            "%s lacks %d item(s) that have events; their attributes are NaN", source, missing
        )
    report = {"path": source, "items": len(attributes), "event_items_missing": missing}
    return attributes, event_items, report


def _category(
    frame: pd.DataFrame, column: str, lines: np.ndarray, source: str
) -> tuple[np.ndarray, pd.Series]:
    values, _ = _io.parse_ids(frame, column, lines, source)
    if values.dtype == np.int64:
        return values, pd.Series(np.unique(values))
    categories = pd.Index(np.unique(values.astype(str)))
    return categories.get_indexer(values.astype(str)).astype(np.int64), pd.Series(categories)


def _static_table(
    frame: pd.DataFrame,
    ids: pd.Series,
    mapping: Mapping[str, str] | None,
    lines: np.ndarray,
    source: str,
    kind: str,
) -> pd.DataFrame | None:
    """One row per id; each attribute must have one value per id (else the table would keep
    an arbitrary line's value, or leak a later line's value into earlier events)."""
    if not mapping:
        return None
    table = pd.DataFrame({target: frame[col].to_numpy() for target, col in mapping.items()})
    table.index = pd.Index(ids.to_numpy())
    for target, col in mapping.items():
        text = table[target].astype(str)
        first = text.groupby(level=0, sort=False).transform("first")
        differs = (text != first).to_numpy()
        if differs.any():
            row = int(np.flatnonzero(differs)[0])
            raise DataError(
                f"{kind} {table.index[row]!r} has {text.iloc[row]!r} here but {first.iloc[row]!r} "
                f"on an earlier line; a {kind} attribute must be the same on every line",
                source=source,
                column=col,
                row=int(lines[row]),
                fix=f"map a per-event value in columns (not {kind}_columns), or correct the line",
            )
    return table[~table.index.duplicated()]
