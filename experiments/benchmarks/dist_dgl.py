"""Training edges per second: plain DGL in one process against DistDGL, side by side in one run.

    sudo python experiments/benchmarks/dist_dgl.py [--events 60000] [--epochs 3]

Needs root (network and mount namespaces, as the DistDGL test). One config (LightGCN, dim 32,
2 layers, BPR, batch 1024, on tgraph's synthetic check-ins with ``--events`` events) trained
``--epochs`` epochs by ``tgraph run --threads 1`` four ways, one after the other:

* ``plain``: one process, full-graph propagation per batch (tgraph's own LightGCN on DGL);
* ``dist_dgl 1x1``: DistDGL with 1 partition, 1 graph server and 1 trainer on one simulated
  machine (the engine's overhead without a second machine);
* ``dist_dgl 2x2``: 2 partitions, 2 servers, 2 trainers on two simulated machines (each its
  own network namespace and /dev/shm), full neighbourhoods;
* ``dist_dgl 2x2 fanout 10,10``: the same with 10 sampled neighbours per node and layer.

Edges/s = training events (positive edges) of one epoch / the epoch's training seconds (the
slowest trainer's), the median over epochs; DistDGL's epoch includes reading the embedding
table back into the trainers' models. Writes ``dist_dgl.csv`` and ``dist_dgl.md`` under
``--out`` (default ``experiments/results/benchmarks/``). On a shared machine compare the
ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.train.dist_dgl_machine import Machines, machine_env, run_machines  # noqa: E402

OUT = REPO / "experiments" / "results" / "benchmarks"


def config(folder: Path, events: int, epochs: int, distributed: object) -> Path:
    train = {
        "batch_size": 1024,
        "lr": 0.01,
        "epochs": epochs,
        "eval_every": epochs,
        "patience": epochs,
        "valid_metric": "mrr",
        "metrics": ["mrr"],
        "progress": False,
    }
    if distributed is not None:
        train["distributed"] = distributed
    users, pois = max(50, events // 60), max(80, events // 30)
    body = {
        "experiment": "dist_dgl_bench",
        "output_dir": str(folder / "runs"),
        "seeds": [0],
        "dataset": {
            "name": "synthetic",
            "options": {"n_users": users, "n_pois": pois, "n_events": events, "seed": 0},
            "protocol": "next_poi_chronological",
        },
        "metrics": ["acc@10", "mrr"],
        "train": train,
        "models": [{"name": "lightgcn", "config": {"embedding_dim": 32, "n_layers": 2}}],
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def curve(folder: Path) -> tuple[list[float], dict]:
    """The epochs' training seconds and the test metrics of the one run under ``folder``."""
    (metrics,) = list((folder / "runs").rglob("metrics.json"))
    lines = (metrics.parent / "curve.jsonl").read_text().splitlines()
    seconds = [json.loads(line)["train_s"] for line in lines]
    return seconds, json.loads(metrics.read_text())


def train_events(config_path: Path) -> int:
    from tgraph.config import load_config
    from tgraph.data import protocols

    split = protocols.prepare_split(load_config([str(config_path)]).dataset)
    return len(split.train)


def markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rows = []
    variants: list[tuple[str, int, object]] = [
        ("plain DGL, 1 process", 0, None),
        ("DistDGL 1 part, 1 server, 1 trainer", 1, "dist_dgl"),
        ("DistDGL 2 parts, 2 servers, 2 trainers", 2, "dist_dgl"),
        ("DistDGL 2x2, fanouts 10,10", 2, {"engine": "dist_dgl", "fanouts": [10, 10]}),
    ]
    n_events = None
    for label, n_machines, distributed in variants:
        with tempfile.TemporaryDirectory(prefix="tgraph_distdgl_") as tmp:
            folder = Path(tmp)
            path = config(folder, args.events, args.epochs, distributed)
            n_events = n_events or train_events(path)
            if n_machines == 0:
                command = [sys.executable, "-m", "tgraph", "run", "--threads", "1"]
                env = {**os.environ, **machine_env()}
                subprocess.run([*command, "--config", str(path)], check=True, env=env)
            else:
                machines = Machines(n_machines)
                try:
                    run_machines(machines, folder, path, timeout=3000)
                finally:
                    machines.close()
            seconds, metrics = curve(folder)
        median = float(np.median(seconds))
        rows.append(
            {
                "engine": label,
                "train_events": n_events,
                "epoch_s": round(median, 2),
                "edges_per_s": round(n_events / median),
                "test_mrr": round(metrics["test"]["mrr"], 4),
            }
        )
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    table["vs_plain"] = (table["edges_per_s"] / table["edges_per_s"].iloc[0]).round(3)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "dist_dgl.csv", index=False)
    head = (
        f"python experiments/benchmarks/dist_dgl.py --events {args.events} "
        f"--epochs {args.epochs}; {platform.node()}, {os.cpu_count()} CPUs, one run\n\n"
    )
    (args.out / "dist_dgl.md").write_text(head + markdown(table))
    print(markdown(table))


if __name__ == "__main__":
    main()
