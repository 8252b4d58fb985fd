"""MovieLens-100K (GroupLens ``ml-100k``): ratings, movie and user tables, official splits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.data.readers import _io

#: genre flags of ``u.item`` in file order (the code of a genre is its position here)
GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
#: the official splits: u1..u5 (5-fold 80/20) and ua/ub (10 test ratings per user)
SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
RATING_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
ITEM_COLUMNS = ("item_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES)
USER_COLUMNS = ("user_id", "age", "gender", "occupation", "zip_code")


def read_movielens_100k(
    folder: str | os.PathLike, *, split: str | None = None
) -> Interactions | dict[str, Interactions]:
    """Read ``u.data`` (or an official split) with the ``u.item`` and ``u.user`` tables.

    Events: ``user``, ``item``, ``timestamp`` (UTC seconds) and ``weight`` (rating 1..5).
    Items (1,682): ``raw_id``, ``title``, ``release_date`` (datetime, NaT when unknown),
    ``imdb_url``, ``genres`` (``|``-joined names) and ``category`` (code of the first genre
    flag, see :data:`GENRES`; 0 = "unknown" when no flag is set). Users (943): ``raw_id``,
    ``age``, ``gender``, ``occupation``, ``zip_code`` (a string: some are Canadian postal
    codes).

    With ``split`` in :data:`SPLITS` returns ``{"train": <split>.base, "test": <split>.test}``;
    both parts carry the full catalogue, so their codes agree.
    """
    folder = Path(folder)
    items = read_items(folder / "u.item")
    users = read_users(folder / "u.user")
    if split is None:
        return _read_ratings(folder / "u.data", items, users, "movielens_100k")
    if split not in SPLITS:
        raise KeyError(f"unknown MovieLens-100K split {split!r}; choose one of {SPLITS}")
    return {
        part: _read_ratings(folder / f"{split}.{ext}", items, users, f"movielens_100k_{split}")
        for part, ext in (("train", "base"), ("test", "test"))
    }


def read_items(path: str | os.PathLike) -> pd.DataFrame:
    """``u.item`` as a table indexed by movie id (see :func:`read_movielens_100k`)."""
    path = _io.resolve(path)
    source = str(path)
    frame, lines = _io.read_delimited(
        path,
        sep="|",
        names=ITEM_COLUMNS,
        encoding="latin-1",
        fix="each line needs 24 '|'-separated fields (id, title, dates, URL, 19 genre flags)",
    )
    ids = _io.parse_int(frame, "item_id", lines, source, low=1)
    flags = np.stack(
        [_io.parse_int(frame, genre, lines, source, low=0, high=1) for genre in GENRES], axis=1
    )
    names = np.array(GENRES, dtype=object)
    table = pd.DataFrame(
        {
            "title": frame["title"].to_numpy(),
            "release_date": pd.to_datetime(
                frame["release_date"], format="%d-%b-%Y", errors="coerce"
            ).to_numpy(),
            "imdb_url": frame["imdb_url"].to_numpy(),
            "genres": ["|".join(names[row.astype(bool)]) for row in flags],
            "category": flags.argmax(axis=1).astype(np.int64),
        },
        index=pd.Index(ids, name="item_id"),
    )
    _check_unique(table.index, lines, "item_id", source)
    return table


def read_users(path: str | os.PathLike) -> pd.DataFrame:
    """``u.user`` as a table indexed by user id (see :func:`read_movielens_100k`)."""
    path = _io.resolve(path)
    source = str(path)
    frame, lines = _io.read_delimited(
        path,
        sep="|",
        names=USER_COLUMNS,
        encoding="latin-1",
        fix="each line needs 5 '|'-separated fields: id, age, gender, occupation, zip code",
    )
    ids = _io.parse_int(frame, "user_id", lines, source, low=1)
    table = pd.DataFrame(
        {
            "age": _io.parse_int(frame, "age", lines, source, low=0, high=150),
            "gender": _io.require_text(frame, "gender", lines, source).to_numpy(),
            "occupation": _io.require_text(frame, "occupation", lines, source).to_numpy(),
            "zip_code": _io.require_text(frame, "zip_code", lines, source).to_numpy(),
        },
        index=pd.Index(ids, name="user_id"),
    )
    _check_unique(table.index, lines, "user_id", source)
    return table


def _read_ratings(path: Path, items: pd.DataFrame, users: pd.DataFrame, name: str) -> Interactions:
    path = _io.resolve(path)
    source = str(path)
    frame, lines = _io.read_delimited(
        path,
        sep="\t",
        names=RATING_COLUMNS,
        fix="each line needs 4 tab-separated fields: user id, item id, rating, timestamp",
    )
    events = pd.DataFrame(
        {
            "user": _io.parse_int(frame, "user_id", lines, source),
            "item": _io.parse_int(frame, "item_id", lines, source),
            "timestamp": _io.parse_int(frame, "timestamp", lines, source, low=0),
            "weight": _io.parse_int(frame, "rating", lines, source, low=1, high=5).astype(float),
        }
    )
    for column, table, other in (("user", users, "u.user"), ("item", items, "u.item")):
        _io.fail_at(
            ~events[column].isin(table.index).to_numpy(),
            events[column],
            f"{column} id {{value}} is not in {other}",
            column=f"{column}_id",
            lines=lines,
            source=source,
            fix=f"use the {other} file of the same MovieLens release",
        )
    return Interactions.from_frame(
        events,
        name=name,
        source=source,
        item_meta=items,
        user_meta=users,
        meta={
            "genres": GENRES,
            "time_resolution": "s",
            "static_item_columns": list(items.columns),  # from u.item, not from ratings
        },
    )


def _check_unique(index: pd.Index, lines: np.ndarray, column: str, source: str) -> None:
    _io.fail_at(
        index.duplicated(),
        index.to_numpy(),
        "id {value} appears twice",
        column=column,
        lines=lines,
        source=source,
        fix="remove the duplicate line",
    )
