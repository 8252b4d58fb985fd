"""One rank of ``test_ddp``, started by torchrun: ``tgraph run`` (the arguments after OUT) in
this process, every trained model's parameters dumped to ``OUT/<label>-rank<r>.pt``.

It also registers ``bprmf_unused``: BPR-MF with a parameter its loss never uses (DDP must
find it, or fail at the second step). With ``STOP_AFTER_REFIT_EPOCH=k`` in the environment,
every rank ends (exit 0, together) once refit epoch k is recorded, before its checkpoint: a
session stopped midway through a refit."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from tgraph import experiment
from tgraph.cli import main
from tgraph.models.bprmf import BPRMF
from tgraph.models.registry import register
from tgraph.train.trainer import Trainer


@register("bprmf_unused")
class UnusedParameterBPRMF(BPRMF):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.unused = torch.nn.Parameter(torch.ones(3))


out = Path(sys.argv[1])
train_one = experiment.train_one


def dumping_train_one(split, entry, seed, config, **kwargs):
    trained = train_one(split, entry, seed, config, **kwargs)
    state = {k: v.detach().cpu() for k, v in trained.model.state_dict().items()}
    torch.save(state, out / f"{entry.run_name}-rank{os.environ['RANK']}.pt")
    return trained


experiment.train_one = dumping_train_one

if "STOP_AFTER_REFIT_EPOCH" in os.environ:
    stop_after, record = int(os.environ["STOP_AFTER_REFIT_EPOCH"]), Trainer._record

    def stopping_record(self, rec):
        record(self, rec)
        if rec.refit_epoch == stop_after:
            torch.distributed.barrier()  # both ranks at the same point, then gone
            os._exit(0)

    Trainer._record = stopping_record
sys.exit(main(sys.argv[2:]))
