"""The model registry: configs name models, ``get(name)`` returns the class."""

from __future__ import annotations

from collections.abc import Callable

from tgraph.models.base import Recommender

_MODELS: dict[str, type[Recommender]] = {}


def register(name: str) -> Callable[[type[Recommender]], type[Recommender]]:
    """Class decorator: ``@register("lightgcn")``. Names are case-insensitive and unique."""

    def wrap(cls: type[Recommender]) -> type[Recommender]:
        key = name.lower()
        if key in _MODELS and _MODELS[key] is not cls:
            raise KeyError(f"model name {name!r} is already registered by {_MODELS[key]}")
        _MODELS[key] = cls
        return cls

    return wrap


def get(name: str) -> type[Recommender]:
    """The model class registered as ``name``."""
    key = name.lower()
    if key not in _MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {list_models()}")
    return _MODELS[key]


def list_models() -> list[str]:
    return sorted(_MODELS)
