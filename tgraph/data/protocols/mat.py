"""The ``gowalla_mat`` preset: next-POI on the MAT Gowalla weekly trajectories.

The MAT files (``gowalla_mat/PROVENANCE.md``) fix which trajectories are training and which
are test (a 70/30 hold-out by whole trajectories; every user in both). They give a weekday and
a minute of day but no date, so the order of a user's weeks is unknown and every timestamp is
synthetic. The preset therefore decides the order itself:

- validation: a seeded share (``valid_ratio``) of each user's training trajectories;
- synthetic time is laid out part by part: all training trajectories, then all validation
  ones, then all test ones (one global order, so ``time_order`` is ``"global"``); within a
  part a user's trajectories follow in ``tid`` order, each starting at least one empty week
  after the previous one ends (so no two trajectories are within 24 hours of each other, and
  24-hour sessions never join two trajectories). Weekday and minute of day stay the real ones;
  every shift is a whole number of weeks;
- targets: the last check-in of each validation/test trajectory; its history is its earlier
  check-ins plus every training trajectory (for test also the validation ones, which are
  training trajectories of the files) and the same user's trajectories of its own part with a
  smaller ``tid`` (events of a query's part before it are context in every tgraph protocol);
  targets whose POI (or user) never occurs in training are dropped and counted.

Gaps between trajectories and calendar dates carry no information here (see the reader's
docstring); gaps inside a trajectory and time of day/week are real.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.data.protocols.next_poi import _next_poi_split, data_folder
from tgraph.data.readers.mat import WEEK0, WEEK_MINUTES, read_gowalla_mat
from tgraph.data.split import Split
from tgraph.errors import DataError

logger = logging.getLogger(__name__)

MAT_FOLDER = "gowalla_mat"
PARTS = ("train", "valid", "test")
WEEK_SECONDS = WEEK_MINUTES * 60


def gowalla_mat(root: Path, valid_ratio: float = 0.1, seed: int = 0) -> Split:
    """Next-POI split of the MAT Gowalla files (module docstring for the rules).

    ``valid_ratio``: share of each user's training trajectories held out for validation
    (rounded; each user keeps at least one training trajectory).
    ``seed``: the hold-out's random seed. ``root`` is the data root or the ``gowalla_mat``
    folder itself.
    """
    if not 0 < valid_ratio < 1:
        raise DataError(
            f"valid_ratio={valid_ratio!r}", column="valid_ratio", fix="use 0 < valid_ratio < 1"
        )
    files = read_gowalla_mat(data_folder(root, MAT_FOLDER))
    assert isinstance(files, dict)
    train_file, test_file = files["train"], files["test"]
    held_out = hold_out_trajectories(train_file.events, valid_ratio, seed)
    part = pd.concat(
        [
            pd.Series(
                np.where(train_file.events["trajectory"].isin(held_out), 1, 0),
                index=train_file.events.index,
            ),
            pd.Series(2, index=test_file.events.index + len(train_file)),
        ]
    ).to_numpy()
    events = pd.concat([train_file.events, test_file.events], ignore_index=True)
    events = events.assign(timestamp=relay_weeks(events, part))
    report: dict[str, Any] = {
        "file_rows": {"train": len(train_file), "test": len(test_file)},
        "file_trajectories": {
            "train": int(train_file.events["trajectory"].nunique()),
            "test": int(test_file.events["trajectory"].nunique()),
        },
        "valid_ratio": valid_ratio,
        "seed": seed,
        "time": "synthetic: train, valid, test trajectories laid out one after the other, "
        "one empty week between a user's trajectories; real weekday and minute",
    }
    parts: dict[str, Interactions | None] = {}
    for index, name in enumerate(PARTS):
        mask = part == index
        report[f"{name}_events"] = int(mask.sum())
        report[f"{name}_trajectories"] = int(events["trajectory"][mask].nunique())
        parts[name] = (
            train_file.with_events(events[mask], name=f"gowalla_mat_{name}") if mask.any() else None
        )
    train, valid, test = parts["train"], parts["valid"], parts["test"]
    if train is None or valid is None or test is None:
        raise DataError(
            f"valid_ratio={valid_ratio} leaves a part empty",
            column="valid_ratio",
            fix="hold out a share that leaves every user a training trajectory, e.g. 0.1",
        )
    split = _next_poi_split("gowalla_mat", train, valid, test, report, 60)
    split.report["items_never_in_train"] = int(train.n_items - train.events["item"].nunique())
    return split


def hold_out_trajectories(events: pd.DataFrame, valid_ratio: float, seed: int) -> np.ndarray:
    """Trajectory ids held out for validation: per user ``round(valid_ratio * n)`` of its
    ``n`` trajectories (at most ``n - 1``), drawn with ``numpy.random.default_rng(seed)``
    from the user's trajectories in ``tid`` order."""
    rng = np.random.default_rng(seed)
    pairs = events[["user", "trajectory"]].drop_duplicates().sort_values(["user", "trajectory"])
    chosen = []
    for _, group in pairs.groupby("user", sort=True):
        ids = group["trajectory"].to_numpy()
        k = min(int(round(valid_ratio * len(ids))), len(ids) - 1)
        if k > 0:
            chosen.append(rng.choice(ids, size=k, replace=False))
    return np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)


def relay_weeks(events: pd.DataFrame, part: np.ndarray) -> np.ndarray:
    """Synthetic timestamps with the parts one after the other (module docstring).

    ``events``: the reader's events (``user``, ``trajectory``, synthetic ``timestamp`` whose
    week-of-trajectory and minute of week are kept); ``part``: 0, 1, 2 per row. Each
    trajectory keeps its weeks relative to its first check-in's week; a user's trajectories of
    one part follow in ``tid`` order with one empty week between them; part ``p`` starts one
    empty week after the longest user layout of the parts before it ends.
    """
    seconds = events["timestamp"].to_numpy(np.int64) - WEEK0
    week = seconds // WEEK_SECONDS
    within = seconds % WEEK_SECONDS
    frame = pd.DataFrame(
        {"user": events["user"].to_numpy(), "traj": events["trajectory"].to_numpy(), "part": part}
    )
    first_week = pd.Series(week).groupby(frame["traj"].to_numpy()).transform("min").to_numpy()
    relative = week - first_week
    trajs = (
        frame.assign(relative=relative)
        .groupby(["part", "user", "traj"], sort=True)["relative"]
        .max()
        .rename("span")
        .reset_index()
    )
    trajs["span"] += 2  # its weeks plus one empty week after it
    trajs["start"] = trajs.groupby(["part", "user"])["span"].cumsum() - trajs["span"]
    length = trajs.groupby(["part", "user"])["span"].sum().groupby(level="part").max()
    offset = length.cumsum() - length
    trajs["start"] += offset.reindex(trajs["part"]).to_numpy()
    start = trajs.set_index("traj")["start"].reindex(frame["traj"]).to_numpy(np.int64)
    return WEEK0 + (start + relative) * WEEK_SECONDS + within
