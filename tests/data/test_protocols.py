"""Protocol presets: the GETNext NYC figures, the generic next-POI preset, leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph.data.interactions import Interactions
from tgraph.data.protocols import getnext_nyc, next_poi_chronological
from tgraph.data.readers.getnext import read_getnext_csv
from tgraph.errors import DataError, LeakageError

H = 3600


@pytest.fixture(scope="module")
def nyc(root):
    return getnext_nyc(root)


def test_nyc_train_rows(nyc):
    # PROTOCOLS.md counts 113,016 rows up to local minute 16:54 inclusive; three STAN rows
    # fall in that minute, one of them the first validation check-in itself (user 185,
    # POI 4908), so tgraph keeps only the minutes strictly before it.
    assert nyc.report["stan_exact_duplicates_dropped"] == 458
    assert nyc.report["stan_rows_in_first_valid_minute"] == 3
    assert len(nyc.train) == 113_013
    assert nyc.train.events["user"].nunique() == 1_074
    assert nyc.train.events["item"].nunique() == 5_058
    assert nyc.train.local_time().max() < pd.Timestamp("2012-11-09 16:54:00")
    assert nyc.report["first_valid_local_time"] == "2012-11-09 16:54:00"
    assert not nyc.train.events.duplicated(["user", "item", "timestamp"]).any()


def test_first_validation_checkin_is_not_in_train(nyc):
    users, items = nyc.train.users["raw_id"], nyc.train.items["raw_id"]
    ev = nyc.train.events
    hit = ev[(users[ev["user"]].to_numpy() == 185) & (items[ev["item"]].to_numpy() == 4908)]
    assert (hit["timestamp"] < nyc.valid.events["timestamp"].min()).all()
    first = nyc.valid.events.iloc[0]
    assert (users[first["user"]], items[first["item"]]) == (185, 4908)


def test_nyc_id_space_and_catalogue(nyc):
    assert nyc.n_items == 5_135 and nyc.n_users == 1_083
    assert nyc.report["pois_unseen_in_train"] == 5_135 - 5_058
    assert nyc.mask_history is False and nyc.require_seen and nyc.time_resolution == 60


def test_nyc_mapping_counts(nyc):
    for part, rows, by_venue in (("valid", 10_339, 1), ("test", 10_374, 3)):
        report = nyc.report[f"{part}_mapping"]
        assert report["rows"] == rows and len(getattr(nyc, part)) == rows
        assert report["by_user_minute"] == rows - by_venue  # no (user, minute) match
        assert report["by_venue_only"] == by_venue and report["unmatched"] == 0
        assert report["venues_with_several_pois"] == 0


def test_nyc_mapped_coordinates_agree(nyc, root):
    """The mapped POI lies where GETNext's check-in is (STAN keeps one coordinate per POI)."""
    raw = read_getnext_csv(root / "foursquare_nyc" / "getnext_NYC_val.csv.gz").events
    mapped = nyc.valid.events
    assert np.array_equal(np.sort(raw["timestamp"] + raw["tz_offset"] * 60 + 18_000),
                          np.sort(mapped["timestamp"]))  # fmt: skip
    keys = ["trajectory", "timestamp"]
    raw = raw.assign(timestamp=raw["timestamp"] + raw["tz_offset"] * 60 + 18_000)
    joined = mapped.merge(raw, on=keys, suffixes=("", "_raw"))
    assert len(joined) == len(mapped)
    distance = np.hypot(joined["lat"] - joined["lat_raw"], joined["lon"] - joined["lon_raw"])
    # as for the rows with a single candidate: half exact, 99% within 0.01 degree (~1 km)
    assert distance.median() < 1e-9 and distance.quantile(0.99) < 0.01


@pytest.mark.parametrize(
    ("part", "before", "after", "unseen_user", "unseen_item"),
    [("valid", 1_559, 1_476, 30, 62), ("test", 1_566, 1_433, 59, 93)],
)
def test_nyc_targets(nyc, part, before, after, unseen_user, unseen_item):
    # PROTOCOLS.md: 1,479 / 1,436 after dropping, from a first-match POI mapping that picks a
    # wrong POI for ~3% of targets; this mapping keeps venue -> POI one-to-one.
    found = nyc.report[f"{part}_targets"]
    assert found["targets"] == found["trajectories"] == before
    assert nyc.report[f"{part}_unseen"] == {
        "before": before,
        "unseen_user": unseen_user,
        "unseen_item": unseen_item,
        "dropped": before - after,
        "after": after,
    }
    targets = nyc.targets(part)
    assert len(targets) == after and targets["query"].is_unique
    assert targets["trajectory"].is_unique


