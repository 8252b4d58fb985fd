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

import numpy as np
import pandas as pd
from pandas.errors import EmptyDataError, ParserError

from tgraph.errors import DataError, DatasetNotFoundError

logger = logging.getLogger(__name__)

_EPOCH = pd.Timestamp(0, tz="UTC")


def resolve(path: str | os.PathLike) -> Path:
    """``path`` if it exists, else ``path.gz``; raise :class:`DatasetNotFoundError` otherwise."""
    path = Path(path)
    if path.is_file():
        return path
    gz = path.with_name(path.name + ".gz")
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
    """Column as int64; optionally checked to lie in ``[low, high]``."""
    raw = frame[column]
    if pd.api.types.is_integer_dtype(raw.dtype):
        values = raw.to_numpy(dtype=np.int64)
    else:
        numeric = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        fail_at(
            ~np.isfinite(numeric) | (numeric % 1 != 0),
            raw,
            "expected an integer, found {value!r}",
            column=column,
            lines=lines,
            source=source,
            fix=fix or f"write '{column}' as an integer on every line",
        )
        values = numeric.astype(np.int64)
    _check_range(values, column, low, high, lines, source, fix)
    return values


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


def parse_datetime(
    raw: pd.Series,
    column: str,
    lines: np.ndarray,
    source: str,
    *,
    format: str | None = None,
    timezone: str = "UTC",
) -> np.ndarray:
    """Datetime strings -> int64 UTC seconds.

    Strings with an explicit offset are converted to UTC; naive strings are read as wall
    time in ``timezone`` (an IANA name such as ``"America/New_York"``). A wall time repeated
    by a daylight-saving change is read as standard time; one skipped by it is moved forward.
    """
    try:
        stamps = pd.to_datetime(raw, format=format, errors="coerce")
    except ValueError:  # strings with different UTC offsets
        stamps = pd.to_datetime(raw, format=format, errors="coerce", utc=True)
    if stamps.dt.tz is None:
        try:
            stamps = stamps.dt.tz_localize(
                timezone, ambiguous=np.zeros(len(stamps), bool), nonexistent="shift_forward"
            )
        except LookupError as err:
            raise DataError(
                f"unknown timezone {timezone!r}",
                source=source,
                column=column,
                fix="pass an IANA name such as 'UTC' or 'America/New_York'",
            ) from err
    fail_at(
        stamps.isna().to_numpy(),
        raw,
        "cannot parse the time {value!r}" + (f" with format {format!r}" if format else ""),
        column=column,
        lines=lines,
        source=source,
        fix="fix the time on that line, or pass the right time format / timezone to the reader",
    )
    return utc_seconds(stamps.dt.tz_convert("UTC"))


def item_coordinates(events: pd.DataFrame) -> pd.DataFrame:
    """Per raw item id, the median ``lat`` and ``lon`` of its events (robust to GPS jitter)."""
    return events.groupby("item", sort=True)[["lat", "lon"]].median()
