"""Plugins: models, datasets and protocols defined outside tgraph, named in configs.

Two ways in:

- **Modules named by the experiment**: ``imports: [my_models, lab.datasets]`` at the top of a
  config, or ``--import MODULE`` on the command line. Each module is imported before the config
  is validated, so the models (``@tgraph.models.register``), datasets
  (:func:`tgraph.data.registry.register`) and protocols
  (:func:`tgraph.data.protocols.register_protocol`) it registers can be named in the same
  config. Modules are found on ``sys.path``; the ``tgraph`` command also searches the current
  directory last, as ``python -m`` does. The run's ``config.yaml`` records ``imports``, so
  ``tgraph analyse run`` and ``tgraph serve`` import them again.
- **Entry points of installed packages**, loaded once on the first registry lookup. In the
  package's ``setup.cfg``::

      [options.entry_points]
      tgraph.models =
          mymodel = my_pkg.models:MyModel        # a Recommender subclass, named "mymodel"
      tgraph.datasets =
          mydata = my_pkg.data:SPEC              # a DatasetSpec whose name is "mydata"
      tgraph.protocols =
          myprotocol = my_pkg.split:build        # a builder taking an Interactions -> Split

  An entry point may also name a module (``my_pkg.models``): importing it registers what it
  defines, as with ``imports``.

Every registry refuses a second, different object under a name it already holds
(:class:`~tgraph.errors.ConfigError`), so a plugin never silently replaces a built-in.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from tgraph.errors import ConfigError

#: the entry-point groups tgraph reads, by what they register
GROUPS = ("tgraph.models", "tgraph.datasets", "tgraph.protocols")

# entry points registered so far ((group, name, value)); after a failure the next lookup
# retries the others without registering these twice
_registered: set[tuple[str, str, str]] = set()
_complete = False
_loading = False


def import_module(name: str, key: str) -> None:
    """Import module ``name``, written at ``key`` (``imports[0]``, ``--import``).

    A module that cannot be found or fails while importing raises a
    :class:`~tgraph.errors.ConfigError` naming it, its key and the cause.
    """
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name is None or not (name == error.name or name.startswith(error.name + ".")):
            raise _import_failed(name, key, error) from error  # a module it imports is missing
        raise ConfigError(
            f"module {name!r} not found",
            key=key,
            fix="give its dotted import name (no '.py'), and put the folder holding it on "
            "PYTHONPATH or run tgraph from that folder",
        ) from None
    except Exception as error:  # noqa: BLE001 (any error of the user's module is reported)
        raise _import_failed(name, key, error) from error


def _import_failed(name: str, key: str, error: BaseException) -> ConfigError:
    return ConfigError(
        f"importing module {name!r} failed: {type(error).__name__}: {error}",
        key=key,
        fix="run with --debug for the traceback",
    )


def load_entry_points() -> None:
    """Register every installed entry point of :data:`GROUPS` (once per process).

    Called by the registries before each lookup; a plugin that fails to load raises a
    :class:`~tgraph.errors.ConfigError` naming the entry point and its distribution.
    """
    global _complete, _loading
    if _complete or _loading:  # _loading: a plugin's own import may look a name up
        return
    _loading = True
    try:
        for group in GROUPS:
            for point in entry_points(group=group):
                ident = (group, point.name, point.value)
                if ident not in _registered:
                    _register(group, point)
                    _registered.add(ident)
        _complete = True
    finally:
        _loading = False


def _describe(group: str, point: EntryPoint) -> str:
    dist = point.dist.name if point.dist is not None else "an unknown distribution"
    return f"plugin '{point.name} = {point.value}' (entry point group {group}, from {dist})"


def _register(group: str, point: EntryPoint) -> None:
    """Load ``point`` and register what it names under ``point.name``."""
    try:
        loaded = point.load()
    except Exception as error:  # noqa: BLE001 (any error of the plugin is reported)
        raise ConfigError(
            f"{_describe(group, point)} failed to load: {type(error).__name__}: {error}",
            fix="fix or uninstall that distribution (--debug shows the traceback)",
        ) from error
    if isinstance(loaded, ModuleType):  # importing it has registered its contents
        return
    if group == "tgraph.models":
        from tgraph.models.base import Recommender
        from tgraph.models.registry import register as register_model

        if not (inspect.isclass(loaded) and issubclass(loaded, Recommender)):
            raise _wrong_kind(group, point, "a Recommender subclass", loaded)
        register_model(point.name)(loaded)
    elif group == "tgraph.datasets":
        from tgraph.data.registry import DatasetSpec
        from tgraph.data.registry import register as register_dataset

        if not isinstance(loaded, DatasetSpec):
            raise _wrong_kind(group, point, "a DatasetSpec", loaded)
        if loaded.name != point.name:
            raise ConfigError(
                f"{_describe(group, point)} names a DatasetSpec called {loaded.name!r}",
                fix="give the entry point the dataset's name",
            )
        register_dataset(loaded)
    else:
        from tgraph.data.protocols import register_protocol

        if not callable(loaded):
            raise _wrong_kind(group, point, "a split builder (a function)", loaded)
        register_protocol(point.name, loaded)


def _wrong_kind(group: str, point: EntryPoint, expected: str, loaded: object) -> ConfigError:
    return ConfigError(
        f"{_describe(group, point)} is {type(loaded).__name__} {loaded!r}, not {expected} "
        "or a module",
        fix="point the entry point at what the group registers (see tgraph.plugins)",
    )
