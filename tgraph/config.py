"""Experiment configuration: YAML files layered with command-line overrides, strictly validated.

Layers, later wins: the schema defaults < each YAML file given (in order) < ``key=value``
overrides such as ``train.lr=0.01`` or ``seeds=[0,1,2]`` (values are parsed as YAML). A file
is a path or the name of a config shipped in ``tgraph/configs/`` (``demo``; see
:func:`shipped_configs`). The modules of ``imports`` are imported first, so the models,
datasets and protocols they register can be named (:mod:`tgraph.plugins`).
Every section is a typed :class:`StrictModel`: unknown keys, values of the wrong type and
out-of-range values raise one :class:`~tgraph.errors.ConfigError` naming the full key path
(``models[2].config.embedding_dim``) before any data is loaded or any file is written.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from tgraph.errors import ConfigError

if TYPE_CHECKING:  # both import this module
    from tgraph.models.base import ModelConfig, Recommender
    from tgraph.train.config import TrainConfig

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A configuration section: unknown keys are errors, and values are not coerced (a
    boolean is only ``true``/``false``, an integer never ``2.7`` or ``"3"``; a float field
    accepts an integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; researchers write learning rates that
    way, so this loader reads every YAML 1.2 float as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> Any:
    """``text`` parsed with tgraph's YAML rules; a syntax error names ``source``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        detail = " ".join(str(error).split())
        raise ConfigError(f"{source}: not valid YAML: {detail}") from None


def load_yaml(path: str | Path) -> Any:
    """The YAML document of ``path`` (see :func:`parse_yaml`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    return parse_yaml(path.read_text(), f"config file {path}")


def key_path(loc: tuple[str | int, ...], prefix: str = "") -> str:
    """``("models", 2, "config", "dim")`` -> ``"models[2].config.dim"`` (after ``prefix``)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def error_location(e: ErrorDetails) -> tuple[str | int, ...]:
    """The key path of one pydantic error, without the union members or validator names
    pydantic appends to some locations."""
    return tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))


def config_error(e: ErrorDetails, prefix: str = "") -> ConfigError:
    """One pydantic error as a :class:`ConfigError` keyed under ``prefix``, e.g.
    ``key 'train.lr': Input should be greater than 0, got -1.0``."""
    if e["type"] == "value_error":  # our own validators' messages name the value
        message = str(e["ctx"]["error"])
    else:
        message = e["msg"]
        if e["type"] != "extra_forbidden" and not isinstance(e.get("input"), dict | list):
            message += f", got {e.get('input')!r}"
    return ConfigError(message, key=key_path(error_location(e), prefix) or None)


def validation_message(error: ValidationError, prefix: str = "") -> str:
    """One line naming every invalid key of a pydantic ``error`` (keys under ``prefix``)."""
    return "; ".join(str(config_error(e, prefix)) for e in error.errors())


def raise_all(problems: list[ConfigError]) -> None:
    """Raise the one problem, or one :class:`ConfigError` listing them all (once each)."""
    messages = list(dict.fromkeys(str(problem) for problem in problems))
    if len(messages) == 1:
        raise problems[0]
    if messages:
        raise ConfigError("; ".join(messages))


def validate_model(cls: type[M], data: Any, key: str = "") -> M:
    """``cls`` validated from ``data``; any problem raises one :class:`ConfigError` naming the
    full key path of every bad field (``key`` is the path of ``data`` itself)."""
    if isinstance(data, cls):
        return data
    try:
        return cls.model_validate(data if data is not None else {})
    except ValidationError as error:
        raise ConfigError(validation_message(error, key)) from None


class KCore(StrictModel):
    """Thresholds of :func:`tgraph.data.preprocess.kcore`: keep events whose user has at least
    ``user_k`` and whose item at least ``item_k`` events. ``scope``: ``train`` computes the
    filter on the training part (validation/test events of removed users and items are
    dropped, with counts); ``all`` filters the whole table before splitting, so future events
    decide what is kept (a protocol choice of some papers)."""

    user_k: NonNegativeInt = 10
    item_k: NonNegativeInt = 10
    scope: Literal["train", "all"] = "train"


