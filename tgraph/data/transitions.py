"""Consecutive-event transitions of users' event streams folded in pieces."""

from __future__ import annotations

import numpy as np

from tgraph.errors import DataError


class Transitions:
    """Each user's latest event so far, where its next transition starts: the first-order
    transition counting of :class:`~tgraph.models.markov.Markov` and of ``sthrec``'s
    transition prior.

    :meth:`pairs` of the events in pieces (the training events, then each update) gives the
    pairs of all the events at once: a user's first event of a piece continues from its
    latest event of the earlier pieces. ``max_gap`` (seconds; ``None``: no limit) drops the
    pairs further apart.

    Example::

        >>> t = Transitions()
        >>> t.pairs(np.array([0, 1, 0]), np.array([5, 6, 7]), np.array([1, 2, 3]))
        (array([5]), array([7]))
        >>> t.pairs(np.array([1]), np.array([5]), np.array([4]))
        (array([6]), array([5]))
    """

    def __init__(self, max_gap: int | None = None) -> None:
        self.max_gap = max_gap
        # each user's latest event (item -1: none yet)
        self.item = np.zeros(0, dtype=np.int64)
        self.time = np.zeros(0, dtype=np.int64)

    def pairs(
        self, user: np.ndarray, item: np.ndarray, time: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(previous, next)`` items of the consecutive events of each user (events ordered
        by time, ties in arrival order; the pairs by user, then time), each user's first
        event following its latest earlier one; every user's latest event moves to its last
        one here. An event older than its user's latest earlier one raises
        :class:`~tgraph.errors.DataError` and changes nothing."""
        user, item, time = (np.asarray(x, dtype=np.int64) for x in (user, item, time))
        if len(user) == 0:
            return item[:0], item[:0]
        grow = max(0, int(user.max()) + 1 - len(self.item))
        self.item = np.append(self.item, np.full(grow, -1, dtype=np.int64))
        self.time = np.append(self.time, np.zeros(grow, dtype=np.int64))
        order = np.lexsort((np.arange(len(user)), time, user))
        user, item, time = user[order], item[order], time[order]
        first = np.r_[True, user[1:] != user[:-1]]
        tail = first & (self.item[user] >= 0)
        late = tail & (time < self.time[user])
        if late.any():
            index = int(np.flatnonzero(late)[0])
            raise DataError(
                f"an event of user {user[index]} is older than its last folded event",
                source="update events",
                column="timestamp",
                row=int(order[index]),
                fix="fold each user's events in time order",
            )
        prev_item, prev_time = np.r_[-1, item[:-1]], np.r_[0, time[:-1]]
        prev_item[first] = self.item[user[first]]
        prev_time[first] = self.time[user[first]]
        keep = prev_item >= 0
        if self.max_gap is not None:
            keep &= (time - prev_time) <= self.max_gap
        last = np.r_[user[1:] != user[:-1], True]
        self.item[user[last]], self.time[user[last]] = item[last], time[last]
        return prev_item[keep], item[keep]
