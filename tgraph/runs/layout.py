"""Where a run's files live: the only module that spells their names.

Layout of ``<output_dir>/<experiment>/<dataset>/<label>/seed<k>/``::

    config.yaml        the resolved configuration (rewritten with the amended values on resume)
    fingerprint.json   the fingerprint of the configuration and the data, with every amendment
    environment.json   one record per session: versions, git commit, device, command line, time
    run.log            tgraph's log records (INFO and above), one header per session, appended
    curve.jsonl        one typed record per epoch (:class:`~tgraph.runs.records.CurveRecord`)
    last.pt            model, optimiser, RNG and trainer state after the last epoch (resume)
    best.pt            the weights of the selected epoch
    refit.pt           the weights after the refit on train + valid (``train.refit``)
    refit_last.pt      model, optimiser, RNG and trainer state after the last refit epoch
                       (resume in the middle of a refit)
    per_query.csv      per-query test metrics, for significance tests
    per_query_streaming.csv  per-query test metrics and latency of the streaming evaluation
                       (``eval.mode: streaming``), rows as in per_query.csv
    tensorboard/       the curve as TensorBoard scalars (``train.tensorboard: true``)
    analysis/          stratified metrics (``tgraph analyse run``), written on demand
    serve/events.jsonl the events ``tgraph serve`` ingested (append-only log, replayed on start)
    metrics.json       the results (:class:`~tgraph.runs.records.RunMetrics`); written last:
                       a run is finished if and only if it exists
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tgraph.errors import RunDirError


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def fingerprint(self) -> Path:
        return self.path / "fingerprint.json"

    @property
    def environment(self) -> Path:
        return self.path / "environment.json"

    @property
    def log(self) -> Path:
        return self.path / "run.log"

    @property
    def curve(self) -> Path:
        return self.path / "curve.jsonl"

    @property
    def last_checkpoint(self) -> Path:
        return self.path / "last.pt"

    @property
    def best_checkpoint(self) -> Path:
        return self.path / "best.pt"

    @property
    def refit_checkpoint(self) -> Path:
        return self.path / "refit.pt"

    @property
    def refit_last_checkpoint(self) -> Path:
        return self.path / "refit_last.pt"

    @property
    def per_query(self) -> Path:
        return self.path / "per_query.csv"

    @property
    def per_query_streaming(self) -> Path:
        return self.path / "per_query_streaming.csv"

    @property
    def metrics(self) -> Path:
        return self.path / self.FINISHED

    @property
    def serve_log(self) -> Path:
        """The event log of ``tgraph serve`` (:class:`tgraph.serve.log.EventLog`)."""
        return self.path / "serve" / "events.jsonl"

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event files of the curve (:mod:`tgraph.train.tensorboard`)."""
        return self.path / "tensorboard"

    @property
    def analysis(self) -> Path:
        """The default folder of ``tgraph analyse run`` (stratified metrics)."""
        return self.path / "analysis"

    #: the file whose presence marks a finished run (to search folders of runs)
    FINISHED: ClassVar[str] = "metrics.json"

    #: marks a run moved aside by ``--overwrite``: ``seed0.replaced-20250101T120000``
    REPLACED: ClassVar[str] = ".replaced-"

    def replaced(self, stamp: str) -> Path:
        """The sibling folder an overwritten run is moved to."""
        return self.path.with_name(f"{self.path.name}{self.REPLACED}{stamp}")

    @classmethod
    def is_replaced(cls, path: Path) -> bool:
        """Whether ``path`` lies in a run moved aside (readers skip those)."""
        return any(cls.REPLACED in part for part in path.parts)


def safe_run_path(output_dir: str | Path, *names: str) -> Path:
    """``output_dir / names[0] / names[1] ...``, refusing any name that is not one plain folder
    (empty, ``.``, ``..``, a separator or an absolute path): no run may leave ``output_dir``."""
    base = Path(output_dir)
    for name in names:
        part = Path(name)
        if (
            not name
            or name in {".", ".."}
            or part.is_absolute()
            or len(part.parts) != 1
            or "/" in name
            or "\\" in name
        ):
            raise RunDirError(
                f"run folder name {name!r} would leave the output folder {base} "
                "(fix: use a plain folder name: letters, digits, '.', '_', '-')"
            )
    path = base.joinpath(*names)
    if not path.resolve().is_relative_to(base.resolve()):  # e.g. a symlinked folder
        raise RunDirError(f"run folder {path} resolves outside the output folder {base}")
    return path


def run_path(output_dir: str | Path, experiment: str, dataset: str, label: str, seed: int) -> Path:
    """The run directory of (``label``, ``seed``) in an experiment on ``dataset``."""
    return safe_run_path(output_dir, experiment, dataset, label, f"seed{seed}")
