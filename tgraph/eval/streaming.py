"""Streaming evaluation (TGB-style): replay the test period in time order, rank, then ingest.

The static :class:`~tgraph.eval.evaluator.Evaluator` ranks every test query with the model
as it was trained (frozen). The streaming evaluator ranks the same queries with the same
ranking code, ground truths and masks (it calls :meth:`Evaluator.rank` and
:meth:`Evaluator.result`), but lets the model follow the stream: the events the model has not
seen (the validation events unless the trainer refitted on them or folded them in, then the
test events) are replayed in time order, and

* each test query at time ``t`` is ranked with the state as of just before ``t``: every
  replayed event with ``timestamp < t`` has been folded in (``model.update``, plus
  ``model.finetune(events, finetune_steps)`` when configured) and appended to the history
  index; no event at or after ``t`` has;
* queries with the same timestamp are all ranked before any event of that timestamp is
  ingested (one timestamp is one instant: none of its events may inform another's ranking,
  and the result does not depend on the order of rows within an instant);
* the events between two consecutive query times are ingested in one ``update`` call (the
  state a query sees is the same as with one call per event, and the model's caches, e.g. a
  graph propagation, are refreshed once per query time rather than once per event).

Without time (a protocol whose queries all share one timestamp) nothing is replayed before
any query, and streaming equals static.

With ``query_time: hidden`` (:attr:`~tgraph.data.split.Split.query_time`) a query is ranked
at its "now" instead: the time of its user's last event before the target (or the
protocol's cut), after every replayed event up to and including that instant, and its
queries carry that time, not the target's (:func:`~tgraph.data.queries.build_queries`); the
history is the same (the user has no event between "now" and the target).

So the target of a query is never visible before it is ranked, neither in the history (the
index answers "strictly before ``t``") nor in the model's state. Histories equal those of the
static evaluator (whose context is every event strictly before ``t``); what differs is only
what ``update`` folds into the model (counts, graph edges and norms, new users and items).

Costs reported: the latency of each query (history from the index, scores of every item,
masks, ranks; one query at a time, as a served request, so the first query after an update
pays for refreshing the model's caches), as p50/p99 in milliseconds, and the ingest
throughput (events per second of time spent in index append, ``update`` and ``finetune``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from tgraph.compare import paired_tests
from tgraph.data.queries import own_offsets
from tgraph.data.split import Split
from tgraph.eval.evaluator import EvalResult, Evaluator, settled
from tgraph.models.base import Recommender
from tgraph.runs import RunDir
from tgraph.runs.records import StreamingMetrics
from tgraph.serve.state import LiveState
from tgraph.train import distributed

log = logging.getLogger(__name__)


@dataclass
class StreamingResult:
    """The streaming ranking: ``result`` as the static evaluator reports it (its per-query
    table has one more column, ``latency_ms``) and the costs, as recorded in a run."""

    result: EvalResult
    metrics: StreamingMetrics


def seen_and_replayed(split: Split, holds_valid: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events a trained model was built from (train, plus validation when it
    ``holds_valid``) and those a streaming evaluation replays into it (validation unless it
    ``holds_valid``, then test),
    the latter in time order (stable: ties keep the order of the files)."""
    valid = [] if split.valid is None else [split.valid.events]
    seen = [split.train.events, *(valid if holds_valid else [])]
    replayed = [*([] if holds_valid else valid), split.test.events]
    columns = [c for c in split.train.events.columns if all(c in p for p in seen + replayed)]
    seen_events = pd.concat([p[columns] for p in seen], ignore_index=True)
    replay = pd.concat([p[columns] for p in replayed], ignore_index=True)
    replay = replay.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return seen_events, replay


