"""The ``sthgcn_nyc`` preset: STHGCN's NYC data (Yan et al., SIGIR 2023), rebuilt from the
shared Foursquare NYC files.

STHGCN does not preprocess NYC itself: its repository README says that for NYC it uses
GETNext's preprocessed ``NYC_train.csv`` / ``NYC_val.csv`` / ``NYC_test.csv`` (the
"> 9 check-ins per POI, then per user; 80/10/10 by time" path of its code is for TKY and CA),
with GETNext's 24-hour ``trajectory_id``; on these files it ignores the first check-in of
every trajectory as a sample, keeps the last check-in of each validation/test trajectory,
and drops validation/test samples whose user or POI is not among the *training samples*.

The shared files hold GETNext's validation and test files but not its training file, so the
preset rebuilds the training file by the rule that reproduces GETNext's validation and test
files from the STAN table: in those two periods every GETNext row belongs to a 24-hour
trajectory (gap > 24 h) of the deduplicated STAN table with at least 3 check-ins, and 98.6% /
99.1% of the STAN rows in such trajectories are GETNext rows. See ``docs/protocols.md`` for the
published and obtained counts side by side.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tgraph.data.protocols.builders import trajectories
from tgraph.data.protocols.next_poi import NYC_FOLDER, _next_poi_split, data_folder, getnext_nyc
from tgraph.data.readers.stan import read_stan_nyc
from tgraph.data.split import EVENT_KEY, Split
from tgraph.errors import DataError

logger = logging.getLogger(__name__)

#: values of ``seen_in``: what a validation/test target's user and POI must occur in
SEEN_RULES = ("samples", "train")

#: STHGCN's published NYC statistics (repository README, after its preprocessing)
PUBLISHED = {
    "users": 1_048,
    "pois": 4_981,
    "categories": 318,
    "checkins": 103_941,
    "trajectories": 14_130,
    "train_samples": 72_206,
    "valid_samples": 1_400,
    "test_samples": 1_347,
}


def sthgcn_nyc(
    root: Path,
    min_trajectory_length: int = 3,
    gap_hours: float = 24.0,
    seen_in: str = "samples",
) -> Split:
    """STHGCN's NYC protocol, re-created from the shared files.

    - ``valid`` / ``test``: GETNext's own validation/test files, mapped to STAN POIs exactly
      as :func:`~tgraph.data.protocols.next_poi.getnext_nyc` does (STHGCN reads these files).
    - ``train``: GETNext's training file re-created: the deduplicated STAN check-ins strictly
      before the first validation minute that lie in a ``gap_hours`` trajectory (cut where the
      gap exceeds it, computed on the whole table) with at least ``min_trajectory_length``
      check-ins. Training trajectories: the same cut (ids ``train:<user>_<k>``).
    - targets: the last check-in of each validation/test trajectory. ``seen_in="samples"``
      (STHGCN's rule) drops a target whose user or POI does not occur among the training
      samples, i.e. the training check-ins that are not the first of their trajectory;
      ``"train"`` drops only those unseen in any training check-in (``getnext_nyc``'s rule).
    - items: all 5,135 STAN POIs stay in the catalogue (full ranking over them).

    ``report`` holds every count, and ``report["published"]`` STHGCN's figures to compare.
    """
    if seen_in not in SEEN_RULES:
        raise DataError(
            f"unknown seen_in {seen_in!r}",
            column="seen_in",
            fix=f"use one of {list(SEEN_RULES)}",
        )
    if int(min_trajectory_length) != min_trajectory_length or min_trajectory_length < 1:
        raise DataError(
            f"min_trajectory_length={min_trajectory_length!r}",
            column="min_trajectory_length",
            fix="use a positive integer (3 re-creates GETNext's files)",
        )
    base = getnext_nyc(root)
    if base.valid is None:  # getnext_nyc always has one; keeps the type checker informed
        raise DataError("getnext_nyc returned no validation part", source="sthgcn_nyc")
    folder = data_folder(root, NYC_FOLDER)
    stan = read_stan_nyc(folder)
    whole = stan.with_events(stan.events.drop_duplicates(list(EVENT_KEY)))
    whole, whole_traj = trajectories(whole, gap_hours=gap_hours)
    sizes = whole.events.groupby("trajectory")["user"].transform("size").to_numpy()
    long = whole.events[sizes >= min_trajectory_length]
    kept = _keys(base.train.events).isin(_keys(long))
    train = base.train.with_events(base.train.events.loc[kept, list(base.train.events.columns)])
    train, train_traj = trajectories(train, gap_hours=gap_hours, prefix="train:")
    n_short = int((sizes < min_trajectory_length).sum())
    report: dict[str, Any] = {
        "stan_rows": base.report["stan_rows"],
        "stan_exact_duplicates_dropped": base.report["stan_exact_duplicates_dropped"],
        "whole_table_trajectories": whole_traj,
        "min_trajectory_length": int(min_trajectory_length),
        "rows_in_short_trajectories": n_short,
        "short_trajectories": int(
            whole.events["trajectory"][sizes < min_trajectory_length].nunique()
        ),
        "first_valid_local_time": base.report["first_valid_local_time"],
        "train_rows_before_first_valid_minute": len(base.train),
        "train_rows_dropped_short_trajectory": int((~kept).sum()),
        "train_rows": len(train),
        "train_trajectories": {k: v for k, v in train_traj.items() if k != "replaced_column"},
        "valid_mapping": base.report["valid_mapping"],
        "test_mapping": base.report["test_mapping"],
        "seen_in": seen_in,
    }
    split = _next_poi_split(
        "sthgcn_nyc", train, base.valid, base.test, report, base.time_resolution
    )
    samples = _training_samples(train.events)
    split.report.update(_statistics(split, samples))
    if seen_in == "samples":
        split = _seen_in_samples(split, samples)
    split.report["published"] = dict(PUBLISHED)
    logger.info(
        "sthgcn_nyc: %s",
        {k: v for k, v in split.report.items() if "mapping" not in k and k != "published"},
    )
    return split


def _keys(events: pd.DataFrame) -> pd.Index:
    return pd.MultiIndex.from_frame(events[list(EVENT_KEY)])


def _training_samples(events: pd.DataFrame) -> pd.DataFrame:
    """Training check-ins that are not the first of their trajectory (STHGCN's samples)."""
    first = ~events.duplicated("trajectory", keep="first").to_numpy()
    return events[~first]


def _statistics(split: Split, samples: pd.DataFrame) -> dict[str, Any]:
    """The figures STHGCN's README publishes, counted the same way on this split."""
    train = split.train.events
    parts = [p.events for p in (split.train, split.valid, split.test) if p is not None]
    # a trajectory cut by the validation start is one trajectory in GETNext's ids; ours are
    # prefixed by part, so count train and valid/test ids separately
    n_traj = sum(int(p["trajectory"].nunique()) for p in parts)
    return {
        "statistics": {
            "users": int(train["user"].nunique()),
            "pois": int(train["item"].nunique()),
            "checkins": int(sum(len(p) for p in parts)),
            "trajectories": n_traj,
            "train_samples": len(samples),
        }
    }


def _seen_in_samples(split: Split, samples: pd.DataFrame) -> Split:
    """Drop targets whose user or POI is not among the training samples (STHGCN's rule)."""
    users = np.unique(samples["user"].to_numpy())
    items = np.unique(samples["item"].to_numpy())
    targets = {}
    for part in ("valid", "test"):
        frame = split.targets(part)
        user_ok = np.isin(frame["user"].to_numpy(), users)
        item_ok = np.isin(frame["item"].to_numpy(), items)
        keep = user_ok & item_ok
        split.report[f"{part}_unseen_in_samples"] = {
            "before": len(frame),
            "unseen_user": int((~user_ok).sum()),
            "unseen_item": int((~item_ok).sum()),
            "dropped": int((~keep).sum()),
            "after": int(keep.sum()),
        }
        targets[part] = frame[keep].reset_index(drop=True)
    out = dataclasses.replace(split, valid_targets=targets["valid"], test_targets=targets["test"])
    out.report["leakage_checks"] = out.check_no_leakage()
    return out


__all__ = ["PUBLISHED", "SEEN_RULES", "sthgcn_nyc"]
