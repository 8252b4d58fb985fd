"""A study file resolved: its options, its identity (name, folder, fingerprint), one trial's run.

A study is identified by a fingerprint of everything a trial's value depends on: the model and
its resolved hyper-parameters, the resolved trainer options, the search seed, the dataset with
its options and protocol, and the study options that define the search (space, objectives,
pruner, sampler seed and start-up trials, the default trial). Editing any of them makes a new
study (the fingerprint is part of its name and folder); the budget, timeout, storage, heartbeats
and re-training options may change between runs of one study. ``study.name`` names a study
explicitly, e.g. to continue an old study after an edit: its trials then keep the
configuration they ran with (see :mod:`tgraph.tune.results`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from tgraph import models
from tgraph.config import (
    ExperimentConfig,
    FolderName,
    StrictModel,
    read_layers,
    validate_config,
    validate_model,
)
from tgraph.data.split import Split
from tgraph.errors import ConfigError
from tgraph.runs import CurveRecord, RunDir
from tgraph.train.recipe import RunSpec, TrainedRun, resolve_run, train_one
from tgraph.tune.space import ParamSpec, SearchSpace


class PrunerConfig(StrictModel):
    type: Literal["median", "hyperband", "none"] = "median"
    #: median: no pruning before ``n_startup_trials`` trials finished, nor at epochs before
    #: ``n_warmup_steps`` (epochs are steps 1, 2, ...: a trial may be pruned at that epoch)
    n_startup_trials: Annotated[int, Field(ge=0)] = 5
    n_warmup_steps: Annotated[int, Field(ge=0)] = 0
    #: hyperband: resources are epochs
    min_resource: Annotated[int, Field(ge=1)] = 1
    max_resource: int | Literal["auto"] = "auto"
    reduction_factor: Annotated[int, Field(ge=2)] = 3


def _distinct(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds


class StudyConfig(StrictModel):
    #: an explicit study name (default: experiment-model-dataset-fingerprint)
    name: FolderName | None = None
    #: total budget of complete + pruned trials over all workers
    n_trials: Annotated[int, Field(ge=0)] = 20
    timeout: Annotated[float, Field(gt=0)] | None = None
    #: sampler seed (see :class:`tgraph.tune.sampler.ContinuingSampler`)
    seed: Annotated[int, Field(ge=0)] = 0
    n_startup_trials: Annotated[int, Field(ge=0)] = 10
    storage: str | None = None
    pruner: PrunerConfig = Field(default_factory=PrunerConfig)
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    #: "valid" (maximised), optionally with "train_seconds" (minimised): multi-objective
    objectives: list[Literal["valid", "train_seconds"]] = ["valid"]  # pydantic copies it
    enqueue_default: bool = True
    #: RDB storages: heartbeat (seconds) of running trials; stale ones are failed and retried
    heartbeat_interval: Annotated[int, Field(ge=1)] | None = 60
    grace_period: Annotated[int, Field(ge=1)] | None = None
    #: how often one trial is retried after its worker died
    max_retry: Annotated[int, Field(ge=0)] | None = 3
    top_k: Annotated[int, Field(ge=0)] = 3
    retrain_seeds: Annotated[
        list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct)
    ] = Field(default_factory=lambda: [1, 2, 3])


#: the study options that define its search (in the fingerprint); the others may change
#: between runs of one study
DEFINING_OPTIONS = frozenset(
    {"space", "objectives", "pruner", "seed", "n_startup_trials", "enqueue_default"}
)


def fingerprint(payload: Any) -> str:
    """SHA-256 of the canonical JSON of ``payload`` (sorted keys, no whitespace)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The key paths (``model.config.embedding_dim``, ``models[0].train.lr``) whose values
    differ between two JSON-like values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                out.append(path)
            else:
                out += differing_keys(a[key], b[key], path)
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            k for i, (x, y) in enumerate(zip(a, b)) for k in differing_keys(x, y, f"{prefix}[{i}]")
        ]
    return [] if a == b else [prefix]