class StreamingEvaluator:
    """Ranks the test queries of ``split`` while replaying the unseen events into the model
    (see the module docstring).

    Args:
        split: the protocol's split; its test queries must carry timestamps.
        metrics: names understood by :func:`tgraph.eval.metrics.parse`.
        holds_valid: whether the model holds the validation events (``train.refit`` or
            ``train.fold_valid``); then they are not replayed.
        finetune_steps: gradient steps of ``model.finetune`` after each ingest (0: none).
        finetune_options: :class:`~tgraph.train.config.TrainConfig` fields for those steps
            (e.g. the run's ``lr`` and ``batch_size``).
        progress: show a tqdm bar.
    """

    def __init__(
        self,
        split: Split,
        metrics: tuple[str, ...] | list[str] = ("recall@20", "ndcg@20"),
        *,
        holds_valid: bool = False,
        finetune_steps: int = 0,
        finetune_options: Mapping[str, Any] | None = None,
        progress: bool = False,
    ) -> None:
        self.split = split
        self.evaluator = Evaluator(split, "test", metrics, batch_size=1)
        self.seen, self.replay = seen_and_replayed(split, holds_valid)
        self.finetune_steps = int(finetune_steps)
        self.finetune_options = dict(finetune_options or {})
        self.progress = progress
        self._users = self.evaluator.table["user"].to_numpy(np.int64)
        self._times = self.evaluator.table["timestamp"].to_numpy(np.int64)  # the targets'
        # a target's local time is its own event's (not its user's last offset: DST may differ)
        self._offsets = own_offsets(split, "test", self.evaluator.table)
        self._hidden = split.query_time == "hidden"
        self._cut = split.query_cut("test")
        # when each query is ranked: its target's time, or with the time hidden its "now"
        # (the last history event's time, or the cut), after that instant's events
        self._rank_at = self.evaluator.queries(0).timestamp.numpy() if self._hidden else self._times

    @torch.no_grad()
    def _rank_one(self, state: LiveState, model: Recommender, row: int) -> np.ndarray:
        user = self._users[row : row + 1]
        at = self._times[row : row + 1]
        offset = None if self._offsets is None else self._offsets[row : row + 1]
        query_time = self.split.query_time
        queries = state.queries(user, at, offset, query_time=query_time, cut=self._cut)
        return self.evaluator.rank(model, queries, np.array([row]))

    def _ingest(self, state: LiveState, model: Recommender, events: pd.DataFrame) -> None:
        state.ingest(events)
        if self.finetune_steps:
            model.finetune(events, self.finetune_steps, state.index, **self.finetune_options)
            model.eval()

    def evaluate(self, model: Recommender) -> StreamingResult:
        """Replay the stream into ``model`` (it is changed: pass a model you may modify) and
        rank every test query on the way; the model's mode is restored afterwards."""
        result = self.evaluate_sharded(model, 0, 1)
        assert result is not None  # one process is rank 0
        return result

    def evaluate_sharded(
        self, model: Recommender, rank: int, world_size: int
    ) -> StreamingResult | None:
        """:meth:`evaluate` shared by the ``world_size`` processes of the default
        ``torch.distributed`` group (every rank calls it with its own identical replica):
        every rank replays the whole stream into its replica (with ``finetune_steps``, its
        parameters are checked equal on all ranks afterwards) and ranks every
        ``world_size``-th query in ranking order from its ``rank``-th; rank 0 gathers the
        ranks and latencies and returns the result (the other ranks ``None``), whose metrics
        and per-query rows, latencies aside, are those of :meth:`evaluate`."""
        if not model.supports_update:
            raise NotImplementedError(
                f"{type(model).__name__} cannot fold new events in (no update), so it cannot "
                "be evaluated in streaming mode"
            )
        n = len(self._times)
        was_training = model.training
        model.eval()
        state = LiveState.from_events(model, self.seen, self.split.train.items)
        replay_times = self.replay["timestamp"].to_numpy(np.int64)
        rank_at = self._rank_at
        instants = np.unique(rank_at)
        order = np.argsort(rank_at, kind="stable")
        bounds = np.searchsorted(rank_at[order], instants, side="left")
        bounds = np.append(bounds, n)
        # replayed events strictly before each instant (known time), or up to and including
        # it (hidden: the instant is an event already seen): replay[:cut[i]]
        if self._hidden:
            cut = np.searchsorted(replay_times, instants, side="right")
        else:
            cut = np.searchsorted(replay_times, instants, side="left")
        ranks = [np.empty((1, 0))] * n
        latency = np.zeros(n)
        ingested, updates, ingest_s = 0, 0, 0.0
        with settled(rank, world_size):  # a failure on one rank raises on all
            for i in tqdm(range(len(instants)), disable=not self.progress, desc="stream test"):
                if cut[i] > ingested:
                    start = time.perf_counter()
                    self._ingest(state, model, self.replay.iloc[ingested : cut[i]])
                    ingest_s += time.perf_counter() - start
                    ingested, updates = int(cut[i]), updates + 1
                for position in range(bounds[i], bounds[i + 1]):
                    if position % world_size != rank:
                        continue
                    row = int(order[position])
                    start = time.perf_counter()
                    ranks[row] = self._rank_one(state, model, row)
                    latency[row] = time.perf_counter() - start
        model.train(was_training)
        if world_size > 1:
            ctx = distributed.Context(rank, world_size)
            if self.finetune_steps:
                distributed.check_replicas(model, ctx)
            mine = [(row, ranks[row], latency[row]) for row in order[rank::world_size]]
            gathered: list[Any] | None = [None] * world_size if rank == 0 else None
            dist.gather_object(mine, gathered, dst=0)
            if gathered is None:
                return None
            for part in gathered:
                for row, row_ranks, seconds in part:
                    ranks[row], latency[row] = row_ranks, seconds
        result = self.evaluator.result(ranks)
        result.per_query["latency_ms"] = latency * 1e3
        metrics = StreamingMetrics(
            test=result.metrics,
            latency_p50_ms=float(np.percentile(latency, 50) * 1e3),
            latency_p99_ms=float(np.percentile(latency, 99) * 1e3),
            ingest_events_per_s=ingested / ingest_s if ingest_s > 0 else 0.0,
            events_ingested=ingested,
            updates=updates,
            finetune_steps=self.finetune_steps,
        )
        log.info(
            "streaming: %d events in %d updates (%.0f events/s), latency p50 %.2f ms p99 %.2f ms",
            ingested,
            updates,
            metrics.ingest_events_per_s,
            metrics.latency_p50_ms,
            metrics.latency_p99_ms,
        )
        return StreamingResult(result, metrics)


