"""The LightGCN reader (Gowalla) against PROVENANCE.md and the ``lightgcn`` preset."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tgraph.data.protocols import hold_out_per_user, lightgcn
from tgraph.data.readers.lightgcn import read_lightgcn
from tgraph.errors import DataError, DatasetNotFoundError, LeakageError


@pytest.fixture(scope="module")
def gowalla(root):
    return read_lightgcn(root / "gowalla_lightgcn")


@pytest.fixture(scope="module")
def split(root):
    return lightgcn(root, valid_ratio=0.1, seed=0)


def test_reader_counts_match_provenance(gowalla):
    train, test = gowalla["train"], gowalla["test"]
    assert len(train) == 810_128 and len(test) == 217_242
    assert train.n_users == test.n_users == 29_858
    assert train.n_items == test.n_items == 40_981
    assert train.events["user"].nunique() == test.events["user"].nunique() == 29_858
    assert test.events["item"].isin(train.events["item"]).all()
    assert (train.users["raw_id"] == train.users.index).all()  # codes are the given ids
    assert (train.items["raw_id"] == train.items.index).all()
    assert (train.events["timestamp"] == 0).all() and "no timestamps" in train.meta["time_note"]
    assert train.users.loc[0, "org_id"] == "343"


def test_reader_keeps_user_lines(gowalla):
    first = gowalla["train"].events.query("user == 0")["item"].to_numpy()
    assert first[:5].tolist() == [0, 1, 2, 3, 4]


def _write(folder, name, text, compress=False):
    path = folder / (f"{name}.gz" if compress else name)
    opener = gzip.open if compress else open
    with opener(path, "wt") as handle:
        handle.write(text)


@pytest.mark.parametrize("compress", [True, False])
def test_small_folder_plain_and_gzip(tmp_path, compress):
    _write(tmp_path, "train.txt", "0 0 1 2\n1 2 3\n", compress)
    _write(tmp_path, "test.txt", "0 3\n1 0\n2 1\n", compress)
    data = read_lightgcn(tmp_path)
    assert len(data["train"]) == 5 and len(data["test"]) == 3
    assert data["train"].n_users == data["test"].n_users == 3  # user 2 only in test
    assert data["train"].n_items == 4


@pytest.mark.parametrize(
    ("train", "match", "row"),
    [
        ("0 0 1\n1 2 x\n", "'x'", 1),
        ("0 0 1\n1 2 2\n", "line 2: .* listed twice", 1),
        ("\n", "no interactions", None),
    ],
)
def test_bad_lines_raise(tmp_path, train, match, row):
    _write(tmp_path, "train.txt", train)
    _write(tmp_path, "test.txt", "0 3\n")
    with pytest.raises(DataError, match=match) as info:
        read_lightgcn(tmp_path)
    assert "train.txt" in str(info.value) and info.value.row == row


def test_missing_file_and_bad_list(tmp_path):
    _write(tmp_path, "train.txt", "0 0 1\n")
    with pytest.raises(DatasetNotFoundError):
        read_lightgcn(tmp_path)
    _write(tmp_path, "test.txt", "0 2\n")
    _write(tmp_path, "user_list.txt", "org remap\n5 0\n")
    with pytest.raises(DataError, match="org_id remap_id"):
        read_lightgcn(tmp_path)


# ------------------------------------------------------------------ the preset
def test_split_counts(split):
    assert len(split.train) + len(split.valid) == 810_128
    assert len(split.test_targets) == 217_242
    assert split.test_targets["query"].nunique() == 29_858
    assert (split.test_targets["query"] == split.test_targets["user"]).all()
    assert split.report["held_out"] == len(split.valid) == len(split.valid_targets)
    assert 0.095 < len(split.valid) / 810_128 < 0.105
    assert split.mask_history and split.time_order is None and split.require_seen


def test_every_user_and_item_keeps_training_rows(split):
    assert split.train.events["user"].nunique() == 29_858
    assert split.train.events["item"].nunique() == 40_981
    assert split.test_targets["item"].isin(split.train.events["item"]).all()


def test_masking_rule(split, gowalla):
    full = gowalla["train"].events
    test_mask = split.history_pairs("test")
    assert len(test_mask) == 810_128
    assert test_mask.merge(full[["user", "item"]]).shape[0] == 810_128  # the whole train.txt
    valid_mask = split.history_pairs("valid")
    assert len(valid_mask) == len(split.train)
    assert valid_mask.merge(split.valid.events[["user", "item"]]).empty
    items = split.history_items("test")
    assert len(items) == 29_858 and sum(map(len, items.values())) == 810_128
    assert test_mask.merge(split.test_targets[["user", "item"]]).empty  # never masks a target


def test_leakage_check_catches_a_leaky_train(split):
    leaky = split.train.with_events(pd.concat([split.train.events, split.valid.events[:1]]))
    bad = type(split)(**{**split.__dict__, "train": leaky})
    with pytest.raises(LeakageError, match="valid event"):
        bad.check_no_leakage()


def test_hold_out_is_deterministic_under_seed(gowalla):
    events = gowalla["train"].events
    a, _ = hold_out_per_user(events, 0.1, seed=0)
    b, _ = hold_out_per_user(events, 0.1, seed=0)
    c, _ = hold_out_per_user(events, 0.1, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.sum() == c.sum()  # same per-user quota


@pytest.mark.parametrize("seed", range(5))
def test_hold_out_quota_and_items_by_hand(seed):
    # quotas round(0.2 * n): users 0 and 1 -> 2, user 2 -> 1, user 3 (one row) -> 0
    users = [0] * 10 + [1] * 10 + [2] * 3 + [3]
    items = [*range(10), *range(10), 0, 1, 2, 5]
    events = pd.DataFrame({"user": users, "item": items})
    held, report = hold_out_per_user(events, 0.2, seed=seed)
    per_user = np.bincount(np.asarray(users)[held], minlength=4)
    assert (per_user <= [2, 2, 1, 0]).all()
    assert (
        held.sum() + report["returned_to_keep_items"]
        == 5
        == report["held_out"] + report["returned_to_keep_items"]
    )
    assert set(np.asarray(items)[~held]) == set(range(10))  # every item keeps a training row
    with pytest.raises(DataError, match="valid_ratio"):
        hold_out_per_user(events, 1.0, seed=0)
