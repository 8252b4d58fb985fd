"""The model registry: configs name models, ``get(name)`` returns the class.

Models outside tgraph register with the same decorator from a module the config ``imports``,
or through the ``tgraph.models`` entry point group (:mod:`tgraph.plugins`).
"""

from __future__ import annotations

from collections.abc import Callable

from tgraph.errors import ConfigError
from tgraph.models.base import Recommender

_MODELS: dict[str, type[Recommender]] = {}


def register(name: str) -> Callable[[type[Recommender]], type[Recommender]]:
    """Class decorator: ``@register("lightgcn")``. Names are case-insensitive and unique: a
    second class under a taken name is a :class:`~tgraph.errors.ConfigError`, unless it is the
    same definition run again (same module and class name: a notebook cell re-run, a reload)."""

    def wrap(cls: type[Recommender]) -> type[Recommender]:
        key = name.lower()
        taken = _MODELS.get(key)
        if taken is not None and _where(taken) != _where(cls):
            raise ConfigError(
                f"model name {name!r} is already registered by {_where(taken)}, so "
                f"{_where(cls)} cannot take it",
                fix="register the new model under another name",
            )
        _MODELS[key] = cls
        return cls

    return wrap


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def get(name: str) -> type[Recommender]:
    """The model class registered as ``name`` (KeyError naming the registered ones)."""
    _load_plugins()
    key = name.lower()
    if key not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    return _MODELS[key]


def list_models() -> list[str]:
    """Names of the registered models (built-in, imported and installed plugins), sorted."""
    _load_plugins()
    return sorted(_MODELS)


def _load_plugins() -> None:
    from tgraph.plugins import load_entry_points  # plugins register through this module

    load_entry_points()
