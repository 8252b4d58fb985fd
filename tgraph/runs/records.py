"""The typed records of a run directory: curve records, amendments and the results.

They are written by :class:`~tgraph.runs.rundir.RunDir` and read back with validation, so a
reader never spells a key such as ``valid_ndcg@20``: validation metrics are ``record.valid``,
test metrics ``metrics.test``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Record(BaseModel):
    """A record tgraph wrote itself: unknown keys are errors (a file of another format)."""

    model_config = ConfigDict(extra="forbid")


def now() -> str:
    """The current UTC time, as recorded in sessions and amendments."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Amendment(Record):
    """A configuration key changed when a run was resumed (see
    :data:`tgraph.runs.fingerprint.AMENDABLE`)."""

    key: str  # full key path, e.g. "train.lr"
    old: Any
    new: Any
    at: str = Field(default_factory=now)  # the time of the session that made the change


class CurveRecord(Record):
    """One epoch of training (or the single fit of a statistical model, epoch 0).

    ``valid`` is empty for an epoch that was not validated and for refit epochs; ``lr`` is the
    learning rate at the end of the epoch; ``amendments`` are the changes that took effect at
    the start of this epoch (a resume with other options).
    """

    epoch: int
    loss: float | None = None
    train_s: float | None = None
    valid: dict[str, float] = Field(default_factory=dict)
    eval_s: float | None = None
    lr: float | None = None
    best_epoch: int = -1
    refit: bool = False
    refit_epoch: int | None = None
    amendments: list[Amendment] = Field(default_factory=list)

    @property
    def validated(self) -> bool:
        return bool(self.valid)


class StreamingMetrics(Record):
    """The streaming evaluation of a run (``eval.mode: streaming``, :mod:`tgraph.eval.streaming`).

    ``test`` has the metrics of the static ranking's names; latency is per test query (history
    from the index, scoring every item, masks, ranks; a query after an update pays for the
    refreshed caches), in milliseconds; throughput is events folded in (index append,
    ``model.update``, and ``finetune`` when configured) per second of ingest time.
    """

    test: dict[str, float]
    latency_p50_ms: float
    latency_p99_ms: float
    ingest_events_per_s: float
    #: events replayed into the model (those it had not seen: validation unless refitted, test)
    events_ingested: int
    #: ``model.update`` calls (one per distinct query time with new events before it)
    updates: int
    finetune_steps: int = 0

    @field_validator("test")
    @classmethod
    def _finite(cls, values: dict[str, float]) -> dict[str, float]:
        return _finite_metrics(values)


def _finite_metrics(values: dict[str, float]) -> dict[str, float]:
    """Results are numbers: ``-Infinity`` or ``NaN`` is not valid JSON and no metric."""
    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
    if bad:
        raise ValueError(f"non-finite metric value(s) {bad}")
    return values


class RunMetrics(Record):
    """``metrics.json``: the results of a finished run.

    ``valid`` holds the validation metrics of the selected epoch (the selection criterion is
    ``valid[valid_metric]``), ``test`` the test metrics of the selected (or refitted) weights,
    ranked frozen (static); ``streaming`` those weights' streaming evaluation.
    """

    model: str  # the label
    seed: int
    #: the digest of the run's fingerprint (equal for the seeds of one configuration)
    fingerprint: str
    best_epoch: int
    valid_metric: str
    valid: dict[str, float]
    test: dict[str, float]
    #: wall-clock seconds of this session's training (+ refit) call
    train_seconds: float
    #: training + validation (+ refit) seconds over every session of the run
    train_valid_seconds: float
    #: the streaming evaluation of the same weights (``eval.mode: streaming``), else ``None``
    streaming: StreamingMetrics | None = None
    #: what the queries knew of their target's time (:attr:`tgraph.data.split.Split.query_time`;
    #: ``None`` in runs recorded before it existed)
    query_time: str | None = None
    #: the task, as labelled in leaderboards (``"next-POI"``, ``"time-aware next-POI"``;
    #: :attr:`tgraph.data.split.Split.task_label`), or ``None``
    task: str | None = None

    @field_validator("valid", "test")
    @classmethod
    def _finite(cls, values: dict[str, float]) -> dict[str, float]:
        return _finite_metrics(values)