def frozen_vs_streaming(runs_dir: str | Path, metrics: list[str]) -> pd.DataFrame:
    """One row per (model, metric) of the streaming runs below ``runs_dir``: the frozen
    (static) and streaming test means of the same weights, their difference, the paired
    t-test and Wilcoxon p-values over the test queries (per-query values averaged over seeds,
    :func:`tgraph.compare.paired_tests`), and the streaming costs (means over seeds)."""
    by_model: dict[str, list[tuple[RunDir, StreamingMetrics]]] = {}
    for run in RunDir.finished_below(runs_dir):
        record = run.read_metrics()
        if record.streaming is not None:
            by_model.setdefault(record.model, []).append((run, record.streaming))
    rows = []
    for model, pairs in by_model.items():
        runs, costs = [run for run, _ in pairs], [cost for _, cost in pairs]
        for metric in metrics:
            name = metric.lower()
            frozen = np.mean([run.read_per_query(["query", name])[name] for run in runs], axis=0)
            stream = np.mean(
                [run.read_per_query(["query", name], streaming=True)[name] for run in runs], axis=0
            )
            p_t, p_w = paired_tests(stream, frozen)
            rows.append(
                {
                    "model": model,
                    "seeds": len(runs),
                    "metric": metric,
                    "frozen": float(frozen.mean()),
                    "streaming": float(stream.mean()),
                    "delta": float(stream.mean() - frozen.mean()),
                    "p_ttest": p_t,
                    "p_wilcoxon": p_w,
                    "latency_p50_ms": float(np.mean([c.latency_p50_ms for c in costs])),
                    "latency_p99_ms": float(np.mean([c.latency_p99_ms for c in costs])),
                    "ingest_events_per_s": float(np.mean([c.ingest_events_per_s for c in costs])),
                    "events_per_update": float(
                        np.mean([c.events_ingested / max(c.updates, 1) for c in costs])
                    ),
                }
            )
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame, metrics: list[str]) -> str:
    """One row per model of :func:`frozen_vs_streaming`: each metric as ``frozen -> streaming``
    with the paired t-test / Wilcoxon p-values, then the streaming costs."""
    header = (
        "| model | seeds | "
        + " | ".join(metrics)
        + " | latency p50 / p99 (ms) | ingest (events/s; events per update) |"
    )
    lines = [header, "|" + "---|" * (len(metrics) + 4)]
    for model, group in table.groupby("model", sort=False):
        by_metric = group.set_index("metric")
        cells = [
            f"{r.frozen:.4f} → {r.streaming:.4f} (p {r.p_ttest:.2g} / {r.p_wilcoxon:.2g})"
            for r in (by_metric.loc[m] for m in metrics)
        ]
        first = group.iloc[0]
        costs = (
            f"{first.latency_p50_ms:.2f} / {first.latency_p99_ms:.2f} | "
            f"{first.ingest_events_per_s:,.0f}; {first.events_per_update:.1f}"
        )
        lines.append(f"| {model} | {first.seeds} | " + " | ".join(cells) + f" | {costs} |")
    return "\n".join(lines)


def write_report(runs_dir: str | Path, out_dir: str | Path, metrics: list[str]) -> pd.DataFrame:
    """Write :func:`frozen_vs_streaming` of ``runs_dir`` to ``out_dir`` (``summary.csv``,
    ``summary.md``) with each run's per-query results, frozen and streaming
    (``<model>_seed<k>_{frozen,streaming}.csv``); returns the table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = frozen_vs_streaming(runs_dir, metrics)
    table.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(markdown_table(table, metrics) + "\n")
    for run in RunDir.finished_below(runs_dir):
        record = run.read_metrics()
        if record.streaming is None:
            continue
        stem = f"{record.model}_seed{record.seed}"
        run.read_per_query().to_csv(out / f"{stem}_frozen.csv", index=False)
        run.read_per_query(streaming=True).to_csv(out / f"{stem}_streaming.csv", index=False)
    return table
