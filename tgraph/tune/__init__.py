"""Hyper-parameter studies with Optuna: one study per (model, dataset).

A study file is an experiment config (see :mod:`tgraph.config`) with one model and a
``study`` section (``tgraph tune`` refuses a config without one)::

    study:
      n_trials: 30                 # total budget over all workers (complete + pruned trials)
      pruner: {type: median, n_startup_trials: 3, n_warmup_steps: 2}
      space:
        model.config.embedding_dim: {type: categorical, choices: [32, 64, 128]}
        train.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}

Space keys are ``model.config.<key>`` or ``train.<key>`` (:mod:`tgraph.tune.space`). Each trial
trains with the first of ``seeds`` and reports ``valid_<valid_metric>`` after every
validation, so that the pruner can stop it; the test part is never ranked during the search.
The model's default configuration is a trial of its own until it has finished once.

The modules, in the order of a study's life:

- :mod:`~tgraph.tune.spec`: the study file resolved; its identity is a fingerprint of its
  definition, so an edited study is a new study unless it is named explicitly.
- :mod:`~tgraph.tune.storage`: SQLite, journal or PostgreSQL storage; trials of dead workers
  are failed and queued again with their parameters.
- :mod:`~tgraph.tune.sampler`: a TPE sampler that continues after a restart, not repeats.
- :mod:`~tgraph.tune.search`: :func:`run_study`, with an exact budget over all workers; a study
  killed at any point and run again ends as an uninterrupted one.
- :mod:`~tgraph.tune.group`: a worker that is a group of processes training each trial
  together with DDP (``tgraph tune --nproc N``); its rank 0 alone talks to the storage.
- :mod:`~tgraph.tune.results`: :func:`finish_study` exports the best trial's own configuration
  as a ready-to-run YAML file, draws the study plots and re-trains the ``top_k`` trials with
  fresh seeds: the final choice is the best mean **validation** value over those seeds, and
  only then is test reported.
"""

from tgraph.tune.results import (
    export_best,
    finish_study,
    ranked_trials,
    retrain_top,
    trial_config,
    trials_table,
)
from tgraph.tune.search import counted_trials, open_study, run_study
from tgraph.tune.spec import StudyConfig, StudySpec, load_study
from tgraph.tune.storage import retried_from

__all__ = [
    "StudyConfig",
    "StudySpec",
    "counted_trials",
    "export_best",
    "finish_study",
    "load_study",
    "open_study",
    "ranked_trials",
    "retrain_top",
    "retried_from",
    "run_study",
    "trial_config",
    "trials_table",
]