class DatasetConfig(StrictModel):
    name: str = "synthetic"
    #: keyword arguments of ``tgraph.data.load`` (for "synthetic": of the generator)
    options: dict[str, Any] = Field(default_factory=dict)
    #: a protocol preset of :data:`tgraph.data.protocols.PROTOCOLS`
    protocol: str = "next_poi_chronological"
    protocol_options: dict[str, Any] = Field(default_factory=dict)
    #: drop exact duplicate events before splitting (reported)
    deduplicate: bool = True
    #: k-core filter (of the training part by default, see :class:`KCore`), or null
    kcore: KCore | None = None
    #: what a query knows of its target's time (:attr:`tgraph.data.split.Split.query_time`):
    #: ``hidden`` (only the history), ``known`` (the target's time: "time-aware"), or null
    #: for the protocol preset's default (next-POI presets: hidden)
    query_time: Literal["hidden", "known"] | None = None


def _folder_name(value: str) -> str:
    """A name used as one folder of a run path: no separators, no ``..``."""
    if not _FOLDER_NAME.fullmatch(value) or value in {".", ".."}:
        raise ValueError(
            f"{value!r} is not a plain folder name (letters, digits, '.', '_', '-'; "
            "no '/' and no '..')"
        )
    return value


_FOLDER_NAME = re.compile(r"[A-Za-z0-9._-]+")
FolderName = Annotated[str, AfterValidator(_folder_name)]


def _distinct_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return seeds


class ModelEntry(StrictModel):
    #: a registered model (:func:`tgraph.models.list_models`)
    name: str
    #: label in result tables and run directories (default: the name); lets one model appear
    #: twice with different hyper-parameters, e.g. an ablation
    label: FolderName | None = None
    #: the model's hyper-parameters as written (checked against its ``Config`` by
    #: :func:`validate_config`; typed by :meth:`ExperimentConfig.hyperparameters`)
    config: dict[str, Any] = Field(default_factory=dict)
    #: trainer options for this model, on top of the experiment's ``train``
    train: dict[str, Any] = Field(default_factory=dict)

    @property
    def run_name(self) -> str:
        return self.label or self.name


class EvalConfig(StrictModel):
    """How the test part is ranked (:mod:`tgraph.eval.streaming`).

    ``static``: every test query is ranked by the trained model as it is (frozen).
    ``streaming``: the same test ranking, then the events the model has not seen are replayed
    in time order: each test query is ranked with the state as of just before its time, and
    the events are folded in with ``model.update`` (plus ``finetune_steps`` gradient steps, if
    set) before later queries. A run reports both, from one training.
    """

    mode: Literal["static", "streaming"] = "static"
    #: gradient steps of ``model.finetune`` after each ingested batch of events (0: none)
    finetune_steps: NonNegativeInt = 0

    @model_validator(mode="after")
    def _finetune_streams(self) -> EvalConfig:
        if self.finetune_steps and self.mode != "streaming":
            raise ValueError("finetune_steps > 0 needs mode 'streaming' (static never updates)")
        return self


