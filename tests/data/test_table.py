"""The ``table`` dataset and the reader defects of issue #14, one regression test each:
local time kept, ids never merged, time resolution kept, ambiguous dates refused, plain and
gzip copies refused, no item attribute aggregated over events, typed options."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from tgraph.data import preprocess, registry
from tgraph.data.interactions import Interactions
from tgraph.data.readers import _io, read_table
from tgraph.data.readers.stan import find_file
from tgraph.errors import ConfigError, DataError, DatasetNotFoundError

COLUMNS = {"user": "user", "item": "venue", "timestamp": "time"}


def write(tmp_path, text, name="checkins.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load(path, **options):
    return registry.load("table", path=str(path), **options)


# ----------------------------------------------------------------------------- local time


def test_berlin_morning_is_hour_8_in_summer_and_winter(tmp_path):
    """08:00 wall time in Berlin is 06:00 UTC in July (CEST, +120 min) and 07:00 UTC in
    January (CET, +60 min); every local-time feature must say hour 8."""
    path = write(tmp_path, "user,venue,time\na,x,2024-07-01 08:00:00\nb,y,2024-01-15 08:00:00\n")
    inter = load(path, columns=COLUMNS, timezone="Europe/Berlin")
    events = inter.events  # sorted by time: January first
    assert events["timestamp"].tolist() == [
        int(pd.Timestamp("2024-01-15 07:00", tz="UTC").timestamp()),
        int(pd.Timestamp("2024-07-01 06:00", tz="UTC").timestamp()),
    ]
    assert events["tz_offset"].tolist() == [60, 120]
    assert inter.local_time().dt.hour.tolist() == [8, 8]
    features = preprocess.time_features(inter, slots_per_day=24)
    assert features["hour"].tolist() == [8, 8] and features["slot"].tolist() == [8, 8]
    assert features["weekday"].tolist() == [0, 0]  # both Mondays, local
    assert inter.meta["timezone"] == "Europe/Berlin"


def test_unix_times_get_the_zone_offset_of_their_instant(tmp_path):
    """Epoch times are UTC; the timezone only adds the (DST-aware) offset."""
    summer = int(pd.Timestamp("2024-07-01 06:00", tz="UTC").timestamp())
    winter = int(pd.Timestamp("2024-01-15 07:00", tz="UTC").timestamp())
    path = write(tmp_path, f"user,venue,time\na,x,{summer}\nb,y,{winter}\n")
    inter = load(path, columns=COLUMNS, timezone="Europe/Berlin")
    assert inter.events["timestamp"].tolist() == [winter, summer]
    assert inter.events["tz_offset"].tolist() == [60, 120]
    assert preprocess.time_features(inter)["hour"].tolist() == [8, 8]


def test_tz_column_gives_each_event_its_own_zone(tmp_path):
    """08:00 in Berlin (UTC+2) and 08:00 in Tokyo (UTC+9) on the same July day."""
    path = write(
        tmp_path,
        "user,venue,time,zone\n"
        "a,x,2024-07-01 08:00:00,Europe/Berlin\n"
        "b,y,2024-07-01 08:00:00,Asia/Tokyo\n",
    )
    inter = load(path, columns=COLUMNS, tz_column="zone")
    assert inter.events["tz_offset"].tolist() == [540, 120]  # Tokyo is earlier in UTC
    assert inter.local_time().dt.hour.tolist() == [8, 8]
    with pytest.raises(DataError, match="unknown timezone 'Mars/Base'") as info:
        load(
            write(tmp_path, "user,venue,time,zone\na,x,2024-07-01 08:00:00,Mars/Base\n", "m.csv"),
            columns=COLUMNS,
            tz_column="zone",
        )
    assert info.value.column == "time" and info.value.row == 2


def test_without_a_timezone_no_offset_is_invented(tmp_path):
    inter = load(write(tmp_path, "user,venue,time\na,x,2024-07-01 08:00:00\n"), columns=COLUMNS)
    assert not inter.has("tz_offset") and "timezone" not in inter.meta


def test_two_sources_of_local_time_are_refused(tmp_path):
    path = write(tmp_path, "user,venue,time,zone,off\na,x,2024-07-01 08:00:00,UTC,0\n")
    with pytest.raises(ConfigError, match="timezone and tz_column"):
        load(path, columns=COLUMNS, timezone="UTC", tz_column="zone")
    with pytest.raises(ConfigError, match="columns.tz_offset"):
        load(path, columns={**COLUMNS, "tz_offset": "off"}, timezone="UTC")


# ----------------------------------------------------------------------------- ids


def test_ids_are_never_merged(tmp_path):
    """Each of these pairs used to become one user through float64 or int parsing."""
    pairs = [
        ("007", "7"),
        ("1", "1.0"),
        ("9007199254740992", "9007199254740993"),  # 2**53 and 2**53 + 1
        ("18446744073709551616", "18446744073709551617"),  # above int64
    ]
    for first, second in pairs:
        path = write(tmp_path, f"user,venue,time\n{first},x,1\n{second},x,2\n")
        inter = load(path, columns=COLUMNS)
        assert inter.n_users == 2, (first, second)
        raw = inter.users["raw_id"].to_numpy()[inter.events["user"]].tolist()
        assert [str(value) for value in raw] == [first, second]
        assert inter.meta["ids"]["user"]["distinct"] == 2


def test_canonical_integer_ids_are_exact_int64(tmp_path):
    path = write(tmp_path, "user,venue,time\n9007199254740993,10,1\n-5,2,2\n")
    inter = load(path, columns=COLUMNS)
    assert inter.users["raw_id"].tolist() == [-5, 9007199254740993]  # numeric order
    assert inter.users["raw_id"].dtype == np.int64
    assert inter.items["raw_id"].tolist() == [2, 10]
    assert inter.meta["ids"]["user"] == {"stripped": 0, "type": "int64", "distinct": 2}


def test_whitespace_around_ids_is_stripped_and_counted(tmp_path):
    inter = load(write(tmp_path, "user,venue,time\n a ,x,1\na,x,2\n"), columns=COLUMNS)
    assert inter.n_users == 1 and inter.meta["ids"]["user"]["stripped"] == 1


def test_parse_int_is_exact_above_2_53():
    frame = pd.DataFrame({"u": ["9007199254740993", "+7", "x"]})
    lines = np.array([2, 3, 4])
    values = _io.parse_int(frame.iloc[:2], "u", lines, "f")
    assert values.tolist() == [9007199254740993, 7]
    with pytest.raises(DataError, match="integer") as info:
        _io.parse_int(frame, "u", lines, "f")
    assert info.value.row == 4
    with pytest.raises(DataError, match="integer"):
        _io.parse_int(pd.DataFrame({"u": ["9223372036854775808"]}), "u", lines, "f")
    with pytest.raises(DataError, match="2\\*\\*53"):
        _io.parse_int(pd.DataFrame({"u": [2.0**60]}), "u", lines, "f")


# ----------------------------------------------------------------------------- time resolution


def test_millisecond_times_are_kept_and_not_deduplicated(tmp_path):
    """Two check-ins 800 ms apart used to be floored to one second and dropped."""
    path = write(tmp_path, "user,venue,time\na,x,1000100\na,x,1000900\na,x,1000900\n")
    inter = load(path, columns=COLUMNS, time_unit="ms")
    assert inter.meta["time_resolution"] == "ms"
    assert inter.events["timestamp"].tolist() == [1000, 1000, 1000]
    assert inter.events["subsecond"].tolist() == [100, 900, 900]
    deduplicated, report = preprocess.deduplicate(inter)
    assert report["dropped"] == 1 and report["subset"][-1] == "subsecond"
    assert deduplicated.events["subsecond"].tolist() == [100, 900]
    assert inter.local_time().iloc[1] == pd.Timestamp("1970-01-01 00:16:40.900")


def test_fractional_datetime_strings_keep_their_fraction(tmp_path):
    path = write(
        tmp_path, "user,venue,time\na,x,2012-04-03 14:00:09.800\na,y,2012-04-03 14:00:09\n"
    )
    inter = load(path, columns=COLUMNS)
    assert inter.meta["time_resolution"] == "ms"
    assert inter.events["timestamp"].tolist() == [1333461609, 1333461609]
    assert inter.events["subsecond"].tolist() == [0, 800]  # ordered within the second
    whole = load(
        write(tmp_path, "user,venue,time\na,x,2012-04-03 14:00:09\n", "b.csv"), columns=COLUMNS
    )
    assert whole.meta["time_resolution"] == "s" and not whole.has("subsecond")


def test_subsecond_needs_its_resolution():
    events = pd.DataFrame({"user": [0], "item": [0], "timestamp": [5], "subsecond": [1500]})
    tables = {"users": pd.DataFrame({"raw_id": [1]}), "items": pd.DataFrame({"raw_id": [1]})}
    with pytest.raises(DataError, match="time_resolution"):
        Interactions(events=events, **tables)
    with pytest.raises(DataError, match="outside") as info:
        Interactions(events=events, **tables, meta={"time_resolution": "ms"})
    assert info.value.column == "subsecond" and info.value.row == 0


# ----------------------------------------------------------------------------- dates, files


def test_ambiguous_day_month_needs_a_time_format(tmp_path):
    text = "user,venue,time\na,x,03/04/2012 08:00\nb,y,05/06/2012 09:00\n"
    with pytest.raises(DataError, match="ambiguous") as info:
        load(write(tmp_path, text), columns=COLUMNS)
    assert "time_format" in info.value.fix and info.value.column == "time"
    day_first = load(write(tmp_path, text, "a.csv"), columns=COLUMNS, time_format="%d/%m/%Y %H:%M")
    assert day_first.local_time().dt.month.tolist() == [4, 6]
    # one day above 12 decides: day first
    clear = load(write(tmp_path, text + "c,z,13/04/2012 10:00\n", "c.csv"), columns=COLUMNS)
    assert clear.local_time().dt.strftime("%d %m").tolist() == ["03 04", "13 04", "05 06"]


def test_plain_and_gzip_copies_are_an_error_naming_both(tmp_path):
    path = write(tmp_path, "user,venue,time\na,x,1\n")
    (tmp_path / "checkins.csv.gz").write_bytes(gzip.compress(b"user,venue,time\nb,y,2\n"))
    with pytest.raises(DataError, match="checkins.csv and checkins.csv.gz"):
        load(path, columns=COLUMNS)
    with pytest.raises(DataError, match="u.data and u.data.gz"):
        (tmp_path / "u.data").write_text("x")
        (tmp_path / "u.data.gz").write_bytes(gzip.compress(b"x"))
        find_file(tmp_path, "u.data")
    assert read_table(tmp_path / "checkins.csv.gz", COLUMNS).users["raw_id"].tolist() == ["b"]


# ----------------------------------------------------------------------------- item attributes


def test_event_values_stay_on_events_and_static_columns_are_checked(tmp_path):
    """A POI's coordinates and category are per event; only columns that are the same on every
    line of an item reach the items table (and are listed as static)."""
    text = "user,venue,time,lat,lon,cat,name\na,x,1,40.0,-74.0,Bar,Joe\nb,x,2,41.0,-74.0,Cafe,Joe\n"
    columns = {**COLUMNS, "lat": "lat", "lon": "lon", "category": "cat"}
    inter = load(write(tmp_path, text), columns=columns, item_columns={"name": "name"})
    assert list(inter.items.columns) == ["raw_id", "name"]
    assert inter.meta["static_item_columns"] == ["name"]
    assert inter.events["lat"].tolist() == [40.0, 41.0] and inter.events["category"].tolist() == [
        0,
        1,
    ]
    with pytest.raises(DataError, match="'x' has '41.0' here but '40.0'") as info:
        load(write(tmp_path, text, "b.csv"), columns=COLUMNS, item_columns={"lat": "lat"})
    assert info.value.column == "lat" and info.value.row == 3


# ----------------------------------------------------------------------------- options


def test_options_are_typed(tmp_path):
    path = write(tmp_path, "user,venue,time\na,x,1\n")
    with pytest.raises(ConfigError, match="dataset.options.timezon"):
        load(path, columns=COLUMNS, timezon="UTC")
    with pytest.raises(ConfigError, match="dataset.options.time_unit"):
        load(path, columns=COLUMNS, time_unit="minutes")
    with pytest.raises(ConfigError, match="dataset.options.path"):
        registry.load("table", columns=COLUMNS)


def test_missing_path_says_where_relative_paths_start(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="current working directory") as info:
        registry.load("table", path="data/checkins.csv", columns=COLUMNS)
    assert str(tmp_path) in str(info.value) and "absolute" in str(info.value)
    write(tmp_path, "user,venue,time\na,x,1\n")
    assert len(registry.load("table", path="checkins.csv", columns=COLUMNS)) == 1


def test_static_item_file_fills_the_items_table(tmp_path):
    """A POI file is a static table: its coordinates (not the check-ins') are item attributes;
    POIs without check-ins stay in the catalogue and missing ones are counted."""
    events = write(tmp_path, "user,venue,time,lat,lon\na,007,1,40.0,-74.0\nb,7,2,40.5,-74.5\n")
    pois = write(tmp_path, "poi,lat,lon,kind\n007,40.2,-74.2,cafe\n8,41.0,-73.0,bar\n", "pois.csv")
    columns = {**COLUMNS, "lat": "lat", "lon": "lon"}
    inter = load(
        events,
        columns=columns,
        items={
            "path": str(pois),
            "id": "poi",
            "columns": {"lat": "lat", "lon": "lon", "name": "kind"},
        },
    )
    items = inter.items.set_index("raw_id")
    assert sorted(items.index) == ["007", "7", "8"]  # "007" and "7" stay two venues
    assert items.loc["007", "lat"] == 40.2 and items.loc["8", "name"] == "bar"
    assert np.isnan(items.loc["7", "lat"])
    assert inter.events["lat"].tolist() == [40.0, 40.5]  # the check-ins keep their own
    assert inter.meta["static_item_columns"] == ["lat", "lon", "name"]
    assert inter.meta["item_table"] == {"path": str(pois), "items": 2, "event_items_missing": 1}
    duplicated = write(tmp_path, "poi,lat,lon\n8,1,1\n8,2,2\n", "dup.csv")
    with pytest.raises(DataError, match="appears twice") as info:
        load(events, columns=COLUMNS, items={"path": str(duplicated), "id": "poi", "columns": {}})
    assert info.value.row == 3 and info.value.column == "poi"
    with pytest.raises(ConfigError, match="item_columns and the item file"):
        load(
            events,
            columns=COLUMNS,
            item_columns={"lat": "lat"},
            items={"path": str(pois), "id": "poi", "columns": {"lat": "lat"}},
        )
    with pytest.raises(ConfigError, match="dataset.options.items.columns"):
        load(events, columns=COLUMNS, items={"path": str(pois), "id": "poi"})
