"""Scale benchmark: tgraph end to end on synthetic check-ins of 1 M, 3 M and 10 M events.

    python experiments/benchmarks/scale.py [--sizes 1000000 3000000 10000000] [--threads 1]
        [--out experiments/results/benchmarks/scale] [--resume]

Each size runs in its own subprocess (so its peak resident memory is its own) through these
steps, each timed:

1. **generate**: :func:`tgraph.data.synthetic.generate` with ``n_events`` events,
   ``n_events / 100`` users and ``n_events / 50`` POIs (``--users-per-event``,
   ``--items-per-event``), 365 days, seed 0;
2. **split**: deduplication and the ``next_poi_chronological`` protocol (80/10/10
   chronological cut, 24-hour trajectories, last check-in of each validation/test
   trajectory is a target; the leakage checks included);
3. **graph**: LightGCN's construction (the symmetric user-item graph of the training events,
   its sparse formats and degree norms) and the :class:`~tgraph.train.Trainer` (training
   queries, negative sampler);
4. **train epoch**: one epoch of LightGCN (dimension ``--dim`` 64, one layer per fanout of
   ``--fanouts``, default 2 layers of 10) on neighbour-sampled blocks (``train.sampling``):
   every training event once, batch ``--batch-size`` (default 8192), one negative each,
   BPR, Adam. Batch 8192 rather than the trainer's 2048 because every step's Adam update
   covers the whole embedding table (dense gradients): a per-step cost that grows with the
   graph, paid 4x less often;
5. **evaluate**: full ranking over all items of the test targets (all of them, or a seeded
   sample of ``--eval-sample`` queries): the layer-wise chunked propagation plus the ranking.

After them, ``--full-graph-steps`` (default 3, after one warm-up step) whole-graph training
steps of the same model are timed, for the whole-graph epoch estimate (steps x batches); they
are not part of the end-to-end total. Each step records wall-clock and process CPU seconds
(on a shared machine the CPU time is the steadier figure) and the memory. Also recorded: the
input nodes and edges of one batch's sampled blocks, and the test metrics (after one epoch:
a sanity check, not a result).

Each size writes ``size_<n>.json`` under ``--out`` when it finishes (``--resume`` keeps the
sizes already there), then the table (``scale.csv``, ``scale.md``) and a log-log plot of CPU
and wall-clock seconds per step and peak memory against events (``scale.png``) are written
from every size found. Peak RSS is read after each step: ``getrusage``'s ``ru_maxrss`` of the
size's process (the peak so far, so it never decreases); ``rss_gib`` is the resident memory
at the end of the step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "scale"
STEPS = ("generate", "split", "graph", "train_epoch", "evaluate")
GIB = 1024**3


def _now() -> tuple[float, float]:
    """Wall-clock and this process's CPU seconds (on a shared machine the CPU time is the
    steadier figure: it leaves out the time other processes held the core)."""
    return time.perf_counter(), time.process_time()


def _peak_gib() -> float:
    """This process's peak resident memory so far: ``ru_maxrss`` (KiB on Linux), or the
    resident memory now where the kernel has not updated ``ru_maxrss`` yet."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB, _rss_gib())


def _rss_gib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / GIB


