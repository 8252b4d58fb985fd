"""Shared helpers for readers: gzip-aware paths, delimited text with file line numbers, and
column parsers that raise :class:`~tgraph.errors.DataError` naming the file line.

Every reader keeps a ``lines`` array beside its frame (the 1-based line of each row in the
source file) so that an error points at the line a person opens in an editor.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.errors import EmptyDataError, ParserError

from tgraph.errors import DataError, DatasetNotFoundError

logger = logging.getLogger(__name__)

_EPOCH = pd.Timestamp(0, tz="UTC")


def resolve(path: str | os.PathLike) -> Path:
    """``path`` if it exists, else ``path.gz``; raise :class:`DatasetNotFoundError` when
    neither exists and :class:`DataError` when both do (they may differ: which one is meant?)."""
    path = Path(path)
    gz = path.with_name(path.name + ".gz")
    if path.is_file() and gz.is_file():
        raise DataError(
            f"both {path.name} and {gz.name} exist in {path.parent}; they may hold different data",
            source=str(path),
            fix=f"remove or rename one of {path} and {gz}",
        )
    if path.is_file():
        return path
    if gz.is_file():
        return gz
    raise DatasetNotFoundError(
        f"file {path} (or {gz.name}) not found; check the path, or set TGRAPH_DATA to the "
        "folder that holds the dataset folders"
    )


#: what reading a file can raise: ``OSError`` (``gzip.BadGzipFile`` for a ``.gz`` that is not
#: gzip or fails its CRC), ``EOFError`` (a gzip cut short), ``zlib.error`` (corrupt gzip data)
READ_ERRORS = (OSError, EOFError, zlib.error)


def unreadable(path: Path, error: BaseException) -> DataError:
    """The :class:`DataError` for a file that cannot be read or decompressed (one of
    :data:`READ_ERRORS`), naming the file and what to do."""
    source, detail = str(path), " ".join(str(error).split())
    if isinstance(error, gzip.BadGzipFile) and detail.startswith("Not a gzipped file"):
        return DataError(
            f"the name ends in .gz but the file is not gzip-compressed ({detail})",
            source=source,
            fix="re-download it, or remove the .gz suffix if the file is not compressed",
        )
    if isinstance(error, EOFError | zlib.error | gzip.BadGzipFile):  # BadGzipFile: bad CRC
        return DataError(
            f"the gzip data is cut short or corrupt ({detail})",
            source=source,
            fix="re-download the file; a download or copy of it was interrupted",
        )
    return DataError(f"cannot read the file: {detail}", source=source, fix="check the file")


def require_unique_header(names: Sequence[str], source: str) -> None:
    """Raise naming the first column the header (file line 1) names twice: pandas would
    rename it silently, or every lookup of it would return two columns."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(
                f"the header names the column {name!r} twice",
                source=source,
                column=name,
                row=1,
                fix="rename or remove one of the two columns",
            )
        seen.add(name)


