"""Training step time by OpenMP wait policy and threads, idle and beside a busy process.

    python experiments/benchmarks/threads.py [--dataset foursquare_nyc] [--rounds 3]
        [--competitor torch|python]

One LightGCN training step (BPR, batch 1024, embedding 64, 2 layers: one batch of
``Trainer.train_epoch``) on Foursquare NYC (GETNext protocol; ``--dataset synthetic`` needs no
data) is timed in a fresh subprocess for every combination of 1 or 2 intra-op threads,
``OMP_WAIT_POLICY`` unset (the OpenMP runtime's default: spin, then sleep), ``PASSIVE`` (what
tgraph sets) or ``ACTIVE``, and no competitor ("idle") or one competing busy process ("busy"):
by default an ordinary torch program multiplying matrices on all cores with the runtime's
default policy (another user's job), ``--competitor python`` a one-core Python loop.
The policy must be in the environment before torch loads, so each setting gets its own process
(which imports torch before tgraph, so the unset case stays unset). Each worker takes the
median of up to ``--steps`` steps after two warm-up steps, stopping after ``--budget`` seconds.

Prints a table of median step milliseconds (median over rounds of each worker's median) and
the ratios busy / idle and policy / PASSIVE;
writes ``experiments/results/benchmarks/threads.json``. All settings are measured in this one
run, interleaved by round; on a machine shared with other jobs, "idle" means no competitor of
ours, and the load averages are recorded beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

POLICIES = ("unset", "PASSIVE", "ACTIVE")
THREADS = (1, 2)
LOADS = ("idle", "busy")
RESULT = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "threads.json"
# The competitors: an ordinary torch program (matrix products on all cores, the OpenMP
# runtime's default wait policy), or a single-threaded Python loop.
COMPETITORS = {
    "torch": (
        "import torch\n"
        f"torch.set_num_threads({os.cpu_count() or 1})\n"
        "a = torch.randn(512, 512)\n"
        "while True:\n"
        "    a @ a\n"
    ),
    "python": "while True:\n    pass\n",
}
COMPETITOR_TEXT = {
    "torch": "one torch process multiplying 512x512 matrices in a loop on all cores "
    "(OMP_WAIT_POLICY unset: the runtime's default)",
    "python": "one Python process busy in `while True: pass` (one core)",
}


def worker(args: argparse.Namespace) -> None:
    """Time training steps in this process; print one JSON line."""
    import warnings

    warnings.simplefilter("ignore")
    import torch  # before tgraph: the policy stays what the parent put in the environment

    torch.set_num_threads(args.threads)
    from tgraph import threads
    from tgraph.config import DatasetConfig, ExperimentConfig, ModelEntry
    from tgraph.data import data_root
    from tgraph.data.protocols.prepare import prepare_split
    from tgraph.train.recipe import build_trainer

    if args.dataset == "synthetic":
        options = {"n_users": 1000, "n_pois": 5000, "n_events": 100_000, "seed": 0}
        dataset = DatasetConfig(name="synthetic", options=options)
    else:
        dataset = DatasetConfig(name=args.dataset, protocol="getnext_nyc")
    split = prepare_split(dataset, data_root())
    entry = ModelEntry(name="lightgcn", config={"embedding_dim": 64, "n_layers": 2})
    train = {"batch_size": 1024, "lr": 0.005, "progress": False, "epochs": 1}
    trainer = build_trainer(split, entry, 0, ExperimentConfig(models=[entry], train=train))
    for _ in range(2):
        trainer.train_epoch(max_batches=1)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < args.steps and (len(times) < 3 or time.perf_counter() - start < args.budget):
        tic = time.perf_counter()
        trainer.train_epoch(max_batches=1)
        times.append(time.perf_counter() - tic)
    record = threads.record()
    print(
        json.dumps(
            {
                "median_ms": statistics.median(times) * 1e3,
                "min_ms": min(times) * 1e3,
                "steps": len(times),
                "omp_wait_policy": record["omp_wait_policy"],
                "torch_threads": record["torch_threads"],
            }
        )
    )


def run_worker(args: argparse.Namespace, threads: int, policy: str) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    if policy != "unset":
        env["OMP_WAIT_POLICY"] = policy
    env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, __file__, "--worker", "--threads", str(threads)]
    command += ["--dataset", args.dataset, "--steps", str(args.steps), "--budget", str(args.budget)]
    load = os.getloadavg()[0]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker failed ({threads} threads, {policy}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = None if policy == "unset" else policy
    assert result["omp_wait_policy"] == expected and result["torch_threads"] == threads, result
    return {**result, "loadavg_1min_before": load}


def measure(args: argparse.Namespace) -> list[dict]:
    rows = []
    for round_ in range(args.rounds):
        for load in LOADS:
            competitor = None
            if load == "busy":
                env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
                code = COMPETITORS[args.competitor]
                competitor = subprocess.Popen([sys.executable, "-c", code], env=env)
                time.sleep(2.0)
            try:
                for threads in THREADS:
                    for policy in POLICIES:
                        result = run_worker(args, threads, policy)
                        row = {"round": round_, "load": load, "threads": threads}
                        rows.append({**row, "policy": policy, **result})
                        print(
                            f"round {round_} {load:4s} {threads} thread(s) {policy:7s} "
                            f"{result['median_ms']:9.1f} ms (median of {result['steps']})",
                            flush=True,
                        )
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    return rows


def table(rows: list[dict]) -> tuple[list[dict], str]:
    """Median over rounds of each setting, the ratios, and the markdown table."""

    def ms(load: str, threads: int, policy: str) -> float:
        return statistics.median(
            r["median_ms"]
            for r in rows
            if (r["load"], r["threads"], r["policy"]) == (load, threads, policy)
        )

    summary = []
    lines = [
        "| threads | OMP_WAIT_POLICY | idle step (ms) | busy step (ms) | busy / idle "
        "| idle / PASSIVE | busy / PASSIVE |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for threads in THREADS:
        for policy in POLICIES:
            idle, busy = ms("idle", threads, policy), ms("busy", threads, policy)
            idle_p, busy_p = ms("idle", threads, "PASSIVE"), ms("busy", threads, "PASSIVE")
            entry = {
                "threads": threads,
                "policy": policy,
                "idle_ms": round(idle, 2),
                "busy_ms": round(busy, 2),
                "busy_over_idle": round(busy / idle, 2),
                "idle_over_passive": round(idle / idle_p, 2),
                "busy_over_passive": round(busy / busy_p, 2),
            }
            summary.append(entry)
            lines.append(
                f"| {threads} | {policy} | {idle:.1f} | {busy:.1f} | {busy / idle:.2f} "
                f"| {idle / idle_p:.2f} | {busy / busy_p:.2f} |"
            )
    return summary, "\n".join(lines)


def _options(argv: list[str]) -> list[str]:
    """``argv`` without ``--out`` and its value (the command that measured a result)."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip or arg.startswith("--out="):
            skip = False
            continue
        skip = arg == "--out"
        if not skip:
            kept.append(arg)
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="foursquare_nyc", help="foursquare_nyc or synthetic")
    parser.add_argument("--competitor", choices=sorted(COMPETITORS), default="torch")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of the whole grid")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per setting (at most)")
    parser.add_argument("--budget", type=float, default=5.0, help="seconds of timed steps")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    load_before = os.getloadavg()
    start = time.time()
    rows = measure(args)
    summary, markdown = table(rows)
    print(markdown)
    import torch

    result = {
        "command": " ".join(["python experiments/benchmarks/threads.py", *_options(sys.argv[1:])]),
        "dataset": args.dataset,
        "step": "LightGCN (dim 64, 2 layers), BPR, batch 1024: one Trainer.train_epoch batch",
        "competitor": COMPETITOR_TEXT[args.competitor],
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
        "seconds": round(time.time() - start, 1),
        "summary": summary,
        "markdown": markdown,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
