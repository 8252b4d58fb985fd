"""Errors for bad input data: each names the file, the column, the row and the fix."""

from __future__ import annotations


class DataError(ValueError):
    """Raised when input data is malformed; the message says where and how to fix it."""

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


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is missing under the data root; the message says where to put it."""
