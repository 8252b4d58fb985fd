"""Generic splits, trajectories, targets and the leakage check, on hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph.data.interactions import Interactions
from tgraph.data.protocols import (
    chronological_split,
    drop_unseen,
    last_of_trajectory,
    leave_last_out,
    trajectories,
)
from tgraph.data.split import Split, event_targets
from tgraph.errors import DataError, LeakageError

H = 3600


def make(rows, **meta) -> Interactions:
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return Interactions.from_frame(frame, name="toy", meta=meta)


@pytest.fixture
def ten():
    """Ten events at t = 0..9 (users 0/1 alternate, item = t % 4)."""
    return make([(t % 2, t % 4, t) for t in range(10)])


def test_chronological_split_by_ratio(ten):
    split = chronological_split(ten, (0.8, 0.1, 0.1))
    assert split.train.events["timestamp"].tolist() == list(range(8))
    assert split.valid.events["timestamp"].tolist() == [8]
    assert split.test.events["timestamp"].tolist() == [9]
    assert split.report["train_events"] == 8 and split.report["cut_valid"] == 8
    assert split.test_targets["query"].tolist() == [0]
    assert split.report["leakage_checks"]["time_order"] == "global"


def test_chronological_ties_go_to_the_later_part():
    inter = make([(0, 0, 0), (0, 1, 1), (1, 0, 5), (1, 1, 5), (0, 2, 5), (1, 2, 9)])
    split = chronological_split(inter, (0.5, 0.34, 0.16))
    # the event at position 3 has t=5, tied with positions 2 and 4: all go to valid
    assert split.train.events["timestamp"].tolist() == [0, 1]
    assert split.valid.events["timestamp"].tolist() == [5, 5, 5]
    assert split.train.events["timestamp"].max() < split.valid_targets["timestamp"].min()
    with pytest.raises(DataError, match="valid part is empty"):  # ties swallow the valid part
        chronological_split(inter, (0.5, 0.25, 0.25))


def test_chronological_split_by_cuts_and_unsorted_input(ten):
    shuffled = make([(t % 2, t % 4, t) for t in (5, 3, 9, 0, 1, 8, 2, 7, 6, 4)])
    a = chronological_split(ten, cuts=(6, 8))
    b = chronological_split(shuffled, cuts=(6, 8))
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(a, part).events, getattr(b, part).events)
    assert len(a.train) == 6 and len(a.valid) == 2 and len(a.test) == 2


@pytest.mark.parametrize(
    "ratios", [(0.8, 0.1), (0.8, 0.3, 0.1), (1.0, 0.0, 0.0), (0.9, -0.1, 0.2), (0, 0.5, 0.5)]
)
def test_bad_ratios_raise(ten, ratios):
    with pytest.raises(DataError, match="ratios"):
        chronological_split(ten, ratios)


def test_empty_parts_raise(ten):
    with pytest.raises(DataError, match="train part is empty"):
        chronological_split(ten, cuts=(0, 5))
    with pytest.raises(DataError, match="test part is empty"):
        chronological_split(ten, cuts=(5, 100))
    with pytest.raises(DataError, match="not increasing"):
        chronological_split(ten, cuts=(6, 2))


def test_duplicates_raise(ten):
    dup = make([(0, 0, 1), (0, 0, 1), (1, 1, 2), (1, 2, 3)])
    for build in (chronological_split, leave_last_out):
        with pytest.raises(DataError, match="duplicate"):
            build(dup)


def test_events_a_fraction_of_a_second_apart_are_two_events():
    """One user visits one item twice within second 5 (200 ms and 900 ms): with the finer time
    kept (``subsecond``) they are two events, one in each part, not duplicates and no leak."""
    frame = pd.DataFrame(
        {
            "user": [0, 1, 0, 1, 0, 0],
            "item": [2, 1, 1, 0, 2, 2],
            "timestamp": [1, 2, 3, 4, 5, 5],
            "subsecond": [0, 0, 0, 0, 200, 900],
        }
    )
    inter = Interactions.from_frame(frame, name="ms", meta={"time_resolution": "ms"})
    split = chronological_split(inter, cuts=(3, 5))
    test = split.test_targets
    assert list(test.columns[-1:]) == ["subsecond"] and test["subsecond"].tolist() == [200, 900]
    assert split.check_no_leakage()  # the two visits share (user, item, second)
    whole = Interactions.from_frame(frame.drop(columns="subsecond"), name="s")
    with pytest.raises(DataError, match="duplicate"):
        chronological_split(whole, cuts=(3, 5))


def test_leave_last_out_per_user():
    rows = [(0, i, t) for i, t in enumerate([1, 2, 3, 4])]
    rows += [(1, 10 + i, t) for i, t in enumerate([5, 6, 7])]
    rows += [(2, 20, 8), (2, 21, 9)]  # too short: stays in train
    split = leave_last_out(make(rows), n_valid=1, n_test=1)
    raw = split.train.items["raw_id"].to_numpy()
    assert sorted(raw[split.test_targets["item"]]) == [3, 12]
    assert sorted(raw[split.valid_targets["item"]]) == [2, 11]
    assert sorted(raw[split.train.events["item"]]) == [0, 1, 10, 20, 21]
    assert split.report["users_train_only"] == 1
    assert split.test_targets["query"].tolist() == split.test_targets["user"].tolist()
    assert split.time_order == "per_user"


def test_leave_last_out_without_validation_and_bad_counts():
    inter = make([(0, 0, 1), (0, 1, 2), (1, 0, 3), (1, 1, 4)])
    split = leave_last_out(inter, n_valid=0, n_test=1)
    assert split.valid is None and len(split.valid_targets) == 0 and len(split.test) == 2
    with pytest.raises(DataError):
        leave_last_out(inter, n_valid=1, n_test=0)


def test_trajectories_cut_on_gaps_over_threshold():
    times = [0, 2 * H, 26 * H + 1, 27 * H, 51 * H]  # gaps 2h, 24h+1s, 1h, 24h
    rows = [(0, i, t) for i, t in enumerate(times)] + [(1, 0, 5 * H)]
    inter, report = trajectories(make(rows), gap_hours=24)
    assert len(inter) == 6  # nothing dropped
    ev = inter.events
    assert ev.loc[ev["user"] == 0, "trajectory"].tolist() == ["0_0", "0_0", "0_1", "0_1", "0_1"]
    assert ev.loc[ev["user"] == 1, "trajectory"].tolist() == ["1_0"]
    assert report["trajectories"] == 3 and report["single_event_trajectories"] == 1
    with pytest.raises(DataError):
        trajectories(make(rows), gap_hours=0)


def test_last_of_trajectory_targets():
    rows = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (1, 3, 4), (1, 0, 100 * H), (1, 1, 101 * H)]
    inter, _ = trajectories(make(rows), gap_hours=24)
    targets, report = last_of_trajectory(inter.events)
    # trajectories: user 0 [0,1,2] -> target 2; user 1 [3] single -> none; [0,1] -> target 1
    assert targets["item"].tolist() == [2, 1]
    assert targets["timestamp"].tolist() == [3, 101 * H]
    assert targets["query"].tolist() == [0, 1]
    assert report == {"trajectories": 3, "single_event_trajectories": 1, "targets": 2}
    firsts = inter.events.drop_duplicates("trajectory")
    assert (
        not firsts.set_index(["trajectory", "timestamp"])
        .index.isin(targets.set_index(["trajectory", "timestamp"]).index)
        .any()
    )


def test_drop_unseen_counts(ten):
    train = ten.with_events(ten.events[ten.events["item"] < 2])
    targets = event_targets(ten.events)
    kept, report = drop_unseen(targets, train)
    assert kept["item"].isin([0, 1]).all()
    assert report == {"before": 10, "unseen_user": 0, "unseen_item": 4, "dropped": 4, "after": 6}


# ------------------------------------------------------------------ leakage
def _split(train, test, **kwargs):
    return Split(
        train=train,
        valid=None,
        test=test,
        valid_targets=event_targets(test.events.iloc[:0]),
        test_targets=event_targets(test.events),
        mask_history=False,
        protocol="toy",
        **kwargs,
    )


def test_clean_split_passes(ten):
    split = _split(ten.with_events(ten.events[:8]), ten.with_events(ten.events[8:]))
    assert split.check_no_leakage()["test_events_not_in_train"] == 2


def test_test_event_in_train_is_caught(ten):
    leaky = _split(ten.with_events(ten.events), ten.with_events(ten.events[8:]), time_order=None)
    with pytest.raises(LeakageError, match="also training events"):
        leaky.check_no_leakage()


def test_same_event_at_coarser_resolution_is_caught():
    train = make([(0, 0, 60), (0, 1, 120), (1, 1, 180)])  # minute-resolution source
    test = train.with_events(pd.DataFrame({"user": [0], "item": [1], "timestamp": [147]}))
    with pytest.raises(LeakageError):
        _split(train, test, time_order=None, time_resolution=60).check_no_leakage()
    _split(train, test, time_order=None, time_resolution=1).check_no_leakage()


def test_train_event_after_target_is_caught(ten):
    late = ten.with_events(ten.events[ten.events["timestamp"] != 5])
    with pytest.raises(LeakageError, match="not earlier"):
        _split(late, ten.with_events(ten.events[5:6])).check_no_leakage()


def test_per_user_order_is_caught():
    inter = make([(0, 0, 1), (0, 1, 2), (1, 0, 3), (1, 1, 4)])
    train = inter.with_events(inter.events.iloc[[1, 2]])  # user 0's event at t=2 stays
    test = inter.with_events(inter.events.iloc[[0, 3]])  # user 0's target at t=1
    with pytest.raises(LeakageError, match="after a test target"):
        _split(train, test, time_order="per_user").check_no_leakage()


def test_unseen_target_and_foreign_target_are_caught(ten):
    train = ten.with_events(ten.events[ten.events["item"] < 2])
    test = ten.with_events(ten.events[ten.events["item"] >= 2])
    with pytest.raises(LeakageError, match="unseen"):
        _split(train, test, time_order=None, require_seen=True).check_no_leakage()
    split = _split(train, test, time_order=None)
    split.test_targets = event_targets(ten.events[ten.events["item"] < 2])
    with pytest.raises(LeakageError, match="not test events"):
        split.check_no_leakage()


def test_split_contract_errors(ten):
    with pytest.raises(DataError, match="time_order"):
        _split(ten, ten, time_order="sometimes")
    with pytest.raises(DataError, match="no test targets"):
        Split(ten, None, ten, event_targets(ten.events[:0]), event_targets(ten.events[:0]),
              False, "toy")  # fmt: skip


def test_history_items_rule():
    inter = make([(0, 0, 1), (0, 1, 2), (0, 2, 3), (1, 1, 4), (1, 3, 5)])
    ev = inter.events
    train, valid, test = (inter.with_events(ev.iloc[idx]) for idx in ([0, 3], [1], [2, 4]))
    split = Split(train, valid, test, event_targets(valid.events, "user"),
                  event_targets(test.events, "user"), True, "toy", time_order=None)  # fmt: skip
    assert {u: v.tolist() for u, v in split.history_items("valid").items()} == {0: [0], 1: [1]}
    assert {u: v.tolist() for u, v in split.history_items("test").items()} == {0: [0, 1], 1: [1]}
    split.mask_history = False
    assert split.history_items("test") == {}
    with pytest.raises(KeyError):
        split.history_items("train")
    assert np.array_equal(split.history_pairs("valid")["user"], [])
