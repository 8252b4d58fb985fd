"""A TPE sampler that continues a study after a restart instead of repeating it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class ContinuingSampler(optuna.samplers.BaseSampler):
    """TPE, re-seeded before every trial from (study seed, worker, finished trials).

    A ``TPESampler(seed=s)`` draws the same random numbers every time a process starts, so a
    study resumed after a crash repeats the parameters of its first trials. This sampler builds
    a fresh ``TPESampler`` before each trial, seeded from the study seed, the worker index and
    the number of complete + pruned trials: the n-th trial of a worker draws the same numbers
    whether or not the process was restarted in between, and TPE's model depends only on the
    finished trials, which the storage holds. A resumed single-worker study therefore samples
    exactly the trials an uninterrupted one would (a trial failed by a crash is retried with
    its parameters and counts once it finishes), and two workers never share a stream.
    """

    def __init__(self, seed: int, worker: int, n_startup_trials: int) -> None:
        self.seed = seed
        self.worker = worker
        self.n_startup_trials = n_startup_trials
        self._tpe = self._seeded(0)

    def _seeded(self, finished: int) -> optuna.samplers.TPESampler:
        state = np.random.SeedSequence([self.seed, self.worker, finished]).generate_state(1)
        return optuna.samplers.TPESampler(
            seed=int(state[0]), n_startup_trials=self.n_startup_trials
        )

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        finished = len(study.get_trials(deepcopy=False, states=_FINISHED))
        self._tpe = self._seeded(finished)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._tpe.after_trial(study, trial, state, values)
