"""Readers: published counts on the real data, hand-computed small files, and bad input."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from tgraph.data.readers import read_gowalla_mat, read_movielens_100k, read_table, read_tsmc
from tgraph.data.readers.mat import WEEK0
from tgraph.data.readers.tsmc import TIME_FORMAT, parse_utc_time
from tgraph.errors import DataError, DatasetNotFoundError

# ----------------------------------------------------------------------------- TSMC

TSMC_LINES = [
    "470\t49bbd6c0f964a520f4531fe3\t4bf58dd8d48988d127951735\tArts & Crafts Store\t"
    "40.719810375488535\t-74.00258103213994\t-240\tTue Apr 03 18:00:09 +0000 2012",
    "979\t4a43c0aef964a520c6a61fe3\t4bf58dd8d48988d1df941735\tBridge\t"
    "40.60679958140643\t-74.04416981025437\t-240\tTue Apr 03 18:00:25 +0000 2012",
    "69\t4c5cc7b485a1e21e00d35711\t4bf58dd8d48988d1e0931735\tCaf\u00e9\t"
    "40.7161\t-73.8836\t540\tTue Apr 03 18:02:24 +0000 2012",
    "470\t49bbd6c0f964a520f4531fe3\t4bf58dd8d48988d127951735\tArts & Crafts Store\t"
    "40.719810375488600\t-74.00258103214000\t-300\tSun Nov 04 06:30:00 +0000 2012",
]


def write_tsmc(path, lines=TSMC_LINES, gz=False):
    data = ("\n".join(lines) + "\n").encode("latin-1")
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def test_tsmc_small_file(tmp_path):
    data = read_tsmc(write_tsmc(tmp_path / "dataset_TSMC2014_NYC.txt"))
    events = data.events
    assert len(data) == 4 and data.n_users == 3 and data.n_items == 3
    expected = [
        datetime(2012, 4, 3, 18, 0, 9, tzinfo=UTC),
        datetime(2012, 4, 3, 18, 0, 25, tzinfo=UTC),
        datetime(2012, 4, 3, 18, 2, 24, tzinfo=UTC),
        datetime(2012, 11, 4, 6, 30, 0, tzinfo=UTC),
    ]
    assert events["timestamp"].tolist() == [int(t.timestamp()) for t in expected]
    assert events["timestamp"].tolist()[0] == 1333476009
    for column, dtype in [("user", np.int64), ("item", np.int64), ("timestamp", np.int64)]:
        assert events[column].dtype == dtype
    assert events["tz_offset"].tolist() == [-240, -240, 540, -300]
    local = data.local_time()
    assert str(local[0]) == "2012-04-03 14:00:09"  # UTC-4 (EDT)
    assert str(local[2]) == "2012-04-04 03:02:24"  # UTC+9
    assert str(local[3]) == "2012-11-04 01:30:00"  # UTC-5 (EST)
    assert data.users["raw_id"].tolist() == [69, 470, 979]
    assert events["user"].map(data.users["raw_id"]).tolist() == [470, 979, 69, 470]
    np.testing.assert_allclose(
        events["lat"], [40.719810375488535, 40.60679958140643, 40.7161, 40.7198103754886]
    )
    # no item attributes aggregated over all events (they would leak test events): the
    # coordinates and categories stay on the check-ins
    assert list(data.items.columns) == ["raw_id"]
    assert not data.meta.get("static_item_columns")
    categories = data.meta["categories"]
    assert categories["raw_id"].is_monotonic_increasing and len(categories) == 3
    assert categories.loc[events["category"].iloc[2], "name"] == "Caf\u00e9"


def test_tsmc_gzip_equals_plain(tmp_path):
    plain = read_tsmc(write_tsmc(tmp_path / "a.txt"))
    (tmp_path / "gz").mkdir()
    write_tsmc(tmp_path / "gz" / "a.txt", gz=True)
    zipped = read_tsmc(tmp_path / "gz" / "a.txt")  # found as a.txt.gz
    pd.testing.assert_frame_equal(plain.events, zipped.events)
    pd.testing.assert_frame_equal(plain.items, zipped.items)


@pytest.mark.parametrize(
    ("line_index", "bad", "column", "message"),
    [
        (1, "\t".join(TSMC_LINES[1].split("\t") + ["extra"]), None, "expected 8"),
        (1, TSMC_LINES[1].replace("40.60679958140643", "91.5"), "latitude", "outside"),
        (1, TSMC_LINES[1].replace("40.60679958140643", "nan"), "latitude", "finite"),
        (1, TSMC_LINES[1].replace("-74.04416981025437", "-200"), "longitude", "outside"),
        (2, TSMC_LINES[2].replace("Tue Apr 03", "Tue Apr 33"), "utc_time", "cannot parse"),
        (2, TSMC_LINES[2].replace("\t540\t", "\tabc\t"), "tz_offset", "integer"),
        (2, TSMC_LINES[2].replace("\t540\t", "\t9999\t"), "tz_offset", "outside"),
        (3, "470\t\t" + TSMC_LINES[3].split("\t", 2)[2], "venue_id", "empty"),
        (3, "470\tabc", "category_id", "empty"),
    ],
)
def test_tsmc_bad_rows(tmp_path, line_index, bad, column, message):
    lines = list(TSMC_LINES)
    lines[line_index] = bad
    path = write_tsmc(tmp_path / "bad.txt", lines)
    with pytest.raises(DataError) as info:
        read_tsmc(path)
    err = info.value
    assert err.source == str(path)
    assert err.row == line_index + 1  # 1-based file line
    assert err.column == column
    assert message in str(err) and err.fix


def test_tsmc_blank_lines_keep_line_numbers(tmp_path, caplog):
    lines = [TSMC_LINES[0], "", TSMC_LINES[1], TSMC_LINES[2].replace("40.7161", "x")]
    with pytest.raises(DataError) as info:
        read_tsmc(write_tsmc(tmp_path / "a.txt", lines))
    assert info.value.row == 4 and info.value.column == "latitude"
    with caplog.at_level("INFO"):
        data = read_tsmc(write_tsmc(tmp_path / "b.txt", [TSMC_LINES[0], "", TSMC_LINES[1]]))
    assert len(data) == 2 and "skipped 1 blank line" in caplog.text
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        read_tsmc(tmp_path / "empty.txt")


def test_tsmc_time_parser_matches_strptime():
    """The positional parser agrees with pandas' strptime on random times and offsets."""
    rng = np.random.default_rng(0)
    seconds = rng.integers(946_684_800, 1_893_456_000, size=2_000)  # 2000 .. 2030
    offsets = rng.choice([0, 330, -345, 540, -600, 840, -720], size=2_000)
    local = pd.to_datetime(seconds, unit="s") + pd.to_timedelta(offsets, unit="min")
    signs = np.where(offsets < 0, "-", "+")
    hhmm = [f"{s}{abs(o) // 60:02d}{abs(o) % 60:02d}" for s, o in zip(signs, offsets)]
    raw = pd.Series(
        [f"{t.strftime('%a %b %d %H:%M:%S')} {z} {t.year}" for t, z in zip(local, hhmm)]
    )
    ours = parse_utc_time(raw, np.arange(1, 2_001), "x")
    np.testing.assert_array_equal(ours, seconds)
    oracle = pd.to_datetime(raw, format=TIME_FORMAT, utc=True)
    np.testing.assert_array_equal(ours, (oracle - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1s"))


@pytest.mark.parametrize(
    "bad",
    [
        "Tue Foo 03 18:00:09 +0000 2012",
        "Tue Apr 03 25:00:09 +0000 2012",
        "Tue Apr 03 18:60:09 +0000 2012",
        "Thu Feb 30 18:00:09 +0000 2012",
        "Tue Apr 03 18:00:09 0000 2012",
        "Tue Apr 03 18:00:09 +0000 20121",
        "Tue Apr 3 18:00:09 +0000 2012",
        "2012-04-03 18:00:09",
        "",
    ],
)
def test_tsmc_time_parser_rejects(bad):
    raw = pd.Series(["Tue Apr 03 18:00:09 +0000 2012", bad])
    with pytest.raises(DataError, match="cannot parse the time") as info:
        parse_utc_time(raw, np.array([7, 8]), "f.txt")
    assert info.value.row == 8 and info.value.column == "utc_time"


def test_tsmc_missing_file(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nope.txt"):
        read_tsmc(tmp_path / "nope.txt")


# ----------------------------------------------------------------------------- MovieLens


@pytest.fixture(scope="module")
def movielens(root):
    return read_movielens_100k(root / "movielens_100k")


def test_movielens_counts(movielens):
    data = movielens
    assert len(data) == 100_000 and data.n_users == 943 and data.n_items == 1_682
    assert data.events["user"].nunique() == 943 and data.events["item"].nunique() == 1_682
    assert data.events.groupby("user").size().min() == 20
    start = datetime.fromtimestamp(data.events["timestamp"].min(), UTC)
    end = datetime.fromtimestamp(data.events["timestamp"].max(), UTC)
    assert str(start) == "1997-09-20 03:05:10+00:00" and str(end) == "1998-04-22 23:10:38+00:00"
    counts = data.events["weight"].value_counts().sort_index()
    assert counts.tolist() == [6_110, 11_370, 27_145, 34_174, 21_201]
    assert counts.index.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_movielens_tables(movielens):
    items = movielens.items.set_index("raw_id")
    toy = items.loc[1]
    assert toy["title"] == "Toy Story (1995)"
    assert toy["genres"] == "Animation|Children's|Comedy"
    assert toy["category"] == 3  # Animation, the first flag
    assert toy["release_date"] == pd.Timestamp("1995-01-01")
    assert pd.isna(items.loc[267, "release_date"]) and items.loc[267, "category"] == 0
    assert items["title"].str.contains("\u00e9").any()  # latin-1 titles decoded
    users = movielens.users.set_index("raw_id")
    assert users.loc[1, ["age", "gender", "occupation", "zip_code"]].tolist() == [
        24,
        "M",
        "technician",
        "85711",
    ]
    assert users["age"].dtype == np.int64
    assert not users["zip_code"].str.fullmatch(r"\d{5}").all()  # Canadian postal codes kept


@pytest.mark.parametrize(
    ("split", "train", "test"),
    [
        *((f"u{k}", 80_000, 20_000) for k in range(1, 6)),
        ("ua", 90_570, 9_430),
        ("ub", 90_570, 9_430),
    ],
)
def test_movielens_splits(root, movielens, split, train, test):
    parts = read_movielens_100k(root / "movielens_100k", split=split)
    assert len(parts["train"]) == train and len(parts["test"]) == test
    for part in parts.values():  # shared id maps
        pd.testing.assert_frame_equal(part.items, movielens.items)
        pd.testing.assert_frame_equal(part.users, movielens.users)
    key = ["user", "item", "timestamp", "weight"]
    both = pd.concat([parts["train"].events, parts["test"].events])
    assert not both.duplicated(key).any()  # disjoint
    pd.testing.assert_frame_equal(
        both[key].sort_values(key).reset_index(drop=True),
        movielens.events[key].sort_values(key).reset_index(drop=True),
    )
    if split in ("ua", "ub"):
        assert (parts["test"].events.groupby("user").size() == 10).all()


def write_movielens(folder, data=None, item=None, user=None):
    folder.mkdir(exist_ok=True)
    flags = "|".join(["0"] * 5 + ["1"] + ["0"] * 13)
    item = item or [f"1|A (1995)|01-Jan-1995||http://x|{flags}", f"2|B (1996)|||http://y|{flags}"]
    user = user or ["1|24|M|technician|85711", "2|53|F|other|T8H1N"]
    data = data or ["1\t1\t5\t874965758", "2\t2\t3\t876893171", "1\t2\t4\t878542960"]
    for name, lines in (("u.item", item), ("u.user", user), ("u.data", data)):
        (folder / name).write_text("\n".join(lines) + "\n", encoding="latin-1")
    return folder


def test_movielens_small_folder(tmp_path):
    data = read_movielens_100k(write_movielens(tmp_path / "ml"))
    assert data.events["timestamp"].tolist() == [874965758, 876893171, 878542960]
    assert data.events["weight"].tolist() == [5.0, 3.0, 4.0]
    assert (
        data.items["category"].tolist() == [5, 5]
        and data.items["genres"].tolist() == ["Comedy"] * 2
    )
    with pytest.raises(KeyError, match="u9"):
        read_movielens_100k(tmp_path / "ml", split="u9")


@pytest.mark.parametrize(
    ("kind", "lines", "file", "column", "row", "message"),
    [
        ("data", ["1\t1\t5\t874965758", "2\t2\t6\t876893171"], "u.data", "rating", 2, "outside"),
        ("data", ["1\t1\t5\t874965758", "2\t3\t3\t876893171"], "u.data", "item_id", 2, "not in"),
        ("data", ["1\t1\t5\t874965758", "9\t1\t3\t876893171"], "u.data", "user_id", 2, "not in"),
        ("data", ["1\t1\t5\tyesterday"], "u.data", "timestamp", 1, "integer"),
        ("data", ["1\t1\t5"], "u.data", "timestamp", 1, "integer"),
        ("data", ["1\t1\t5\t1\t7"], "u.data", None, 1, "expected 4"),
        (
            "user",
            ["1|24|M|technician|85711", "1|30|F|other|11111"],
            "u.user",
            "user_id",
            2,
            "twice",
        ),
        ("user", ["1|old|M|technician|85711"], "u.user", "age", 1, "integer"),
        (
            "item",
            ["1|A (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18)],
            "u.item",
            "Western",
            1,
            "integer",
        ),
        ("item", ["1|A|d||u|" + "|".join(["2"] * 19)], "u.item", "unknown", 1, "outside"),
    ],
)
def test_movielens_bad_input(tmp_path, kind, lines, file, column, row, message):
    folder = write_movielens(tmp_path / "ml", **{kind: lines})
    with pytest.raises(DataError) as info:
        read_movielens_100k(folder)
    err = info.value
    assert err.source == str(folder / file) and err.column == column and err.row == row
    assert message in str(err) and err.fix


# ----------------------------------------------------------------------------- MAT Gowalla


@pytest.fixture(scope="module")
def mat(root):
    return read_gowalla_mat(root / "gowalla_mat")


@pytest.fixture(scope="module")
def mat_raw(root):
    files = [root / "gowalla_mat" / f"specific_{p}.csv.gz" for p in ("train", "test")]
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def test_mat_counts(mat):
    train, test = mat["train"], mat["test"]
    assert len(train) == 66_428 and len(test) == 31_730
    both = pd.concat([train.events, test.events])
    assert len(both) == 98_158
    assert both["trajectory"].nunique() == 5_329
    assert (
        train.events["trajectory"].nunique() == 3_601
        and test.events["trajectory"].nunique() == 1_728
    )
    assert both["user"].nunique() == 300 and train.n_users == 300
    assert both["item"].nunique() == 24_374 and train.n_items == 24_374
    assert set(train.events["user"]) == set(test.events["user"])
    assert not set(train.events["trajectory"]) & set(test.events["trajectory"])
    sizes = both.groupby("trajectory").size()
    assert sizes.min() == 10 and sizes.max() == 50
    pd.testing.assert_frame_equal(train.items, test.items)
    assert read_gowalla_mat(train.source.rsplit("/", 1)[0], part="test").events.equals(test.events)


def test_mat_time_keeps_weekday_minute_and_order(mat, mat_raw):
    events = pd.concat([mat["train"].events, mat["test"].events], ignore_index=True)
    local = pd.to_datetime(events["timestamp"], unit="s")
    # weekday and minute of day decode to the file's values, trajectory by trajectory, in order
    ours = pd.DataFrame(
        {
            "tid": events["trajectory"],
            "poi": mat["train"].items["raw_id"].to_numpy()[events["item"]],
            "day": local.dt.day_name(),
            "time": local.dt.hour * 60 + local.dt.minute,
        }
    )
    ours = ours.iloc[np.argsort(ours["tid"].to_numpy(), kind="stable")].reset_index(drop=True)
    raw = mat_raw.iloc[np.argsort(mat_raw["tid"].to_numpy(), kind="stable")].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, raw[["tid", "poi", "day", "time"]], check_dtype=False)
    # a user's trajectories do not overlap in time
    spans = (
        events.groupby(["user", "trajectory"])["timestamp"].agg(["min", "max"]).sort_values("min")
    )
    for _, user_spans in spans.groupby(level="user"):
        assert (user_spans["min"].to_numpy()[1:] > user_spans["max"].to_numpy()[:-1]).all()
    assert events["timestamp"].min() >= WEEK0


def test_mat_coordinates(mat, mat_raw):
    events = pd.concat([mat["train"].events, mat["test"].events], ignore_index=True)
    assert events["lat"].dtype == np.float64 and events["lon"].dtype == np.float64
    space = mat_raw["space"].str.split(" ", expand=True).astype(float)
    for ours, theirs in ((events["lat"], space[0]), (events["lon"], space[1])):
        np.testing.assert_array_equal(np.sort(ours.to_numpy()), np.sort(theirs.to_numpy()))
    assert list(mat["train"].items.columns) == ["raw_id"]  # coordinates stay on the events


MAT_HEADER = "space,time,day,poi,tid,label"


def write_mat(folder, train=None, test=None):
    folder.mkdir(exist_ok=True)
    train = train or [
        "40.0 -74.0,600,Friday,11,5,1",
        "40.1 -74.1,1380,Sunday,12,5,1",
        "40.2 -74.2,60,Monday,11,5,1",
        "40.3 -74.3,480,Tuesday,13,7,1",
    ]
    test = test or ["35.0 139.0,0,Wednesday,14,3,2", "35.1 139.1,1439,Wednesday,14,3,2"]
    for name, lines in (("specific_train.csv", train), ("specific_test.csv", test)):
        (folder / name).write_text("\n".join([MAT_HEADER, *lines]) + "\n")
    return folder


def test_mat_synthetic_time_by_hand(tmp_path):
    parts = read_gowalla_mat(write_mat(tmp_path / "mat"))
    week = 7 * 86400
    train = parts["train"].events
    # tid 5: Fri 10:00, Sun 23:00, then Mon 01:00 of the next week; tid 7 starts in week 2
    assert train["timestamp"].tolist() == [
        WEEK0 + 4 * 86400 + 600 * 60,
        WEEK0 + 6 * 86400 + 1380 * 60,
        WEEK0 + week + 60 * 60,
        WEEK0 + 2 * week + 86400 + 480 * 60,
    ]
    assert train["trajectory"].tolist() == [5, 5, 5, 7]
    test = parts["test"].events
    assert test["timestamp"].tolist() == [WEEK0 + 2 * 86400, WEEK0 + 2 * 86400 + 1439 * 60]
    assert str(pd.Timestamp(WEEK0, unit="s").day_name()) == "Monday"
    assert list(parts["train"].items.columns) == ["raw_id"]


@pytest.mark.parametrize(
    ("train", "column", "row", "message", "file"),
    [
        (["91.0 -74.0,600,Friday,11,5,1"], "space (lat)", 2, "outside", "train"),
        (["40.0,600,Friday,11,5,1"], "space (lon)", 2, "finite", "train"),
        (["40.0 abc,600,Friday,11,5,1"], "space (lon)", 2, "finite", "train"),
        (["40.0 -74.0,600,Funday,11,5,1"], "day", 2, "weekday", "train"),
        (["40.0 -74.0,1440,Friday,11,5,1"], "time", 2, "outside", "train"),
        (["40.0 -74.0,600,Friday,x,5,1"], "poi", 2, "integer", "train"),
        (
            ["40.0 -74.0,600,Friday,11,5,1", "40.0 -74.0,600,Friday,11,5,2"],
            "tid",
            3,
            "users",
            "train",
        ),
        (["40.0 -74.0,600,Friday,11,3,2"], "tid", 2, "files", "test"),
    ],
)
def test_mat_bad_input(tmp_path, train, column, row, message, file):
    folder = write_mat(tmp_path / "mat", train=train)
    with pytest.raises(DataError) as info:
        read_gowalla_mat(folder)
    err = info.value
    assert err.column == column and err.row == row and message in str(err) and err.fix
    assert err.source == str(folder / f"specific_{file}.csv")


def test_mat_missing_column(tmp_path):
    folder = write_mat(tmp_path / "mat")
    (folder / "specific_test.csv").write_text("space,time,day,poi,label\n1 1,1,Monday,1,1\n")
    with pytest.raises(DataError, match="missing column") as info:
        read_gowalla_mat(folder)
    assert info.value.column == "tid"


# ----------------------------------------------------------------------------- generic


def test_generic_csv_with_local_times(tmp_path):
    path = tmp_path / "checkins.csv"
    path.write_text(
        "uid,venue,when,latitude,longitude,cat,name\n"
        "u1,v1,2012-04-03 14:00:09,40.7,-74.0,Bar,Joe's\n"
        "u2,v2,2012-11-04 01:30:00,40.8,-73.9,Cafe,Lou\n"
        "u1,v2,2012-07-01 12:00:00,40.6,-73.9,Cafe,Lou\n"
    )
    data = read_table(
        path,
        {
            "user": "uid",
            "item": "venue",
            "timestamp": "when",
            "lat": "latitude",
            "lon": "longitude",
            "category": "cat",
        },
        time_format="%Y-%m-%d %H:%M:%S",
        timezone="America/New_York",
        item_columns={"name": "name"},
    )
    # EDT = UTC-4 in April and July; 01:30 on 2012-11-04 is the repeated hour, read as EST
    assert data.events["timestamp"].tolist() == [1333476009, 1341158400, 1352010600]
    assert data.events["category"].tolist() == [0, 1, 1]
    assert data.meta["categories"].tolist() == ["Bar", "Cafe"]
    items = data.items.set_index("raw_id")
    assert items.loc["v2", "name"] == "Lou" and "lat" not in items.columns
    assert data.meta["static_item_columns"] == ["name"]
    # a timezone gives every event its offset: EDT (-240) in April and July, EST after
    assert data.events["tz_offset"].tolist() == [-240, -240, -300]
    assert data.local_time().dt.hour.tolist() == [14, 12, 1]
    assert data.name == "checkins"


def test_generic_unix_ms_gzip_and_parquet(tmp_path):
    frame = pd.DataFrame(
        {
            "u": [3, 1, 3],
            "i": [10, 20, 10],
            "t": [1_000_500, 2_000_000, 3_000_999],
            "r": [1.0, 2.0, 3.5],
        }
    )
    with gzip.open(tmp_path / "a.tsv.gz", "wt") as handle:
        frame.to_csv(handle, sep="\t", index=False)
    frame.to_parquet(tmp_path / "a.parquet")
    mapping = {"user": "u", "item": "i", "timestamp": "t", "weight": "r"}
    text = read_table(tmp_path / "a.tsv", mapping, time_unit="ms")
    table = read_table(tmp_path / "a.parquet", mapping, time_unit="ms")
    for data in (text, table):
        assert data.events["timestamp"].tolist() == [1000, 2000, 3000]
        assert data.users["raw_id"].tolist() == [1, 3]  # integer ids, numeric order
        assert data.events["weight"].tolist() == [1.0, 2.0, 3.5]
    pd.testing.assert_frame_equal(text.events, table.events)
    frame.loc[1, "t"] = -5  # a negative epoch is fine; float or missing ids are not
    frame["u"] = [3.0, 1.0, 3.0]  # floats hold ids exactly only below 2**53: refused
    frame.to_parquet(tmp_path / "b.parquet")
    with pytest.raises(DataError, match="floating-point") as info:
        read_table(tmp_path / "b.parquet", mapping)
    assert info.value.column == "u" and info.value.fix
    frame["u"] = ["a", "b", None]
    frame.to_parquet(tmp_path / "c.parquet")
    with pytest.raises(DataError, match="empty") as info:
        read_table(tmp_path / "c.parquet", mapping)
    assert info.value.column == "u" and info.value.row == 2


@pytest.mark.parametrize(
    ("mapping", "content", "options", "column", "row", "message"),
    [
        (
            {"user": "u", "item": "i", "timestamp": "t", "venue": "i"},
            "u,i,t\n1,2,3\n",
            {},
            "venue",
            None,
            "unknown tgraph column",
        ),
        ({"user": "u", "item": "i"}, "u,i,t\n1,2,3\n", {}, "timestamp", None, "lacks"),
        (
            {"user": "u", "item": "i", "timestamp": "time"},
            "u,i,t\n1,2,3\n",
            {},
            "time",
            None,
            "missing column",
        ),
        (
            {"user": "u", "item": "i", "timestamp": "t"},
            "u,i,t\n1,2,3\n1,2,x\n",
            {},
            "t",
            3,
            "integer",
        ),
        (
            {"user": "u", "item": "i", "timestamp": "t"},
            "u,i,t\n1,2,2012-01-01\n1,2,2012-13-01\n",
            {"time_format": "%Y-%m-%d"},
            "t",
            3,
            "cannot parse",
        ),
        (
            {"user": "u", "item": "i", "timestamp": "t", "lat": "a"},
            "u,i,t,a\n1,2,3,4\n",
            {},
            "lon",
            None,
            "only one",
        ),
        (
            {"user": "u", "item": "i", "timestamp": "t", "lat": "a", "lon": "b"},
            "u,i,t,a,b\n1,2,3,4,5\n1,2,3,,5\n",
            {},
            "a",
            3,
            "finite",
        ),
        ({"user": "u", "item": "i", "timestamp": "t"}, "u,i,t\n1,,3\n", {}, "i", 2, "empty"),
        (
            {"user": "u", "item": "i", "timestamp": "t"},
            "u,i,t\n1,2,2012-01-01\n",
            {"time_format": "infer", "timezone": "Mars/Base"},
            "t",
            None,
            "timezone",
        ),
    ],
)
def test_generic_bad_input(tmp_path, mapping, content, options, column, row, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        read_table(path, mapping, **options)
    err = info.value
    assert err.column == column and err.row == row and message in str(err) and err.fix
    assert err.source == str(path)
