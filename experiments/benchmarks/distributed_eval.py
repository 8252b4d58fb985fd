"""Full-ranking evaluation of all Gowalla test users in one process and shared by 2 (DDP's
``Evaluator.evaluate_sharded``), side by side in the same processes.

    python experiments/benchmarks/distributed_eval.py [--repeats 3] [--batch-size 1024]

Starts itself in 2 processes through torchrun (gloo, 127.0.0.1). Each rank builds the Gowalla
LightGCN split and an untrained LightGCN (dim 64, 3 layers, seed 0, as
``full_ranking.py``: the evaluator's work does not depend on the scores' values; its
propagation is included in every timing). Then, in each repeat and in this order:

* ``1 process, 1 thread``: rank 0 alone runs ``Evaluator.evaluate`` while rank 1 waits at a
  barrier (its CPU seconds during the wait are recorded: a waiting rank must not compete);
* ``1 process, 2 threads``: the same with 2 intra-op threads on rank 0;
* ``2 processes, 1 thread each``: both ranks run ``evaluate_sharded`` (each scores every
  second batch of 1024 users, rank 0 gathers the ranks and computes the metrics); timed
  on rank 0 from a common barrier to its result, the gather included.

Times are the fastest of ``--repeats`` after one warm-up of each; ratios are medians of the
repeats' ratios (each repeat runs the three one after the other, so load changes on a shared
machine hit all three). Checks that the 2-process result equals the one-process result:
metrics, every rank and every per-query row. Writes
``experiments/results/distributed_eval/distributed_eval.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch
import torch.distributed as dist

import tgraph.models as models
from tgraph.data import data_root, protocols
from tgraph.eval.evaluator import Evaluator
from tgraph.train import distributed

OUT = Path(__file__).resolve().parents[1] / "results" / "distributed_eval" / "distributed_eval.json"


def worker(args: argparse.Namespace) -> None:
    """One rank: build, warm up, time the three ways, check identity; rank 0 writes."""
    torch.set_num_threads(1)
    ctx = distributed.init("cpu")
    split = protocols.lightgcn(data_root())
    torch.manual_seed(0)
    model = models.get("lightgcn")(split, {"embedding_dim": 64, "n_layers": 3})
    model.eval()
    evaluator = Evaluator(split, "test", ("recall@20", "ndcg@20"), batch_size=args.batch_size)
    load_before = os.getloadavg()[0]

    def alone(threads: int) -> tuple[float, float]:
        """Rank 0 evaluates in one process; the seconds, and rank 1's CPU seconds meanwhile."""
        dist.barrier()
        cpu = time.process_time()
        seconds = 0.0
        if ctx.is_main:
            torch.set_num_threads(threads)
            start = time.perf_counter()
            evaluator.evaluate(model)
            seconds = time.perf_counter() - start
            torch.set_num_threads(1)
        dist.barrier()
        return seconds, time.process_time() - cpu

    def shared() -> float:
        dist.barrier()
        start = time.perf_counter()
        evaluator.evaluate_sharded(model, ctx.rank, ctx.world_size)
        return time.perf_counter() - start

    one = evaluator.evaluate(model) if ctx.is_main else None  # warm-up and reference
    two = evaluator.evaluate_sharded(model, ctx.rank, ctx.world_size)
    alone(2)
    runs: dict[str, list[float]] = {"one_1": [], "one_2": [], "two": [], "waiting_cpu": []}
    for _ in range(args.repeats):
        for threads, key in ((1, "one_1"), (2, "one_2")):
            seconds, waiting_cpu = alone(threads)
            runs[key].append(seconds)
            if not ctx.is_main:
                runs["waiting_cpu"].append(waiting_cpu)
        runs["two"].append(shared())
    waiting = distributed.all_gather(runs["waiting_cpu"], ctx)[1]
    if ctx.is_main:
        assert one is not None and two is not None
        identical = (
            one.metrics == two.metrics
            and np.array_equal(one.ranks, two.ranks)
            and one.per_query.equals(two.per_query)
        )
        report(args, runs, waiting, identical, one.metrics, len(evaluator.table), load_before)
    distributed.finish()


def report(
    args: argparse.Namespace,
    runs: dict[str, list[float]],
    waiting_cpu: list[float],
    identical: bool,
    metrics: dict[str, float],
    users: int,
    load_before: float,
) -> None:
    one_1, one_2, two = (np.array(runs[k]) for k in ("one_1", "one_2", "two"))
    record = {
        "command": "python experiments/benchmarks/distributed_eval.py "
        f"--repeats {args.repeats} --batch-size {args.batch_size}",
        "users": users,
        "one_process_1_thread_s": round(float(one_1.min()), 3),
        "one_process_2_threads_s": round(float(one_2.min()), 3),
        "two_processes_s": round(float(two.min()), 3),
        "speedup_vs_1_thread": round(float(np.median(one_1 / two)), 2),
        "speedup_vs_2_threads": round(float(np.median(one_2 / two)), 2),
        "one_process_1_thread_runs_s": [round(t, 3) for t in runs["one_1"]],
        "one_process_2_threads_runs_s": [round(t, 3) for t in runs["one_2"]],
        "two_processes_runs_s": [round(t, 3) for t in runs["two"]],
        "rank1_cpu_while_waiting_s": [round(t, 3) for t in waiting_cpu],
        "identical_to_one_process": identical,
        "metrics": metrics,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
    }
    print(f"Gowalla test users: {users:,}; batch {args.batch_size}; {args.repeats} repeats")
    print(f"1 process, 1 thread:          {record['one_process_1_thread_s']:7.2f} s")
    print(f"1 process, 2 threads:         {record['one_process_2_threads_s']:7.2f} s")
    print(f"2 processes, 1 thread each:   {record['two_processes_s']:7.2f} s")
    print(f"speed-up vs 1 thread (median): {record['speedup_vs_1_thread']:6.2f}")
    print(f"speed-up vs 2 threads (median): {record['speedup_vs_2_threads']:5.2f}")
    print(f"identical metrics, ranks and per-query rows: {identical}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    command = distributed.launch_command(2, [])[:-2]  # torchrun, without "-m tgraph"
    command += [__file__, "--worker", *sys.argv[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sys.exit(subprocess.run(command, env=env, check=False).returncode)


if __name__ == "__main__":
    main()