class ExperimentConfig(StrictModel):
    #: modules imported before the rest is validated, so that the models, datasets and
    #: protocols they register can be named (:mod:`tgraph.plugins`)
    imports: list[str] = Field(default_factory=list)
    experiment: FolderName = "default"
    output_dir: str = "runs"
    seeds: Annotated[
        list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct_seeds)
    ] = Field(default_factory=lambda: [0])
    device: str = "cpu"
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    models: list[ModelEntry] = Field(default_factory=list)
    train: dict[str, Any] = Field(default_factory=dict)
    #: metrics reported on test (the trainer selects epochs on ``train.valid_metric``)
    metrics: list[str] = Field(
        default_factory=lambda: ["acc@1", "acc@5", "acc@10", "ndcg@5", "ndcg@10", "mrr"]
    )
    #: the test protocol: static only, or static and streaming
    eval: EvalConfig = Field(default_factory=EvalConfig)

    def entry_key(self, entry: ModelEntry) -> str:
        """``"models[i]"`` for the entry ``i`` of :attr:`models` (``"model"`` for an entry
        built elsewhere, e.g. a study's trial)."""
        for index, candidate in enumerate(self.models):
            if candidate is entry:
                return f"models[{index}]"
        return f"models[{self.models.index(entry)}]" if entry in self.models else "model"

    def model_class(self, entry: ModelEntry) -> type[Recommender]:
        """The class registered as ``entry.name``."""
        from tgraph import models  # imports this module

        try:
            return models.get(entry.name)
        except KeyError:
            raise ConfigError(
                f"unknown model {entry.name!r}",
                key=f"{self.entry_key(entry)}.name",
                fix=f"use one of {models.list_models()}",
            ) from None

    def hyperparameters(self, entry: ModelEntry) -> ModelConfig:
        """The typed ``Config`` of ``entry``'s model (errors name ``models[i].config.<key>``)."""
        key = f"{self.entry_key(entry)}.config"
        return validate_model(self.model_class(entry).Config, entry.config, key)

    def train_config(self, entry: ModelEntry) -> TrainConfig:
        """The trainer options of ``entry``: :attr:`train` updated by ``entry.train``. A bad
        option is named where it was written: ``train.lr`` or ``models[i].train.lr``."""
        return trainer_options(self.train, entry.train, f"{self.entry_key(entry)}.train")

    def check(self) -> None:
        """Everything that needs the registries: dataset, protocol, metric and model names,
        every model's hyper-parameters and trainer options, unique labels. Raises one
        :class:`ConfigError` naming every bad key (see :func:`validate_config`)."""
        from tgraph.data.protocols import PROTOCOLS  # the data layer imports this module
        from tgraph.data.registry import get_spec, list_datasets
        from tgraph.eval.metrics import parse
        from tgraph.plugins import load_entry_points

        load_entry_points()  # installed protocols too (the other registries load their own)
        problems = _trainer_options(self.train, {}, "train")[1]

        def collect(check: Any, *args: Any) -> Any:
            try:
                return check(*args)
            except ConfigError as error:
                problems.append(error)
                return None

        if self.dataset.name not in list_datasets():
            problems.append(
                ConfigError(
                    f"unknown dataset {self.dataset.name!r}",
                    key="dataset.name",
                    fix=f"use one of {list_datasets()}",
                )
            )
        elif (check_options := get_spec(self.dataset.name).check_options) is not None:
            collect(check_options, dict(self.dataset.options))
        if self.dataset.protocol not in PROTOCOLS:
            problems.append(
                ConfigError(
                    f"unknown protocol {self.dataset.protocol!r}",
                    key="dataset.protocol",
                    fix=f"use one of {sorted(PROTOCOLS)}",
                )
            )
        for index, name in enumerate(self.metrics):
            try:
                parse(name)
            except KeyError as error:
                problems.append(ConfigError(error.args[0], key=f"metrics[{index}]"))
        labels = [entry.run_name for entry in self.models]
        if len(set(labels)) != len(labels):
            problems.append(
                ConfigError(
                    f"labels must be unique, got {labels}",
                    key="models",
                    fix="give each entry of one model a distinct label",
                )
            )
        for entry in self.models:
            model_class = collect(self.model_class, entry)
            if model_class is not None:
                collect(self.hyperparameters, entry)
            streams = self.eval.mode == "streaming"
            if model_class is not None and streams and not model_class.supports_update:
                problems.append(
                    ConfigError(
                        f"model {entry.name!r} cannot fold new events in (no update), "
                        "so it cannot be evaluated in streaming mode",
                        key=f"{self.entry_key(entry)}.name",
                        fix="leave it out of a streaming experiment, or use eval.mode static",
                    )
                )
            key = f"{self.entry_key(entry)}.train"
            problems += _trainer_options(self.train, entry.train, key)[1]
        raise_all(problems)  # a problem of ``train`` is listed once, not once per entry


#: names that are settings of the run, not of the trainer, and where they belong
_RUN_SETTINGS = {
    "seed": "the top-level list 'seeds'",
    "device": "the top-level 'device'",
    "checkpoint_dir": "the run directory (checkpoints are written there)",
    "log_path": "the run directory (the curve is written there)",
}


