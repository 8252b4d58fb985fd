"""The append-only event log that makes ingestion durable.

Every accepted batch is written as one JSON line ``{"events": [...]}`` and ``fsync``-ed before
the session applies it and the server acknowledges it, so a process killed at any moment
restarts (:meth:`EventLog.replay`) with every acknowledged event. A kill during a write can
leave a last line without its newline (never acknowledged): replay drops it and truncates the
file there, so the next append starts on a clean line. Any other unreadable line is corruption
and raises :class:`~tgraph.errors.DataError` naming the line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tgraph.errors import DataError

__all__ = ["EventLog"]


class EventLog:
    """Batches of event records appended to ``path`` (JSON lines, fsync per batch)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: Any = None

    def replay(self) -> Iterator[list[dict[str, Any]]]:
        """Every complete batch in the log, oldest first (a torn last line is dropped and cut
        off the file)."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            with open(self.path, "r+b") as file:
                file.truncate(end)
                file.flush()
                os.fsync(file.fileno())
        for number, line in enumerate(data[:end].splitlines(), start=1):
            try:
                batch = json.loads(line)["events"]
            except (ValueError, KeyError, TypeError):
                raise DataError(
                    "the event log has an unreadable line",
                    source=str(self.path),
                    row=number,
                    fix="restore the log from a backup, or move it aside to start empty",
                ) from None
            yield batch

    def append(self, records: list[dict[str, Any]]) -> int:
        """Write one batch and make it durable (flush + fsync) before returning; returns the
        log's size before it (for :meth:`truncate`)."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 (kept open: one fsync per batch)
        offset = self._file.tell()
        line = json.dumps({"events": records}, separators=(",", ":"), allow_nan=False)
        self._file.write(line.encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        return offset

    def truncate(self, offset: int) -> None:
        """Cut the log back to ``offset`` bytes (a batch that was written but not applied)."""
        assert self._file is not None
        self._file.truncate(offset)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
