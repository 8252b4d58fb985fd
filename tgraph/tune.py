"""Hyper-parameter studies with Optuna: one study per (model, dataset).

A study file is an experiment config (see :mod:`tgraph.config`) with one model and a
``study`` section::

    study:
      n_trials: 30                 # total budget over all workers (complete + pruned trials)
      pruner: {type: median, n_startup_trials: 3, n_warmup_steps: 2}
      space:
        model.config.embedding_dim: {type: categorical, choices: [32, 64, 128]}
        train.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}

Space keys are ``model.config.<key>`` (a model hyper-parameter) or ``train.<key>`` (a trainer
option); both are checked against the model and :class:`~tgraph.train.trainer.TrainConfig`.
Each trial trains with the first of ``seeds`` and reports ``valid_<valid_metric>`` after every
validation, so that the pruner can stop it; the test part is never ranked during the search.
Trial 0 is the model's default configuration (enqueued by worker 0). The sampler is a seeded
TPE sampler.

Storage: SQLite under the study folder by default (every finished trial is committed, so a
crash or Ctrl-C loses none and the same command resumes the study); ``journal:<file>`` for
several processes on one machine; a PostgreSQL URL for workers on several machines, with
heartbeats so that the trial of a killed worker is marked failed and retried.

Afterwards :func:`finish_study` exports the best configuration as a ready-to-run YAML file,
draws the study plots and re-trains the ``top_k`` configurations with fresh seeds: the final
choice is the best mean **validation** value over those seeds, and only then is test reported.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tgraph import models
from tgraph.config import (
    ConfigError,
    ExperimentConfig,
    ModelEntry,
    read_layers,
    validate_config,
    validation_message,
)
from tgraph.data.split import Split
from tgraph.experiment import markdown_table, prepare_split, run_experiment
from tgraph.train.seed import seed_everything
from tgraph.train.trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)

#: trainer options a study may not search (set by the study itself)
_RESERVED_TRAIN = {"seed", "device", "checkpoint_dir", "log_path", "progress"}
_COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParamSpec(_Strict):
    """One searched parameter: ``float`` / ``int`` in ``[low, high]`` or ``categorical``."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


class PrunerConfig(_Strict):
    type: Literal["median", "hyperband", "none"] = "median"
    #: median: no pruning before ``n_startup_trials`` trials finished, nor at epochs before
    #: ``n_warmup_steps`` (epochs are steps 1, 2, ...: a trial may be pruned at that epoch)
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    #: hyperband: resources are epochs
    min_resource: int = 1
    max_resource: int | Literal["auto"] = "auto"
    reduction_factor: int = 3


class StudyConfig(_Strict):
    name: str | None = None
    #: total budget of complete + pruned trials over all workers
    n_trials: int = Field(20, ge=0)
    timeout: float | None = None
    #: sampler seed (worker k uses seed + k)
    seed: int = 0
    n_startup_trials: int = 10
    storage: str | None = None
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    #: "valid" (maximised), optionally with "train_seconds" (minimised): multi-objective
    objectives: list[Literal["valid", "train_seconds"]] = Field(default_factory=lambda: ["valid"])
    enqueue_default: bool = True
    #: RDB storages: heartbeat (seconds) of running trials; stale ones are failed and retried
    heartbeat_interval: int | None = 60
    grace_period: int | None = None
    max_retry: int = 3
    top_k: int = Field(3, ge=0)
    retrain_seeds: list[int] = Field(default_factory=lambda: [1, 2, 3])


