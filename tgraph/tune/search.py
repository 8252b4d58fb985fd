"""Running a study: trials until the budget is spent, resumable at any point.

The budget is the first ``n_trials`` trials (by number) that are not failed: a worker that
receives a trial beyond them does not run it (it is marked failed, ``surplus``) and stops, so
that several workers finish with exactly ``n_trials`` complete + pruned trials. Before its
first trial and after each one a worker fails the trials of dead workers and queues them again
(:mod:`tgraph.tune.storage`); worker 0 queues the default configuration until it has finished
once. With the sampler of :mod:`tgraph.tune.sampler`, a single-worker study killed at any point
and started again finishes with the complete trials (parameters and values, in order) of an
uninterrupted run (with the median pruner or none: Hyperband assigns brackets by trial number,
and a retried trial has a new number); a worker stopped while another's trial was running leaves
a retry of that trial, should it die, to the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import optuna
from optuna.trial import FrozenTrial, TrialState

from tgraph.data.protocols import prepare_split
from tgraph.data.split import Split
from tgraph.errors import ConfigError, StudyError
from tgraph.runs import CurveRecord, RunDir
from tgraph.train.distributed import Context
from tgraph.tune import group as groups
from tgraph.tune.sampler import ContinuingSampler
from tgraph.tune.spec import StudySpec, differing_keys
from tgraph.tune.storage import (
    DEFAULT,
    FINGERPRINT,
    OWNER,
    RetryDeadTrial,
    open_storage,
    owner_record,
    reap_dead_trials,
)

log = logging.getLogger(__name__)

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
#: trials that hold a place in the budget (waiting ones still need a worker)
_PLACED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
_TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
#: user attribute: the ready-to-run experiment config a trial ran (``StudySpec.config_with``)
CONFIG = "config"
SURPLUS = "surplus"


class _Surplus(Exception):
    """A trial beyond the budget (another worker took the last place first)."""


def counted_trials(study: optuna.Study) -> int:
    """Trials that count towards the budget: complete or pruned."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def _placed(study: optuna.Study) -> list[FrozenTrial]:
    return study.get_trials(deepcopy=False, states=_PLACED)


def _taken(study: optuna.Study) -> int:
    """Places in the budget that no worker needs to take any more."""
    return len(study.get_trials(deepcopy=False, states=_TAKEN))


def open_study(spec: StudySpec, storage: str | None = None, worker: int = 0) -> optuna.Study:
    """Create or load the study ``spec`` names (``storage`` overrides the config).

    A new study records its definition; an existing one named explicitly (``study.name``)
    with another definition is joined with a warning naming the differing keys (its trials
    keep their own recorded configurations), or refused if its objectives differ.
    """
    if worker < 0:
        raise ConfigError(f"must be >= 0, got {worker}", key="--worker")
    opts = spec.options
    url = storage or opts.storage
    directions: list[Literal["maximize", "minimize"]] = [
        "maximize" if o == "valid" else "minimize" for o in opts.objectives
    ]
    study = optuna.create_study(
        storage=open_storage(
            url, spec.folder, spec.fingerprint, opts.heartbeat_interval, opts.grace_period,
            opts.max_retry,
        ),
        sampler=ContinuingSampler(opts.seed, worker, opts.n_startup_trials),
        pruner=_pruner(spec),
        study_name=spec.name,
        directions=directions,
        load_if_exists=True,
    )  # fmt: skip
    found = [d.name.lower() for d in study.directions]
    if found != directions:
        raise StudyError(
            f"study {spec.name} optimises {found}, but 'study.objectives' asks for "
            f"{directions}: name another study, or restore the objectives"
        )
    recorded = study.user_attrs.get("definition")
    if recorded is None and not study.get_trials(deepcopy=False):
        study.set_user_attr("definition", spec.definition)
        study.set_user_attr(FINGERPRINT, spec.fingerprint)
    elif recorded != spec.definition:
        keys = "none recorded" if recorded is None else ", ".join(
            differing_keys(recorded, spec.definition)
        )  # fmt: skip
        log.warning(
            "study %s was defined differently (%s): joining it because it was named; its trials "
            "keep the configuration each ran with",
            spec.name,
            keys,
        )
    return study


