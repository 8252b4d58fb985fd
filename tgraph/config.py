"""Experiment configuration: YAML files layered with command-line overrides, strictly validated.

Layers, later wins: the schema defaults < each YAML file given (in order) < ``key=value``
overrides such as ``train.lr=0.01`` or ``seeds=[0,1,2]`` (values are parsed as YAML).
Unknown keys and values of the wrong type raise :class:`ConfigError` naming the key.
Model hyper-parameters (``models[i].config``) and trainer options (``train``) are checked by
the model class and :class:`tgraph.train.trainer.TrainConfig` when the run starts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """A configuration problem; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetConfig(_Strict):
    name: str = "synthetic"
    #: keyword arguments of ``tgraph.data.load`` (for "synthetic": of the generator)
    options: dict[str, Any] = Field(default_factory=dict)
    #: a protocol preset of ``tgraph.experiment.PROTOCOLS``
    protocol: str = "next_poi_chronological"
    protocol_options: dict[str, Any] = Field(default_factory=dict)
    #: drop exact duplicate events before splitting (reported); k-core thresholds or null
    deduplicate: bool = True
    kcore: dict[str, int] | None = None


class ModelEntry(_Strict):
    name: str
    #: label in result tables and run directories (default: the name); lets one model appear
    #: twice with different hyper-parameters, e.g. an ablation
    label: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    #: trainer options for this model, on top of the experiment's ``train``
    train: dict[str, Any] = Field(default_factory=dict)

    @property
    def run_name(self) -> str:
        return self.label or self.name


class ExperimentConfig(_Strict):
    experiment: str = "default"
    output_dir: str = "runs"
    seeds: list[int] = Field(default_factory=lambda: [0])
    device: str = "cpu"
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    models: list[ModelEntry] = Field(default_factory=list)
    train: dict[str, Any] = Field(default_factory=dict)
    #: metrics reported on test (the trainer selects epochs on ``train.valid_metric``)
    metrics: list[str] = Field(
        default_factory=lambda: ["acc@1", "acc@5", "acc@10", "ndcg@5", "ndcg@10", "mrr"]
    )


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
    value: Any = yaml.safe_load(raw) if raw else None
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def read_layers(
    files: list[str | Path] | tuple[str | Path, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """The mapping of ``files`` then ``overrides`` merged in order, not yet validated."""
    merged: dict[str, Any] = {}
    for file in files:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        merged = _merge(merged, loaded)
    for text in overrides:
        merged = _merge(merged, parse_override(text))
    return merged


def validation_message(error: ValidationError, prefix: str = "") -> str:
    """One line naming every invalid key of a pydantic ``error`` (keys under ``prefix``)."""
    return "; ".join(
        f"key '{prefix}{'.'.join(str(p) for p in e['loc'])}': {e['msg']}" for e in error.errors()
    )


def validate_config(merged: dict[str, Any]) -> ExperimentConfig:
    """Validate a merged mapping (see :func:`read_layers`) as an :class:`ExperimentConfig`."""
    try:
        return ExperimentConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(f"invalid configuration: {validation_message(error)}") from None


def load_config(
    files: list[str | Path] | tuple[str | Path, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
) -> ExperimentConfig:
    """Layer ``files`` then ``overrides`` over the defaults and validate the result."""
    return validate_config(read_layers(files, overrides))
