"""Run an experiment: dataset -> protocol split -> (model x seed) training -> test metrics.

Each (model, seed) gets a run directory (see :mod:`tgraph.rundir`); the experiment folder
``<output_dir>/<experiment>/<dataset>/`` also receives ``summary.csv`` / ``summary.md`` with
the mean and standard deviation over seeds. Epochs are selected on validation only; test
is ranked once, with the selected weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tgraph import models
from tgraph.config import ConfigError, DatasetConfig, ExperimentConfig, ModelEntry
from tgraph.data import preprocess, protocols, registry, split
from tgraph.data.interactions import Interactions
from tgraph.data.paths import data_root
from tgraph.data.split import Split
from tgraph.rundir import RunDir, environment
from tgraph.train.seed import seed_everything
from tgraph.train.trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)

#: protocol presets: name -> (kind, builder); "interactions" builders take the loaded table,
#: "root" builders read their own fixed files from the data root
PROTOCOLS: dict[str, tuple[str, Callable[..., Split]]] = {
    "next_poi_chronological": ("interactions", protocols.next_poi_chronological),
    "chronological": ("interactions", split.chronological_split),
    "leave_last_out": ("interactions", split.leave_last_out),
    "getnext_nyc": ("root", protocols.getnext_nyc),
    "lightgcn": ("root", protocols.lightgcn),
}


def prepare_split(config: DatasetConfig, root: str | Path | None = None) -> Split:
    """Load, clean (deduplicate, k-core; counts logged) and split the configured dataset."""
    if config.protocol not in PROTOCOLS:
        raise ConfigError(
            f"key 'dataset.protocol': unknown protocol {config.protocol!r}; "
            f"choose one of {sorted(PROTOCOLS)}"
        )
    kind, build = PROTOCOLS[config.protocol]
    if kind == "root":
        folder = data_root(root) / registry.get_spec(config.name).folder
        return build(folder, **config.protocol_options)
    inter = registry.load(config.name, root, **config.options)
    if not isinstance(inter, Interactions):
        raise ConfigError(
            f"key 'dataset.protocol': dataset {config.name!r} comes with fixed parts; "
            "use its own protocol preset"
        )
    if config.deduplicate:
        inter, _ = preprocess.deduplicate(inter)
    if config.kcore:
        inter, _ = preprocess.kcore(inter, **config.kcore)
    return build(inter, **config.protocol_options)


def run_model(
    split_: Split,
    entry: ModelEntry,
    seed: int,
    config: ExperimentConfig,
    run_dir: RunDir,
    resume: bool = False,
) -> dict[str, Any]:
    """Train one model with one seed, rank the test part, fill ``run_dir``; return the metrics.

    With ``resume``, training continues from ``run_dir``'s ``last.pt`` when there is one, and
    ``curve.jsonl`` is appended to."""
    train_options = {**config.train, **entry.train}
    train_options.update(
        seed=seed,
        device=config.device,
        checkpoint_dir=str(run_dir.path),
        log_path=str(run_dir.file("curve.jsonl")),
    )
    if run_dir.file("curve.jsonl").exists() and not resume:
        run_dir.file("curve.jsonl").unlink()
    train_config = TrainConfig.from_dict(train_options)
    seed_everything(seed)
    model = models.get(entry.name)(split_, entry.config)
    run_dir.write_config(
        {
            **config.model_dump(exclude={"models"}),
            "model": {"name": entry.name, "label": entry.run_name, "config": model.config},
            "train": {k: v for k, v in vars(train_config).items()},
            "seed": seed,
        }
    )
    run_dir.write_json("environment.json", environment(config.device))
    with run_dir.capture_log():
        log.info("%s seed %d: training (run directory %s)", entry.run_name, seed, run_dir.path)
        start = time.perf_counter()
        trainer = Trainer(model, split_, train_config)
        trainer.fit(resume=resume)
        train_seconds = time.perf_counter() - start
        result = trainer.evaluate("test", tuple(config.metrics))
        log.info("%s seed %d: test %s", entry.run_name, seed, result.metrics)
    run_dir.write_table("per_query.csv", result.per_query)
    metrics = {
        "model": entry.run_name,
        "seed": seed,
        "best_epoch": trainer.best_epoch,
        f"valid_{train_config.valid_metric}": trainer.best_value,
        "train_seconds": train_seconds,
        "train_valid_seconds": trainer.elapsed_s,  # + refit, over all resumed sessions
        "test": result.metrics,
    }
    run_dir.write_json("metrics.json", metrics)
    return metrics


def summarise(rows: list[dict[str, Any]], metric_names: list[str]) -> pd.DataFrame:
    """Mean and (sample) standard deviation over seeds, one row per model, input order kept."""
    frame = pd.DataFrame([{"model": r["model"], "seed": r["seed"], **r["test"]} for r in rows])
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


def run_experiment(
    config: ExperimentConfig, root: str | Path | None = None, resume: bool = False
) -> pd.DataFrame:
    """Run every (model, seed) of ``config``; write run directories and the summary
    (``resume``: see :func:`run_model`)."""
    if not config.models:
        raise ConfigError("key 'models': the experiment names no model")
    labels = [m.run_name for m in config.models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"key 'models': labels must be unique, got {labels}")
    split_ = prepare_split(config.dataset, root)
    log.info("split: %s", split_.summary())
    base = Path(config.output_dir) / config.experiment / config.dataset.name
    rows = []
    for entry in config.models:
        for seed in config.seeds:
            run_dir = RunDir(base / entry.run_name / f"seed{seed}")
            rows.append(run_model(split_, entry, seed, config, run_dir, resume))
    summary = summarise(rows, config.metrics)
    summary.to_csv(base / "summary.csv", index=False)
    (base / "summary.md").write_text(markdown_table(summary, config.metrics) + "\n")
    RunDir(base).write_json("split.json", split_.summary())
    return summary
