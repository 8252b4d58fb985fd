"""Data-parallel training with PyTorch DDP, launched by ``torchrun``.

``tgraph run --nproc N`` starts ``N`` copies of the same ``tgraph run`` through torchrun
(``torch.distributed.run``) on 127.0.0.1; the multi-machine form is torchrun's own, run on
every machine::

    torchrun --nnodes 2 --node-rank K --nproc-per-node 4 \\
        --master-addr HOST0 --master-port 29500 -m tgraph run --config my.yaml

Every process (a *rank*) joins torchrun's process group (:func:`init`: gloo on CPU, nccl on
CUDA, each rank on the GPU of its local rank), loads the data and builds its own graph copy
and model from the same seed. The :class:`~tgraph.train.trainer.Trainer` then

* permutes each epoch's training samples with the seeded generator all ranks share and gives
  each rank a disjoint shard (:func:`shard`, padded as torch's ``DistributedSampler`` does),
  in batches of ``train.batch_size / N``, so that one step of all ranks together sees one
  global batch of ``train.batch_size`` (the batch size must be a multiple of ``N``);
* draws each rank's negatives from its own generator (seeded with the seed and the rank);
* averages the gradients with :class:`torch.nn.parallel.DistributedDataParallel` (dense
  gradients: no model has sparse embeddings), so parameters stay identical on every rank;
  they are compared (:func:`check_replicas`) after training. A loss that leaves parameters
  unused (none of the shipped models' does) is found on the first batch, before DDP wraps
  it, and DDP then looks for unused parameters at every step (``find_unused_parameters``);
* validates on all ranks together: the validation queries are cut into the batches one
  process scores, rank ``r`` ranks every ``N``-th batch from batch ``r`` with its own replica,
  and rank 0 gathers the ranks, computes the metrics (equal to one process's evaluation of the
  same weights, per query and in order) and broadcasts them with its time, so early
  stopping, the best epoch, learning rate decay and time budgets decide alike on every rank
  (:meth:`~tgraph.eval.evaluator.Evaluator.evaluate_sharded`);
* ranks the test part the same way after training (and the streaming evaluation: every rank
  replays the whole stream into its replica and ranks every ``N``-th query);
* writes the run directory (curve, checkpoints, results, summary) from rank 0 only.

``--resume`` continues such a run with the same number of processes: the last checkpoint
holds every rank's random generators (gathered before rank 0 writes it), rank 0 reads it and
sends it to the others, and each rank restores its own. The number of processes is part of a
run's fingerprint when it is more than one (its negatives differ from a one-process run), so
another number is refused on resume.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from tgraph.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """This process's place among the ranks (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """More than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that validates and writes."""
        return self.rank == 0


