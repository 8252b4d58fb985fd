"""A trained run, answering: ``session = tgraph.serve.load(run_dir)``.

:func:`load` rebuilds what the run was trained on and with, the way ``tgraph analyse run``
does: the split from the run's recorded ``dataset`` section
(:func:`tgraph.data.protocols.prepare_split`), the model from its typed configuration (seeded
with the run's seed), then its weights -- ``refit.pt`` after the model observed train plus
validation events when the run was refitted, else ``best.pt``; statistical models are fitted
on the training events. The session's history is every event of the split (train, validation
and test); the events the model was not trained on are folded in with ``model.update`` when
the model supports it. Then, when a log is given, every batch it holds is ingested again, so a
restarted server is where the killed one was.

:meth:`Session.recommend` answers "the top ``k`` items for ``user`` at time ``at``" from the
state as of just before ``at``: the user's history strictly before ``at`` and the model's
state after every event ingested so far. ``at`` defaults to one second after the latest event
seen, and may not lie before the user's own latest event (the state at an earlier time is not
kept). ``exclude_seen`` removes every item the user interacted with so far.

:meth:`Session.ingest` validates new events (:mod:`tgraph.serve.events`; codes must be known,
or the next free codes when the model grows with new users and items; each user's times in
order), appends them to the log (durable, fsync) and then applies them
(:class:`~tgraph.serve.state.LiveState`); events the model's update refuses (e.g. new items
for a model without an item cold start) are cut off the log again and answered with an error.
One lock serialises requests: torch models are not
safe to mutate while another thread ranks with them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tgraph import models
from tgraph.config import DatasetConfig, validate_model
from tgraph.data.protocols import prepare_split
from tgraph.data.split import Split
from tgraph.errors import DataError, RunDirError
from tgraph.models.base import Recommender
from tgraph.runs import RunDir
from tgraph.serve.events import Event, RequestError, events_frame
from tgraph.serve.log import EventLog
from tgraph.serve.state import LiveState
from tgraph.train.seed import seed_everything

__all__ = ["Recommendation", "Session", "load"]

#: the largest ``k`` a request may ask for
MAX_K = 1000


@dataclass(frozen=True)
class Recommendation:
    """The ranked items for one user at one time (best first; fewer than ``k`` when
    exclusion leaves fewer candidates)."""

    user: int
    at: int
    items: np.ndarray
    scores: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "at": self.at,
            "items": self.items.tolist(),
            "scores": self.scores.tolist(),
        }


class Session:
    """A model serving recommendations and taking new events (see the module docstring)."""

    def __init__(
        self,
        state: LiveState,
        events: pd.DataFrame,
        *,
        name: str = "model",
        log: EventLog | None = None,
    ) -> None:
        """``events``: the events ``state`` holds (columns user, item, timestamp and the run's
        optional event columns), for the session's clock and :attr:`event_columns`."""
        self.state = state
        #: the optional event fields of the run's data (a model may need them in new events,
        #: e.g. ``trajectory`` for the flagship's transitions)
        required = ("user", "item", "timestamp")
        self.event_columns = [
            c for c in Event.model_fields if c in events.columns and c not in required
        ]
        self.name = name
        self.log = log
        self.clock = int(events["timestamp"].max()) if len(events) else 0
        self._lock = threading.Lock()

    @classmethod
    def of(
        cls, model: Recommender, split: Split, *, refitted: bool = False, name: str = "model"
    ) -> Session:
        """A session of a trained ``model`` of ``split``: the history is every event of the
        split, and the events the model was not trained on (validation and test, or test only
        when ``refitted`` on train plus validation) are folded in with ``model.update`` when
        the model supports it."""
        parts = [p.events for p in (split.train, split.valid, split.test) if p is not None]
        events = pd.concat(parts, ignore_index=True).sort_values("timestamp", kind="stable")
        columns = ["user", "item", "timestamp", "tz_offset"]  # local time needs the offsets
        state = LiveState.from_events(
            model, events[[c for c in columns if c in events]], split.train.items
        )
        unseen = parts[1 + refitted :]
        if unseen and model.supports_update:
            model.update(pd.concat(unseen).sort_values("timestamp", kind="stable"))
            model.eval()
        return cls(state, events, name=name)

    @property
    def model(self) -> Recommender:
        return self.state.model

    @property
    def n_users(self) -> int:
        return self.model.n_users

    @property
    def n_items(self) -> int:
        return self.model.n_items

    @property
    def n_events(self) -> int:
        return len(self.state.index)

    # ------------------------------------------------------------------ answering
    def recommend(
        self, user: int, k: int = 10, at: int | None = None, exclude_seen: bool = True
    ) -> Recommendation:
        """The top ``k`` items for ``user`` at time ``at`` (UTC seconds)."""
        return self.recommend_many([user], k, None if at is None else [at], exclude_seen)[0]

    def recommend_many(
        self,
        users: Sequence[int] | np.ndarray,
        k: int = 10,
        at: Sequence[int] | np.ndarray | None = None,
        exclude_seen: bool = True,
    ) -> list[Recommendation]:
        """:meth:`recommend` for several users at once (one model call); ``at`` gives one
        time per user. Raises :class:`RequestError` naming ``user``, ``k`` or ``at``."""
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= MAX_K:
            raise RequestError("k", f"must be an integer in [1, {MAX_K}], got {k!r}")
        users = np.asarray(users, dtype=np.int64).reshape(-1)
        with self._lock:
            unknown = (users < 0) | (users >= self.n_users)
            if unknown.any():
                raise RequestError(
                    "user",
                    f"unknown user {int(users[unknown][0])}: codes are 0..{self.n_users - 1} "
                    "(a new user is known once its events are ingested)",
                    status=404,
                )
            last = self.state.last_time(users)
            if at is None:
                times = np.full(len(users), self.clock + 1, dtype=np.int64)
            else:
                times = np.asarray(at, dtype=np.int64).reshape(-1)
                if len(times) != len(users):
                    raise RequestError("at", f"give one time per user ({len(users)})")
                early = times < last
                if early.any():
                    i = int(np.flatnonzero(early)[0])
                    raise RequestError(
                        "at",
                        f"time {int(times[i])} is before user {int(users[i])}'s latest event "
                        f"({int(last[i])}); the state at earlier times is not kept",
                    )
            scores = self.state.scores(users, times)
            if exclude_seen:
                rows, cols = self._seen_pairs(users)
                scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -torch.inf
        top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        values, items = top.values.numpy(), top.indices.numpy()
        out = []
        for row, user in enumerate(users):
            keep = np.isfinite(values[row])
            out.append(
                Recommendation(int(user), int(times[row]), items[row][keep], values[row][keep])
            )
        return out

    # ------------------------------------------------------------------ taking events
    def ingest(self, events: Sequence[Event | dict[str, Any]] | pd.DataFrame) -> int:
        """Validate, log (durably) and apply ``events``; return how many were taken."""
        frame = events_frame(events)
        if frame.empty:
            return 0
        with self._lock:
            self._check(frame)
            offset = None if self.log is None else self.log.append(frame.to_dict("records"))
            try:
                self._apply(frame)
            except (DataError, NotImplementedError) as error:  # the model refuses them
                if self.log is not None and offset is not None:
                    self.log.truncate(offset)
                raise _refused(error) from None
        return len(frame)

    def seen(self, user: int) -> np.ndarray:
        """The items ``user`` interacted with so far (sorted, unique)."""
        return np.unique(self._seen_pairs(np.array([user]))[1])

    def _seen_pairs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(row, item)`` of every event of ``users[row]`` so far (from the index)."""
        latest = np.full(len(users), np.iinfo(np.int64).max)
        recent = self.state.index.recent(users, latest, None)
        row, position = recent.flat()
        return row, recent["item"][row, position]

    def replay(self, log: EventLog) -> int:
        """Apply every batch of ``log`` (no re-logging); return the number of events."""
        total = 0
        for batch in log.replay():
            frame = events_frame(batch)
            if frame.empty:
                continue
            with self._lock:
                self._check(frame)
                self._apply(frame)
            total += len(frame)
        return total

    def _apply(self, frame: pd.DataFrame) -> None:
        self.state.ingest(frame)
        self.clock = max(self.clock, int(frame["timestamp"].max()))

    def _check(self, frame: pd.DataFrame) -> None:
        """Codes known (or the next free ones, for a model that grows) and times in order."""
        grows = self.model.supports_update
        for field, size in (("user", self.n_users), ("item", self.n_items)):
            codes = frame[field].to_numpy()
            fresh = np.unique(codes[codes >= size])
            if len(fresh) and not grows:
                raise RequestError(
                    f"events[{int(np.flatnonzero(codes >= size)[0])}].{field}",
                    f"unknown {field} {int(fresh[0])} (codes are 0..{size - 1}); "
                    f"{type(self.model).__name__} cannot take new {field}s",
                )
            expected = np.arange(size, size + len(fresh))
            if len(fresh) and not np.array_equal(fresh, expected):
                row = int(np.flatnonzero(codes == fresh[fresh != expected][0])[0])
                raise RequestError(
                    f"events[{row}].{field}",
                    f"new {field}s take the next free codes from {size}, got {codes[row]}",
                )
        order = np.lexsort((np.arange(len(frame)), frame["user"].to_numpy()))
        user = frame["user"].to_numpy()[order]
        time = frame["timestamp"].to_numpy()[order]
        last = self.state.last_time(user)
        prev = np.where(np.r_[False, user[1:] == user[:-1]], np.r_[time[0], time[:-1]], last)
        bad = time < prev
        if bad.any():
            row = int(order[np.flatnonzero(bad)[0]])
            raise RequestError(
                f"events[{row}].timestamp",
                f"{int(frame['timestamp'].iloc[row])} is before user "
                f"{int(frame['user'].iloc[row])}'s previous event; send each user's events "
                "in time order",
            )

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "model": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "events": self.n_events,
            "clock": self.clock,
            "updates": bool(self.model.supports_update),
            "event_fields": ["user", "item", "timestamp", *self.event_columns],
        }

    def close(self) -> None:
        if self.log is not None:
            self.log.close()


def _refused(error: Exception) -> RequestError:
    """A model's refusal of events (``model.update``) as a request error naming the field."""
    column, row = getattr(error, "column", None), getattr(error, "row", None)
    field = "events" if column is None else f"events.{column}"
    if column is not None and row is not None:
        field = f"events[{row}].{column}"
    return RequestError(field, str(error))


