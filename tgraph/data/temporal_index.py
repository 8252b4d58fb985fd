"""One index over timed events: "the ``k`` most recent events of these nodes strictly before
these times", for histories, temporal neighbours and serving.

An event is ``(node, time)`` plus named features (``item``, ``lat``, ...). Events are kept in
two sorted runs, each ordered by ``(node, time, edge)``, ``edge`` being the event's arrival
position (0, 1, 2, ... over every event ever added, so ties in time keep arrival order):

* the *main* run, and
* a small *tail* of recent appends, merged into the main run when it outgrows
  ``max(MIN_TAIL, TAIL_FACTOR * sqrt(len(main)))`` events.

An append re-sorts only the tail (``O(T log T)``, ``T`` the tail size); a merge re-sorts the
main run (already sorted but for the tail's events) once per ``T`` appended events, so
appending ``n`` events one at a time costs ``O(n (T log T + N log N / T))`` instead of a full
rebuild per append.

A query ``(v, t)`` finds, in each run, the start of node ``v``'s events and the end of those
strictly before ``t`` with two ``searchsorted`` on one int64 key ordered like ``(node, time)``
(see :class:`_Run`). The last ``k`` events of the main run and of the tail before that point
are the candidates; when the tail has any, the ``2k`` candidates of a query are ordered by
``(time, edge)`` (one ``lexsort`` over the rows) and the last ``k`` kept. Every step is a
numpy operation over all queries: no Python loop runs per event or per query. The answer
does not depend on how the events were split between the runs, so a query after appends
equals a query on an index built from scratch over the same events in the same order
(tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: the tail is merged into the main run beyond ``max(MIN_TAIL, TAIL_FACTOR * sqrt(N))`` events
MIN_TAIL = 1024
TAIL_FACTOR = 4
#: :meth:`TemporalIndex.last_time` of a node without events
NO_TIME = np.iinfo(np.int64).min
#: names the index sets itself
RESERVED = ("node", "time", "edge")


@dataclass
class Recent:
    """The ``k`` most recent events of ``Q`` queries, oldest first, left-aligned.

    Attributes:
        length: ``[Q]`` number of real events per query (``0 .. k``).
        time: ``[Q, k]`` event times (0 at padding).
        edge: ``[Q, k]`` event ids, the arrival positions in the index (-1 at padding).
        features: ``name -> [Q, k]`` the events' features (0 at padding).
    """

    length: np.ndarray
    time: np.ndarray
    edge: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """``[Q, k]`` True at real events."""
        return np.arange(self.time.shape[1])[None, :] < self.length[:, None]

    def __getitem__(self, name: str) -> np.ndarray:
        """A feature, ``"time"`` or ``"edge"`` by name."""
        if name in ("time", "edge"):
            return getattr(self, name)
        return self.features[name]

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        """``(query, position)`` of every real event, queries in order, oldest first within
        a query: ``recent[name][query, position]`` lists them as a flat edge list."""
        query, position = np.nonzero(self.mask)
        return query, position


class _Run:
    """Events sorted by ``(node, time, arrival)``, given in an order that lists events of one
    ``(node, time)`` by arrival (see the module docstring).

    Each event gets the int64 key ``node * width + code(time)``, ordered like
    ``(node, time)``: ``code = time - t_min`` (``width`` = the time span + 2) when that fits
    in 62 bits, else the rank of ``time`` among the run's distinct times (``width`` = their
    number + 1). A stable argsort of the keys sorts the run; one ``searchsorted`` of a query's
    key ``node * width + code(t)`` (the codes of later times clipped to ``width - 1``) finds
    the end of the node's events strictly before ``t``.
    """

    def __init__(self, node: np.ndarray, time: np.ndarray, edge: np.ndarray, features: dict):
        self.max_node = int(node.max()) if len(node) else 0
        self.t_min = int(time.min()) if len(time) else 0
        span = (int(time.max()) if len(time) else 0) - self.t_min + 2
        self.distinct: np.ndarray | None = None
        if (self.max_node + 1) * span < 2**62:
            self.width, code = span, time - self.t_min
        else:
            self.distinct = np.unique(time)
            self.width, code = len(self.distinct) + 1, np.searchsorted(self.distinct, time)
            if (self.max_node + 1) * self.width >= 2**62:
                raise ValueError("node ids too large for the index's int64 keys")
        key = node * self.width + code
        order = np.argsort(key, kind="stable")
        self.key, self.node, self.time, self.edge = (
            key[order],
            node[order],
            time[order],
            edge[order],
        )
        self.features = {name: values[order] for name, values in features.items()}

    def __len__(self) -> int:
        return len(self.node)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        return self.node, self.time, self.edge, self.features

    def before(self, nodes: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(start, end)``: the events of ``nodes[q]`` strictly before ``times[q]`` are the
        positions ``start[q] .. end[q] - 1``."""
        nodes = np.minimum(nodes, self.max_node + 1)  # unseen larger ids: an empty segment
        if self.distinct is None:
            code = np.clip(times, self.t_min, self.t_min + self.width - 1) - self.t_min
        else:
            code = np.searchsorted(self.distinct, times, side="left")
        base = nodes * self.width
        return np.searchsorted(self.key, base), np.searchsorted(self.key, base + code)