@pytest.mark.parametrize("part", ["valid", "test"])
def test_nyc_targets_are_last_and_never_first_of_trajectory(nyc, part):
    events = getattr(nyc, part).events
    targets = nyc.targets(part)
    last = events.drop_duplicates("trajectory", keep="last").set_index("trajectory")
    first = events.drop_duplicates("trajectory", keep="first").set_index("trajectory")
    t = targets.set_index("trajectory")
    assert (last.loc[t.index, "timestamp"] == t["timestamp"]).all()
    assert (last.loc[t.index, "item"] == t["item"]).all()
    assert (first.loc[t.index, "timestamp"] < t["timestamp"]).all()
    assert t["user"].isin(nyc.train.events["user"]).all()
    assert t["item"].isin(nyc.train.events["item"]).all()
    assert nyc.train.events["timestamp"].max() < targets["timestamp"].min()


def test_nyc_leakage_check_and_a_leaky_variant(nyc):
    checked = nyc.check_no_leakage()
    assert checked["valid_events_not_in_train"] == 10_339
    leaky_events = pd.concat([nyc.train.events, nyc.test.events.iloc[:1]])
    nyc_leaky = type(nyc)(**{**nyc.__dict__, "train": nyc.train.with_events(leaky_events)})
    with pytest.raises(LeakageError):
        nyc_leaky.check_no_leakage()


def test_nyc_accepts_data_root_or_folder(root, nyc):
    again = getnext_nyc(root / "foursquare_nyc")
    pd.testing.assert_frame_equal(again.test_targets, nyc.test_targets)
    pd.testing.assert_frame_equal(again.train.events, nyc.train.events)


# ------------------------------------------------------------------ generic next-POI
def checkins(rows) -> Interactions:
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    return Interactions.from_frame(frame, name="toy")


@pytest.fixture
def toy():
    # user 0: train trajectory, then a valid trajectory [1, 2] and a test one [2, 1, 3(unseen)]
    rows = [(0, 1, 0), (0, 2, H), (0, 1, 2 * H), (1, 2, 3 * H), (1, 1, 4 * H), (1, 2, 5 * H)]
    rows += [(0, 1, 50 * H), (0, 2, 51 * H), (1, 1, 52 * H)]
    rows += [(0, 2, 100 * H), (0, 1, 101 * H), (1, 2, 102 * H), (1, 3, 103 * H)]
    return checkins(rows)


def test_next_poi_chronological_by_hand(toy):
    split = next_poi_chronological(toy, ratios=(6 / 13, 3 / 13, 4 / 13))
    assert len(split.train) == 6 and len(split.valid) == 3 and len(split.test) == 4
    raw = split.train.items["raw_id"].to_numpy()
    # valid: user 0 [1, 2] -> target 2; user 1 [1] single -> none
    assert raw[split.valid_targets["item"]].tolist() == [2]
    # test: user 0 [2, 1] -> target 1; user 1 [2, 3] -> target 3, unseen in train -> dropped
    assert raw[split.test_targets["item"]].tolist() == [1]
    assert split.report["test_unseen"]["unseen_item"] == 1
    assert split.report["valid_targets"]["single_event_trajectories"] == 1
    assert split.valid.events["trajectory"].str.startswith("valid:").all()


def test_next_poi_trajectories_are_cut_at_the_split(toy):
    # 50 h .. 52 h and 100 h: one user-1 trajectory would span valid and test without the cut
    rows = [(1, 1, 52 * H + 10), (1, 2, 53 * H)]
    inter = checkins([*zip(*[toy.events[c] for c in ("user", "item", "timestamp")])] + rows)
    split = next_poi_chronological(inter, ratios=(6 / 15, 4 / 15, 5 / 15))
    assert set(split.valid.events["trajectory"]).isdisjoint(split.test.events["trajectory"])
    assert split.report["trajectories_cut_at_split"] >= 1


def test_next_poi_bad_input(toy):
    with pytest.raises(DataError, match="ratios"):
        next_poi_chronological(toy, ratios=(0.5, 0.5))
    dup = checkins([(0, 1, 0), (0, 1, 0), (0, 2, 5), (1, 1, 9)])
    with pytest.raises(DataError, match="duplicate"):
        next_poi_chronological(dup)


def test_next_poi_on_stan_nyc_is_clean_and_deterministic(root):
    from tgraph.data.readers.stan import read_stan_nyc

    stan = read_stan_nyc(root / "foursquare_nyc")
    # the items table is the POI file: static coordinates (some POIs have no training event)
    meta = {**stan.meta, "static_item_columns": ["lat", "lon"]}
    stan = stan.with_events(stan.events.drop_duplicates(["user", "item", "timestamp"]), meta=meta)
    a, b = next_poi_chronological(stan), next_poi_chronological(stan)
    pd.testing.assert_frame_equal(a.test_targets, b.test_targets)
    assert len(a.train) + len(a.valid) + len(a.test) == 147_938 - 458
    assert a.train.events["timestamp"].max() < a.valid.events["timestamp"].min()
    assert 0.79 < len(a.train) / (147_938 - 458) < 0.81
    assert a.report["leakage_checks"]["require_seen"] is True
