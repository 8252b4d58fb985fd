"""Foursquare TSMC2014 raw check-ins (Yang et al., IEEE TSMC 2015): NYC and Tokyo.

The files ``dataset_TSMC2014_NYC.txt`` / ``dataset_TSMC2014_TKY.txt`` are tab-separated,
Latin-1, without header, with 8 columns: user id, venue id, venue category id, venue
category name, latitude, longitude, timezone offset in minutes, UTC time (e.g.
``Tue Apr 03 18:00:09 +0000 2012``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.data.readers import _io

COLUMNS = (
    "user_id",
    "venue_id",
    "category_id",
    "category_name",
    "latitude",
    "longitude",
    "tz_offset",
    "utc_time",
)
TIME_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # fixed width: "Tue Apr 03 18:00:09 +0000 2012"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: month abbreviation packed as ord(c0) | ord(c1) << 8 | ord(c2) << 16 -> month number
_MONTH_KEYS = {
    sum(ord(c) << (8 * i) for i, c in enumerate(m)): k + 1 for k, m in enumerate(_MONTHS)
}
_DIGITS = [8, 9, 11, 12, 14, 15, 17, 18, 21, 22, 23, 24, 26, 27, 28, 29]


def read_tsmc(path: str | os.PathLike, *, name: str = "foursquare_tsmc") -> Interactions:
    """Read one TSMC2014 check-in file (plain or ``.gz``).

    Events: ``user`` (TSMC user id), ``item`` (Foursquare venue id), ``timestamp`` (UTC
    seconds), ``tz_offset`` (minutes, local = UTC + offset), ``lat``/``lon`` of the check-in
    and ``category`` (code of the venue category id, codes in sorted id order).
    Items: ``raw_id`` (venue id) only: coordinates and categories are per check-in (they
    jitter, and a venue may change category), so item attributes are computed from the
    training part later (:func:`tgraph.data.preprocess.item_coordinates`).
    ``meta["categories"]`` maps category code -> id and name.
    """
    path = _io.resolve(path)
    source = str(path)
    frame, lines = _io.read_delimited(
        path,
        sep="\t",
        names=COLUMNS,
        encoding="latin-1",
        fix="each line needs 8 tab-separated fields as in the TSMC2014 readme",
    )
    user = _io.parse_int(frame, "user_id", lines, source)
    venue = _io.require_text(frame, "venue_id", lines, source)
    category_id = _io.require_text(frame, "category_id", lines, source)
    lat, lon = _io.parse_coordinates(frame, "latitude", "longitude", lines, source)
    offset = _io.parse_int(
        frame,
        "tz_offset",
        lines,
        source,
        low=-12 * 60,
        high=14 * 60,
        fix="the offset is in minutes between local time and UTC, e.g. -240 for New York",
    )
    timestamp = parse_utc_time(frame["utc_time"], lines, source)

    categories = (
        pd.DataFrame({"raw_id": category_id, "name": frame["category_name"].str.strip()})
        .drop_duplicates("raw_id")
        .sort_values("raw_id")
        .reset_index(drop=True)
    )
    category = pd.Index(categories["raw_id"]).get_indexer(category_id).astype(np.int64)
    events = pd.DataFrame(
        {
            "user": user,
            "item": venue.to_numpy(),
            "timestamp": timestamp,
            "tz_offset": offset,
            "lat": lat,
            "lon": lon,
            "category": category,
        }
    )
    return Interactions.from_frame(
        events,
        name=name,
        source=source,
        meta={
            "categories": categories,
            "time": "UTC seconds; local = timestamp + tz_offset*60",
            "time_resolution": "s",
        },
    )


def parse_utc_time(raw: pd.Series, lines: np.ndarray, source: str) -> np.ndarray:
    """``Tue Apr 03 18:00:09 +0000 2012`` -> int64 UTC seconds.

    Parsed by character position (``strptime`` takes seconds on 500k rows); the layout, the
    digits, the month name, the clock and the calendar date are checked (not the weekday).
    """
    text = raw.str.strip().to_numpy(dtype=object)
    chars = np.asarray(text, dtype="U31").view(np.uint32).reshape(len(text), 31).astype(np.int64)

    def number(start: int, stop: int) -> np.ndarray:
        powers = 10 ** np.arange(stop - start - 1, -1, -1)
        return ((chars[:, start:stop] - ord("0")) * powers).sum(axis=1)

    digits = chars[:, _DIGITS]
    keys = pd.Series(chars[:, 4] | chars[:, 5] << 8 | chars[:, 6] << 16)
    month = keys.map(_MONTH_KEYS).fillna(0).to_numpy(np.int64)
    hour, minute, second = number(11, 13), number(14, 16), number(17, 19)
    ok = (
        ((digits >= ord("0")) & (digits <= ord("9"))).all(axis=1)
        & (chars[:, [3, 7, 10, 19, 25]] == ord(" ")).all(axis=1)
        & (chars[:, [13, 16]] == ord(":")).all(axis=1)
        & np.isin(chars[:, 20], (ord("+"), ord("-")))
        & (chars[:, 30] == 0)  # no 31st character
        & (month > 0)
        & (hour < 24)
        & (minute < 60)
        & (second < 60)
    )
    dates = pd.to_datetime(
        pd.DataFrame(
            {
                "year": np.where(ok, number(26, 30), 2000),
                "month": np.where(ok, month, 1),
                "day": np.where(ok, number(8, 10), 1),
            }
        ),
        errors="coerce",
        utc=True,
    )
    ok &= dates.notna().to_numpy()
    _io.fail_at(
        ~ok,
        raw,
        "cannot parse the time {value!r}",
        column="utc_time",
        lines=lines,
        source=source,
        fix=f"write UTC times as {TIME_FORMAT!r}, e.g. 'Tue Apr 03 18:00:09 +0000 2012'",
    )
    sign = np.where(chars[:, 20] == ord("-"), -1, 1)
    offset = sign * (number(21, 23) * 3600 + number(23, 25) * 60)
    return _io.utc_seconds(dates) + hour * 3600 + minute * 60 + second - offset
