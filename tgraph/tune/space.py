"""The search space of a study: which keys may be searched, their ranges, and trial 0.

A space key is ``model.config.<key>`` (a hyper-parameter of the study's model) or
``train.<key>`` (a trainer option, :class:`~tgraph.train.config.TrainConfig`). Every key and
range is checked when the study file is loaded, and both ends of a range and each choice are
validated as values of that option (the model's ``Config`` or ``TrainConfig``), so that a typo
or an impossible value fails before the first trial instead of in the middle of the study.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import optuna

from tgraph.config import ModelEntry, StrictModel, validate_model
from tgraph.errors import ConfigError
from tgraph.models.base import ModelConfig
from tgraph.train.config import TrainConfig

log = logging.getLogger(__name__)

#: trainer options that change no trial's value, so searching them would waste trials
_UNSEARCHABLE_TRAIN = frozenset({"progress", "tensorboard"})


class ParamSpec(StrictModel):
    """One searched parameter: ``float`` / ``int`` in ``[low, high]`` or ``categorical``."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


class SearchSpace:
    """The validated ``study.space`` of one model entry.

    ``model_config`` and ``train`` are the entry's resolved hyper-parameters and trainer
    options (:func:`tgraph.train.recipe.resolve_run`); :attr:`defaults` maps every space key to
    its current value (what trial 0 runs with).
    """

    def __init__(
        self,
        params: dict[str, ParamSpec],
        entry: ModelEntry,
        model_config: ModelConfig,
        train: TrainConfig,
    ) -> None:
        self.params = params
        self.entry = entry
        #: the typed section of each kind of space key (``model.config.*``, ``train.*``)
        self._sections: dict[str, StrictModel] = {"model": model_config, "train": train}
        model, options = model_config.model_dump(), train.model_dump()
        self.defaults = {
            path: self._check(path, spec, model, options) for path, spec in params.items()
        }

    def _check(
        self, path: str, spec: ParamSpec, model: dict[str, Any], train: dict[str, Any]
    ) -> Any:
        """Validate one space entry; return the current (default) value of its key."""
        key = f"study.space.{path}"
        parts = path.split(".")
        if parts[:2] == ["model", "config"] and len(parts) == 3:
            if parts[2] not in model:
                raise ConfigError(
                    f"model {self.entry.name!r} has no config key {parts[2]!r}; "
                    f"known: {sorted(model)}",
                    key=key,
                )
            default = model[parts[2]]
        elif parts[0] == "train" and len(parts) == 2:
            if parts[1] not in train or parts[1] in _UNSEARCHABLE_TRAIN:
                raise ConfigError(
                    f"{parts[1]!r} is not a searchable trainer option; known: "
                    f"{sorted(set(train) - _UNSEARCHABLE_TRAIN)}",
                    key=key,
                )
            default = train[parts[1]]
        else:
            raise ConfigError(
                f"a space key is 'model.config.<key>' or 'train.<key>', got {path!r}", key=key
            )
        if spec.type == "categorical":
            if not spec.choices:
                raise ConfigError("a categorical parameter needs 'choices'", key=key)
            bad = [c for c in spec.choices if not isinstance(c, bool | int | float | str)]
            if bad:
                raise ConfigError(f"choices must be numbers or strings, got {bad}", key=key)
            self._check_values(path, spec.choices)
            return default
        if spec.low is None or spec.high is None or not spec.low < spec.high:
            raise ConfigError(f"{spec.type} needs 'low' < 'high'", key=key)
        if spec.log and (spec.low <= 0 or spec.step is not None):
            raise ConfigError("'log: true' needs low > 0 and no 'step'", key=key)
        if isinstance(default, bool) or not isinstance(default, int | float):
            raise ConfigError(
                f"the option's value {default!r} is not a number; search it with type: categorical",
                key=key,
            )
        if spec.type == "float" and isinstance(default, int):
            raise ConfigError(
                f"the option is an integer ({default}); use type: int or categorical", key=key
            )
        if spec.type == "int" and not (
            float(spec.low).is_integer() and float(spec.high).is_integer()
        ):
            raise ConfigError("type int needs integer 'low' and 'high'", key=key)
        ends = [spec.low, spec.high] if spec.type == "float" else [int(spec.low), int(spec.high)]
        self._check_values(path, ends)
        return default

    def _check_values(self, path: str, values: list[Any]) -> None:
        """Each of ``values`` must be a valid value of the option ``path`` (the typed section
        validated with the value in place)."""
        section = self._sections[path.split(".")[0]]
        name = path.split(".")[-1]
        for value in values:
            try:
                validate_model(type(section), {**section.model_dump(), name: value})
            except ConfigError as error:
                raise ConfigError(
                    f"{value!r} is not a valid value ({error})", key=f"study.space.{path}"
                ) from None

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Sample every parameter of the space for ``trial``."""
        params: dict[str, Any] = {}
        for path, spec in self.params.items():
            if spec.type == "categorical":
                assert spec.choices is not None  # checked by _check (and low/high below)
                params[path] = trial.suggest_categorical(path, spec.choices)
                continue
            assert spec.low is not None and spec.high is not None
            if spec.type == "int":
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
            spec = self.params[path]
            if spec.type == "categorical":
                ok = value in (spec.choices or [])
            else:
                assert spec.low is not None and spec.high is not None  # checked by _check
                ok = spec.low <= value <= spec.high
            if ok:
                inside[path] = value
            else:
                log.warning("default %s=%r lies outside the space; trial 0 samples it", path, value)
        return inside

    def apply(self, params: dict[str, Any], label: str | None = None) -> ModelEntry:
        """The model entry with ``params`` applied (``train.*`` to its own trainer options)."""
        entry = self.entry.model_copy(deep=True)
        for path, value in params.items():
            parts = path.split(".")
            target = entry.config if parts[0] == "model" else entry.train
            target[parts[-1]] = value
        if label is not None:
            entry.label = label
        return entry