def read_delimited(
    path: Path,
    *,
    sep: str,
    names: Sequence[str] | None = None,
    encoding: str = "utf-8",
    fix: str = "repair or remove the line",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a delimited text file (plain or gzip) as strings.

    With ``names`` the file has no header and must have exactly ``len(names)`` fields per
    line; without, the first line is the header. Quoting is off (fields are taken literally).
    Blank lines are dropped and counted in the log. Returns the frame and the 1-based file
    line number of each row.
    """
    source = str(path)
    try:  # no names: pandas would silently cut a first line with too many fields
        frame = pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=str,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            skip_blank_lines=False,
            encoding=encoding,
            compression="infer",
        )
    except ParserError as err:
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if match is None:
            raise DataError(f"cannot parse the file: {err}", source=source, fix=fix) from err
        expected, line, seen = (int(g) for g in match.groups())
        raise DataError(
            f"expected {len(names) if names else expected} {sep!r}-separated fields, found {seen}",
            source=source,
            row=line,
            fix=fix,
        ) from err
    except EmptyDataError as err:
        raise DataError("the file is empty", source=source, fix="check the file") from err
    except UnicodeDecodeError as err:
        raise DataError(
            f"the file is not valid {encoding}: {err.reason} at byte {err.start}",
            source=source,
            fix="pass the right encoding= to the reader (e.g. 'latin-1')",
        ) from err
    except READ_ERRORS as err:
        raise unreadable(path, err) from err
    lines = np.arange(len(frame), dtype=np.int64) + 1
    if names is None:
        names = [str(name).strip() for name in frame.iloc[0]]
        require_unique_header(names, source)
        frame, lines = frame.iloc[1:], lines[1:]
    width = len(names)
    if frame.shape[1] > width:
        extra = (frame.iloc[:, width:] != "").any(axis=1).to_numpy()
        first = int(np.flatnonzero(extra)[0])
        found = int((frame.iloc[first] != "").to_numpy().nonzero()[0].max()) + 1
        raise DataError(
            f"expected {width} {sep!r}-separated fields, found {found}",
            source=source,
            row=int(lines[first]),
            fix=fix,
        )
    frame = frame.reindex(columns=range(width), fill_value="")
    frame.columns = list(names)
    blank = (frame == "").all(axis=1).to_numpy()
    if blank.any():
        logger.info("%s: skipped %d blank line(s)", source, int(blank.sum()))
    frame, lines = frame.loc[~blank].reset_index(drop=True), lines[~blank]
    if len(frame) == 0:
        raise DataError("the file has no data rows", source=source, fix="check the file")
    return frame, lines


def fail_at(
    mask: np.ndarray,
    values: pd.Series | np.ndarray,
    problem: str,
    *,
    column: str,
    lines: np.ndarray,
    source: str,
    fix: str,
) -> None:
    """Raise at the first ``True`` of ``mask``; ``problem`` is formatted with ``value``."""
    if mask.any():
        first = int(np.flatnonzero(mask)[0])
        value = values.iloc[first] if isinstance(values, pd.Series) else values[first]
        raise DataError(
            problem.format(value=value),
            source=source,
            column=column,
            row=int(lines[first]),
            fix=fix,
        )


def parse_int(
    frame: pd.DataFrame,
    column: str,
    lines: np.ndarray,
    source: str,
    *,
    low: int | None = None,
    high: int | None = None,
    fix: str | None = None,
) -> np.ndarray:
    """Column as exact int64 (never through float64: ids above 2**53 stay distinct);
    optionally checked to lie in ``[low, high]``. Text must be written as an integer
    (``"7"``, ``"-240"``; not ``"7.0"``); a float column must hold integers below 2**53."""
    raw = frame[column]
    problem = "expected an integer, found {value!r}"
    if pd.api.types.is_integer_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.int64)
    elif pd.api.types.is_float_dtype(raw.dtype):
        numeric = raw.to_numpy(dtype=np.float64, na_value=np.nan)
        fail_at(
            ~np.isfinite(numeric) | (numeric % 1 != 0) | (np.abs(numeric) > FLOAT_EXACT),
            raw,
            problem + " (a float column holds integers exactly only up to 2**53)",
            column=column,
            lines=lines,
            source=source,
            fix=fix or f"store '{column}' as integers",
        )
        values = numeric.astype(np.int64)
    else:
        text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
        exact = integer_text(text)
        fail_at(
            ~exact,
            raw,
            problem,
            column=column,
            lines=lines,
            source=source,
            fix=fix or f"write '{column}' as an integer on every line",
        )
        values = text.astype(np.int64).to_numpy()
    _check_range(values, column, low, high, lines, source, fix)
    return values


#: the largest integer a float64 holds exactly together with its neighbours
FLOAT_EXACT = 2**53
_INT64_MAX = str(np.iinfo(np.int64).max)


def integer_text(text: pd.Series, *, canonical: bool = False) -> np.ndarray:
    """Which strings are integers that fit int64 (``canonical``: written the one way ``str(int)``
    writes them, so that reading them as integers merges no two distinct strings)."""
    pattern = r"-?(?:0|[1-9][0-9]*)" if canonical else r"[+-]?[0-9]+"
    ok = text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)
    digits = text.str.lstrip("+-").str.lstrip("0")
    width = digits.str.len().to_numpy(dtype=np.int64)
    larger = (digits > _INT64_MAX).to_numpy(dtype=bool)  # same width: text order is numeric order
    return ok & ~((width > len(_INT64_MAX)) | ((width == len(_INT64_MAX)) & larger))


def parse_ids(
    frame: pd.DataFrame, column: str, lines: np.ndarray, source: str
) -> tuple[np.ndarray, dict[str, int | str]]:
    """Raw ids, mapped exactly: two different ids in the file stay two ids.

    Integer columns stay int64. Text ids become int64 only when every id is written as
    ``str(int)`` writes it (so ``"007"`` and ``"7"``, or ``"1"`` and ``"1.0"``, stay distinct
    strings) and fits int64; otherwise all ids are kept as strings. Surrounding whitespace is
    stripped (counted). A float column is refused: floats merge ids above 2**53.
    Returns the ids and a report (``type``, ``distinct``, ``whitespace_stripped``).
    """
    raw = frame[column]
    if pd.api.types.is_float_dtype(raw.dtype):
        raise DataError(
            "ids are stored as floating-point numbers, which cannot keep every id exact",
            source=source,
            column=column,
            fix=f"store '{column}' as integers or strings",
        )
    if pd.api.types.is_integer_dtype(raw.dtype) and raw.dtype != np.uint64:
        values = raw.to_numpy(dtype=np.int64)
        return values, {"type": "int64", "distinct": int(len(np.unique(values))), "stripped": 0}
    text = raw.astype(object).where(raw.notna(), "").astype(str)
    stripped = require_text(pd.DataFrame({column: text}), column, lines, source)
    report: dict[str, int | str] = {"stripped": int((stripped != text).sum())}
    if integer_text(stripped, canonical=True).all():
        values = stripped.astype(np.int64).to_numpy()
        report["type"] = "int64"
    else:
        values = stripped.to_numpy(dtype=object)
        report["type"] = "string"
    report["distinct"] = int(pd.Index(values).nunique())
    return values, report


def parse_float(
    frame: pd.DataFrame,
    column: str,
    lines: np.ndarray,
    source: str,
    *,
    low: float | None = None,
    high: float | None = None,
    fix: str | None = None,
) -> np.ndarray:
    """Column as finite float64; optionally checked to lie in ``[low, high]``."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    fail_at(
        ~np.isfinite(values),
        raw,
        "expected a finite number, found {value!r}",
        column=column,
        lines=lines,
        source=source,
        fix=fix or f"fill or remove lines with a missing or non-numeric '{column}'",
    )
    _check_range(values, column, low, high, lines, source, fix)
    return values


