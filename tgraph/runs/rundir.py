"""A run directory (:class:`~tgraph.runs.layout.RunLayout`): typed readers and writers, and the
rules for writing into a folder that already holds a run.

Every file but the curve's appended records and the log is written atomically (a temporary
file, then a rename), and the results last: a run is finished if and only if ``metrics.json``
exists, so a crash never leaves a folder that looks finished.

Writing a run (:meth:`RunDir.check`, then :meth:`RunDir.begin`):

* an empty or missing folder: a new run;
* a finished run with the same fingerprint: nothing to do, its results stand (``"done"``);
* an unfinished run with the same fingerprint: refused unless ``resume`` (continue it) or
  ``overwrite``;
* a run with another fingerprint, or files without a fingerprint: refused, naming the
  differing keys, unless ``overwrite`` (the old run is moved to a sibling
  ``seed0.replaced-<time>/``, never deleted) or ``resume`` with only
  :data:`~tgraph.runs.fingerprint.AMENDABLE` differences (recorded as amendments; the previous
  results, if any, are withdrawn before training continues).

Every session appends its environment record and a header to ``run.log``; nothing of an
earlier session's provenance is overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import ValidationError

from tgraph.config import validation_message
from tgraph.errors import RunDirError
from tgraph.runs.environment import environment
from tgraph.runs.fingerprint import AMENDABLE, Fingerprint, describe
from tgraph.runs.layout import RunLayout
from tgraph.runs.records import Amendment, CurveRecord, RunMetrics, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """What writing a run into a folder will do (see the module docstring)."""

    action: Literal["new", "resume", "done"]
    #: the changes a resume makes to the recorded configuration
    amendments: tuple[Amendment, ...] = ()
    #: an existing run is moved aside first (``overwrite``)
    replace: bool = False


class RunDir:
    """One run directory; nothing is created until :meth:`begin`."""

    def __init__(self, path: str | Path) -> None:
        self.layout = RunLayout(Path(path))

    @property
    def path(self) -> Path:
        return self.layout.path

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @classmethod
    def finished_below(cls, root: str | Path) -> list[RunDir]:
        """Every finished run below ``root`` (runs moved aside by ``--overwrite`` excluded)."""
        found = Path(root).rglob(RunLayout.FINISHED)
        return [cls(f.parent) for f in sorted(found) if not RunLayout.is_replaced(f.parent)]

    @property
    def finished(self) -> bool:
        return self.layout.metrics.is_file()

    # ------------------------------------------------------------------ readers
    def read_config(self) -> dict[str, Any]:
        if not self.layout.config.is_file():
            raise RunDirError(f"{self.path}: no {self.layout.config.name} (not a run directory)")
        return yaml.safe_load(self.layout.config.read_text()) or {}

    def read_fingerprint(self) -> Fingerprint | None:
        file = self.layout.fingerprint
        return Fingerprint.from_json(json.loads(file.read_text())) if file.is_file() else None

    def read_metrics(self) -> RunMetrics:
        if not self.finished:
            raise RunDirError(f"{self.path}: no {self.layout.metrics.name} (an unfinished run)")
        try:
            return RunMetrics.model_validate_json(self.layout.metrics.read_text())
        except ValidationError as error:
            raise RunDirError(
                f"{self.layout.metrics}: not the results format of this tgraph "
                f"({validation_message(error)}) (fix: run it again)"
            ) from None

    def read_per_query(
        self, columns: list[str] | None = None, *, streaming: bool = False
    ) -> pd.DataFrame:
        """The per-query test results: of the static ranking, or of the streaming one."""
        path = self.layout.per_query_streaming if streaming else self.layout.per_query
        return pd.read_csv(path, usecols=columns)

    def read_curve(self) -> list[CurveRecord]:
        if not self.layout.curve.is_file():
            return []
        lines = self.layout.curve.read_text().splitlines()
        return [CurveRecord.model_validate_json(line) for line in lines if line.strip()]

    def environments(self) -> list[dict[str, Any]]:
        """One environment record per session, oldest first."""
        file = self.layout.environment
        return json.loads(file.read_text()) if file.is_file() else []

    # ------------------------------------------------------------------ writing a run
    def check(
        self, fingerprint: Fingerprint, *, resume: bool = False, overwrite: bool = False
    ) -> Decision:
        """What writing a run of ``fingerprint`` here does; raises :class:`RunDirError` when it
        is refused. Writes nothing."""
        occupied = self.path.is_dir() and any(self.path.iterdir())
        if overwrite:
            return Decision("new", replace=occupied)
        if not occupied:
            return Decision("new")
        stored = self.read_fingerprint()
        if stored is None:
            raise RunDirError(
                f"{self.path} holds files but no {self.layout.fingerprint.name} (written by an "
                "older tgraph, or not a run) (fix: --overwrite moves it aside)"
            )
        changed = stored.differences(fingerprint)
        if not resume:
            if changed or stored.digest != fingerprint.digest:
                what = describe(changed) or "resumed with " + ", ".join(
                    f"{a.key} {a.old!r} -> {a.new!r}" for a in stored.amendments
                )
                raise RunDirError(
                    f"{self.path} holds a run of another configuration: {what} "
                    "(fix: --overwrite moves the old run aside; --resume continues it if only "
                    f"{sorted(AMENDABLE)} changed; or choose another experiment or label)"
                )
            if self.finished:
                return Decision("done")
            raise RunDirError(
                f"{self.path} holds an unfinished run of this configuration "
                "(fix: --resume continues it, --overwrite starts it again)"
            )
        refused = {k: v for k, v in changed.items() if k not in AMENDABLE}
        if refused:
            raise RunDirError(
                f"cannot resume {self.path}: {describe(refused)} changed; only "
                f"{sorted(AMENDABLE)} may change on --resume "
                "(fix: --overwrite moves the old run aside and starts a new one)"
            )
        amendments = tuple(Amendment(key=k, old=old, new=new) for k, (old, new) in changed.items())
        if self.finished and not amendments:
            return Decision("done")
        return Decision("resume", amendments)

    def begin(
        self, fingerprint: Fingerprint, config: dict[str, Any], decision: Decision
    ) -> Fingerprint:
        """Prepare the folder for training a run of ``fingerprint`` as ``decision`` says: move
        an old run aside, withdraw superseded results, record the fingerprint (with every
        amendment so far) and the resolved ``config``. Returns the recorded fingerprint."""
        if decision.action == "done":
            raise ValueError(f"{self.path}: nothing to begin, the run is finished")
        if decision.replace:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = self.layout.replaced(stamp)
            shutil.move(self.path, target)
            log.warning("--overwrite: moved the run in %s to %s", self.path, target)
        self.path.mkdir(parents=True, exist_ok=True)
        withdrawn = (self.layout.metrics, self.layout.per_query, self.layout.per_query_streaming)
        for file in withdrawn:  # metrics first: unfinished
            if file.exists():
                log.info("%s: the results of the previous session are withdrawn", self.path)
                file.unlink()
        recorded = fingerprint
        if decision.action == "resume":
            previous = self.read_fingerprint()
            earlier = list(previous.amendments) if previous is not None else []
            recorded = fingerprint.amended([*earlier, *decision.amendments])
        self._write_text(self.layout.fingerprint, json.dumps(recorded.to_json(), indent=2) + "\n")
        self._write_text(self.layout.config, yaml.safe_dump(config, sort_keys=False))
        return recorded

    @contextmanager
    def session(self, device: str, note: str) -> Iterator[None]:
        """Record this session's environment and copy tgraph's log records (INFO and above) to
        ``run.log`` (appended, under a header naming the session) while the block runs."""
        self.path.mkdir(parents=True, exist_ok=True)
        sessions = self.environments()
        self._write_text(
            self.layout.environment,
            json.dumps([*sessions, {**environment(device), "note": note}], indent=2) + "\n",
        )
        handler = logging.FileHandler(self.layout.log, mode="a")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        with self.layout.log.open("a") as file:
            file.write(f"==== session {len(sessions) + 1} ({note}) {now()} ====\n")
        logger = logging.getLogger("tgraph")
        previous = logger.level
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(previous)
            handler.close()

    # ------------------------------------------------------------------ the curve
    def write_curve(self, records: list[CurveRecord]) -> None:
        """Replace the curve with ``records`` (atomically): on resume, the checkpoint's history,
        so that epochs recorded after the last checkpoint are not recorded twice."""
        self._write_text(self.layout.curve, "".join(_line(r) for r in records))

    def append_curve(self, record: CurveRecord) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with self.layout.curve.open("a") as file:
            file.write(_line(record))

    # ------------------------------------------------------------------ results
    def write_results(
        self,
        metrics: RunMetrics,
        per_query: pd.DataFrame,
        per_query_streaming: pd.DataFrame | None = None,
    ) -> None:
        """Write ``per_query.csv`` (and ``per_query_streaming.csv``), then ``metrics.json``
        (each atomically): the run is finished once the last exists."""
        tables = [(self.layout.per_query, per_query)]
        if per_query_streaming is not None:
            tables.append((self.layout.per_query_streaming, per_query_streaming))
        for path, table in tables:
            tmp = self._tmp(path)
            table.to_csv(tmp, index=False)
            os.replace(tmp, path)
        payload = json.dumps(metrics.model_dump(mode="json"), indent=2, allow_nan=False)
        self._write_text(self.layout.metrics, payload + "\n")

    def _write_text(self, path: Path, text: str) -> None:
        tmp = self._tmp(path)
        tmp.write_text(text)
        os.replace(tmp, path)

    @staticmethod
    def _tmp(path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        return path.with_name(path.name + ".tmp")


def _line(record: CurveRecord) -> str:
    return json.dumps(record.model_dump(mode="json", exclude_defaults=True), allow_nan=False) + "\n"
