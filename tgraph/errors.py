"""Every error tgraph raises for a user's mistake, in one place.

A :class:`TgraphError` is a problem with the user's input (configuration, data, run
directories, studies), not a bug: its message names the key, file, column or folder and the fix,
and the ``tgraph`` command prints it on one line (the traceback only with ``--debug``) and exits
with :attr:`TgraphError.exit_code`: 2 for usage and configuration errors, 1 for runtime failures.
"""

from __future__ import annotations

from typing import ClassVar


class TgraphError(Exception):
    """A user-facing error; ``str(error)`` is the whole message."""

    exit_code: ClassVar[int] = 1


class ConfigError(TgraphError, ValueError):
    """A configuration problem; the message names the full key path, e.g.
    ``models[2].config.embedding_dim``, and the fix."""

    exit_code = 2

    def __init__(self, problem: str, *, key: str | None = None, fix: str | None = None) -> None:
        self.problem, self.key, self.fix = problem, key, fix
        message = f"key '{key}': {problem}" if key else problem
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)


class DataError(TgraphError, ValueError):
    """Malformed input data; the message says where (file, column, row) and how to fix it."""

    def __init__(
        self,
        problem: str,
        *,
        source: str | None = None,
        column: str | None = None,
        row: int | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem, self.source, self.column, self.row, self.fix = (
            problem,
            source,
            column,
            row,
            fix,
        )
        where = ", ".join(
            part
            for part in (
                f"file {source}" if source else "",
                f"column '{column}'" if column else "",
                f"row {row}" if row is not None else "",
            )
            if part
        )
        message = f"{where}: {problem}" if where else problem
        if fix:
            message += f" (fix: {fix})"
        super().__init__(message)


class LeakageError(DataError):
    """A split lets validation or test information into the training part."""


class DatasetNotFoundError(TgraphError, FileNotFoundError):
    """A dataset file is missing under the data root; the message says where to put it."""


class DownloadError(TgraphError, OSError):
    """A download failed, was cut short, or did not match its checksum."""


class CompareError(TgraphError, ValueError):
    """Run directories that cannot be compared; the message names the folders."""


class RunDirError(TgraphError):
    """A run directory tgraph refuses to write or resume (another run's fingerprint, a path
    leaving ``output_dir``, a checkpoint of another configuration)."""

    exit_code = 2


class StudyError(TgraphError):
    """A study tgraph refuses to run or join (an edited definition under an old name)."""

    exit_code = 2
