"""Reader for GETNext's check-in CSV files (``NYC_train.csv``, ``NYC_val.csv``, ``NYC_test.csv``).

Columns used: ``user_id``, ``POI_id`` (Foursquare venue id, kept as the raw item id),
``POI_catid_code`` (category), ``latitude``/``longitude`` (per check-in), ``UTC_time``,
``timezone`` (minutes to add to UTC for local time) and ``trajectory_id``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions, require_columns
from tgraph.data.readers._io import READ_ERRORS, require_unique_header, unreadable
from tgraph.errors import DataError, DatasetNotFoundError

COLUMNS = {
    "user_id": "user",
    "POI_id": "item",
    "POI_catid_code": "category",
    "latitude": "lat",
    "longitude": "lon",
    "timezone": "tz_offset",
    "trajectory_id": "trajectory",
}


def _parse_utc(values: pd.Series, source: str, column: str) -> np.ndarray:
    """``YYYY-MM-DD HH:MM:SS+00:00`` strings to int64 UTC seconds; bad rows raise."""
    parsed = pd.to_datetime(values, format="%Y-%m-%d %H:%M:%S%z", errors="coerce", utc=True)
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"cannot parse time {values.iloc[row]!r}",
            source=source,
            column=column,
            row=row,
            fix="write times as 'YYYY-MM-DD HH:MM:SS+00:00'",
        )
    return ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def read_getnext_csv(path: Path) -> Interactions:
    """Read one GETNext CSV (plain or ``.gz``) into :class:`Interactions`.

    ``timestamp`` comes from ``UTC_time``; ``tz_offset`` from ``timezone``; when ``local_time``
    is present it must equal ``UTC_time + timezone``. ``items`` holds only the venue ids:
    category and coordinates are per check-in, on the events.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} not found: place the GETNext CSV there")
    source = str(path)
    try:  # pandas renames a repeated header name ("a", "a.1"): read the header as written
        header = pd.read_csv(path, header=None, nrows=1, dtype=str).iloc[0]
        require_unique_header([str(name) for name in header], source)
        frame = pd.read_csv(path, dtype={"POI_id": str, "trajectory_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(
            f"cannot parse the CSV: {error}", source=source, fix="check the file is a GETNext CSV"
        ) from error
    except READ_ERRORS as error:
        raise unreadable(path, error) from error
    required = [*COLUMNS, "UTC_time"]
    require_columns(frame, required, source, f"a GETNext CSV needs the columns {required}")
    if len(frame) == 0:
        raise DataError("the file has no rows", source=source, fix="check the file")
    for column in ("POI_id", "trajectory_id"):
        empty = frame[column].isna().to_numpy()
        if empty.any():
            row = int(np.flatnonzero(empty)[0])
            raise DataError(
                "missing value", source=source, column=column, row=row, fix="drop the row"
            )
    user = pd.to_numeric(frame["user_id"], errors="coerce").to_numpy(dtype=float)
    bad_user = ~np.isfinite(user) | (user % 1 != 0)
    if bad_user.any():
        row = int(np.flatnonzero(bad_user)[0])
        raise DataError(
            f"expected an integer user id, found {frame['user_id'].iloc[row]!r}",
            source=source,
            column="user_id",
            row=row,
            fix="GETNext user ids are integers; repair or drop the row",
        )
    frame["user_id"] = user.astype(np.int64)
    utc = _parse_utc(frame["UTC_time"], source, "UTC_time")
    events = frame[list(COLUMNS)].rename(columns=COLUMNS)
    events["timestamp"] = utc
    inter = Interactions.from_frame(
        events, name=path.name, source=source, meta={"time_resolution_s": 1, "time_resolution": "s"}
    )
    if "local_time" in frame.columns:
        shift = _parse_utc(frame["local_time"], source, "local_time") - utc
        bad = shift != frame["timezone"].to_numpy(dtype=np.int64) * 60
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"local_time - UTC_time = {int(shift[row])} s but timezone says "
                f"{frame['timezone'].iloc[row]} min",
                source=source,
                column="timezone",
                row=row,
                fix="make 'timezone' the minutes to add to UTC_time to get local_time",
            )
    return inter
