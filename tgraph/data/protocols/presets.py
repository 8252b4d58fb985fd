"""The protocol presets ``dataset.protocol`` names, and :func:`register_protocol` for new ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from tgraph.data.protocols.builders import chronological_split, leave_last_out
from tgraph.data.protocols.lightgcn import lightgcn
from tgraph.data.protocols.mat import gowalla_mat
from tgraph.data.protocols.next_poi import getnext_nyc, next_poi_chronological
from tgraph.data.protocols.sthgcn import sthgcn_nyc
from tgraph.data.split import Split
from tgraph.errors import ConfigError

#: what a protocol's builder takes first: the loaded table, or the dataset's folder
KINDS = ("interactions", "root")


class Protocol(NamedTuple):
    """A preset: ``kind`` "interactions" builders take the loaded (deduplicated, for
    ``kcore.scope: all`` k-cored) table, "root" builders read their own fixed files from the
    dataset's folder; ``build(first, **dataset.protocol_options) -> Split``."""

    kind: str
    build: Callable[..., Split]


#: protocol presets (``dataset.protocol``): name -> :class:`Protocol` (``kind, build = ...``)
PROTOCOLS: dict[str, Protocol] = {
    "next_poi_chronological": Protocol("interactions", next_poi_chronological),
    "chronological": Protocol("interactions", chronological_split),
    "leave_last_out": Protocol("interactions", leave_last_out),
    "getnext_nyc": Protocol("root", getnext_nyc),
    "sthgcn_nyc": Protocol("root", sthgcn_nyc),
    "gowalla_mat": Protocol("root", gowalla_mat),
    "lightgcn": Protocol("root", lightgcn),
}


def register_protocol(
    name: str, build: Callable[..., Split], *, kind: str = "interactions"
) -> None:
    """Make ``build`` the protocol ``name`` of configs (``dataset.protocol: name``).

    A name already taken by another builder raises :class:`ConfigError` (no silent
    replacement); the same definition run again (same module, name and kind: a re-imported
    module, a notebook cell re-run) replaces itself."""
    if kind not in KINDS:
        raise ConfigError(
            f"protocol {name!r}: unknown kind {kind!r}", fix=f"use one of {list(KINDS)}"
        )
    if not callable(build):
        raise ConfigError(f"protocol {name!r}: the builder {build!r} is not callable")
    taken = PROTOCOLS.get(name)
    if taken is not None and (_where(taken.build), taken.kind) != (_where(build), kind):
        raise ConfigError(
            f"protocol {name!r} is already registered by {_where(taken.build)} "
            f"(kind {taken.kind!r}), so {_where(build)} (kind {kind!r}) cannot take it",
            key="dataset.protocol",
            fix="register the new protocol under another name",
        )
    PROTOCOLS[name] = Protocol(kind, build)


def get_protocol(name: str) -> Protocol:
    """The protocol registered as ``name`` (:class:`ConfigError` naming the known ones)."""
    from tgraph.plugins import load_entry_points  # installed protocols register on first use

    load_entry_points()
    if name not in PROTOCOLS:
        raise ConfigError(
            f"unknown protocol {name!r}",
            key="dataset.protocol",
            fix=f"use one of {sorted(PROTOCOLS)}, or register yours (register_protocol)",
        )
    return PROTOCOLS[name]


def _where(build: Callable[..., Split]) -> str:
    return f"{build.__module__}.{getattr(build, '__qualname__', repr(build))}"