def _as_int64(values: np.ndarray | list, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64, copy=False)


class TemporalIndex:
    """Append-only events sorted by ``(node, time, arrival order)``; vectorised queries.

    Build with :meth:`from_events`, add with :meth:`append`, ask with :meth:`recent`.
    Nodes are non-negative integers (any, not necessarily dense); times are int64 (e.g. UTC
    seconds). Every event carries the same named features; ``time`` and ``edge`` (the
    arrival position) are always present.

    Example::

        >>> index = TemporalIndex.from_events(np.array([0, 0, 1]), np.array([5, 7, 6]),
        ...                                    item=np.array([10, 11, 12]))
        >>> index.append(np.array([0]), np.array([7]), item=np.array([13]))
        >>> index.recent(np.array([0, 0]), np.array([8, 7]), k=2)["item"]
        array([[11, 13],
               [10,  0]])
    """

    def __init__(self, feature_dtypes: dict[str, np.dtype]) -> None:
        self._dtypes = dict(feature_dtypes)
        self._main = _empty_run(self._dtypes)
        self._tail = _empty_run(self._dtypes)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray, dict]] = []
        self._count = 0

    @classmethod
    def from_events(
        cls, node: np.ndarray, time: np.ndarray, **features: np.ndarray
    ) -> TemporalIndex:
        """An index over the events ``(node[i], time[i], features[i])``, arriving in the
        order given (``edge = i``)."""
        index = cls({name: np.asarray(values).dtype for name, values in features.items()})
        index.append(node, time, **features)
        index._merge()
        return index

    @property
    def feature_names(self) -> list[str]:
        """The features every event carries (besides ``time`` and ``edge``)."""
        return list(self._dtypes)

    def __len__(self) -> int:
        return self._count

    def append(self, node: np.ndarray, time: np.ndarray, **features: np.ndarray) -> None:
        """Add events (arriving after every event already in the index, in the order given);
        amortised cost, see the module docstring."""
        node, time = _as_int64(node, "node"), _as_int64(time, "time")
        if len(node) != len(time):
            raise ValueError(f"node and time differ in length: {len(node)} != {len(time)}")
        if set(features) != set(self._dtypes):
            raise ValueError(
                f"events must carry exactly the features {sorted(self._dtypes)}, "
                f"got {sorted(features)}"
            )
        clash = sorted(set(features) & set(RESERVED))
        if clash:
            raise ValueError(f"feature names {clash} are reserved")
        if len(node) and node.min() < 0:
            raise ValueError("node ids must be non-negative")
        columns = {}
        for name, values in features.items():
            values = np.asarray(values)
            if values.shape != node.shape:
                raise ValueError(f"feature {name!r} has shape {values.shape}, not {node.shape}")
            columns[name] = values.astype(self._dtypes[name])  # a copy: the caller may reuse
        edge = np.arange(self._count, self._count + len(node), dtype=np.int64)
        self._pending.append((node.copy(), time.copy(), edge, columns))
        self._count += len(node)

    def _settle(self) -> None:
        """Sort pending appends into the tail; merge the tail into the main run when big."""
        if self._pending:
            self._tail = _concat_run([self._tail.columns(), *self._pending])
            self._pending = []
        if len(self._tail) > max(MIN_TAIL, TAIL_FACTOR * math.isqrt(len(self._main))):
            self._merge()

    def _merge(self) -> None:
        """One sorted main run of every event; an empty tail."""
        self._main = _concat_run([self._main.columns(), self._tail.columns(), *self._pending])
        self._pending = []
        self._tail = _empty_run(self._dtypes)

    # ------------------------------------------------------------------ queries
    def recent(self, nodes: np.ndarray, before: np.ndarray, k: int | None) -> Recent:
        """For each query ``q`` the ``k`` most recent events of ``nodes[q]`` with
        ``time < before[q]`` (ties in time: the later arrival is the more recent), oldest
        first, left-aligned and padded to ``[Q, k]``. ``k=None``: all of them (``k`` is then
        the longest answer)."""
        self._settle()
        nodes, before = _as_int64(nodes, "nodes"), _as_int64(before, "before")
        if nodes.shape != before.shape:
            raise ValueError("nodes and before must have the same length")
        main_start, main_end = self._main.before(nodes, before)
        tail_start, tail_end = self._tail.before(nodes, before)
        if k is None:
            k = int(np.max(main_end - main_start + tail_end - tail_start, initial=0))
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        main_take = _last(self._main, main_start, main_end, k)
        if not len(self._tail) or not np.any(tail_end > tail_start):
            return main_take
        return _merge_candidates(main_take, _last(self._tail, tail_start, tail_end, k), k)

    def last_time(self, nodes: np.ndarray) -> np.ndarray:
        """``[Q]`` the time of each node's most recent event (:data:`NO_TIME` for a node
        without events)."""
        nodes = _as_int64(nodes, "nodes")
        latest = self.recent(nodes, np.full(len(nodes), np.iinfo(np.int64).max), 1)
        return np.where(latest.length > 0, latest.time[:, 0], NO_TIME)


