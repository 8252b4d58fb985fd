"""Reader for the STAN authors' Foursquare NYC arrays (``stan_NYC.npy`` + ``stan_NYC_POI.npy``).

These are the filtered NYC check-ins used by GETNext/STAN: 147,938 rows ``[user_id, poi_id, t]``
with ``t`` in local minutes since 2012-04-03 12:59, and one ``[poi_id, lat, lon]`` row per POI
(see ``foursquare_nyc/PROVENANCE.md``). Timestamps are converted to UTC seconds with the fixed
New York offset of the GETNext files (local = UTC - 5 h, ``tz_offset = -300``); daylight saving
time is not modelled, exactly as in GETNext's ``timezone`` column. Exact duplicate rows (458) are
kept: removing them is a preprocessing step.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.data.readers._io import READ_ERRORS, resolve, unreadable
from tgraph.errors import DataError, DatasetNotFoundError

#: local epoch minute of STAN's ``t = 0`` (2012-04-03 12:59 local time)
STAN_MINUTE_OFFSET = 22224299
#: minutes to add to UTC to get New York local time, as in GETNext's ``timezone`` column
NYC_TZ_OFFSET = -300
CHECKINS_FILE = "stan_NYC.npy"
POIS_FILE = "stan_NYC_POI.npy"


def find_file(folder: Path, name: str) -> Path:
    """``folder/name`` or ``folder/name.gz`` (both: :class:`DataError`), else
    :class:`DatasetNotFoundError`."""
    try:
        return resolve(folder / name)
    except DatasetNotFoundError:
        raise DatasetNotFoundError(
            f"{name}(.gz) not found in {folder}: place the files described in PROVENANCE.md there"
        ) from None


def _load_npy(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            return np.load(handle, allow_pickle=False)
    except READ_ERRORS as error:
        raise unreadable(path, error) from error
    except ValueError as error:
        raise DataError(
            f"cannot read a numpy array: {error}",
            source=str(path),
            fix="re-download the file; it must be a (gzipped) .npy array",
        ) from error


def _check_shape(array: np.ndarray, path: Path, columns: tuple[str, ...]) -> None:
    if array.ndim != 2 or array.shape[1] != len(columns) or len(array) == 0:
        raise DataError(
            f"expected a non-empty array of shape (n, {len(columns)}) {list(columns)}, "
            f"found shape {array.shape}",
            source=str(path),
            fix="use the STAN NYC arrays described in PROVENANCE.md",
        )


def _check_integral(values: np.ndarray, path: Path, column: str, low: int) -> np.ndarray:
    values = np.asarray(values)
    bad = ~np.isfinite(values.astype(float)) | (values % 1 != 0) | (values < low)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"expected an integer >= {low}, found {values[row]!r}",
            source=str(path),
            column=column,
            row=row,
            fix=f"repair or drop the row; '{column}' must be a positive integer id",
        )
    return values.astype(np.int64)


def read_stan_pois(root: Path) -> pd.DataFrame:
    """The POI table, indexed by STAN POI id, with columns ``lat`` and ``lon``."""
    path = find_file(Path(root), POIS_FILE)
    array = _load_npy(path)
    _check_shape(array, path, ("poi_id", "latitude", "longitude"))
    ids = _check_integral(array[:, 0], path, "poi_id", low=1)
    duplicated = pd.Index(ids).duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        raise DataError(
            f"POI id {ids[row]} appears twice",
            source=str(path),
            column="poi_id",
            row=row,
            fix="keep one coordinate row per POI",
        )
    for column, values, limit in (("latitude", array[:, 1], 90), ("longitude", array[:, 2], 180)):
        bad = ~np.isfinite(values) | (np.abs(values) > limit)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{column} {values[row]!r} is missing or outside [-{limit}, {limit}]",
                source=str(path),
                column=column,
                row=row,
                fix="check that latitude and longitude are in degrees and not swapped",
            )
    return pd.DataFrame({"lat": array[:, 1], "lon": array[:, 2]}, index=pd.Index(ids, name="poi"))


def read_stan_nyc(root: Path) -> Interactions:
    """Read the STAN NYC check-ins from the ``foursquare_nyc`` folder ``root``.

    Events carry ``user`` and ``item`` codes (raw ids: TSMC user id 1..1083, STAN POI id
    1..5135), ``timestamp`` in UTC seconds (minute resolution), ``tz_offset = -300`` and the
    POI's ``lat``/``lon``. ``items`` holds every POI of the POI file with its coordinates, a
    static table (``meta["static_item_columns"] == ["lat", "lon"]``).
    """
    root = Path(root)
    path = find_file(root, CHECKINS_FILE)
    array = _load_npy(path)
    _check_shape(array, path, ("user_id", "poi_id", "t"))
    users = _check_integral(array[:, 0], path, "user_id", low=1)
    pois = _check_integral(array[:, 1], path, "poi_id", low=1)
    minutes = _check_integral(array[:, 2], path, "t", low=0)
    poi_table = read_stan_pois(root)
    unknown = ~np.isin(pois, poi_table.index.to_numpy())
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"POI id {pois[row]} has no coordinates in {POIS_FILE}",
            source=str(path),
            column="poi_id",
            row=row,
            fix="use the POI file that belongs to this check-in file",
        )
    local_seconds = (minutes + STAN_MINUTE_OFFSET) * 60
    coords = poi_table.loc[pois]
    frame = pd.DataFrame(
        {
            "user": users,
            "item": pois,
            "timestamp": local_seconds - NYC_TZ_OFFSET * 60,
            "tz_offset": np.full(len(users), NYC_TZ_OFFSET, dtype=np.int64),
            "lat": coords["lat"].to_numpy(),
            "lon": coords["lon"].to_numpy(),
        }
    )
    meta = {
        "time_resolution_s": 60,
        "time_resolution": "s",  # the unit of the stored times; the clock ticks in minutes
        "static_item_columns": ["lat", "lon"],
        "exact_duplicates": int(frame.duplicated(["user", "item", "timestamp"]).sum()),
        "time_note": "local minute t of STAN converted with local = UTC - 5 h (tz_offset -300); "
        "daylight saving time is not modelled, as in GETNext",
    }
    return Interactions.from_frame(
        frame, name="foursquare_nyc_stan", source=str(path), item_meta=poi_table, meta=meta
    )
