"""Reader for the NGCF/LightGCN implicit-feedback splits (``train.txt`` / ``test.txt``).

Each line is ``user item item ...`` (space separated, no header); ``user_list.txt`` and
``item_list.txt`` (optional) map the remapped ids back to the original ones (``org_id``).
The split has no time: every ``timestamp`` is 0.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.data.interactions import Interactions
from tgraph.data.readers._io import READ_ERRORS, unreadable
from tgraph.data.readers.stan import find_file
from tgraph.errors import DataError

PARTS = ("train", "test")
TIME_NOTE = "no timestamps in this split: timestamp is 0 for every event"


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            return handle.read().splitlines()
    except UnicodeDecodeError as error:
        raise DataError(
            f"the file is not valid utf-8: {error.reason} at byte {error.start}",
            source=str(path),
            fix="re-download the file",
        ) from error
    except READ_ERRORS as error:
        raise unreadable(path, error) from error


def read_adjacency_lists(path: Path) -> pd.DataFrame:
    """Parse ``user item item ...`` lines into ``user, item, line`` (0-based line; file order)."""
    users, items, lines = [], [], []
    for number, line in enumerate(_read_lines(path), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if not all(token.isdigit() for token in tokens):
            bad = next(token for token in tokens if not token.isdigit())
            raise DataError(
                f"line {number}: expected non-negative integer ids, found {bad!r}",
                source=str(path),
                column="user" if bad == tokens[0] else "item",
                row=number - 1,
                fix="each line must be 'user item item ...' separated by spaces",
            )
        ids = np.asarray(tokens, dtype=np.int64)
        users.append(np.full(len(ids) - 1, ids[0]))
        items.append(ids[1:])
        lines.append(np.full(len(ids) - 1, number - 1))
    if not users:
        raise DataError("the file has no interactions", source=str(path), fix="check the file")
    return pd.DataFrame(
        {
            "user": np.concatenate(users),
            "item": np.concatenate(items),
            "line": np.concatenate(lines),
        }
    )


def _read_id_list(folder: Path, name: str) -> pd.DataFrame | None:
    """``org_id`` indexed by remapped id, or ``None`` when the list file is absent."""
    if not any((folder / f).is_file() for f in (name, f"{name}.gz")):
        return None
    path = find_file(folder, name)
    lines = _read_lines(path)
    rows = [line.split() for line in lines[1:] if line.strip()]
    bad = [i for i, row in enumerate(rows) if len(row) != 2 or not row[1].isdigit()]
    if not lines or lines[0].split() != ["org_id", "remap_id"] or bad:
        row = bad[0] + 1 if bad else 0
        raise DataError(
            "expected the header 'org_id remap_id' then 'org_id remap_id' pairs",
            source=str(path),
            row=row,
            fix="use the list file shipped with the split",
        )
    table = pd.DataFrame(rows, columns=["org_id", "remap_id"])
    return table.set_index(table["remap_id"].astype(np.int64))[["org_id"]]


def read_lightgcn(folder: Path) -> dict[str, Interactions]:
    """Read ``train`` and ``test`` sharing one id space (codes equal the remapped ids).

    The catalogues are ``0..max id`` over both files (and the id lists when present), so a
    user or item that only appears in ``test`` still has a code.
    """
    folder = Path(folder)
    paths = {part: find_file(folder, f"{part}.txt") for part in PARTS}
    frames = {part: read_adjacency_lists(path) for part, path in paths.items()}
    metas = {"user": _read_id_list(folder, "user_list.txt")}
    metas["item"] = _read_id_list(folder, "item_list.txt")
    tables = {}
    for column, listed in metas.items():
        size = 1 + max(int(frame[column].max()) for frame in frames.values())
        if listed is not None:
            size = max(size, int(listed.index.max()) + 1)
        table = pd.DataFrame(index=pd.RangeIndex(size))
        tables[column] = table if listed is None else table.join(listed)
    result = {}
    for part, frame in frames.items():
        duplicated = frame.duplicated(["user", "item"]).to_numpy()
        if duplicated.any():
            user, item, line = frame.iloc[int(np.flatnonzero(duplicated)[0])]
            raise DataError(
                f"line {line + 1}: (user, item) pair ({user}, {item}) is listed twice",
                source=str(paths[part]),
                column="item",
                row=int(line),
                fix="remove repeated items from the user's line",
            )
        events = frame[["user", "item"]].assign(timestamp=np.zeros(len(frame), dtype=np.int64))
        result[part] = Interactions.from_frame(
            events,
            name=f"{folder.name}_{part}",
            source=str(paths[part]),
            user_meta=tables["user"],
            item_meta=tables["item"],
            meta={"time_note": TIME_NOTE, "has_time": False},
        )
    return result