def _empty_run(dtypes: dict[str, np.dtype]) -> _Run:
    empty = np.zeros(0, np.int64)
    return _Run(empty, empty, empty, {name: np.zeros(0, dtype) for name, dtype in dtypes.items()})


def _concat_run(runs: list[tuple[np.ndarray, np.ndarray, np.ndarray, dict]]) -> _Run:
    node = np.concatenate([r[0] for r in runs])
    time = np.concatenate([r[1] for r in runs])
    edge = np.concatenate([r[2] for r in runs])
    features = {name: np.concatenate([r[3][name] for r in runs]) for name in runs[0][3]}
    return _Run(node, time, edge, features)


def _last(run: _Run, start: np.ndarray, end: np.ndarray, k: int) -> Recent:
    """The last ``min(end - start, k)`` events of ``run[start:end]`` per query, left-aligned."""
    length = np.minimum(end - start, k)
    offsets = np.arange(k)
    real = offsets[None, :] < length[:, None]
    position = np.where(real, (end - length)[:, None] + offsets[None, :], 0)

    def take(values: np.ndarray, pad: int | float) -> np.ndarray:
        if not len(values):
            return np.full(position.shape, pad, dtype=values.dtype)
        return np.where(real, values[position], np.asarray(pad, dtype=values.dtype))

    return Recent(
        length=length.astype(np.int64),
        time=take(run.time, 0),
        edge=take(run.edge, -1),
        features={name: take(values, 0) for name, values in run.features.items()},
    )


def _merge_candidates(main: Recent, tail: Recent, k: int) -> Recent:
    """The ``k`` most recent of each query's main and tail candidates, left-aligned."""
    real = np.concatenate([main.mask, tail.mask], axis=1)
    time = np.concatenate([main.time, tail.time], axis=1)
    edge = np.concatenate([main.edge, tail.edge], axis=1)
    # padding first, then real events by (time, edge): the last k columns hold the answer
    order = np.lexsort((edge, time, real), axis=1)
    length = np.minimum(main.length + tail.length, k)
    column = 2 * k - length[:, None] + np.arange(k)[None, :]  # left-align the last `length`
    valid = np.arange(k)[None, :] < length[:, None]
    picked = np.take_along_axis(order, np.where(valid, column, 0), axis=1)

    def take(a: np.ndarray, b: np.ndarray, pad: int | float) -> np.ndarray:
        both = np.concatenate([a, b], axis=1)
        return np.where(valid, np.take_along_axis(both, picked, axis=1), pad).astype(a.dtype)

    return Recent(
        length=length,
        time=take(main.time, tail.time, 0),
        edge=take(main.edge, tail.edge, -1),
        features={n: take(main.features[n], tail.features[n], 0) for n in main.features},
    )
