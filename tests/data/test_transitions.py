import numpy as np
import pytest

from tgraph.data.transitions import Transitions
from tgraph.errors import DataError


def _sorted(steps):
    return sorted(zip(steps.prev.tolist(), steps.next.tolist(), strict=True))


def test_pairs_hand_checked_and_carried_over():
    t = Transitions()
    # user 0 visits 1, 2, 4; user 1 visits 7; the arrays are not in time order
    user, item, time = np.array([0, 1, 0, 0]), np.array([4, 7, 1, 2]), np.array([9, 1, 2, 5])
    steps = t.steps(user, item, time)
    # in the order of the later events' rows: row 0 (2 -> 4), then row 3 (1 -> 2)
    assert [s.tolist() for s in steps] == [[2, 1], [4, 2], [0, 3], [9, 5], [4, 3]]
    assert t.item.tolist() == [4, 7] and t.time.tolist() == [9, 1]
    # the next piece continues from each user's latest event; user 2 is new
    got = t.steps(np.array([1, 2, 0, 2]), np.array([3, 5, 6, 8]), np.array([1, 10, 9, 11]))
    assert [s.tolist() for s in got] == [[7, 4, 5], [3, 6, 8], [0, 2, 3], [1, 9, 11], [0, 0, 1]]
    assert t.item.tolist() == [6, 3, 8]


def test_ties_keep_arrival_order_and_max_gap():
    t = Transitions(max_gap=5)
    got = t.steps(np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4]), np.array([0, 0, 5, 11]))
    assert _sorted(got) == [(1, 2), (2, 3)]  # 3 -> 4 is 6 s apart
    assert _sorted(t.steps(np.array([0]), np.array([9]), np.array([16]))) == [(4, 9)]


def test_pieces_equal_all_at_once():
    rng = np.random.default_rng(0)
    user, item = rng.integers(0, 20, 500), rng.integers(0, 30, 500)
    trajectory = rng.integers(0, 3, 500).astype(str)
    time = np.sort(rng.integers(0, 1000, 500))  # arrival order = time order
    for by_trajectory in (False, True):
        whole = Transitions(50, by_trajectory).steps(user, item, time, trajectory)
        pieces = Transitions(50, by_trajectory)
        parts = [
            pieces.steps(user[lo:hi], item[lo:hi], time[lo:hi], trajectory[lo:hi])
            for lo, hi in ((0, 123), (123, 124), (124, 500))
        ]
        for field, got in zip(whole._fields, zip(*parts, strict=True), strict=True):
            if field == "row":  # rows of each piece
                got = [r + lo for r, lo in zip(got, (0, 123, 124), strict=True)]
            assert np.concatenate(got).tolist() == getattr(whole, field).tolist(), field
        assert 100 < len(whole.prev) < 480 and (whole.gap <= 50).all()


def test_trajectories_are_groups_of_their_own():
    t = Transitions(by_trajectory=True)
    # user 0: a: 1 -> 2, b: 3 (not after 2); user 1's trajectory a is another group
    user, item, time = np.array([0, 0, 1, 0, 1]), np.array([1, 3, 5, 2, 6]), np.arange(5)
    trajectory = np.array(["a", "b", "a", "a", "a"], dtype=object)
    steps = [s.tolist() for s in t.steps(user, item, time, trajectory)]
    assert steps == [[1, 5], [2, 6], [3, 4], [3, 4], [3, 2]]
    assert len(t.groups) == 3
    # the next piece continues each (user, trajectory); (0, c) is new
    got = t.steps(np.array([0, 0]), np.array([7, 8]), np.array([9, 10]), np.array(["b", "c"]))
    assert _sorted(got) == [(3, 7)] and len(t.groups) == 4
    with pytest.raises(DataError, match="per trajectory") as info:
        t.steps(np.array([0]), np.array([1]), np.array([20]))
    assert info.value.column == "trajectory"
    # ignored when the groups are users
    plain = Transitions().steps(user, item, time, trajectory)
    assert _sorted(plain) == [(1, 3), (3, 2), (5, 6)]


def test_older_event_refused_and_nothing_changes():
    t = Transitions()
    t.steps(np.array([0, 1]), np.array([1, 2]), np.array([10, 10]))
    with pytest.raises(DataError, match="user 1 is older") as info:
        t.steps(np.array([0, 1]), np.array([3, 4]), np.array([11, 9]))
    assert info.value.column == "timestamp" and info.value.row == 1
    assert t.item.tolist() == [1, 2] and t.time.tolist() == [10, 10]
    empty = t.steps(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert [len(p) for p in empty] == [0] * 5
    # a new group in a refused piece is not kept either
    traj = Transitions(by_trajectory=True)
    traj.steps(np.array([0]), np.array([1]), np.array([10]), np.array(["a"]))
    with pytest.raises(DataError, match="in trajectory 'a'"):
        traj.steps(np.array([5, 0]), np.array([1, 1]), np.array([1, 9]), np.array(["z", "a"]))
    assert len(traj.groups) == 1 and traj.item.tolist() == [1]