def load(
    run_dir: str | Path,
    *,
    root: str | Path | None = None,
    log: str | Path | None = None,
    device: str = "cpu",
) -> Session:
    """A :class:`Session` of the finished run in ``run_dir`` (module docstring); ``root`` is
    the data root (default ``$TGRAPH_DATA``); with ``log``, ingested events are appended to
    that file and the batches it already holds are ingested first."""
    run = RunDir(run_dir)
    if not run.finished:
        raise RunDirError(f"{run.path} holds no finished run (no {run.layout.FINISHED})")
    config = run.read_config()
    split = prepare_split(validate_model(DatasetConfig, config.get("dataset"), "dataset"), root)
    name = config["model"]["name"]
    seed_everything(int(config["seed"]))
    model = models.get(name)(split, config["model"]["config"])
    refitted = run.layout.refit_checkpoint.exists() and split.valid is not None
    if refitted and split.valid is not None:  # (repeated for the type checker)
        events = pd.concat([split.train.events, split.valid.events], ignore_index=True)
        model.observe(split.train.with_events(events.sort_values("timestamp", kind="stable")))
        weights = run.layout.refit_checkpoint
    elif run.layout.best_checkpoint.exists():
        weights = run.layout.best_checkpoint
    elif not model.needs_training:
        model.fit(split.train)
        weights = None
    else:
        raise RunDirError(f"{run.path} has no weights ({run.layout.best_checkpoint.name})")
    if weights is not None:
        payload = torch.load(weights, map_location="cpu", weights_only=False)
        model.load_state_dict(payload["model"])
    label = config["model"].get("label", name)
    session = Session.of(model.to(device), split, refitted=refitted, name=label)
    if log is not None:
        session.replay(EventLog(log))
        session.log = EventLog(log)
    return session
