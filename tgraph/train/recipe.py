"""One training recipe: "train one model with one seed", written once.

:func:`resolve_run` merges an experiment's options for one (model entry, seed): the trainer
options (``train`` then the entry's ``train``), the model configuration and the run's place
(:func:`~tgraph.runs.layout.run_path`). :func:`build_trainer` seeds, builds the model and its
trainer (with the recipe that rebuilds the model for the refit); :func:`train_one` fits it.
Experiments, studies, embedding drift and the benchmarks all train through here, so that a run
means the same thing everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tgraph import models
from tgraph.config import ExperimentConfig, ModelEntry
from tgraph.data.split import Split
from tgraph.models.base import ModelConfig, Recommender
from tgraph.runs import CurveRecord, Fingerprint, RunDir, run_path
from tgraph.train import distributed
from tgraph.train.config import TrainConfig
from tgraph.train.seed import seed_everything
from tgraph.train.trainer import Trainer


@dataclass(frozen=True)
class RunSpec:
    """One (model entry, seed) run of an experiment, its options resolved."""

    experiment: ExperimentConfig
    entry: ModelEntry
    seed: int
    train: TrainConfig
    #: the model's typed hyper-parameters (its ``Config``), defaults filled in
    model_config: ModelConfig
    #: the run directory (checked: it cannot leave ``output_dir``)
    path: Path

    @property
    def label(self) -> str:
        return self.entry.run_name

    @property
    def resolved(self) -> dict[str, Any]:
        """The run's resolved configuration, as recorded in its ``config.yaml``."""
        return {
            **self.experiment.model_dump(mode="json", exclude={"models", "seeds", "train"}),
            "model": {
                "name": self.entry.name,
                "label": self.label,
                "config": self.model_config.model_dump(mode="json"),
            },
            "train": self.train.model_dump(mode="json"),
            "seed": self.seed,
        }

    def fingerprint(self, split: Split) -> Fingerprint:
        """What the run is trained with and on (see :mod:`tgraph.runs.fingerprint`)."""
        config = {
            "model": {
                "name": self.entry.name,
                "config": self.model_config.model_dump(mode="json"),
            },
            # without train.sampling, the digests of before
            "train": self.train.model_dump(
                mode="json", exclude={"sampling"} if self.train.sampling is None else None
            ),
            "seed": self.seed,
            "device": self.experiment.device,
            "dataset": self.experiment.dataset.model_dump(mode="json"),
            "metrics": [m.lower() for m in self.experiment.metrics],
        }
        if self.experiment.eval.mode != "static":  # static digests stay those of before
            config["eval"] = self.experiment.eval.model_dump(mode="json")
        world_size = distributed.context().world_size
        if world_size > 1:  # data-parallel: other negatives; one-process digests unchanged
            config["world_size"] = world_size
        return Fingerprint.of(config, split.summary())


def resolve_run(experiment: ExperimentConfig, entry: ModelEntry, seed: int) -> RunSpec:
    """The resolved options of ``entry`` with ``seed``; a bad trainer option or model
    hyper-parameter raises :class:`~tgraph.errors.ConfigError` naming its key."""
    train = experiment.train_config(entry)
    model_config = experiment.hyperparameters(entry)
    e = experiment
    path = run_path(e.output_dir, e.experiment, e.dataset.name, entry.run_name, seed)
    return RunSpec(experiment, entry, seed, train, model_config, path)


def build_trainer(
    split: Split,
    entry: ModelEntry,
    seed: int,
    experiment: ExperimentConfig,
    *,
    run_dir: RunDir | None = None,
) -> Trainer:
    """The seeded model of ``entry`` and its trainer (not fitted yet)."""
    spec = resolve_run(experiment, entry, seed)

    def build() -> Recommender:
        seed_everything(seed)  # every build starts from the same initialisation
        return models.get(entry.name)(split, spec.model_config)

    return Trainer(
        build(),
        split,
        spec.train,
        seed=seed,
        device=experiment.device,
        run_dir=run_dir,
        rebuild=build,
    )


@dataclass
class TrainedRun:
    """A fitted run: its model (selected or refitted weights), trainer and wall-clock time."""

    model: Recommender
    trainer: Trainer
    #: seconds of building the trainer and fitting (this session)
    train_seconds: float


def train_one(
    split: Split,
    entry: ModelEntry,
    seed: int,
    experiment: ExperimentConfig,
    *,
    run_dir: RunDir | None = None,
    resume: bool = False,
    on_epoch: Callable[[CurveRecord], None] | None = None,
) -> TrainedRun:
    """Train ``entry`` with ``seed`` on ``split`` (validation selects, test is not looked at);
    with ``run_dir``, write its curve and checkpoints there, and with ``resume`` continue from
    its last checkpoint. ``on_epoch`` gets every validated epoch's record."""
    start = time.perf_counter()
    trainer = build_trainer(split, entry, seed, experiment, run_dir=run_dir)
    trainer.fit(resume=resume, on_epoch=on_epoch)
    return TrainedRun(trainer.model, trainer, time.perf_counter() - start)
