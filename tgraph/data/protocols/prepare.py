"""From a ``dataset`` config section to a :class:`~tgraph.data.split.Split`: load, clean, split.

The k-core filter (``dataset.kcore``) has a named scope: ``train`` (the default) computes it
on the training part only, so future events never decide which users and items are kept;
``all`` filters the whole table before splitting (a choice some papers make; future events
then take part). Either way ``split.report["kcore"]`` holds the scope and every count.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tgraph.config import DatasetConfig
from tgraph.data import preprocess, registry
from tgraph.data.interactions import Interactions
from tgraph.data.paths import data_root
from tgraph.data.protocols.presets import get_protocol
from tgraph.data.split import Split
from tgraph.errors import ConfigError


def prepare_split(config: DatasetConfig, root: str | Path | None = None) -> Split:
    """Load, clean (deduplicate, k-core; counts in ``split.report``) and split the configured
    dataset with its protocol (:func:`~tgraph.data.protocols.presets.get_protocol`);
    ``dataset.query_time``, when set, replaces the preset's
    :attr:`~tgraph.data.split.Split.query_time`."""
    protocol = get_protocol(config.protocol)
    kcore = config.kcore
    if protocol.kind == "root":
        if kcore is not None and kcore.scope == "all":
            raise ConfigError(
                f"protocol {config.protocol!r} reads its own fixed files, so the whole table "
                "cannot be filtered before splitting",
                key="dataset.kcore.scope",
                fix="use scope: train (the k-core of the training part)",
            )
        folder = data_root(root) / registry.get_spec(config.name).folder
        split = protocol.build(folder, **config.protocol_options)
    else:
        inter = registry.load(config.name, root, **config.options)
        if not isinstance(inter, Interactions):
            raise ConfigError(
                f"dataset {config.name!r} comes with fixed parts; use its own protocol preset",
                key="dataset.protocol",
            )
        if config.deduplicate:
            inter, _ = preprocess.deduplicate(inter)
        kcore_report = None
        if kcore is not None and kcore.scope == "all":
            inter, kcore_report = preprocess.kcore(inter, user_k=kcore.user_k, item_k=kcore.item_k)
        split = protocol.build(inter, **config.protocol_options)
        if kcore_report is not None:
            split.report["kcore"] = {"scope": "all", **kcore_report}
    if kcore is not None and kcore.scope == "train":
        split = kcore_on_train(split, user_k=kcore.user_k, item_k=kcore.item_k)
    if config.query_time is not None and config.query_time != split.query_time:
        split = dataclasses.replace(split, query_time=config.query_time)
    return split


def kcore_on_train(split: Split, user_k: int = 10, item_k: int = 10) -> Split:
    """The split restricted to the k-core of its training part.

    :func:`~tgraph.data.preprocess.kcore` runs on ``split.train``; a user (item) is kept when
    it has at least ``user_k`` (``item_k``) training events left, so with ``k >= 1`` users and
    items without training events go too. Validation and test events and targets of the
    others are dropped, all parts are renumbered together (one id space, raw ids kept) and
    the leakage checks run again. ``report["kcore"]`` has the counts: the k-core's, and per
    part the events and targets before, dropped for their user, dropped for their item
    (events of a removed user and item count as the user's) and after.
    """
    train, core = preprocess.kcore(split.train, user_k=user_k, item_k=item_k, remap=False)
    users = np.bincount(train.events["user"].to_numpy(), minlength=split.n_users) >= user_k
    items = np.bincount(train.events["item"].to_numpy(), minlength=split.n_items) >= item_k
    user_code, item_code = np.cumsum(users) - 1, np.cumsum(items) - 1
    user_table = split.train.users.loc[users].reset_index(drop=True)
    item_table = split.train.items.loc[items].reset_index(drop=True)

    def renumber(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(
            user=user_code[frame["user"].to_numpy()], item=item_code[frame["item"].to_numpy()]
        )

    def keep(frame: pd.DataFrame, what: str, counts: dict[str, Any]) -> pd.DataFrame:
        user_ok = users[frame["user"].to_numpy()]
        item_ok = items[frame["item"].to_numpy()]
        counts[f"{what}_before"] = len(frame)
        counts[f"{what}_dropped_user"] = int((~user_ok).sum())
        counts[f"{what}_dropped_item"] = int((user_ok & ~item_ok).sum())
        counts[f"{what}_after"] = int((user_ok & item_ok).sum())
        return renumber(frame[user_ok & item_ok].reset_index(drop=True))

    def restrict(inter: Interactions, counts: dict[str, Any]) -> Interactions:
        events = keep(inter.events, "events", counts)
        return inter.with_events(events, users=user_table, items=item_table)

    parts: dict[str, dict[str, Any]] = {}
    new_train = restrict(train, {})
    valid = None
    if split.valid is not None:
        parts["valid"] = {}
        valid = restrict(split.valid, parts["valid"])
    parts["test"] = {}
    test = restrict(split.test, parts["test"])
    valid_targets = keep(split.valid_targets, "targets", parts.get("valid", {}))
    test_targets = keep(split.test_targets, "targets", parts["test"])
    report = {
        **split.report,
        "kcore": {"scope": "train", **core, **parts},
    }
    out = dataclasses.replace(
        split,
        train=new_train,
        valid=valid,
        test=test,
        valid_targets=valid_targets,
        test_targets=test_targets,
        report=report,
    )
    out.report["leakage_checks"] = out.check_no_leakage()
    return out
