"""The canonical table: construction from raw ids, validation errors that name file/column/row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph.data import DataError, Interactions


def _frame(**changes):
    frame = pd.DataFrame(
        {
            "user": ["b", "a", "b", "c"],
            "item": [30, 10, 20, 10],
            "timestamp": [40, 10, 30, 20],
            "lat": [40.7, 40.8, 40.6, 40.8],
            "lon": [-74.0, -73.9, -74.1, -73.9],
        }
    )
    for column, values in changes.items():
        frame[column] = values
    return frame


def test_codes_follow_sorted_raw_ids_and_events_are_time_sorted():
    inter = Interactions.from_frame(_frame(), name="toy", source="toy.csv")
    assert inter.users["raw_id"].tolist() == ["a", "b", "c"]
    assert inter.items["raw_id"].tolist() == [10, 20, 30]
    assert inter.events["timestamp"].tolist() == [10, 20, 30, 40]
    assert inter.events["user"].tolist() == [0, 2, 1, 1]
    assert inter.events["item"].tolist() == [0, 0, 1, 2]
    assert inter.events["timestamp"].dtype == np.int64
    assert (inter.n_users, inter.n_items, len(inter)) == (3, 3, 4)
    assert inter.summary()["users"] == 3 and "toy" in repr(inter)


def test_catalogue_items_without_events_are_kept():
    meta = pd.DataFrame({"lat": [1.0, 2.0, 3.0], "lon": [4.0, 5.0, 6.0]}, index=[10, 20, 99])
    inter = Interactions.from_frame(_frame(), name="toy", item_meta=meta)
    assert inter.items["raw_id"].tolist() == [10, 20, 30, 99]
    assert inter.items.loc[3, "lat"] == 3.0 and np.isnan(inter.items.loc[2, "lat"])
    assert inter.summary()["items"] == 3 and inter.summary()["catalogue_items"] == 4


def test_local_time_uses_the_offset():
    inter = Interactions.from_frame(_frame(tz_offset=[-300] * 4), name="toy")
    assert inter.local_time().iloc[0] == pd.Timestamp(10 - 300 * 60, unit="s")


@pytest.mark.parametrize(
    ("changes", "column", "row", "match"),
    [
        ({"lat": [40.7, np.nan, 40.6, 40.8]}, "lat", 1, "finite"),
        ({"lat": [40.7, 40.8, 140.6, 40.8]}, "lat", 2, r"outside \[-90.0, 90.0\]"),
        ({"lon": [-74.0, -73.9, -74.1, 190.0]}, "lon", 3, "outside"),
        ({"timestamp": [1, 2, 2.5, 3]}, "timestamp", 2, "integers"),
        ({"timestamp": ["1", "x", "2", "3"]}, "timestamp", 1, "integers"),
        ({"category": [1, 2, None, 3]}, "category", 2, "integers"),
        ({"behaviour": ["a", None, "b", "c"]}, "behaviour", 1, "missing"),
    ],
)
def test_bad_values_name_file_column_and_row(changes, column, row, match):
    with pytest.raises(DataError, match=match) as info:
        Interactions.from_frame(_frame(**changes), name="toy", source="toy.csv")
    assert (info.value.source, info.value.column, info.value.row) == ("toy.csv", column, row)
    assert "toy.csv" in str(info.value) and info.value.fix


def test_structural_errors():
    with pytest.raises(DataError, match="missing required column") as info:
        Interactions.from_frame(_frame().drop(columns="timestamp"), name="t", source="f.csv")
    assert info.value.column == "timestamp"
    with pytest.raises(DataError, match="unknown column") as info:
        Interactions.from_frame(_frame(rating=[1, 2, 3, 4]), name="t")
    assert info.value.column == "rating"
    with pytest.raises(DataError, match="empty"):
        Interactions.from_frame(_frame().iloc[:0], name="t")
    with pytest.raises(DataError, match="missing id") as info:
        Interactions.from_frame(_frame(user=["a", None, "b", "c"]), name="t")
    assert info.value.row == 1
    inter = Interactions.from_frame(_frame(), name="t")
    with pytest.raises(DataError, match="outside"):
        inter.with_events(inter.events.assign(item=[0, 1, 2, 3]))
