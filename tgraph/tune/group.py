"""A study whose trials train on several processes: one trial per group of processes.

``tgraph tune --nproc N`` (or ``torchrun ... -m tgraph tune``) starts a *group* of ``N``
processes (ranks) that train every trial together with DDP, exactly as ``tgraph run --nproc N``
trains a run (:mod:`tgraph.train.distributed`: one global batch of ``train.batch_size``,
validation on rank 0, gradients averaged). Only the group's rank 0 is an Optuna worker: it
opens the storage, asks for a trial, reports each validation to the pruner and writes the
trial's run directory. The other ranks never touch the storage; they follow rank 0's
:class:`Order` messages (``torch.distributed.broadcast_object_list``):

* ``trial``: train these parameters with the search seed (rank 0 sends them after Optuna
  sampled them). After every validation, rank 0 sends its pruning decision, so a pruned trial
  ends on every rank at the same epoch; after a complete trial every rank sends back the
  parameters it trained and its model's digest, which rank 0 records with the trial (user
  attribute ``ranks``, beside ``world_size``);
* ``run``: train an experiment config alongside rank 0 (the re-training of the top trials
  after the search, with :func:`tgraph.experiment.run_experiment`);
* ``stop``: the study is done (or rank 0 stopped early): leave.

A trial beyond the budget never reaches the other ranks (rank 0 fails it before sending
anything). An error on any rank ends its process, and torchrun then stops the others. If rank
0 ended, the trial it left running is failed and retried by the next worker
(:mod:`tgraph.tune.storage`); if another rank ended first, rank 0's next collective fails and
rank 0 leaves the trial running (:class:`GroupBroken`), so that the same happens. An error of
rank 0's own fails the trial as in one process.

The number of processes is part of the study's definition when it is more than one (a trial's
negatives depend on it, as a run's do), so groups of one size form one study; several groups,
each its own ``torchrun`` (own master port) with its own ``--worker`` index, share it through
a journal file or PostgreSQL, as one-process workers do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch.distributed

from tgraph.config import validate_config
from tgraph.data.protocols import prepare_split
from tgraph.data.split import Split
from tgraph.errors import StudyError
from tgraph.experiment import run_experiment
from tgraph.runs import CurveRecord
from tgraph.train import distributed
from tgraph.train.distributed import Context
from tgraph.tune.spec import StudySpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Order:
    """What rank 0 tells the other ranks of its group to do next."""

    kind: Literal["trial", "run", "stop"]
    #: ``trial``: the trial's number and parameters
    number: int = -1
    params: dict[str, Any] = field(default_factory=dict)
    #: ``run``: a validated experiment config as JSON (``ExperimentConfig.model_dump``)
    config: dict[str, Any] = field(default_factory=dict)


class _Pruned(Exception):
    """Rank 0 pruned the trial this rank trains."""


class GroupBroken(BaseException):
    """Another rank of the group ended (or failed) while the group trained trial ``number``.

    Not an ``Exception``, so that Optuna leaves the trial running, as it would if rank 0 had
    been killed with the others: once rank 0 has left, the next worker on the storage finds
    the trial's owner gone, fails it and queues it again with its parameters
    (:mod:`tgraph.tune.storage`)."""

    def __init__(self, number: int) -> None:
        super().__init__(
            f"a rank of this group ended while it trained trial {number}; the next worker on "
            "the study's storage retries the trial with its parameters (see the other ranks' "
            "errors above)"
        )
        self.number = number


def peer_failure(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because another rank is gone or failed
    (torch's distributed errors; gloo's transport errors, plain ``RuntimeError`` in torch 2.2)."""
    if isinstance(error, torch.distributed.DistError):
        return True
    return isinstance(error, RuntimeError) and "gloo/transport" in str(error)


@contextmanager
def trial_of_group(number: int) -> Iterator[None]:
    """Rank 0 trains trial ``number`` with its group: a collective that fails because another
    rank is gone becomes :class:`GroupBroken` (any other error passes unchanged, and fails
    the trial as in one process)."""
    try:
        yield
    except Exception as error:
        if peer_failure(error):
            raise GroupBroken(number) from error
        raise


def send(order: Order, group: Context) -> None:
    """Rank 0: send ``order`` to the other ranks of the group (nothing in one process)."""
    distributed.broadcast(order, group)


def prune_decision(prune: bool, group: Context) -> bool:
    """Rank 0's pruning decision on every rank (``prune`` is read on rank 0 only)."""
    return bool(distributed.broadcast(prune, group))


def replicas(params: dict[str, Any], model: Any, group: Context) -> list[dict[str, Any]]:
    """Every rank's trained parameters and model digest, in rank order (on every rank);
    a ``StudyError`` unless they are all equal."""
    own = {"params": params, "digest": distributed.parameter_digest(model)}
    ranks = distributed.all_gather(own, group)
    if any(r != ranks[0] for r in ranks):
        raise StudyError(f"the ranks of one trial trained different things: {ranks}")
    return ranks


def check_same_study(spec: StudySpec, group: Context) -> None:
    """Every rank loaded the same study definition (the files of each machine agree)."""
    fingerprints = distributed.all_gather(spec.fingerprint, group)
    if len(set(fingerprints)) != 1:
        raise StudyError(
            f"the ranks of one group loaded different studies (fingerprints by rank: "
            f"{[f[:12] for f in fingerprints]}): give every machine the same study file and "
            "overrides"
        )


def follow(spec: StudySpec, root: str | Path | None, group: Context) -> None:
    """A rank other than 0: carry out rank 0's orders until it sends ``stop``."""
    split_: Split | None = None
    while True:
        order: Order = distributed.broadcast(None, group)
        if order.kind == "stop":
            return
        if order.kind == "run":
            run_experiment(validate_config(order.config), root)
            continue
        if split_ is None:
            split_ = prepare_split(spec.experiment.dataset, root)
        _follow_trial(spec, split_, order, group)


def _follow_trial(spec: StudySpec, split_: Split, order: Order, group: Context) -> None:
    def on_epoch(_: CurveRecord) -> None:
        if prune_decision(False, group):
            raise _Pruned

    try:
        trained = spec.train(split_, order.params, None, None if spec.multi_objective else on_epoch)
    except _Pruned:
        log.info("trial %d pruned by rank 0", order.number)
        return
    replicas(order.params, trained.model, group)
