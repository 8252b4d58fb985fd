"""The ``sthgcn_nyc`` preset: obtained counts (asserted exactly) and the protocol's invariants.

Published figures (STHGCN's README) and the obtained ones are compared in docs/protocols.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph.config import DatasetConfig
from tgraph.data.protocols import get_protocol, prepare_split, sthgcn_nyc, trajectories
from tgraph.data.protocols.sthgcn import PUBLISHED, _training_samples
from tgraph.data.readers.stan import read_stan_nyc
from tgraph.data.split import EVENT_KEY
from tgraph.errors import DataError


@pytest.fixture(scope="module")
def split(root):
    return prepare_split(DatasetConfig(name="foursquare_nyc", protocol="sthgcn_nyc"), root)


def test_registered_as_a_root_preset():
    assert get_protocol("sthgcn_nyc").kind == "root"


@pytest.mark.slow
def test_obtained_counts(split):
    r = split.report
    assert r["stan_exact_duplicates_dropped"] == 458
    assert r["rows_in_short_trajectories"] == 42_413
    assert r["short_trajectories"] == 32_818
    assert r["train_rows_before_first_valid_minute"] == 113_013
    assert r["train_rows_dropped_short_trajectory"] == 28_903
    assert len(split.train) == r["train_rows"] == 84_110
    assert r["train_trajectories"]["trajectories"] == 11_081
    assert len(split.valid) == 10_339 and len(split.test) == 10_374
    assert r["statistics"] == {
        "users": 1_049,
        "pois": 5_002,
        "checkins": 104_823,
        "trajectories": 14_206,
        "train_samples": 73_029,
    }
    assert r["valid_unseen"] == {
        "before": 1_559,
        "unseen_user": 68,
        "unseen_item": 91,
        "dropped": 138,
        "after": 1_421,
    }
    assert r["valid_unseen_in_samples"]["after"] == len(split.valid_targets) == 1_413
    assert r["test_unseen"]["after"] == 1_362
    assert r["test_unseen_in_samples"]["after"] == len(split.test_targets) == 1_353
    assert r["published"] == PUBLISHED
    assert (PUBLISHED["valid_samples"], PUBLISHED["test_samples"]) == (1_400, 1_347)
    assert split.n_items == 5_135 and split.n_users == 1_083


@pytest.mark.slow
def test_query_time_is_hidden(split):
    assert getattr(split, "query_time", "hidden") == "hidden"


@pytest.mark.slow
def test_no_leakage_and_global_time(split):
    split.check_no_leakage()
    last_train = split.train.events["timestamp"].max()
    assert last_train < split.valid.events["timestamp"].min()
    assert last_train < split.test.events["timestamp"].min()
    assert split.valid.events["timestamp"].max() < split.test.events["timestamp"].min()


@pytest.mark.slow
def test_targets_are_last_check_ins_of_their_trajectory(split):
    for part, events in (("valid", split.valid.events), ("test", split.test.events)):
        targets = split.targets(part)
        last = events.drop_duplicates("trajectory", keep="last")
        merged = targets.merge(last, on="trajectory", suffixes=("", "_last"))
        assert len(merged) == len(targets)
        for column in EVENT_KEY:
            assert (merged[column] == merged[f"{column}_last"]).all()
        sizes = events.groupby("trajectory").size()
        assert (sizes.reindex(targets["trajectory"]) >= 2).all()


@pytest.mark.slow
def test_targets_seen_among_training_samples(split):
    samples = _training_samples(split.train.events)
    for part in ("valid", "test"):
        targets = split.targets(part)
        assert targets["user"].isin(samples["user"]).all()
        assert targets["item"].isin(samples["item"]).all()


@pytest.mark.slow
def test_training_rows_lie_in_long_trajectories(split, root):
    stan = read_stan_nyc(root / "foursquare_nyc")
    whole, _ = trajectories(stan.with_events(stan.events.drop_duplicates(list(EVENT_KEY))))
    sizes = whole.events.groupby("trajectory")["user"].transform("size")
    long = pd.MultiIndex.from_frame(whole.events.loc[sizes >= 3, list(EVENT_KEY)])
    assert pd.MultiIndex.from_frame(split.train.events[list(EVENT_KEY)]).isin(long).all()
    # and every long-trajectory row before the first validation minute is kept
    first = split.valid.events["timestamp"].min() // 60 * 60
    before = whole.events[(sizes >= 3).to_numpy() & (whole.events["timestamp"] < first).to_numpy()]
    assert len(before) == len(split.train)


@pytest.mark.slow
def test_seen_in_train_keeps_getnext_rule(root):
    loose = sthgcn_nyc(root, seen_in="train")
    assert len(loose.valid_targets) == 1_421 and len(loose.test_targets) == 1_362
    assert "valid_unseen_in_samples" not in loose.report


@pytest.mark.parametrize(
    ("options", "column"),
    [({"seen_in": "all"}, "seen_in"), ({"min_trajectory_length": 0}, "min_trajectory_length")],
)
def test_bad_options(root, options, column):
    with pytest.raises(DataError) as info:
        sthgcn_nyc(root, **options)
    assert info.value.column == column


def test_training_samples_skip_each_trajectory_first_check_in():
    events = pd.DataFrame(
        {
            "user": [0, 0, 0, 1, 1],
            "item": [5, 6, 7, 8, 9],
            "timestamp": [1, 2, 3, 4, 5],
            "trajectory": ["a", "a", "b", "c", "c"],
        }
    )
    assert _training_samples(events)["item"].tolist() == [6, 9]
    assert np.array_equal(_training_samples(events.iloc[:0])["item"], [])
