"""Where a study lives, and what happens to the trials of a worker that died.

Storages: SQLite under the study folder by default (every finished trial is committed, so a
crash loses none and the same command resumes the study); ``journal:<file>`` for several
processes on one machine (locked with :class:`JournalKernelLock`); a PostgreSQL URL for
workers on several machines.

A worker killed mid-trial leaves its trial RUNNING. Every trial records its owner (host, boot,
process id and the process's start time), so that a worker on the same machine can tell that
the owner is gone (no such process, another process under a reused id, or a reboot since) and
fail the trial at once, on every storage; for workers on other machines the RDB storages'
heartbeats decide (a trial whose heartbeat is older than the grace period is stale). Either
way the failed trial is queued again with its parameters (:class:`RetryDeadTrial`), so that the
study runs the trials an uninterrupted one would.
"""

from __future__ import annotations

import copy
import fcntl
import logging
import os
import socket
import time
import warnings
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

log = logging.getLogger(__name__)

#: user attribute of a trial: the process running it (see :func:`owner_record`)
OWNER = "owner"
#: user attribute of the default trial and its retries: the fingerprint it is the default of
DEFAULT = "default"
#: user attribute: the fingerprint of the study definition a trial ran under
FINGERPRINT = "fingerprint"
#: a worker records itself right after it got a trial; a trial without an owner after this
#: many seconds belongs to a process that died in between
CLAIM_S = 30.0


def open_storage(
    url: str | None,
    folder: Path,
    fingerprint: str,
    heartbeat_interval: int | None,
    grace_period: int | None,
    max_retry: int | None,
) -> optuna.storages.BaseStorage:
    """The storage at ``url`` (default: ``study.db`` in ``folder``; see the module docstring)."""
    if url is None:
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(folder / 'study.db').resolve()}"
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        # the lock's declared type, BaseJournalFileLock, is private to optuna
        # (optuna.storages.journal._file); JournalKernelLock has its acquire/release
        lock = JournalKernelLock(str(path))
        backend = JournalFileBackend(str(path), lock_obj=lock)  # type: ignore[arg-type]
        return optuna.storages.JournalStorage(backend)
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5.0
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryDeadTrial(fingerprint, max_retry),
        )


class JournalKernelLock:
    """The lock of a journal file, held with ``flock`` on the journal itself: the kernel
    releases it when its process dies, whereas the lock file of Optuna's default lock, left
    by a killed worker, blocks every other worker for 30 seconds (and is then broken by
    force). All of a journal's writers must use it (``tgraph tune`` does)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO | None = None

    def acquire(self) -> bool:
        self._file = open(self.path, "ab")  # noqa: SIM115 (held until release)
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        assert self._file is not None, "release() without acquire()"
        fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot), or None if there is no such
    process (a zombie counts as gone); 0 for any live process where there is no ``/proc``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    return None if fields[0] == "Z" else int(fields[19])


def owner_record() -> dict[str, Any]:
    """This process, as recorded in the trials it runs."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid, "start": _start_time(pid)}


def owner_gone(owner: dict[str, Any]) -> bool:
    """Whether the process ``owner`` (see :func:`owner_record`) has certainly ended; False for
    a process on another machine (its heartbeat decides)."""
    if owner.get("host") != socket.gethostname():
        return False
    if owner.get("boot") != _boot_id():
        return True  # this machine rebooted since
    return _start_time(int(owner["pid"])) != owner.get("start")


class RetryDeadTrial:
    """Queue a dead trial again with the same parameters (at most ``max_retry`` times per
    original trial), as Optuna's heartbeat retry does: the same ``failed_trial`` /
    ``retry_history`` records, so :func:`retried_from` reads both. The retry keeps only the
    default-trial mark of the user attributes (its owner and configuration are its own); a
    trial of another study definition is not retried (its parameters may not fit this space).
    Also the heartbeat-stale callback of RDB storages.
    """

    def __init__(self, fingerprint: str, max_retry: int | None) -> None:
        self.fingerprint = fingerprint
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.user_attrs.get(FINGERPRINT, self.fingerprint) != self.fingerprint:
            log.warning("trial %d ran another study definition: not retried", trial.number)
            return
        kept = copy.deepcopy(trial)
        kept.user_attrs = {k: v for k, v in trial.user_attrs.items() if k == DEFAULT}
        self.retry(study, kept)


def retried_from(trial: FrozenTrial) -> int | None:
    """The number of the dead trial that ``trial`` re-runs, or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def _unclaimed(trial: FrozenTrial) -> bool:
    """RUNNING without an owner and too recent to be dead (its worker is recording itself)."""
    started = trial.datetime_start or datetime.now()
    recent = (datetime.now() - started).total_seconds() < CLAIM_S
    return OWNER not in trial.user_attrs and recent


def reap_dead_trials(study: optuna.Study, retry: RetryDeadTrial) -> list[int]:
    """Fail the RUNNING trials whose worker has ended and queue each again (``retry``);
    returns the failed trials' numbers.

    Waits (up to :data:`CLAIM_S`) for trials that a worker has just started to be claimed. If
    two workers reap at once, the storage lets only one of them fail a trial, and only that one
    queues the retry.
    """
    while True:
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not any(_unclaimed(t) for t in running):
            break
        time.sleep(0.2)
    failed = []
    for trial in running:
        owner = trial.user_attrs.get(OWNER)
        if owner is not None and not owner_gone(owner):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker failed (or the owner finished) it first
        who = "an unknown worker" if owner is None else f"worker {owner['host']}:{owner['pid']}"
        log.warning(
            "study %s: trial %d was left running by %s, which has ended: failed, and queued "
            "again with its parameters",
            study.study_name,
            trial.number,
            who,
        )
        retry(study, study.get_trials(deepcopy=False)[trial.number])
        failed.append(trial.number)
    return failed
