"""The ``gowalla_mat`` preset: counts (asserted exactly), the synthetic time layout and the
next-POI invariants, plus the layout rules on a hand-made table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph.config import DatasetConfig
from tgraph.data.protocols import (
    get_protocol,
    gowalla_mat,
    hold_out_trajectories,
    prepare_split,
    relay_weeks,
)
from tgraph.data.readers.mat import WEEK0, read_gowalla_mat
from tgraph.data.split import EVENT_KEY
from tgraph.errors import DataError

WEEK = 7 * 86400


@pytest.fixture(scope="module")
def split(root):
    return prepare_split(DatasetConfig(name="gowalla_mat", protocol="gowalla_mat"), root)


@pytest.fixture(scope="module")
def files(root):
    return read_gowalla_mat(root / "gowalla_mat")


def test_registered_as_a_root_preset():
    assert get_protocol("gowalla_mat").kind == "root"


@pytest.mark.slow
def test_counts(split):
    r = split.report
    assert r["file_rows"] == {"train": 66_428, "test": 31_730}
    assert r["file_trajectories"] == {"train": 3_601, "test": 1_728}
    assert (len(split.train), r["train_trajectories"]) == (59_239, 3_216)
    assert (len(split.valid), r["valid_trajectories"]) == (7_189, 385)
    assert (len(split.test), r["test_trajectories"]) == (31_730, 1_728)
    assert r["valid_unseen"] == {
        "before": 385,
        "unseen_user": 0,
        "unseen_item": 70,
        "dropped": 70,
        "after": 315,
    }
    assert r["test_unseen"]["dropped"] == 285 and len(split.test_targets) == 1_443
    assert (split.n_users, split.n_items) == (300, 24_374)
    assert r["items_never_in_train"] == 6_110
    assert getattr(split, "query_time", "hidden") == "hidden"


@pytest.mark.slow
def test_parts_are_the_files_trajectories(split, files):
    train_ids = set(files["train"].events["trajectory"])
    test_ids = set(files["test"].events["trajectory"])
    assert set(split.train.events["trajectory"]) | set(split.valid.events["trajectory"]) == (
        train_ids
    )
    assert not set(split.train.events["trajectory"]) & set(split.valid.events["trajectory"])
    assert set(split.test.events["trajectory"]) == test_ids


@pytest.mark.slow
def test_time_layout_keeps_weekday_minute_and_order(split, files):
    ours = pd.concat([split.train.events, split.valid.events, split.test.events])
    theirs = pd.concat([files["train"].events, files["test"].events])
    ours = ours.sort_values(["trajectory", "timestamp"], kind="stable")
    theirs = theirs.sort_values(["trajectory", "timestamp"], kind="stable")
    assert ours["item"].tolist() == theirs["item"].tolist()
    minute_of_week = [(f["timestamp"].to_numpy() - WEEK0) % WEEK for f in (ours, theirs)]
    np.testing.assert_array_equal(*minute_of_week)
    # gaps inside a trajectory are the reader's
    gaps = [
        f.groupby("trajectory")["timestamp"].diff().fillna(0).to_numpy() for f in (ours, theirs)
    ]
    np.testing.assert_array_equal(*gaps)
    # train < valid < test, globally
    assert split.train.events["timestamp"].max() < split.valid.events["timestamp"].min()
    assert split.valid.events["timestamp"].max() < split.test.events["timestamp"].min()
    # a user's trajectories are more than a week apart: 24-hour sessions never join two
    by_user = ours.sort_values(["user", "timestamp"], kind="stable")
    new = by_user["trajectory"].ne(by_user["trajectory"].shift()) & by_user["user"].eq(
        by_user["user"].shift()
    )
    assert by_user["timestamp"].diff()[new].min() > WEEK


@pytest.mark.slow
def test_targets_are_last_check_ins_and_seen(split):
    split.check_no_leakage()
    for part, events in (("valid", split.valid.events), ("test", split.test.events)):
        targets = split.targets(part)
        last = events.drop_duplicates("trajectory", keep="last")
        merged = targets.merge(last, on="trajectory", suffixes=("", "_last"))
        assert len(merged) == len(targets)
        for column in EVENT_KEY:
            assert (merged[column] == merged[f"{column}_last"]).all()
        assert targets["item"].isin(split.train.events["item"]).all()


@pytest.mark.slow
def test_hold_out_is_seeded(root, split):
    again = gowalla_mat(root, seed=0)
    other = gowalla_mat(root, seed=1)
    assert again.valid.events["trajectory"].equals(split.valid.events["trajectory"])
    assert set(other.valid.events["trajectory"]) != set(split.valid.events["trajectory"])


def test_bad_valid_ratio(root):
    for ratio in (0, 1, -0.1):
        with pytest.raises(DataError) as info:
            gowalla_mat(root, valid_ratio=ratio)
        assert info.value.column == "valid_ratio"


def test_hold_out_per_user_rounds_and_keeps_one():
    events = pd.DataFrame(
        {"user": [0] * 10 + [1] * 2 + [2], "trajectory": list(range(10)) + [20, 21, 30]}
    )
    chosen = hold_out_trajectories(events, 0.2, seed=3)
    assert len(chosen) == 2 and set(chosen) <= set(range(10))  # user 0: 2 of 10
    chosen = hold_out_trajectories(events, 0.5, seed=3)
    assert sum(c >= 20 and c < 30 for c in chosen) == 1  # user 1: 1 of 2
    assert 30 not in chosen  # user 2 keeps its only trajectory
    np.testing.assert_array_equal(chosen, hold_out_trajectories(events, 0.5, seed=3))


def test_relay_weeks_by_hand():
    day = 86400
    # user 0: trajectory 1 (Mon 10:00, Tue 10:00), trajectory 2 running into a second week
    # (Sun 23:00, then Mon 01:00 of the next week); user 1: trajectory 3 (Wed 12:00) in part 1
    events = pd.DataFrame(
        {
            "user": [0, 0, 0, 0, 1],
            "trajectory": [1, 1, 2, 2, 3],
            "timestamp": [
                WEEK0 + 10 * 3600,
                WEEK0 + day + 10 * 3600,
                WEEK0 + WEEK + 6 * day + 23 * 3600,
                WEEK0 + 2 * WEEK + 3600,
                WEEK0 + 2 * day + 12 * 3600,
            ],
        }
    )
    out = relay_weeks(events, np.array([0, 0, 0, 0, 1]))
    weeks = (out - WEEK0) // WEEK
    # trajectory 1: week 0, empty week 1; trajectory 2: weeks 2-3, empty week 4;
    # part 1 starts after the longest part-0 layout (5 weeks)
    assert weeks.tolist() == [0, 0, 2, 3, 5]
    np.testing.assert_array_equal((out - WEEK0) % WEEK, (events["timestamp"] - WEEK0) % WEEK)
