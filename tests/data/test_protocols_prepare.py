"""The data layer's front door: prepare_split, the k-core scope, protocol registration."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from tgraph.config import DatasetConfig, validate_model
from tgraph.data import registry
from tgraph.data.interactions import Interactions
from tgraph.data.protocols import (
    PROTOCOLS,
    chronological_split,
    kcore_on_train,
    prepare_split,
    register_protocol,
)
from tgraph.errors import ConfigError

#: train (t < 10), valid (10 <= t < 20), test (t >= 20); see test_kcore_on_train_by_hand
ROWS = [
    ("u0", "i0", 0), ("u0", "i1", 1), ("u0", "i0", 2),
    ("u1", "i0", 3), ("u1", "i1", 4),
    ("u2", "i2", 5),
    ("u3", "i1", 6), ("u3", "i3", 7),
    ("u0", "i1", 10), ("u2", "i0", 11), ("u1", "i2", 12),
    ("u0", "i0", 20), ("u1", "i1", 21), ("u3", "i0", 22), ("u1", "i3", 23), ("u4", "i0", 24),
]  # fmt: skip
CUTS = {"cuts": (10, 20)}


@pytest.fixture
def table() -> Interactions:
    frame = pd.DataFrame(ROWS, columns=["user", "item", "timestamp"])
    return Interactions.from_frame(frame, name="toy")


def raw(split, part: str) -> list[tuple[str, str, int]]:
    inter = getattr(split, part)
    ev = inter.events
    users = inter.users["raw_id"].to_numpy()[ev["user"].to_numpy()]
    items = inter.items["raw_id"].to_numpy()[ev["item"].to_numpy()]
    return list(zip(users, items, ev["timestamp"].tolist(), strict=True))


def test_kcore_on_train_by_hand(table):
    """2/2-core of the 8 training events: round 1 drops (u2, i2, 5) (user and item have one
    event) and (u3, i3, 7) (i3 has one); round 2 drops (u3, i1, 6) (u3 is left with one).
    Kept: users u0, u1; items i0, i1 -- renumbered 0, 1 in every part. Validation loses
    (u2, i0, 11) for its user and (u1, i2, 12) for its item; test loses (u3, i0, 22) and
    (u4, i0, 24) (u4 has no training event) for their users and (u1, i3, 23) for its item."""
    split = kcore_on_train(chronological_split(table, **CUTS), user_k=2, item_k=2)
    assert raw(split, "train") == [("u0", "i0", 0), ("u0", "i1", 1), ("u0", "i0", 2),
                                   ("u1", "i0", 3), ("u1", "i1", 4)]  # fmt: skip
    assert raw(split, "valid") == [("u0", "i1", 10)]
    assert raw(split, "test") == [("u0", "i0", 20), ("u1", "i1", 21)]
    assert list(split.train.users["raw_id"]) == ["u0", "u1"]
    assert list(split.train.items["raw_id"]) == ["i0", "i1"]
    assert (split.n_users, split.n_items) == (2, 2)
    report = split.report["kcore"]
    assert report["scope"] == "train"
    assert (report["events_before"], report["events_after"]) == (8, 5)
    assert [r["events_dropped"] for r in report["iterations"]] == [2, 1]
    assert report["valid"] == {
        "events_before": 3, "events_dropped_user": 1, "events_dropped_item": 1,
        "events_after": 1, "targets_before": 3, "targets_dropped_user": 1,
        "targets_dropped_item": 1, "targets_after": 1,
    }  # fmt: skip
    assert report["test"]["events_dropped_user"] == 2
    assert report["test"]["events_dropped_item"] == 1
    assert report["test"]["targets_after"] == 2
    assert split.test_targets[["user", "item", "timestamp"]].values.tolist() == [
        [0, 0, 20],
        [1, 1, 21],
    ]
    assert split.report["leakage_checks"]["test_events_not_in_train"] == 2


def test_kcore_zero_keeps_everything(table):
    """user_k = item_k = 0 removes nobody, even users and items without training events."""
    before = chronological_split(table, **CUTS)
    split = kcore_on_train(before, user_k=0, item_k=0)
    for part in ("train", "valid", "test"):
        assert raw(split, part) == raw(before, part)
    assert split.report["kcore"]["test"]["events_after"] == 5


@pytest.fixture
def loads_table(monkeypatch, table):
    """``registry.load`` returns the hand-made table (no dataset is registered)."""
    monkeypatch.setattr(registry, "load", lambda name, root=None, **options: table)


def config(**kcore) -> DatasetConfig:
    return validate_model(
        DatasetConfig,
        {"name": "toy", "protocol": "chronological", "protocol_options": CUTS, "kcore": kcore},
        "dataset",
    )


def test_prepare_split_scope_train_is_the_default(loads_table):
    split = prepare_split(config(user_k=2, item_k=2))
    assert split.report["kcore"]["scope"] == "train"
    assert raw(split, "valid") == [("u0", "i1", 10)]


def test_prepare_split_scope_all_lets_future_events_decide(loads_table):
    """The 2/2-core of all 16 events drops only (u4, i0, 24) (u4 has one event): u2, with one
    training event, stays because of its validation event (u2, i0, 11); i2 and i3 stay
    because of (u1, i2, 12) and (u1, i3, 23)."""
    split = prepare_split(config(user_k=2, item_k=2, scope="all"))
    report = split.report["kcore"]
    assert report["scope"] == "all"
    assert (report["events_before"], report["events_after"]) == (16, 15)
    assert ("u2", "i2", 5) in raw(split, "train") and len(split.train) == 8
    assert raw(split, "test")[-1] == ("u1", "i3", 23)
    assert list(split.train.users["raw_id"]) == ["u0", "u1", "u2", "u3"]


def test_prepare_split_without_kcore_reports_none(loads_table):
    split = prepare_split(validate_model(DatasetConfig, {"name": "toy", "protocol":
                          "chronological", "protocol_options": CUTS}, "dataset"))  # fmt: skip
    assert "kcore" not in split.report and len(split.train) == 8


def test_kcore_scope_is_validated_and_all_needs_a_table():
    with pytest.raises(ConfigError, match=r"key 'dataset.kcore.scope'"):
        validate_model(DatasetConfig, {"kcore": {"scope": "everything"}}, "dataset")
    fixed = validate_model(
        DatasetConfig,
        {"name": "foursquare_nyc", "protocol": "getnext_nyc", "kcore": {"scope": "all"}},
        "dataset",
    )
    with pytest.raises(ConfigError, match=r"key 'dataset.kcore.scope'.*scope: train"):
        prepare_split(fixed)


def test_register_protocol(loads_table):
    def every_other(inter: Interactions, cut: int):
        return chronological_split(inter, cuts=(cut, cut))

    register_protocol("test_every_other", every_other)
    try:
        assert PROTOCOLS["test_every_other"].kind == "interactions"
        dataset = validate_model(
            DatasetConfig,
            {"name": "toy", "protocol": "test_every_other", "protocol_options": {"cut": 20}},
            "dataset",
        )
        split = prepare_split(dataset)
        assert (len(split.train), len(split.test)) == (11, 5)
        register_protocol("test_every_other", every_other)  # the same definition again

        def every_other_too(inter: Interactions, cut: int):
            return every_other(inter, cut)

        with pytest.raises(ConfigError, match="'test_every_other' is already registered by"):
            register_protocol("test_every_other", every_other_too)
        with pytest.raises(ConfigError, match="already registered by .*kind 'root'"):
            register_protocol("lightgcn", every_other, kind="root")
        with pytest.raises(ConfigError, match="kind 'interactions'.*kind 'root'"):
            register_protocol("test_every_other", every_other, kind="root")
    finally:
        PROTOCOLS.pop("test_every_other")
    with pytest.raises(ConfigError, match="unknown kind 'table'"):
        register_protocol("test_bad_kind", every_other, kind="table")
    assert "test_bad_kind" not in PROTOCOLS
    with pytest.raises(ConfigError, match=r"key 'dataset.protocol': unknown protocol 'nope'"):
        prepare_split(validate_model(DatasetConfig, {"protocol": "nope"}, "dataset"))


def test_preparing_a_split_imports_nothing_above_the_data_layer():
    """tune, analysis and serving call prepare_split; it must not pull in models, training,
    evaluation, graphs or the experiment runner (nor torch)."""
    code = (
        "import sys\n"
        "from tgraph.data.protocols import prepare_split\n"
        "from tgraph.config import DatasetConfig\n"
        "prepare_split(DatasetConfig(name='synthetic', options={'n_users': 20}))\n"
        "allowed = ('tgraph.data', 'tgraph.config', 'tgraph.errors', 'tgraph.plugins', "
        "'tgraph.threads')\n"
        "print(sorted(m for m in sys.modules if m.startswith('tgraph.') and not "
        "m.startswith(allowed)))\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[:2] == ["[]", "False"]


def test_kcore_on_train_without_validation(table):
    """No validation part: the training part is the 11 events with t < 20; i3 has one of
    them, so round 1 drops (u3, i3, 7) and round 2 (u3, i1, 6): u0..u2 and i0..i2 are kept."""
    split = kcore_on_train(chronological_split(table, cuts=(20, 20)), user_k=2, item_k=2)
    assert split.valid is None and "valid" not in split.report["kcore"]
    assert list(split.train.users["raw_id"]) == ["u0", "u1", "u2"]
    assert list(split.train.items["raw_id"]) == ["i0", "i1", "i2"]
    assert raw(split, "test") == [("u0", "i0", 20), ("u1", "i1", 21)]