def _pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    p = spec.options.pruner
    if p.type == "none" or spec.multi_objective:
        return optuna.pruners.NopPruner()
    if p.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    return optuna.pruners.HyperbandPruner(
        min_resource=p.min_resource, max_resource=p.max_resource,
        reduction_factor=p.reduction_factor,
    )  # fmt: skip


def _enqueue_default(study: optuna.Study, spec: StudySpec) -> None:
    """Queue the default configuration unless it has finished, runs or waits already."""
    placed = _placed(study)
    if any(t.user_attrs.get(DEFAULT) == spec.fingerprint for t in placed):
        return
    if len(placed) < spec.options.n_trials:
        study.enqueue_trial(spec.space.default_params(), user_attrs={DEFAULT: spec.fingerprint})


def run_study(
    spec: StudySpec,
    root: str | Path | None = None,
    storage: str | None = None,
    worker: int = 0,
    group: Context | None = None,
) -> optuna.Study:
    """Run trials until ``study.n_trials`` complete + pruned trials exist (over all workers).

    Safe to run in several processes on the same storage; running it again resumes (see the
    module docstring). ``group``: this process is rank 0 of a group that trains every trial
    together (:mod:`tgraph.tune.group`; the other ranks run :func:`~tgraph.tune.group.follow`).
    """
    study = open_study(spec, storage, worker)
    retry = RetryDeadTrial(spec.fingerprint, spec.options.max_retry)
    reap_dead_trials(study, retry)
    if worker == 0 and spec.options.enqueue_default:
        _enqueue_default(study, spec)
    budget = spec.options.n_trials
    done = counted_trials(study)
    if _taken(study) >= budget:
        log.info("study %s: %d of %d trials done, nothing to run", study.study_name, done, budget)
        return study
    split_ = prepare_split(spec.experiment.dataset, root)
    log.info("study %s: %d of %d trials done; running", study.study_name, done, budget)

    def after_trial(study: optuna.Study, _: FrozenTrial) -> None:
        reap_dead_trials(study, retry)
        if _taken(study) >= budget:
            study.stop()

    study.optimize(
        objective(spec, split_, group or Context()),
        timeout=spec.options.timeout,
        callbacks=[after_trial],
        catch=(_Surplus,),
        gc_after_trial=True,
        show_progress_bar=False,
    )
    return study


def objective(
    spec: StudySpec, split_: Split, group: Context | None = None
) -> Callable[[optuna.Trial], float | tuple]:
    """The Optuna objective: train one configuration, return validation (and seconds); with an
    active ``group``, on all its ranks (see :mod:`tgraph.tune.group`)."""
    group = group or Context()
    budget = spec.options.n_trials

    def run(trial: optuna.Trial) -> float | tuple[float, float]:
        trial.set_user_attr(OWNER, owner_record())  # first: a dead worker's trial is retried
        ahead = [t for t in _placed(trial.study) if t.number < trial.number]
        if len(ahead) >= budget:
            trial.set_user_attr(SURPLUS, True)  # failed, and this worker stops (after_trial)
            raise _Surplus(f"trial {trial.number} is beyond the budget of {budget} trials")
        params = spec.space.suggest(trial)
        trial.set_user_attr(FINGERPRINT, spec.fingerprint)
        trial.set_user_attr(CONFIG, spec.config_with(params))
        run_dir = RunDir(spec.folder / "trials" / f"{trial.number:04d}")

        def report(record: CurveRecord) -> None:
            trial.report(record.valid[spec.metric], step=record.epoch)
            if groups.prune_decision(trial.should_prune(), group):
                raise optuna.TrialPruned(f"pruned at epoch {record.epoch}")

        # Optuna cannot prune multi-objective trials: nothing to report
        on_epoch = None if spec.multi_objective else report
        if not group.active:
            trained = spec.train(split_, params, run_dir, on_epoch)
        else:
            trial.set_user_attr("world_size", group.world_size)
            with groups.trial_of_group(trial.number):
                groups.send(groups.Order("trial", trial.number, params), group)
                trained = spec.train(split_, params, run_dir, on_epoch)
                trial.set_user_attr("ranks", groups.replicas(params, trained.model, group))
        value = float(trained.trainer.best_value)
        trial.set_user_attr("best_epoch", trained.trainer.best_epoch)
        trial.set_user_attr("train_seconds", trained.train_seconds)
        return (value, trained.train_seconds) if spec.multi_objective else value

    return run
