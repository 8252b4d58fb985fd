import numpy as np
import pytest

from tgraph.data.transitions import Transitions
from tgraph.errors import DataError


def _sorted(pairs):
    return sorted(zip(*(p.tolist() for p in pairs), strict=True))


def test_pairs_hand_checked_and_carried_over():
    t = Transitions()
    # user 0 visits 1, 2, 4; user 1 visits 7; the arrays are not in time order
    user, item, time = np.array([0, 1, 0, 0]), np.array([4, 7, 1, 2]), np.array([9, 1, 2, 5])
    assert _sorted(t.pairs(user, item, time)) == [(1, 2), (2, 4)]
    assert t.item.tolist() == [4, 7] and t.time.tolist() == [9, 1]
    # the next piece continues from each user's latest event; user 2 is new
    got = t.pairs(np.array([1, 2, 0, 2]), np.array([3, 5, 6, 8]), np.array([1, 10, 9, 11]))
    assert _sorted(got) == [(4, 6), (5, 8), (7, 3)]
    assert t.item.tolist() == [6, 3, 8]


def test_ties_keep_arrival_order_and_max_gap():
    t = Transitions(max_gap=5)
    got = t.pairs(np.array([0, 0, 0, 0]), np.array([1, 2, 3, 4]), np.array([0, 0, 5, 11]))
    assert _sorted(got) == [(1, 2), (2, 3)]  # 3 -> 4 is 6 s apart
    assert _sorted(t.pairs(np.array([0]), np.array([9]), np.array([16]))) == [(4, 9)]


def test_pieces_equal_all_at_once():
    rng = np.random.default_rng(0)
    user, item = rng.integers(0, 20, 500), rng.integers(0, 30, 500)
    time = np.sort(rng.integers(0, 1000, 500))  # arrival order = time order
    whole = _sorted(Transitions(max_gap=50).pairs(user, item, time))
    pieces = Transitions(max_gap=50)
    got = [
        p
        for lo, hi in ((0, 123), (123, 124), (124, 500))
        for p in _sorted(pieces.pairs(user[lo:hi], item[lo:hi], time[lo:hi]))
    ]
    assert sorted(got) == whole and 300 < len(whole) < 480


def test_older_event_refused_and_nothing_changes():
    t = Transitions()
    t.pairs(np.array([0, 1]), np.array([1, 2]), np.array([10, 10]))
    with pytest.raises(DataError, match="user 1 is older") as info:
        t.pairs(np.array([0, 1]), np.array([3, 4]), np.array([11, 9]))
    assert info.value.column == "timestamp" and info.value.row == 1
    assert t.item.tolist() == [1, 2] and t.time.tolist() == [10, 10]
    empty = t.pairs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert [len(p) for p in empty] == [0, 0]
