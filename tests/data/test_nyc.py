"""Readers of the Foursquare NYC files (STAN arrays, GETNext CSVs) against PROVENANCE.md."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from tgraph.data.readers.getnext import read_getnext_csv
from tgraph.data.readers.stan import STAN_MINUTE_OFFSET, read_stan_nyc
from tgraph.errors import DataError, DatasetNotFoundError


@pytest.fixture(scope="module")
def nyc(root):
    return root / "foursquare_nyc"


@pytest.fixture(scope="module")
def stan(nyc):
    return read_stan_nyc(nyc)


def test_stan_counts_match_provenance(stan):
    assert len(stan) == 147_938
    assert stan.n_users == 1_083 and stan.events["user"].nunique() == 1_083
    assert stan.n_items == 5_135 and stan.events["item"].nunique() == 5_135
    assert stan.meta["exact_duplicates"] == 458
    assert stan.events.duplicated(["user", "item", "timestamp"]).sum() == 458
    assert stan.users["raw_id"].tolist() == list(range(1, 1084))
    assert stan.items["raw_id"].tolist() == list(range(1, 5136))


def test_stan_time_is_local_minute_plus_five_hours(stan):
    assert (stan.events["tz_offset"] == -300).all()
    local = stan.local_time()
    assert local.min() == pd.Timestamp("2012-04-03 13:00")  # t = 1
    assert local.max() == pd.Timestamp("2013-02-15 21:34")  # t = 458435
    assert (stan.events["timestamp"] % 60 == 0).all()
    first_row = (1, 698, 99366)  # first row of stan_NYC.npy
    expected = (first_row[2] + STAN_MINUTE_OFFSET) * 60 + 5 * 3600
    ev = stan.events
    hit = ev[(ev["user"] == first_row[0] - 1) & (ev["item"] == first_row[1] - 1)]
    assert expected in set(hit["timestamp"])


def test_stan_event_coordinates_are_the_poi_coordinates(stan):
    items = stan.items.loc[stan.events["item"]]
    np.testing.assert_array_equal(stan.events["lat"].to_numpy(), items["lat"].to_numpy())
    np.testing.assert_array_equal(stan.events["lon"].to_numpy(), items["lon"].to_numpy())
    assert stan.items["lat"].between(40.4, 41.1).all()
    assert stan.items["lon"].between(-74.3, -73.6).all()


def _write_stan(folder, checkins, pois, compress=True):
    for name, array in (("stan_NYC.npy", checkins), ("stan_NYC_POI.npy", pois)):
        if compress:
            with gzip.open(folder / f"{name}.gz", "wb") as handle:
                np.save(handle, array)
        else:
            np.save(folder / name, array)


POIS = np.array([[1, 40.7, -74.0], [2, 40.8, -73.9]])
CHECKINS = np.array([[1, 1, 10], [1, 2, 5], [2, 1, 7]], dtype=np.int32)


@pytest.mark.parametrize("compress", [True, False])
def test_stan_reads_plain_and_gzip(tmp_path, compress):
    _write_stan(tmp_path, CHECKINS, POIS, compress)
    inter = read_stan_nyc(tmp_path)
    assert len(inter) == 3 and inter.n_items == 2
    assert inter.events["timestamp"].tolist() == [
        (t + STAN_MINUTE_OFFSET) * 60 + 18_000 for t in (5, 7, 10)
    ]


@pytest.mark.parametrize(
    ("checkins", "pois", "column"),
    [
        (CHECKINS[:, :2], POIS, None),
        (np.array([[1, 3, 10]]), POIS, "poi_id"),  # POI without coordinates
        (np.array([[0, 1, 10]]), POIS, "user_id"),
        (np.array([[1, 1, -4]]), POIS, "t"),
        (CHECKINS, np.array([[1, 95.0, -74.0], [2, 40.8, -73.9]]), "latitude"),
        (CHECKINS, np.array([[1, 40.7, np.nan], [2, 40.8, -73.9]]), "longitude"),
        (CHECKINS, np.array([[1, 40.7, -74.0], [1, 40.8, -73.9]]), "poi_id"),
    ],
)
def test_stan_bad_input_names_file_and_column(tmp_path, checkins, pois, column):
    _write_stan(tmp_path, checkins, pois)
    with pytest.raises(DataError) as info:
        read_stan_nyc(tmp_path)
    assert "stan_NYC" in str(info.value) and "fix:" in str(info.value)
    assert info.value.column == column


def test_stan_missing_or_corrupt_file(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        read_stan_nyc(tmp_path)
    (tmp_path / "stan_NYC.npy.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="stan_NYC.npy.gz: .* not gzip-compressed"):
        read_stan_nyc(tmp_path)


@pytest.mark.parametrize(
    ("name", "rows", "users", "items", "trajectories", "first", "last"),
    [
        ("val", 10_339, 513, 2_558, 1_559, "2012-11-09 21:54:47", "2012-12-21 13:29:19"),
        ("test", 10_374, 461, 2_403, 1_566, "2012-12-21 13:29:31", "2013-02-14 12:32:00"),
    ],
)
def test_getnext_counts_match_provenance(nyc, name, rows, users, items, trajectories, first, last):
    inter = read_getnext_csv(nyc / f"getnext_NYC_{name}.csv.gz")
    assert len(inter) == rows and inter.n_users == users and inter.n_items == items
    assert inter.events["trajectory"].nunique() == trajectories
    stamps = pd.to_datetime(inter.events["timestamp"], unit="s")
    assert stamps.min() == pd.Timestamp(first) and stamps.max() == pd.Timestamp(last)
    assert inter.items["raw_id"].str.len().eq(24).all()  # Foursquare venue ids
    assert list(inter.items.columns) == ["raw_id"]  # categories stay on the check-ins
    assert inter.events["category"].notna().all()
    assert (inter.events["tz_offset"] == -300).sum() >= rows - 4


CSV_HEADER = (
    "user_id,POI_id,POI_catid,POI_catid_code,POI_catname,latitude,longitude,timezone,UTC_time,"
    "local_time,day_of_week,norm_in_day_time,trajectory_id,norm_day_shift,norm_relative_time\n"
)
CSV_ROWS = [
    "5,4fa5cedbe4b038e6a2b5ed1c,c1,58,Bar,40.96,-74.06,-300,2012-11-09 21:54:47+00:00,"
    "2012-11-09 16:54:47+00:00,4,0.69,5_1,0,0.69\n",
    "5,4b0737c3f964a520e4f922e3,c2,307,Subway,40.75,-73.98,-240,2012-11-09 22:03:07+00:00,"
    "2012-11-09 18:03:07+00:00,4,0.70,5_1,0,0.70\n",
]


def test_getnext_small_file_plain_and_gzip(tmp_path):
    plain = tmp_path / "small.csv"
    plain.write_text(CSV_HEADER + "".join(CSV_ROWS))
    packed = tmp_path / "small.csv.gz"
    with open(plain, "rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    for path in (plain, packed):
        inter = read_getnext_csv(path)
        assert inter.events["timestamp"].tolist() == [1352498087, 1352498587]
        assert inter.events["tz_offset"].tolist() == [-300, -240]
        assert inter.events["category"].tolist() == [58, 307]
        assert list(inter.items.columns) == ["raw_id"]  # no attribute aggregated over events
        assert inter.local_time().dt.strftime("%H:%M:%S").tolist() == ["16:54:47", "18:03:07"]


@pytest.mark.parametrize(
    ("old", "new", "column"),
    [
        ("2012-11-09 22:03:07+00:00,2012", "yesterday,2012", "UTC_time"),
        (",-240,", ",-300,", "timezone"),  # local_time disagrees with UTC_time + timezone
        (",40.75,", ",,", "lat"),
        (",40.75,", ",97.5,", "lat"),
        ("5,4b0737c3f964a520e4f922e3", "x,4b0737c3f964a520e4f922e3", "user_id"),
    ],
)
def test_getnext_bad_rows_raise(tmp_path, old, new, column):
    path = tmp_path / "bad.csv"
    path.write_text(CSV_HEADER + CSV_ROWS[0] + CSV_ROWS[1].replace(old, new, 1))
    with pytest.raises(DataError) as info:
        read_getnext_csv(path)
    assert info.value.column == column and info.value.row == 1
    assert "bad.csv" in str(info.value)


def test_getnext_missing_column_and_file(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(CSV_HEADER.replace("trajectory_id", "traj") + "".join(CSV_ROWS))
    with pytest.raises(DataError, match="trajectory_id"):
        read_getnext_csv(path)
    with pytest.raises(DatasetNotFoundError):
        read_getnext_csv(tmp_path / "absent.csv")