def trainer_options(base: dict[str, Any], update: dict[str, Any], update_key: str) -> TrainConfig:
    """``base`` (the ``train`` section) updated by ``update`` (written at ``update_key``,
    e.g. ``models[2].train``), validated; errors name the key where the value was written."""
    options, problems = _trainer_options(base, update, update_key)
    raise_all(problems)
    assert options is not None
    return options


def _trainer_options(
    base: dict[str, Any], update: dict[str, Any], update_key: str
) -> tuple[TrainConfig | None, list[ConfigError]]:
    """:func:`trainer_options` and every problem, one :class:`ConfigError` per key."""
    from tgraph.train.config import TrainConfig  # imports this module

    def where(name: str | int) -> str:
        return update_key if name in update else "train"

    misplaced = [
        ConfigError(
            "is a setting of the run, not a trainer option",
            key=f"{where(name)}.{name}",
            fix=f"set it in {_RUN_SETTINGS[name]}",
        )
        for name in {**base, **update}
        if name in _RUN_SETTINGS
    ]
    if misplaced:
        return None, misplaced
    try:
        return TrainConfig.model_validate({**base, **update}), []
    except ValidationError as error:
        problems = []
        for e in error.errors():
            loc = error_location(e)
            problems.append(config_error(e, where(loc[0]) if loc else "train"))
        return None, problems


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"train.lr=0.01"`` -> ``{"train": {"lr": 0.01}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.lr=0.01)")
    key, raw = text.split("=", 1)
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    value: Any = parse_yaml(raw, f"override {text!r}") if raw else None
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


#: the configs shipped in the package (``tgraph configs`` lists them)
CONFIGS = Path(__file__).parent / "configs"


def shipped_configs() -> dict[str, Path]:
    """Name -> file of every shipped config: ``demo``, ``studies/bprmf_movielens100k``."""
    return {
        path.relative_to(CONFIGS).with_suffix("").as_posix(): path
        for path in sorted(CONFIGS.rglob("*.yaml"))
    }


def config_summary(path: Path) -> str:
    """The one-line description of a config: its first line, a ``# comment``."""
    first = path.read_text().split("\n", 1)[0]
    return first.removeprefix("#").strip() if first.startswith("#") else ""


def config_path(name: str | Path) -> Path:
    """The file of config ``name``: an existing file as given, else the shipped config of that
    name (``demo``, ``studies/bprmf_movielens100k``; ``.yaml`` optional)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = shipped_configs()
    key = path.as_posix().removesuffix(".yaml")
    if key in shipped:
        return shipped[key]
    raise ConfigError(
        f"config file {path} not found, and no shipped config is called {key!r}",
        fix=f"give the path of a YAML file, or one of {sorted(shipped)} ('tgraph configs')",
    )


def read_layers(
    files: Sequence[str | Path] = (),
    overrides: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The mapping of ``files`` (paths or shipped config names: :func:`config_path`) then
    ``overrides`` merged in order, not yet validated."""
    merged: dict[str, Any] = {}
    for file in files:
        loaded = load_yaml(config_path(file)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {file} must hold a mapping at the top level")
        merged = _merge(merged, loaded)
    for text in overrides:
        merged = _merge(merged, parse_override(text))
    return merged


def validate_config(merged: dict[str, Any]) -> ExperimentConfig:
    """Validate a merged mapping (see :func:`read_layers`) as an :class:`ExperimentConfig`,
    then every model entry, its trainer options, and the dataset, protocol and metric names
    (:meth:`ExperimentConfig.check`): the whole experiment, before any data is loaded."""
    import_plugins(merged)
    config = validate_model(ExperimentConfig, merged)
    config.check()
    return config


def import_plugins(merged: dict[str, Any]) -> None:
    """Import the modules of ``merged["imports"]`` (before validation: the names they register
    are used by the rest of the config). A value that is not a list of names is left to the
    validation to report."""
    from tgraph.plugins import import_module

    modules = merged.get("imports")
    if isinstance(modules, list):
        for index, name in enumerate(modules):
            if isinstance(name, str):
                import_module(name, f"imports[{index}]")


def load_config(
    files: list[str | Path] | tuple[str | Path, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
) -> ExperimentConfig:
    """Layer ``files`` then ``overrides`` over the defaults and validate the result."""
    return validate_config(read_layers(files, overrides))
