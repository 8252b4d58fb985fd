"""Run an experiment: dataset -> protocol split -> (model x seed) training -> test metrics.

Each (model, seed) gets a run directory (see :mod:`tgraph.runs`); the experiment folder
``<output_dir>/<experiment>/<dataset>/`` also receives ``summary.csv`` / ``summary.md`` with
the mean and standard deviation over seeds. Epochs are selected on validation only; test
is ranked once, with the selected weights, and with ``eval.mode: streaming`` a second time by
:class:`~tgraph.eval.streaming.StreamingEvaluator`, the same weights following the stream.

Launched by torchrun with several processes (``tgraph run --nproc N``), every rank trains every
run (data-parallel, see :mod:`tgraph.train.distributed`) and ranks a share of its test queries;
rank 0 alone checks and writes the run directories, gathers the test ranks and writes the
summary.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tgraph.config import ExperimentConfig
from tgraph.data import protocols
from tgraph.data.split import Split
from tgraph.errors import ConfigError, RunDirError
from tgraph.eval.evaluator import EvalResult
from tgraph.eval.streaming import StreamingEvaluator, StreamingResult
from tgraph.runs import RunDir, RunMetrics, safe_run_path
from tgraph.train import distributed
from tgraph.train.recipe import RunSpec, TrainedRun, resolve_run, train_one

log = logging.getLogger(__name__)


def run_model(
    split_: Split,
    spec: RunSpec,
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> RunMetrics:
    """Train one model with one seed into its run directory, rank the test part; return the
    metrics. What happens to a directory that already holds a run is
    :meth:`RunDir.check`'s decision: a finished run of the same fingerprint is not trained
    again, ``resume`` continues a run from its last checkpoint (amendable options may
    change), ``overwrite`` moves an old run aside."""
    run_dir = RunDir(spec.path)
    fingerprint = spec.fingerprint(split_)
    decision = run_dir.check(fingerprint, resume=resume, overwrite=overwrite)
    if decision.action == "done":
        log.info("%s seed %d: already done (%s)", spec.label, spec.seed, run_dir.path)
        return run_dir.read_metrics()
    recorded = run_dir.begin(fingerprint, spec.resolved, decision)
    ctx = distributed.context()
    note = decision.action + (f" ({ctx.world_size} processes)" if ctx.active else "")
    with run_dir.session(spec.experiment.device, note):
        log.info("%s seed %d: training (run directory %s)", spec.label, spec.seed, run_dir.path)
        trained = train_one(
            split_,
            spec.entry,
            spec.seed,
            spec.experiment,
            run_dir=run_dir,
            resume=decision.action == "resume",
        )
        trainer = trained.trainer
        result, streaming = rank_test(split_, spec, trained)
        assert result is not None  # rank 0's
        log.info("%s seed %d: test %s", spec.label, spec.seed, result.metrics)
        if streaming is not None:
            log.info("%s seed %d: streaming test %s", spec.label, spec.seed, streaming.metrics)
    selected = next(r for r in trainer.history if r.epoch == trainer.best_epoch and r.validated)
    metrics = RunMetrics(
        model=spec.label,
        seed=spec.seed,
        fingerprint=recorded.digest,
        best_epoch=trainer.best_epoch,
        valid_metric=spec.train.valid_metric,
        valid=selected.valid if trainer.calibrated_valid is None else trainer.calibrated_valid,
        test=result.metrics,
        train_seconds=trained.train_seconds,
        train_valid_seconds=trainer.elapsed_s,
        streaming=None if streaming is None else streaming.metrics,
        query_time=split_.query_time,
        task=split_.task_label,
    )
    run_dir.write_results(
        metrics, result.per_query, None if streaming is None else streaming.result.per_query
    )
    return metrics


def rank_test(
    split_: Split, spec: RunSpec, trained: TrainedRun
) -> tuple[EvalResult | None, StreamingResult | None]:
    """Rank the test part with the trained run's weights (and, with ``eval.mode: streaming``,
    follow the stream from them). With several processes every rank calls it and ranks a
    share of the queries; rank 0 gets the results, the other ranks ``None``."""
    ctx = distributed.context()
    metric_names = tuple(m.lower() for m in spec.experiment.metrics)
    result = trained.trainer.evaluate_sharded("test", metric_names)
    streaming = None
    if spec.experiment.eval.mode == "streaming":  # the same weights, then updated
        streaming = StreamingEvaluator(
            split_,
            metric_names,
            holds_valid=spec.train.refit or spec.train.fold_valid,
            finetune_steps=spec.experiment.eval.finetune_steps,
            finetune_options=spec.train.model_dump(),
            progress=spec.train.progress and ctx.is_main,
        ).evaluate_sharded(trained.model, ctx.rank, ctx.world_size)
    return result, streaming


def plan(config: ExperimentConfig) -> list[RunSpec]:
    """Every (model, seed) run of ``config``, resolved, with its directory; reads no data and
    writes nothing (``tgraph run --dry-run``)."""
    if not config.models:
        raise ConfigError("the experiment names no model", key="models")
    return [resolve_run(config, entry, seed) for entry in config.models for seed in config.seeds]


def summarise(rows: list[RunMetrics], metric_names: list[str]) -> pd.DataFrame:
    """Mean and (sample) standard deviation over seeds, one row per model, input order kept."""
    frame = pd.DataFrame([{"model": r.model, "seed": r.seed, **r.test} for r in rows])
    out = []
    for model, group in frame.groupby("model", sort=False):
        row: dict[str, Any] = {"model": model, "seeds": len(group)}
        for name in metric_names:
            values = group[name.lower()].to_numpy(dtype=float)
            row[f"{name}_mean"] = float(values.mean())
            row[f"{name}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out.append(row)
    return pd.DataFrame(out)


def markdown_table(summary: pd.DataFrame, metric_names: list[str]) -> str:
    """``mean ± std`` cells, best mean per metric in bold."""
    header = "| model | seeds | " + " | ".join(metric_names) + " |"
    lines = [header, "|" + "---|" * (len(metric_names) + 2)]
    best = {m: summary[f"{m}_mean"].max() for m in metric_names}
    for _, row in summary.iterrows():
        cells = []
        for m in metric_names:
            cell = f"{row[f'{m}_mean']:.4f} ± {row[f'{m}_std']:.4f}"
            cells.append(f"**{cell}**" if np.isclose(row[f"{m}_mean"], best[m]) else cell)
        lines.append(f"| {row['model']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def task_title(split_: Split) -> str:
    """The line above a summary table that says what its queries knew: the task label and
    ``query_time`` (empty for a protocol that names no task and keeps the time known)."""
    label = split_.task_label
    if label is None and split_.query_time == "known":
        return ""
    return f"Task: {label or 'ranking'} (query_time: {split_.query_time})"


def run_experiment(
    config: ExperimentConfig,
    root: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Run every (model, seed) of ``config``; write run directories and the summary.

    Every run directory is checked (see :func:`run_model`) before the first model trains, so
    a refused run stops the experiment before anything is written; ``resume`` and
    ``overwrite`` exclude each other.

    With several processes (torchrun), rank 0 checks the run directories and tells the other
    ranks which runs to train (or resume) alongside it; they write nothing and return an
    empty frame."""
    if resume and overwrite:
        raise RunDirError("--resume continues runs and --overwrite replaces them: choose one")
    ctx = distributed.context()
    specs = plan(config)
    split_ = protocols.prepare_split(config.dataset, root)
    log.info("split: %s", split_.summary())
    actions = None
    if ctx.is_main:
        actions = [
            RunDir(spec.path).check(spec.fingerprint(split_), resume=resume, overwrite=overwrite)
            for spec in specs
        ]
    actions = distributed.broadcast(actions, ctx)
    if not ctx.is_main:  # train and test alongside rank 0, which writes
        for spec, action in zip(specs, actions, strict=True):
            if action.action != "done":
                resumed = action.action == "resume"
                trained = train_one(split_, spec.entry, spec.seed, config, resume=resumed)
                rank_test(split_, spec, trained)
                # freed now, as rank 0 frees its own: a DistDGL run's distributed embedding
                # is deleted on the servers when its trainer goes, on every rank alike
                del trained
        return pd.DataFrame()
    rows = [run_model(split_, spec, resume=resume, overwrite=overwrite) for spec in specs]
    summary = summarise(rows, config.metrics)
    summary.insert(1, "query_time", split_.query_time)
    summary.insert(2, "task", split_.task_label)
    base = safe_run_path(config.output_dir, config.experiment, config.dataset.name)
    summary.to_csv(base / "summary.csv", index=False)
    title = task_title(split_)
    table = markdown_table(summary, config.metrics)
    (base / "summary.md").write_text((f"{title}\n\n" if title else "") + table + "\n")
    (base / "split.json").write_text(json.dumps(split_.summary(), indent=2, default=str) + "\n")
    return summary