def run_size(args: argparse.Namespace, n_events: int) -> dict:
    """Every step at ``n_events``, in this process; returns the size's record."""
    # tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
    import tgraph  # noqa: F401  # isort: skip
    import numpy as np
    import torch

    # torch's optimizers import torch._dynamo on first use (about 2 s of sympy and fx):
    # imported here so that it is not timed in the graph step
    import torch._dynamo  # noqa: F401

    import tgraph.models as models
    from tgraph.data import preprocess, protocols
    from tgraph.data.synthetic import generate
    from tgraph.eval import Evaluator
    from tgraph.train import Trainer, seed_everything

    torch.set_num_threads(args.threads)
    n_users = max(1, round(n_events * args.users_per_event))
    n_pois = max(2, round(n_events * args.items_per_event))
    record: dict = {"n_events": n_events, "n_users": n_users, "n_pois": n_pois, "steps": {}}

    def step(name: str, start: tuple[float, float]) -> None:
        seconds = time.perf_counter() - start[0]
        record["steps"][name] = {
            "seconds": round(seconds, 3),
            "cpu_seconds": round(time.process_time() - start[1], 3),
            "peak_gib": round(_peak_gib(), 3),
            "rss_gib": round(_rss_gib(), 3),
        }
        print(f"[{n_events:,}] {name}: {seconds:.1f} s, peak {_peak_gib():.2f} GiB", flush=True)

    start = _now()
    inter = generate(n_users=n_users, n_pois=n_pois, n_events=n_events, days=args.days, seed=0)
    step("generate", start)

    start = _now()
    inter, dedup = preprocess.deduplicate(inter)
    split = protocols.next_poi_chronological(inter)
    del inter
    step("split", start)
    record["duplicates_dropped"] = int(dedup["dropped"])
    record["train_events"] = len(split.train.events)
    record["test_targets"] = len(split.test_targets)
    record["test_queries"] = int(split.test_targets["query"].nunique())
    record["split_users"], record["split_items"] = split.n_users, split.n_items

    start = _now()
    seed_everything(0)
    model = models.get("lightgcn")(
        split, {"embedding_dim": args.dim, "n_layers": len(args.fanouts)}
    )
    train_options = {
        "batch_size": args.batch_size,
        "progress": False,
        "sampling": {
            "fanouts": args.fanouts,
            "inference_chunk": args.inference_chunk,
            "sparse": args.sparse,
        },
        "eval_batch_size": args.eval_batch_size,
        "metrics": ["acc@1", "acc@10", "mrr"],
    }
    trainer = Trainer(model, split, train_options, seed=0)
    step("graph", start)
    record["graph_edges"] = int(model.graph.num_edges())

    start = _now()
    loss = trainer.train_epoch()
    step("train_epoch", start)
    record["loss"] = round(float(loss), 5)
    record["batches"] = -(-record["train_events"] // args.batch_size)
    # what one step reads: the input nodes of a batch's sampled blocks (users, positives and
    # negatives as seeds, as in training)
    users = torch.randint(0, model.n_users, (args.batch_size,))
    items = torch.randint(0, model.n_items, (2 * args.batch_size,)) + model.n_users
    blocks = model.sample_blocks(torch.cat([users, items]))
    record["graph_nodes"] = int(model.graph.num_nodes())
    record["step_input_nodes"] = len(blocks.input_nodes)
    record["step_block_edges"] = [int(b.num_edges()) for b in blocks.blocks]

    start = _now()
    targets = split.test_targets
    if args.eval_sample and len(targets) > args.eval_sample:
        rng = np.random.default_rng(0)
        queries = np.sort(rng.choice(targets["query"].unique(), args.eval_sample, replace=False))
        targets = targets[targets["query"].isin(queries)]
        split = dataclasses.replace(split, test_targets=targets.reset_index(drop=True))
    result = Evaluator(split, "test", train_options["metrics"], args.eval_batch_size).evaluate(
        model
    )
    step("evaluate", start)
    record["eval_queries"] = len(result.per_query)
    record["metrics"] = {k: round(float(v), 5) for k, v in result.metrics.items()}

    if args.full_graph_steps:  # the same training steps propagating over the whole graph
        model.use_sampling(None)
        trainer.train_epoch(max_batches=1)  # warm-up: the reverse graph's sparse formats
        start = _now()
        trainer.train_epoch(max_batches=args.full_graph_steps)
        seconds = (time.perf_counter() - start[0]) / args.full_graph_steps
        cpu = (time.process_time() - start[1]) / args.full_graph_steps
        sampled = record["steps"]["train_epoch"]["seconds"] / record["batches"]
        record["full_graph"] = {
            "steps": args.full_graph_steps,
            "seconds_per_step": round(seconds, 4),
            "cpu_seconds_per_step": round(cpu, 4),
            "epoch_seconds_estimate": round(seconds * record["batches"], 1),
            "sampled_seconds_per_step": round(sampled, 4),
            "peak_gib": round(_peak_gib(), 3),
        }
        print(f"[{n_events:,}] full-graph step: {seconds:.2f} s (sampled {sampled:.3f} s)")
    return record


def _write_table(out: Path) -> list[dict]:
    """``scale.csv``, ``scale.md`` and ``scale.png`` from every ``size_<n>.json`` in ``out``."""
    records = sorted(
        (json.loads(p.read_text()) for p in out.glob("size_*.json")), key=lambda r: r["n_events"]
    )
    if not records:
        return records
    sizes = ["n_events", "n_users", "n_pois", "train_events", "graph_edges", "eval_queries"]
    header = sizes + [f"{s}_{unit}" for s in STEPS for unit in ("s", "cpu_s")]
    header += ["total_s", "total_cpu_s", "peak_gib", "batches", "sampled_step_cpu_s"]
    header += ["full_graph_step_cpu_s", "full_graph_epoch_cpu_s_estimate"]
    rows, md_rows = [], []
    for r in records:
        steps = r["steps"]
        wall = [steps[s]["seconds"] for s in STEPS]
        cpu = [steps[s]["cpu_seconds"] for s in STEPS]
        peak = max(steps[s]["peak_gib"] for s in STEPS)
        sampled = steps["train_epoch"]["cpu_seconds"] / r["batches"]
        full = r.get("full_graph", {})
        full_step = full.get("cpu_seconds_per_step")
        full_epoch = "" if full_step is None else round(full_step * r["batches"], 1)
        rows.append(
            [r[h] for h in sizes]
            + [v for pair in zip(wall, cpu) for v in pair]
            + [round(sum(wall), 1), round(sum(cpu), 1), peak, r["batches"], round(sampled, 4)]
            + ["" if full_step is None else full_step, full_epoch]
        )
        md_rows.append(
            [f"{r[h]:,}" for h in sizes]
            + [f"{w:,.1f} ({c:,.1f})" for w, c in zip(wall, cpu)]
            + [f"{sum(wall):,.1f} ({sum(cpu):,.1f})", f"{peak:.2f}"]
            + [f"{sampled:.3f}", "" if full_step is None else f"{full_step:.3f}"]
        )
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    (out / "scale.csv").write_text("\n".join(lines) + "\n")
    md_header = ["events", "users", "POIs", "train events", "graph edges", "test queries"]
    md_header += [f"{s} s (CPU s)" for s in STEPS] + ["total s (CPU s)", "peak RSS GiB"]
    md_header += ["sampled step CPU s", "whole-graph step CPU s"]
    md = ["| " + " | ".join(md_header) + " |", "|" + "---:|" * len(md_header)]
    md += ["| " + " | ".join(row) + " |" for row in md_rows]
    (out / "scale.md").write_text("\n".join(md) + "\n")
    _plot(records, out / "scale.png")
    return records


def _plot(records: list[dict], path: Path) -> None:
    """Log-log against events: each step's CPU seconds (with the whole-graph training epoch
    estimated from its timed steps, dashed), each step's wall-clock seconds, peak memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = [r["n_events"] for r in records]
    fig, (cpu_ax, wall_ax, mem_ax) = plt.subplots(1, 3, figsize=(15, 4.5))
    for name in STEPS:
        cpu_ax.plot(events, [r["steps"][name]["cpu_seconds"] for r in records], "o-", label=name)
        wall_ax.plot(events, [r["steps"][name]["seconds"] for r in records], "o-", label=name)
    full = [
        (r["n_events"], r["full_graph"]["cpu_seconds_per_step"] * r["batches"])
        for r in records
        if "full_graph" in r
    ]
    if full:
        x, y = zip(*full)
        cpu_ax.plot(x, y, "s--", color="grey", label="train epoch, whole graph (estimate)")
    peak = [max(r["steps"][s]["peak_gib"] for s in STEPS) for r in records]
    mem_ax.plot(events, peak, "o-", label="peak RSS")
    mem_ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    cpu_ax.set(ylabel="CPU seconds", title="CPU time per step (1 thread)")
    wall_ax.set(ylabel="seconds", title="wall-clock time per step (shared machine)")
    mem_ax.set(ylabel="GiB", title="peak resident memory")
    for ax in (cpu_ax, wall_ax, mem_ax):
        ax.set(xscale="log", yscale="log", xlabel="events")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--users-per-event", type=float, default=0.01)
    parser.add_argument("--items-per-event", type=float, default=0.02)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument(
        "--fanouts", type=lambda s: [int(f) for f in s.split(",")], default=[10, 10]
    )
    parser.add_argument("--batch-size", type=int, default=8192)
    parser.add_argument(
        "--sparse",
        action="store_true",
        help="train.sampling.sparse: sparse embedding gradients and a lazy Adam",
    )
    parser.add_argument("--inference-chunk", type=int, default=65536)
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--eval-sample", type=int, default=0, help="0: every test query")
    parser.add_argument(
        "--full-graph-steps",
        type=int,
        default=3,
        help="after the end-to-end steps, time this many whole-graph training steps (0: none)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--resume", action="store_true", help="keep the sizes already written")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.worker is not None:
        record = run_size(args, args.worker)
        record["settings"] = {
            k: v for k, v in vars(args).items() if k not in ("worker", "out", "resume", "sizes")
        }
        record["machine"] = {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "finished_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        }
        (out / f"size_{args.worker}.json").write_text(json.dumps(record, indent=2) + "\n")
        return
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--resume"]
    for n_events in args.sizes:
        if args.resume and (out / f"size_{n_events}.json").exists():
            print(f"[{n_events:,}] kept from {out}", flush=True)
            continue
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        command = [sys.executable, __file__, *forwarded, "--worker", str(n_events)]
        subprocess.run(command, check=True, env=env)
        _write_table(out)
    _write_table(out)
    print((out / "scale.md").read_text() if (out / "scale.md").exists() else "no sizes yet")


if __name__ == "__main__":
    main()