def context() -> Context:
    """The current process group's context (one process when there is none)."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Context(dist.get_rank(), dist.get_world_size(), local)
    return Context()


def launched() -> bool:
    """Started by torchrun (or an equivalent launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init(device: str = "cpu") -> Context:
    """Join the launcher's process group when started with more than one process (gloo for
    a CPU ``device``, nccl for CUDA); nothing otherwise. Returns the context."""
    if not launched() or dist.is_initialized():
        return context()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    dist.init_process_group(backend)
    ctx = context()
    log.info("rank %d of %d (%s)", ctx.rank, ctx.world_size, backend)
    return ctx


def finish(*, barrier: bool = True) -> None:
    """Leave the process group (if any), with a ``barrier`` first unless a rank failed (the
    others would wait at it for gloo's timeout).

    Then a pause: torch before 2.8 destroys a gloo group holding the GIL while its worker
    threads may still need the GIL to free the last collective's tensors, a hang seen here
    in 1 of about 10 runs (pytorch/pytorch#154976); the pause lets them finish first."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if barrier:
        dist.barrier()
    time.sleep(0.1)  # releases the GIL
    dist.destroy_process_group()


def rank_device(device: str, ctx: Context) -> str:
    """``cuda`` becomes ``cuda:<local rank>`` when several processes train; else ``device``."""
    if ctx.active and device == "cuda":
        return f"cuda:{ctx.local_rank}"
    return device


def shard(order: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Rank ``rank``'s part of ``order`` (an array every rank holds alike): ``order`` padded
    cyclically with its first elements to a multiple of ``world_size``, then every
    ``world_size``-th element from ``rank`` on. The shards are disjoint up to the padding and
    equally long."""
    padded = np.resize(order, -(-len(order) // world_size) * world_size)
    return padded[rank::world_size]


def check_batch_size(batch_size: int, ctx: Context) -> int:
    """Each rank's batch: ``batch_size / world_size`` (a ``ConfigError`` unless it divides)."""
    if batch_size % ctx.world_size:
        raise ConfigError(
            f"{batch_size} is not a multiple of the {ctx.world_size} processes: each takes an "
            "equal part of every batch",
            key="train.batch_size",
            fix=f"a multiple of {ctx.world_size}",
        )
    return batch_size // ctx.world_size


def broadcast(value: Any, ctx: Context) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not ctx.active:
        return value
    box = [value if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(value: Any, ctx: Context) -> list[Any]:
    """Every rank's ``value`` (picklable), in rank order, on every rank."""
    if not ctx.active:
        return [value]
    values: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(values, value)
    return values


def all_reduce(values: list[float], op: str, ctx: Context) -> list[float]:
    """``values`` summed (``op="sum"``) or maximised (``"max"``) over the ranks."""
    if not ctx.active:
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    reduce = dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX
    dist.all_reduce(tensor, reduce)
    return tensor.tolist()


def parameter_digest(module: torch.nn.Module) -> str:
    """SHA-256 of ``module``'s parameters (names and bytes, in order)."""
    digest = hashlib.sha256()
    for name, param in module.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_replicas(module: torch.nn.Module, ctx: Context) -> str:
    """The parameter digest, checked equal on every rank (``RuntimeError`` otherwise)."""
    own = parameter_digest(module)
    digests = all_gather(own, ctx)
    if len(set(digests)) != 1:
        raise RuntimeError(f"data-parallel replicas diverged: parameter digests {digests}")
    return own


class LossModule(torch.nn.Module):
    """``forward(batch)`` is ``model.calculate_loss(batch)``: what DDP wraps, since its
    gradient hooks are armed by ``forward``."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> torch.Tensor:
        return self.model.calculate_loss(batch)


def wrap(
    model: torch.nn.Module, device: torch.device, find_unused: bool = False
) -> torch.nn.parallel.DistributedDataParallel:
    """``model``'s loss in DDP: rank 0's parameters broadcast to all ranks, gradients averaged
    after every backward pass. Buffers are not broadcast (every rank builds them alike);
    ``find_unused`` lets the loss leave parameters unused (an extra pass every step)."""
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return torch.nn.parallel.DistributedDataParallel(
        LossModule(model),
        device_ids=device_ids,
        broadcast_buffers=False,
        find_unused_parameters=find_unused,
    )


def wrap_module(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` itself in DDP (gradients averaged after every backward pass; buffers not
    broadcast), for a trainer that calls it directly (DistDGL's block encoder)."""
    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=device_ids, broadcast_buffers=False
    )


def on_any_rank(flag: bool, ctx: Context) -> bool:
    """Whether ``flag`` is true on at least one rank."""
    return all_reduce([float(flag)], "max", ctx)[0] > 0


# ---------------------------------------------------------------------- the launcher
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch_command(nproc: int, argv: list[str], port: int | None = None) -> list[str]:
    """The torchrun command that runs ``tgraph <argv>`` (``--nproc`` removed) in ``nproc``
    processes on 127.0.0.1."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc-per-node={nproc}",
        "--master-addr=127.0.0.1",
        f"--master-port={port or free_port()}",
        "-m",
        "tgraph",
        *without_nproc(argv),
    ]


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``tgraph <argv>`` in ``nproc`` processes through torchrun; its exit code."""
    command = launch_command(nproc, argv)
    log.info("launching: %s", " ".join(command))
    return subprocess.run(command, check=False).returncode
