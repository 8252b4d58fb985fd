"""Run directories: one owner of their layout, records, fingerprints and resume rules."""

from tgraph.runs.environment import environment, git_commit
from tgraph.runs.fingerprint import AMENDABLE, IGNORED, TRAJECTORY, Fingerprint
from tgraph.runs.layout import RunLayout, run_path, safe_run_path
from tgraph.runs.records import Amendment, CurveRecord, RunMetrics, StreamingMetrics
from tgraph.runs.rundir import Decision, RunDir

__all__ = [
    "AMENDABLE",
    "IGNORED",
    "TRAJECTORY",
    "Amendment",
    "CurveRecord",
    "Decision",
    "Fingerprint",
    "RunDir",
    "RunLayout",
    "RunMetrics",
    "StreamingMetrics",
    "environment",
    "git_commit",
    "run_path",
    "safe_run_path",
]