class StudySpec:
    """A resolved study: the experiment (one model), the study options and the search space."""

    def __init__(self, experiment: ExperimentConfig, options: StudyConfig) -> None:
        if len(experiment.models) != 1:
            raise ConfigError(
                f"key 'models': a study tunes exactly one model, got {len(experiment.models)}"
            )
        self.experiment = experiment
        self.options = options
        self.entry = experiment.models[0]
        try:
            self.model_class = models.get(self.entry.name)
        except KeyError as error:
            raise ConfigError(f"key 'models.0.name': {error.args[0]}") from None
        if not experiment.seeds:
            raise ConfigError("key 'seeds': the search trains with the first seed; none given")
        self.search_seed = experiment.seeds[0]
        if self.search_seed in options.retrain_seeds:
            raise ConfigError(
                f"key 'study.retrain_seeds': must be fresh seeds, but {self.search_seed} is the "
                "search seed (the first of 'seeds')"
            )
        if options.objectives[0] != "valid" or len(set(options.objectives)) != len(
            options.objectives
        ):
            raise ConfigError(
                "key 'study.objectives': start with 'valid', optionally followed by "
                f"'train_seconds'; got {options.objectives}"
            )
        self.defaults = {path: self._check(path, spec) for path, spec in options.space.items()}

    # ------------------------------------------------------------------ naming
    @property
    def name(self) -> str:
        e = self.experiment
        return self.options.name or f"{e.experiment}-{self.entry.run_name}-{e.dataset.name}"

    @property
    def folder(self) -> Path:
        e = self.experiment
        return Path(e.output_dir) / e.experiment / e.dataset.name / f"study-{self.entry.run_name}"

    @property
    def metric(self) -> str:
        return str(self._train_options().get("valid_metric", TrainConfig.valid_metric)).lower()

    @property
    def multi_objective(self) -> bool:
        return len(self.options.objectives) > 1

    # ------------------------------------------------------------------ space
    def _train_options(self) -> dict[str, Any]:
        return {**self.experiment.train, **self.entry.train}

    def _check(self, path: str, spec: ParamSpec) -> Any:
        """Validate one space entry; return the current (default) value of that key."""
        key = f"study.space.{path}"
        parts = path.split(".")
        if parts[:2] == ["model", "config"] and len(parts) == 3:
            allowed = {**self.model_class.SHARED_KEYS, **self.model_class.defaults}
            if parts[2] not in allowed:
                raise ConfigError(
                    f"key '{key}': model {self.entry.name!r} has no config key {parts[2]!r}; "
                    f"known: {sorted(allowed)}"
                )
            default = self.entry.config.get(parts[2], allowed[parts[2]])
        elif parts[0] == "train" and len(parts) == 2:
            known = {f.name: f.default for f in fields(TrainConfig)}
            if parts[1] not in known or parts[1] in _RESERVED_TRAIN:
                raise ConfigError(
                    f"key '{key}': {parts[1]!r} is not a searchable trainer option; known: "
                    f"{sorted(set(known) - _RESERVED_TRAIN)}"
                )
            default = self._train_options().get(parts[1], known[parts[1]])
        else:
            raise ConfigError(
                f"key '{key}': a space key is 'model.config.<key>' or 'train.<key>', got {path!r}"
            )
        if spec.type == "categorical":
            if not spec.choices:
                raise ConfigError(f"key '{key}': a categorical parameter needs 'choices'")
            bad = [c for c in spec.choices if not isinstance(c, (bool, int, float, str))]
            if bad:
                raise ConfigError(f"key '{key}': choices must be numbers or strings, got {bad}")
            return default
        if spec.low is None or spec.high is None or not spec.low < spec.high:
            raise ConfigError(f"key '{key}': {spec.type} needs 'low' < 'high'")
        if spec.log and (spec.low <= 0 or spec.step is not None):
            raise ConfigError(f"key '{key}': 'log: true' needs low > 0 and no 'step'")
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise ConfigError(
                f"key '{key}': the option's value {default!r} is not a number; "
                "search it with type: categorical"
            )
        if spec.type == "float" and isinstance(default, int):
            raise ConfigError(
                f"key '{key}': the option is an integer ({default}); use type: int or categorical"
            )
        if spec.type == "int" and not (
            float(spec.low).is_integer() and float(spec.high).is_integer()
        ):
            raise ConfigError(f"key '{key}': type int needs integer 'low' and 'high'")
        return default

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample every parameter of the space for ``trial``."""
        params = {}
        for path, spec in self.options.space.items():
            if spec.type == "categorical":
                params[path] = trial.suggest_categorical(path, spec.choices)
            elif spec.type == "int":
                step = int(spec.step or 1)
                params[path] = trial.suggest_int(
                    path, int(spec.low), int(spec.high), step=step, log=spec.log
                )
            else:
                params[path] = trial.suggest_float(
                    path, spec.low, spec.high, step=spec.step, log=spec.log
                )
        return params

    def default_params(self) -> dict[str, Any]:
        """The current values of the searched keys that lie inside the space (trial 0)."""
        inside = {}
        for path, value in self.defaults.items():
            spec = self.options.space[path]
            if spec.type == "categorical":
                ok = value in spec.choices
            else:
                ok = spec.low <= value <= spec.high
            if ok:
                inside[path] = value
            else:
                log.warning("default %s=%r lies outside the space; trial 0 samples it", path, value)
        return inside

    def entry_with(self, params: dict[str, Any], label: str | None = None) -> ModelEntry:
        """The model entry with ``params`` applied (``train.*`` to its own trainer options)."""
        entry = copy.deepcopy(self.entry)
        for path, value in params.items():
            parts = path.split(".")
            target = entry.config if parts[0] == "model" else entry.train
            target[parts[-1]] = value
        if label is not None:
            entry.label = label
        return entry

    def config_with(self, params: dict[str, Any]) -> dict[str, Any]:
        """A ready-to-run experiment config (``tgraph run``) with ``params`` applied."""
        config = self.experiment.model_copy(update={"models": [self.entry_with(params)]})
        return config.model_dump(mode="json")

    # ------------------------------------------------------------------ storage
    def storage(self, url: str | None = None) -> optuna.storages.BaseStorage:
        """The study's storage (see the module docstring); ``url`` overrides the config."""
        url = url or self.options.storage
        if url is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{(self.folder / 'study.db').resolve()}"
        if url.startswith("journal:"):
            path = Path(url.removeprefix("journal:"))
            path.parent.mkdir(parents=True, exist_ok=True)
            backend = optuna.storages.journal.JournalFileBackend(str(path))
            return optuna.storages.JournalStorage(backend)
        opts = self.options
        engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=opts.max_retry)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=opts.heartbeat_interval,
                grace_period=opts.grace_period,
                heartbeat_stale_trial_callback=retry,
            )

    def create(self, storage: str | None = None, worker: int = 0) -> optuna.Study:
        """Create or load (``load_if_exists``) the Optuna study; worker 0 enqueues the default
        config (several workers starting at once would each enqueue it)."""
        opts = self.options
        sampler = optuna.samplers.TPESampler(
            seed=opts.seed + worker, n_startup_trials=opts.n_startup_trials
        )
        directions = ["maximize" if o == "valid" else "minimize" for o in opts.objectives]
        study = optuna.create_study(
            storage=self.storage(storage),
            sampler=sampler,
            pruner=self.pruner(),
            study_name=self.name,
            directions=directions,
            load_if_exists=True,
        )
        if opts.enqueue_default and worker == 0 and not study.trials:
            study.enqueue_trial(self.default_params(), skip_if_exists=True)
        return study

    def pruner(self) -> optuna.pruners.BasePruner:
        p = self.options.pruner
        if p.type == "none" or self.multi_objective:
            return optuna.pruners.NopPruner()
        if p.type == "median":
            return optuna.pruners.MedianPruner(
                n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
            )
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource,
            max_resource=p.max_resource,
            reduction_factor=p.reduction_factor,
        )

    # ------------------------------------------------------------------ trials
    def objective(self, split_: Split) -> Callable[[optuna.Trial], float | tuple[float, float]]:
        """The Optuna objective: train one configuration, return validation (and seconds)."""
        valid_key = f"valid_{self.metric}"

        def run(trial: optuna.Trial) -> float | tuple[float, float]:
            params = self.suggest(trial)
            trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
            folder = self.folder / "trials" / f"{trial.number:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

            def report(record: dict[str, Any]) -> None:
                trial.report(record[valid_key], step=record["epoch"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at epoch {record['epoch']}")

            # Optuna cannot prune multi-objective trials: nothing to report
            on_epoch = None if self.multi_objective else report
            value, seconds, trainer = self.train(split_, params, folder / "curve.jsonl", on_epoch)
            trial.set_user_attr("best_epoch", trainer.best_epoch)
            trial.set_user_attr("train_seconds", seconds)
            return (value, seconds) if self.multi_objective else value

        return run

    def train(
        self,
        split_: Split,
        params: dict[str, Any],
        curve: Path | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[float, float, Trainer]:
        """Train with ``params`` and the search seed; the best validation value and seconds."""
        entry = self.entry_with(params)
        if curve is not None and curve.exists():
            curve.unlink()
        options = {
            **self.experiment.train,
            **entry.train,
            "seed": self.search_seed,
            "device": self.experiment.device,
            "log_path": None if curve is None else str(curve),
            "checkpoint_dir": None,
        }
        seed_everything(self.search_seed)
        model = self.model_class(split_, entry.config)
        start = time.perf_counter()
        trainer = Trainer(model, split_, TrainConfig.from_dict(options))
        trainer.fit(on_epoch=on_epoch)
        return float(trainer.best_value), time.perf_counter() - start, trainer


def load_study(
    files: list[str | Path] | tuple[str | Path, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
) -> StudySpec:
    """Layer the YAML ``files`` and ``key=value`` overrides (``study.n_trials=5`` too)."""
    merged = read_layers(files, overrides)
    section = merged.pop("study", None) or {}
    if not isinstance(section, dict):
        raise ConfigError("key 'study': must be a mapping (n_trials, space, pruner, ...)")
    experiment = validate_config(merged)
    try:
        options = StudyConfig.model_validate(section)
    except ValidationError as error:
        message = validation_message(error, prefix="study.")
        raise ConfigError(f"invalid study configuration: {message}") from None
    return StudySpec(experiment, options)


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards the budget: complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=_COUNTED))


def run_study(
    study_def: StudySpec,
    root: str | Path | None = None,
    storage: str | None = None,
    worker: int = 0,
) -> optuna.Study:
    """Run trials until ``study.n_trials`` complete + pruned trials exist (over all workers).

    Safe to run in several processes on the same storage; a second run resumes. A worker
    stops after its current trial once the budget is reached, so with ``w`` workers up to
    ``w - 1`` trials more than the budget may finish.
    """
    study = study_def.create(storage, worker)
    budget = study_def.options.n_trials
    done = counted_trials(study)
    if done >= budget:
        log.info("study %s: %d of %d trials done, nothing to run", study.study_name, done, budget)
        return study
    split_ = prepare_split(study_def.experiment.dataset, root)
    log.info("study %s: %d of %d trials done; running", study.study_name, done, budget)
    study.optimize(
        study_def.objective(split_),
        timeout=study_def.options.timeout,
        callbacks=[optuna.study.MaxTrialsCallback(budget, states=_COUNTED)],
        gc_after_trial=True,
        show_progress_bar=False,
    )
    return study


def retried_from(trial: optuna.trial.FrozenTrial) -> int | None:
    """The number of the stale trial that ``trial`` re-runs, or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, values, params, worker, retried-from."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        for i, name in enumerate(["valid", "train_seconds"][: len(study.directions)]):
            row[name] = t.values[i] if t.values else np.nan
        row.update({f"param:{k}": v for k, v in t.params.items()})
        row["worker"] = t.user_attrs.get("worker")
        row["retry_of"] = retried_from(t)
        rows.append(row)
    return pd.DataFrame(rows)


def ranked_trials(study: optuna.Study, study_def: StudySpec) -> list[optuna.trial.FrozenTrial]:
    """Complete trials (the Pareto front if multi-objective), best validation first."""
    if study_def.multi_objective:
        pool = study.best_trials
    else:
        pool = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return sorted(pool, key=lambda t: (-t.values[0], t.number))


def export_best(study: optuna.Study, study_def: StudySpec) -> Path:
    """Write ``best.yaml`` (the best trial as a ``tgraph run`` config) and ``trials.csv``."""
    ranked = ranked_trials(study, study_def)
    if not ranked:
        raise RuntimeError(f"study {study.study_name} has no complete trial to export")
    best = ranked[0]
    folder = study_def.folder
    folder.mkdir(parents=True, exist_ok=True)
    trials_table(study).to_csv(folder / "trials.csv", index=False)
    if study_def.multi_objective:
        pareto = [{"number": t.number, "values": list(t.values), **t.params} for t in ranked]
        pd.DataFrame(pareto).to_csv(folder / "pareto.csv", index=False)
    header = (
        f"# best trial {best.number} of study {study.study_name}: "
        f"valid {study_def.metric} = {best.values[0]:.6f}\n"
        f"# run it: tgraph run --config {folder / 'best.yaml'}\n"
    )
    path = folder / "best.yaml"
    path.write_text(header + yaml.safe_dump(study_def.config_with(best.params), sort_keys=False))
    return path


def retrain_top(
    study: optuna.Study, study_def: StudySpec, root: str | Path | None = None
) -> pd.DataFrame:
    """Re-train the ``top_k`` trials with ``retrain_seeds``; choose on mean validation.

    Writes run directories under ``<study folder>/retrain``, ``retrain.csv`` / ``retrain.md``
    and ``selected.yaml``; returns the table (one row per configuration, ``selected`` marks
    the choice).
    """
    opts, experiment = study_def.options, study_def.experiment
    top = ranked_trials(study, study_def)[: opts.top_k]
    if not top:
        raise RuntimeError(f"study {study.study_name} has no complete trial to re-train")
    entries = [study_def.entry_with(t.params, label=f"trial{t.number:04d}") for t in top]
    config = experiment.model_copy(
        update={
            "models": entries,
            "seeds": list(opts.retrain_seeds),
            "output_dir": str(study_def.folder / "retrain"),
        }
    )
    summary = run_experiment(config, root).set_index("model")
    base = study_def.folder / "retrain" / experiment.experiment / experiment.dataset.name
    valid_key = f"valid_{study_def.metric}"
    rows = []
    for trial, entry in zip(top, entries, strict=True):
        label = entry.run_name
        values = [
            json.loads((base / label / f"seed{s}" / "metrics.json").read_text())[valid_key]
            for s in opts.retrain_seeds
        ]
        row = {"model": label, "trial": trial.number, "search_valid": trial.values[0]}
        row["valid_mean"] = float(np.mean(values))
        row["valid_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        row.update(summary.loc[label].to_dict(), seeds=len(values))
        rows.append(row)
    table = pd.DataFrame(rows)
    chosen = int(table["valid_mean"].to_numpy().argmax())
    table["selected"] = np.arange(len(table)) == chosen
    table.to_csv(study_def.folder / "retrain.csv", index=False)
    lines = [
        f"Top {len(top)} trials of study {study.study_name}, re-trained with seeds "
        f"{list(opts.retrain_seeds)}; selected on mean validation {study_def.metric}: "
        f"{table.loc[chosen, 'model']} (validation {table.loc[chosen, 'valid_mean']:.4f}).",
        "",
        "Columns: mean validation value (the selection criterion), then test metrics.",
        "",
        markdown_table(table, ["valid", *experiment.metrics]),
    ]
    (study_def.folder / "retrain.md").write_text("\n".join(lines) + "\n")
    params = top[chosen].params
    (study_def.folder / "selected.yaml").write_text(
        f"# selected after re-training: trial {top[chosen].number}\n"
        + yaml.safe_dump(study_def.config_with(params), sort_keys=False)
    )
    return table


def finish_study(
    study: optuna.Study, study_def: StudySpec, root: str | Path | None = None, retrain: bool = True
) -> dict[str, Any]:
    """Export ``best.yaml``, draw the plots and (``retrain``) re-train the top configurations."""
    from tgraph.study_plots import plot_study

    best = export_best(study, study_def)
    plots = plot_study(study, study_def.folder / "plots", target_name=f"valid {study_def.metric}")
    out: dict[str, Any] = {"best_config": best, "plots": plots}
    if retrain and study_def.options.top_k > 0:
        out["retrain"] = retrain_top(study, study_def, root)
    return out