def _check_range(values, column, low, high, lines, source, fix) -> None:
    if low is None and high is None:
        return
    low_ = -np.inf if low is None else low
    high_ = np.inf if high is None else high
    fail_at(
        (values < low_) | (values > high_),
        values,
        f"value {{value}} is outside [{low}, {high}]",
        column=column,
        lines=lines,
        source=source,
        fix=fix or f"correct '{column}' on that line",
    )


def parse_coordinates(
    frame: pd.DataFrame, lat: str, lon: str, lines: np.ndarray, source: str
) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude in degrees, finite and within [-90, 90] x [-180, 180]."""
    fix = "check that latitude and longitude are in degrees and not swapped"
    return (
        parse_float(frame, lat, lines, source, low=-90.0, high=90.0, fix=fix),
        parse_float(frame, lon, lines, source, low=-180.0, high=180.0, fix=fix),
    )


def require_text(frame: pd.DataFrame, column: str, lines: np.ndarray, source: str) -> pd.Series:
    """Column as stripped strings; empty values raise."""
    missing = frame[column].isna().to_numpy()
    values = frame[column].astype(str).str.strip()
    fail_at(
        missing | (values == "").to_numpy(),
        values,
        "empty value",
        column=column,
        lines=lines,
        source=source,
        fix=f"fill '{column}' or remove the line (it may have too few fields)",
    )
    return values


def utc_seconds(stamps: pd.Series) -> np.ndarray:
    """tz-aware datetimes -> int64 seconds since the Unix epoch (any pandas resolution)."""
    return ((stamps - _EPOCH) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)


#: a date written day and month first or month and day first: ``03/04/2012``, ``3.4.12``
_NUMERIC_DATE = r"\s*(\d{1,2})([/.-])(\d{1,2})\2\d{2,4}(?:\D.*)?"


def _day_first(raw: pd.Series, column: str, source: str) -> bool | None:
    """Whether ``d/d/y`` dates are day first (None: not such dates); raise when every row
    reads both ways, since then the file cannot tell ``03/04`` (3 April or 4 March)."""
    parts = raw.astype(str).str.extract("^" + _NUMERIC_DATE + "$")
    if parts[0].isna().any():
        return None
    first, second = parts[0].astype(int), parts[2].astype(int)
    if first.max() > 12:
        return True
    if second.max() > 12:
        return False
    if (first != second).any():
        row = int(np.flatnonzero((first != second).to_numpy())[0])
        raise DataError(
            f"the dates are ambiguous: every day and month is <= 12, so {raw.iloc[row]!r} may be "
            "day first or month first",
            source=source,
            column=column,
            fix="pass time_format, e.g. '%d/%m/%Y %H:%M' or '%m/%d/%Y %H:%M'",
        )
    return False


def parse_datetime(
    raw: pd.Series,
    column: str,
    lines: np.ndarray,
    source: str,
    *,
    format: str | None = None,
    zones: str | np.ndarray = "UTC",
) -> np.ndarray:
    """Datetime strings (or a datetime column) -> int64 UTC nanoseconds (fractions kept).

    Strings with an explicit offset are converted to UTC; naive strings are read as wall
    time in ``zones`` (one IANA name such as ``"America/New_York"``, or one per row). A wall
    time repeated by a daylight-saving change is read as standard time; one skipped by it is
    moved forward. Without ``format``: ISO 8601 strings are read as such, ``d/d/y`` dates
    must not be ambiguous (see :func:`_day_first`), other layouts are inferred by pandas.
    """
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        stamps = raw
    else:
        raw = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
        day_first = _day_first(raw, column, source) if format is None else None
        stamps = _to_datetime(raw, format, day_first)
    bad = stamps.isna().to_numpy()
    if stamps.dt.tz is None:
        per_row = not isinstance(zones, str)
        zones = np.broadcast_to(np.asarray(zones, dtype=object), len(stamps))
        naive, stamps = stamps, pd.Series(pd.NaT, index=stamps.index, dtype="datetime64[ns, UTC]")
        for zone in pd.unique(zones):
            rows = zones == zone
            try:
                local = naive[rows].dt.tz_localize(
                    zone, ambiguous=np.zeros(int(rows.sum()), bool), nonexistent="shift_forward"
                )
            except LookupError as err:
                row = int(np.flatnonzero(rows)[0])
                raise DataError(
                    f"unknown timezone {zone!r}",
                    source=source,
                    column=column,
                    row=int(lines[row]) if per_row else None,
                    fix="use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'",
                ) from err
            stamps[rows] = local.dt.tz_convert("UTC").dt.as_unit("ns")
    fail_at(
        bad,
        raw,
        "cannot parse the time {value!r}" + (f" with format {format!r}" if format else ""),
        column=column,
        lines=lines,
        source=source,
        fix="fix the time on that line, or pass the right time format / timezone to the reader",
    )
    return (stamps.dt.tz_convert("UTC").dt.as_unit("ns") - _EPOCH).to_numpy().astype(np.int64)


def _to_datetime(raw: pd.Series, format: str | None, day_first: bool | None) -> pd.Series:
    def parse(**kwargs: Any) -> pd.Series:
        try:
            return pd.to_datetime(raw, errors="coerce", **kwargs)
        except ValueError:  # strings with different UTC offsets
            return pd.to_datetime(raw, errors="coerce", utc=True, **kwargs)

    if format is not None:
        return parse(format=format)
    if day_first is not None:
        return parse(dayfirst=day_first)
    iso = parse(format="ISO8601")  # pandas' inference from the first row drops fractions
    return iso if iso.notna().all() else parse()


def utc_offsets(utc_ns: np.ndarray, zones: str | np.ndarray) -> np.ndarray:
    """Minutes to add to UTC for the local time of each instant in ``zones`` (one IANA name
    or one per row), daylight saving time included (from the tz database)."""
    zones = np.broadcast_to(np.asarray(zones, dtype=object), len(utc_ns))
    stamps = pd.Series(pd.to_datetime(utc_ns, unit="ns", utc=True))
    offsets = np.zeros(len(utc_ns), dtype=np.int64)
    for zone in pd.unique(zones):
        rows = zones == zone
        local = stamps[rows].dt.tz_convert(zone).dt.tz_localize(None).dt.as_unit("ns")
        wall = local.to_numpy().astype(np.int64)
        offsets[rows] = (wall - utc_ns[rows]) // 60_000_000_000
    return offsets
