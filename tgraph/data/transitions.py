"""Consecutive-event transitions of event streams folded in pieces: the one counter of
``(previous, next)`` pairs behind the ``transition`` edges of the temporal heterograph
(:func:`~tgraph.graph.build.build_graph`, :class:`~tgraph.graph.append.GraphAppender`), the
first-order counts of :class:`~tgraph.models.markov.Markov` and ``sthrec``'s transition
prior."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.errors import DataError


class Steps(NamedTuple):
    """The transitions of a piece of events, in the order of their later events' rows (time
    order for time-sorted events, as those of
    :class:`~tgraph.data.interactions.Interactions` are)."""

    #: item of the earlier event (possibly one of an earlier piece)
    prev: np.ndarray
    #: item of the later event
    next: np.ndarray
    #: row of the later event in the piece
    row: np.ndarray
    #: time of the later event
    time: np.ndarray
    #: time of the later event minus that of the earlier one
    gap: np.ndarray


class Transitions:
    """Each group's latest event so far, where its next transition starts. A group is a user,
    or with ``by_trajectory`` a (user, trajectory) pair.

    :meth:`steps` of the events in pieces (the training events, then each update) gives the
    transitions of all the events at once: a group's first event of a piece continues from
    its latest event of the earlier pieces. ``max_gap`` (seconds; ``None``: no limit) drops
    the pairs further apart.

    Example::

        >>> t = Transitions()
        >>> t.steps(np.array([0, 1, 0]), np.array([5, 6, 7]), np.array([1, 2, 3]))[:2]
        (array([5]), array([7]))
        >>> t.steps(np.array([1]), np.array([5]), np.array([4]))[:2]
        (array([6]), array([5]))
    """

    def __init__(self, max_gap: int | None = None, by_trajectory: bool = False) -> None:
        self.max_gap = max_gap
        self.by_trajectory = by_trajectory
        #: (user, trajectory) -> group number (``by_trajectory``)
        self.groups: dict[tuple, int] = {}
        # each group's latest event (item -1: none yet)
        self.item = np.zeros(0, dtype=np.int64)
        self.time = np.zeros(0, dtype=np.int64)

    def steps(
        self,
        user: np.ndarray,
        item: np.ndarray,
        time: np.ndarray,
        trajectory: np.ndarray | None = None,
    ) -> Steps:
        """The transitions between consecutive events of each group (events ordered by time,
        ties in arrival order), each group's first event following its latest earlier one;
        every group's latest event moves to its last one here. ``trajectory`` is required
        with ``by_trajectory`` and ignored without. An event older than its group's latest
        earlier one raises :class:`~tgraph.errors.DataError` and changes nothing."""
        user, item, time = (np.asarray(x, dtype=np.int64) for x in (user, item, time))
        group, new_groups = self._group(user, trajectory)
        if len(group) == 0:
            return Steps(*(item[:0] for _ in Steps._fields))
        grow = max(0, int(group.max(initial=-1)) + 1 - len(self.item))
        order = np.lexsort((np.arange(len(group)), time, group))
        group, item, time = group[order], item[order], time[order]
        first = np.r_[True, group[1:] != group[:-1]][: len(group)]
        tail_item = np.r_[self.item, np.full(grow, -1, dtype=np.int64)]
        tail_time = np.r_[self.time, np.zeros(grow, dtype=np.int64)]
        late = first & (tail_item[group] >= 0) & (time < tail_time[group])
        if late.any():
            index = int(np.flatnonzero(late)[0])
            row = int(order[index])
            where = ""
            if self.by_trajectory and trajectory is not None:
                where = f" in trajectory {np.asarray(trajectory, dtype=object)[row]!r}"
            raise DataError(
                f"an event of user {user[row]} is older than its last folded event{where}",
                source="update events",
                column="timestamp",
                row=row,
                fix="fold each user's events in time order",
            )
        prev_item, prev_time = np.r_[-1, item[:-1]], np.r_[0, time[:-1]]
        prev_item[first], prev_time[first] = tail_item[group[first]], tail_time[group[first]]
        keep = prev_item >= 0
        if self.max_gap is not None:
            keep &= time - prev_time <= self.max_gap
        last = np.r_[group[1:] != group[:-1], True][: len(group)]
        tail_item[group[last]], tail_time[group[last]] = item[last], time[last]
        self.item, self.time = tail_item, tail_time
        self.groups.update(new_groups)
        pair = np.flatnonzero(keep)
        pair = pair[np.argsort(order[pair], kind="stable")]  # in the events' order
        return Steps(
            prev_item[pair], item[pair], order[pair], time[pair], time[pair] - prev_time[pair]
        )

    def steps_of(self, events: Interactions) -> Steps:
        """:meth:`steps` of the events of ``events`` (``trajectory`` when they carry it)."""
        ev = events.events
        trajectory = ev["trajectory"].to_numpy() if "trajectory" in ev.columns else None
        user, item, time = (ev[c].to_numpy(np.int64) for c in ("user", "item", "timestamp"))
        return self.steps(user, item, time, trajectory)

    def _group(
        self, user: np.ndarray, trajectory: np.ndarray | None
    ) -> tuple[np.ndarray, dict[tuple, int]]:
        """Each event's group number and the groups first seen here (added by the caller
        once the events are accepted)."""
        if not self.by_trajectory:
            return user, {}
        if trajectory is None:
            raise DataError(
                "the transitions are per trajectory; the events lack it",
                source="update events",
                column="trajectory",
                fix="pass a 'trajectory' column",
            )
        code, values = pd.factorize(np.asarray(trajectory, dtype=object))
        _, first, inverse = np.unique(
            user * len(values) + code, return_index=True, return_inverse=True
        )
        trajectories = np.asarray(values, dtype=object)[code[first]].tolist()
        keys = list(zip(user[first].tolist(), trajectories, strict=True))
        number = np.array([self.groups.get(key, -1) for key in keys], dtype=np.int64)
        fresh = np.flatnonzero(number < 0)  # (user, code) pairs are distinct: so are the keys
        number[fresh] = len(self.groups) + np.arange(len(fresh))
        new = dict(zip([keys[k] for k in fresh.tolist()], number[fresh].tolist(), strict=True))
        return number[inverse.reshape(-1)], new