class StudySpec:
    """A resolved study: the experiment (one model), the study options and the search space."""

    def __init__(
        self, experiment: ExperimentConfig, options: StudyConfig, world_size: int = 1
    ) -> None:
        if len(experiment.models) != 1:
            raise ConfigError(
                f"a study tunes exactly one model, got {len(experiment.models)}", key="models"
            )
        self.experiment = experiment
        self.options = options
        self.entry = experiment.models[0]
        try:
            models.get(self.entry.name)
        except KeyError as error:
            raise ConfigError(error.args[0], key="models[0].name") from None
        self.search_seed = experiment.seeds[0]
        if self.search_seed in options.retrain_seeds:
            raise ConfigError(
                f"must be fresh seeds, but {self.search_seed} is the search seed (the first of "
                "'seeds')",
                key="study.retrain_seeds",
            )
        if options.objectives[0] != "valid" or len(set(options.objectives)) != len(
            options.objectives
        ):
            raise ConfigError(
                "start with 'valid', optionally followed by 'train_seconds'; got "
                f"{options.objectives}",
                key="study.objectives",
            )
        run = resolve_run(experiment, self.entry, self.search_seed)
        if run.train.distributed is not None:
            raise ConfigError(
                f"a study's trials train with DDP ('tgraph tune --nproc N', see "
                f"tgraph.tune.group), not on {run.train.distributed.engine}",
                key="train.distributed",
                fix="remove it from the study file",
            )
        #: processes that train each trial together (a group, :mod:`tgraph.tune.group`)
        self.world_size = world_size
        self.space = SearchSpace(options.space, self.entry, run.model_config, run.train)
        self.definition = self._definition(run)
        self.fingerprint = fingerprint(self.definition)

    def _definition(self, run: RunSpec) -> dict[str, Any]:
        """What every trial's value depends on (see the module docstring)."""
        e = self.experiment
        return {
            "model": {
                "name": self.entry.name,
                "config": run.model_config.model_dump(mode="json"),
                "train": run.train.model_dump(mode="json", exclude={"progress", "tensorboard"}),
            },
            "search_seed": self.search_seed,
            "dataset": e.dataset.model_dump(mode="json"),
            "study": self.options.model_dump(mode="json", include=set(DEFINING_OPTIONS)),
        } | ({"world_size": self.world_size} if self.world_size > 1 else {})

    # ------------------------------------------------------------------ naming
    @property
    def name(self) -> str:
        e = self.experiment
        auto = f"{e.experiment}-{self.entry.run_name}-{e.dataset.name}-{self.fingerprint[:12]}"
        return self.options.name or auto

    @property
    def folder(self) -> Path:
        """``<output_dir>/<experiment>/<dataset>/study-<name>``: one folder per study."""
        e = self.experiment
        return Path(e.output_dir) / e.experiment / e.dataset.name / f"study-{self.name}"

    @property
    def metric(self) -> str:
        return self.definition["model"]["train"]["valid_metric"]

    @property
    def multi_objective(self) -> bool:
        return len(self.options.objectives) > 1

    # ------------------------------------------------------------------ trials
    def config_with(self, params: dict[str, Any]) -> dict[str, Any]:
        """A ready-to-run experiment config (``tgraph run``) with ``params`` applied: what a
        trial with ``params`` runs (recorded with the trial)."""
        config = self.experiment.model_copy(update={"models": [self.space.apply(params)]})
        return config.model_dump(mode="json")

    def train(
        self,
        split_: Split,
        params: dict[str, Any],
        run_dir: RunDir | None,
        on_epoch: Callable[[CurveRecord], None] | None = None,
    ) -> TrainedRun:
        """Train with ``params`` and the search seed; the curve goes to ``run_dir`` (its
        checkpoints are removed afterwards: a trial is never resumed, it is re-run); the ranks
        of a group other than 0 give none."""
        try:
            return train_one(
                split_, self.space.apply(params), self.search_seed, self.experiment,
                run_dir=run_dir, on_epoch=on_epoch,
            )  # fmt: skip
        finally:
            if run_dir is not None:
                for checkpoint in (run_dir.layout.last_checkpoint, run_dir.layout.best_checkpoint):
                    checkpoint.unlink(missing_ok=True)


def load_study(
    files: list[str | Path] | tuple[str | Path, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
    world_size: int = 1,
) -> StudySpec:
    """Layer the YAML ``files`` and ``key=value`` overrides (``study.n_trials=5`` too); a
    config without a ``study`` section is not a study (:class:`ConfigError`). ``world_size``:
    the processes that train each trial together (:mod:`tgraph.tune.group`)."""
    merged = read_layers(files, overrides)
    if "study" not in merged:
        raise ConfigError(
            "the config has no 'study' section, so there is nothing to tune",
            key="study",
            fix="add study: {n_trials: ..., space: {...}} (see tgraph.tune), or use "
            "'tgraph run' to train the experiment as it is",
        )
    section = merged.pop("study")
    if not isinstance(section, dict):
        raise ConfigError("must be a mapping (n_trials, space, pruner, ...)", key="study")
    experiment = validate_config(merged)
    options = validate_model(StudyConfig, section, "study")
    return StudySpec(experiment, options, world_size)
