"""Gowalla check-in trajectories of the MAT group (300 users, weekly trajectories).

Files ``specific_train.csv`` / ``specific_test.csv``, comma-separated with header
``space,time,day,poi,tid,label``: ``space`` = ``"<lat> <lon>"``, ``time`` = minute of day,
``day`` = weekday name, ``poi`` = Gowalla location id, ``tid`` = trajectory id, ``label`` =
user id.

**Synthetic time.** The files give a weekday and a minute, never a date, so the timestamps
this reader builds are synthetic; only the order within a trajectory and the weekday / time
of day are real. Within a trajectory (rows are chronological) the minute of the week
``day * 1440 + time`` (Monday = 0) may go backwards once, when the trajectory runs into the
next week; each time it does, a week is added. A user's trajectories are then laid end to end
in ``tid`` order (an assumption: the order of a user's weeks is not in the data), each
starting on the first week after the previous one ends. Week 0 starts on Monday 1970-01-05
00:00 UTC, so ``timestamp`` decodes to the right weekday and minute but a meaningless date.
Do not use these timestamps for calendar features or for gaps between trajectories.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions, require_columns
from tgraph.data.readers import _io
from tgraph.errors import DataError

COLUMNS = ("space", "time", "day", "poi", "tid", "label")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PARTS = {"train": "specific_train.csv", "test": "specific_test.csv"}
#: Monday 1970-01-05 00:00 UTC, the start of synthetic week 0
WEEK0 = 4 * 86400
WEEK_MINUTES = 7 * 1440


def read_gowalla_mat(
    folder: str | os.PathLike, *, part: str | None = None
) -> Interactions | dict[str, Interactions]:
    """Read the MAT Gowalla hold-out files (plain or ``.gz``) from ``folder``.

    Events: ``user`` (label), ``item`` (poi), ``timestamp`` (synthetic, see the module
    docstring), ``lat``/``lon`` of the check-in, ``trajectory`` (tid). Items: ``raw_id`` only
    (coordinates are per check-in; item coordinates come from the training part later). Both
    files are always read, so that codes and synthetic weeks are shared: ``part=None`` returns
    ``{"train": ..., "test": ...}`` and ``part="train"`` / ``"test"`` one of them.
    """
    folder = Path(folder)
    if part is not None and part not in PARTS:
        raise KeyError(f"unknown part {part!r}; choose 'train', 'test' or None")
    frames = {name: _read_file(folder / file) for name, file in PARTS.items()}
    events = pd.concat(frames.values(), ignore_index=True)
    _check_trajectories(events)
    events["timestamp"] = synthetic_timestamps(events)
    whole = Interactions.from_frame(
        events[["user", "item", "timestamp", "lat", "lon", "trajectory"]],
        name="gowalla_mat",
        source=str(folder),
        meta={
            "time": "synthetic: real weekday and minute of day, invented weeks",
            "time_resolution": "s",
        },
    )
    split = {}
    for name, frame in frames.items():
        mask = whole.events["trajectory"].isin(frame["trajectory"].unique())
        split[name] = whole.with_events(
            whole.events[mask], name=f"gowalla_mat_{name}", source=frame["_source"].iloc[0]
        )
    return split if part is None else split[part]


def synthetic_timestamps(events: pd.DataFrame) -> np.ndarray:
    """Synthetic UTC seconds from ``user``, ``trajectory``, ``weekday`` (Monday = 0) and
    ``time`` (minute of day), rows of each trajectory in chronological order (module doc)."""
    minute = events["weekday"].to_numpy(np.int64) * 1440 + events["time"].to_numpy(np.int64)
    by_traj = pd.Series(minute).groupby(events["trajectory"].to_numpy(), sort=False)
    wraps = (
        (by_traj.diff() < 0).groupby(events["trajectory"].to_numpy(), sort=False).cumsum()
    ).to_numpy(np.int64)
    within = minute + wraps * WEEK_MINUTES
    spans = (
        pd.DataFrame(
            {
                "user": events["user"].to_numpy(),
                "trajectory": events["trajectory"].to_numpy(),
                "w": wraps,
            }
        )
        .groupby(["user", "trajectory"], sort=True)["w"]
        .max()
        + 1
    )
    start = spans.groupby(level="user").cumsum() - spans  # weeks before each trajectory
    start = start.droplevel("user")
    week = start.reindex(events["trajectory"]).to_numpy(np.int64)
    return WEEK0 + (week * WEEK_MINUTES + within) * 60


def _read_file(path: Path) -> pd.DataFrame:
    path = _io.resolve(path)
    source = str(path)
    frame, lines = _io.read_delimited(
        path, sep=",", fix=f"each line needs the {len(COLUMNS)} fields {list(COLUMNS)}"
    )
    require_columns(frame, COLUMNS, source)
    space = _io.require_text(frame, "space", lines, source).str.split(" ", n=1, expand=True)
    space = space.reindex(columns=[0, 1]).fillna("")
    parts = pd.DataFrame({"space (lat)": space[0], "space (lon)": space[1]})
    lat, lon = _io.parse_coordinates(parts, "space (lat)", "space (lon)", lines, source)
    day = _io.require_text(frame, "day", lines, source)
    weekday = pd.Index(DAYS).get_indexer(day)
    _io.fail_at(
        weekday < 0,
        day,
        "unknown weekday {value!r}",
        column="day",
        lines=lines,
        source=source,
        fix=f"use one of {list(DAYS)}",
    )
    return pd.DataFrame(
        {
            "user": _io.parse_int(frame, "label", lines, source),
            "item": _io.parse_int(frame, "poi", lines, source),
            "trajectory": _io.parse_int(frame, "tid", lines, source),
            "lat": lat,
            "lon": lon,
            "weekday": weekday.astype(np.int64),
            "time": _io.parse_int(frame, "time", lines, source, low=0, high=1439),
            "_line": lines,
            "_source": source,
        }
    )


def _check_trajectories(events: pd.DataFrame) -> None:
    """Each trajectory belongs to one user and one file."""
    for column, what in (("user", "users"), ("_source", "files")):
        first = events.groupby("trajectory")[column].transform("first")
        bad = (events[column] != first).to_numpy()
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            row = events.iloc[first]
            raise DataError(
                f"trajectory {row['trajectory']} spans several {what}",
                source=row["_source"],
                column="tid",
                row=int(row["_line"]),
                fix="give each user-week trajectory its own tid, in one file only",
            )
