"""Damaged files name themselves: a ``.gz`` that is not gzip, one cut short or corrupt, and a
header naming a column twice raise :class:`DataError` with the file and the fix (issue 10)."""

from __future__ import annotations

import gzip

import pytest

from tests.data.test_readers import TSMC_LINES
from tgraph.data.readers import read_table, read_tsmc
from tgraph.data.readers.getnext import read_getnext_csv
from tgraph.data.readers.lightgcn import read_adjacency_lists
from tgraph.errors import DataError

COLUMNS = {"user": "user", "item": "item", "timestamp": "timestamp"}
GETNEXT_HEADER = "user_id,POI_id,POI_catid_code,latitude,longitude,timezone,trajectory_id,UTC_time"
GETNEXT_ROW = "1,v1,3,40.7,-74.0,-240,1_1,2012-04-03 18:00:09+00:00"


def _csv(rows: int = 3000) -> str:
    return "user,item,timestamp\n" + "".join(f"{i % 7},{i % 11},{i}\n" for i in range(rows))


#: name -> (file name, plain text, reader)
READERS = {
    "csv": ("events.csv.gz", _csv(), lambda p: read_table(p, COLUMNS)),
    "tsv": ("events.tsv.gz", _csv().replace(",", "\t"), lambda p: read_table(p, COLUMNS)),
    "tsmc": ("tsmc.txt.gz", "\n".join(TSMC_LINES * 500) + "\n", read_tsmc),
    "getnext": (
        "NYC_train.csv.gz",
        GETNEXT_HEADER + "\n" + (GETNEXT_ROW + "\n") * 3000,
        read_getnext_csv,
    ),
    "lightgcn": (
        "train.txt.gz",
        "".join(f"{u} {u + 1} {u + 2}\n" for u in range(3000)),
        read_adjacency_lists,
    ),
}


def _damaged(kind: str, text: str) -> bytes:
    data = gzip.compress(text.encode("latin-1"))
    if kind == "not_gzip":  # a plain file that merely carries the .gz suffix
        return text.encode("latin-1")
    if kind == "cut_short":  # an interrupted download or copy
        return data[: len(data) // 2]
    # "corrupt": the CRC of the trailer no longer matches the data (bit rot, a bad copy)
    return data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("not_gzip", "the name ends in .gz but the file is not gzip-compressed"),
        ("cut_short", "the gzip data is cut short or corrupt"),
        ("corrupt", "the gzip data is cut short or corrupt"),
    ],
)
def test_damaged_gzip_names_the_file(tmp_path, reader, kind, problem):
    """Before: gzip.BadGzipFile, EOFError or zlib.error from deep inside pandas, no file name
    (the GETNext and LightGCN readers said only "cannot read")."""
    name, text, read = READERS[reader]
    path = tmp_path / name
    path.write_bytes(_damaged(kind, text))
    with pytest.raises(DataError) as caught:
        read(path)
    message = str(caught.value)
    assert message.startswith(f"file {path}: {problem}"), message
    assert "(fix: re-download" in message


@pytest.mark.parametrize(
    ("name", "text", "column"),
    [
        ("events.csv", "user,item,timestamp,item\n1,2,3,4\n", "item"),
        ("events.tsv", "user\titem\ttimestamp\tuser\n1\t2\t3\t4\n", "user"),
        ("events.csv.gz", "timestamp,user,item,timestamp\n1,2,3,4\n", "timestamp"),
    ],
)
def test_duplicate_header_column_names_the_file(tmp_path, name, text, column):
    """Before: accepted, and each lookup of the repeated name returned two columns."""
    path = tmp_path / name
    data = text.encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError) as caught:
        read_table(path, COLUMNS)
    assert str(caught.value) == (
        f"file {path}, column '{column}', row 1: the header names the column '{column}' twice "
        "(fix: rename or remove one of the two columns)"
    )


def test_duplicate_header_column_in_a_getnext_csv(tmp_path):
    """Before: pandas renamed the second 'latitude' to 'latitude.1' and the file was read."""
    path = tmp_path / "NYC_train.csv"
    path.write_text(GETNEXT_HEADER + ",latitude\n" + GETNEXT_ROW + ",41.0\n")
    with pytest.raises(DataError, match=r"NYC_train.csv, column 'latitude', row 1: .* twice"):
        read_getnext_csv(path)
