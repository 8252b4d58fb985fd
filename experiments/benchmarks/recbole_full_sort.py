"""tgraph's full-ranking evaluation beside RecBole 1.2.1's full-sort evaluation, in one run.

RecBole lives in its own virtual environment, never in the project's (its pins differ):

    python3.11 -m venv /work/recbole_venv
    /work/recbole_venv/bin/pip install "torch==2.2.1" "numpy<2" "scipy<1.12" "recbole==1.2.1"

(scipy 1.12 removed ``dok_matrix._update``, which RecBole 1.2.1's LightGCN calls.)

then, with the project's interpreter:

    python experiments/benchmarks/recbole_full_sort.py \\
        --recbole-python /work/recbole_venv/bin/python [--threads 2] [--repeats 3]

The same users, items and embedding size on both sides: the Gowalla LightGCN split's train
events and test targets (tgraph's integer codes written as RecBole tokens into atomic files in
a temporary folder: ``benchmark_filename`` train / test / test, so that RecBole's test history,
its used items minus the test positives, is the train items, as tgraph's mask), an untrained
LightGCN of dimension 64 with 3 layers on each side, 1024 users per batch (RecBole's
``eval_batch_size`` = 1024 x its item count), Recall@20 and NDCG@20, CPU, ``--threads``
threads each. RecBole runs in a worker process of its venv started once; each repeat times
the bare scoring matmul (the floor), then ``Evaluator.evaluate``, then RecBole's
``Trainer.evaluate(test_data)`` in the worker (its propagation cache cleared first, as
tgraph's is by ``eval()``), so a load change on a shared machine hits all three. Seconds are
the fastest of ``--repeats`` after one warm-up; ratios are medians of the repeats' ratios.

What each computes differs: tgraph the exact pessimistic rank of every target (ties count
against it) and a per-user table; RecBole ``torch.topk`` of the 20 best scores (ties broken by
``topk``'s order), history masked by writing ``-inf`` into the scores. The metrics of an
untrained model are near zero on both sides and are printed, not compared.
Writes ``experiments/results/benchmarks/recbole_full_sort.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "recbole_full_sort.json"
BATCH_USERS = 1024


def worker(data_path: str, threads: int) -> None:
    """In RecBole's venv: build its dataset and LightGCN, then time ``Trainer.evaluate`` once
    per ``run`` line on stdin, answering one JSON line per request on stdout."""
    import logging

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import LightGCN
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    torch.set_num_threads(threads)
    n_items = int(Path(data_path, "n_items").read_text())
    config = Config(
        model="LightGCN",
        dataset="gowalla",
        config_dict={
            "data_path": data_path,
            "checkpoint_dir": data_path,
            "benchmark_filename": ["train", "test", "test"],
            "load_col": {"inter": ["user_id", "item_id"]},
            "eval_args": {"group_by": "user", "order": "RO", "mode": "full"},
            "metrics": ["Recall", "NDCG"],
            "topk": [20],
            "valid_metric": "NDCG@20",
            "eval_batch_size": BATCH_USERS * (n_items + 1),  # + RecBole's padding item 0
            "embedding_size": 64,
            "n_layers": 3,
            "device": "cpu",
            "use_gpu": False,
            "seed": 0,
            "show_progress": False,
            "state": "WARNING",
            "worker": 0,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, _, test_data = data_preparation(config, dataset)
    model = LightGCN(config, train_data.dataset).to("cpu")
    trainer = Trainer(config, model)
    users = len(test_data.uid_list)
    targets = int(sum(len(p) for p in test_data.uid2positive_item if p is not None))
    ready = {"users": users, "items": dataset.item_num - 1, "targets": targets}
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        model.restore_user_e = model.restore_item_e = None  # propagate again, as tgraph does
        start = time.perf_counter()
        result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        seconds = time.perf_counter() - start
        print(json.dumps({"seconds": seconds, "metrics": dict(result)}), flush=True)


def write_atomic_files(split: Any, folder: Path) -> None:
    """A split's train events and test targets as RecBole atomic files
    ``gowalla/gowalla.{train,test}.inter``, and its item count in ``n_items``."""
    target = folder / "gowalla"
    target.mkdir(parents=True)
    header = "user_id:token\titem_id:token\n"
    for name, frame in (("train", split.train.events), ("test", split.targets("test"))):
        with open(target / f"gowalla.{name}.inter", "w") as handle:
            handle.write(header)
            frame[["user", "item"]].to_csv(handle, sep="\t", header=False, index=False)
    (folder / "n_items").write_text(str(split.n_items))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recbole-python", default="/work/recbole_venv/bin/python")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads)
        return

    # tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
    import tgraph  # noqa: F401  # isort: skip
    import numpy as np
    import torch

    import tgraph.models as models
    from tgraph.data import data_root, protocols
    from tgraph.eval import native
    from tgraph.eval.evaluator import Evaluator

    torch.set_num_threads(args.threads)
    split = protocols.lightgcn(data_root())
    with tempfile.TemporaryDirectory(prefix="recbole_gowalla_") as tmp:
        write_atomic_files(split, Path(tmp))
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(args.threads))
        script = os.path.abspath(__file__)
        command = [args.recbole_python, script, "--worker", tmp, "--threads", str(args.threads)]
        process = subprocess.Popen(  # in tmp: RecBole writes log/ and log_tensorboard/ in cwd
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp
        )
        assert process.stdin is not None and process.stdout is not None

        def recbole_run() -> dict[str, Any]:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write("run\n")
            process.stdin.flush()
            return dict(json.loads(process.stdout.readline()))

        try:
            line = process.stdout.readline()
            if not line:
                raise SystemExit(f"RecBole worker failed to start: {' '.join(command)}")
            recbole_sizes = json.loads(line)

            torch.manual_seed(0)
            model = models.get("lightgcn")(split, {"embedding_dim": 64, "n_layers": 3}).eval()
            evaluator = Evaluator(split, "test", ("recall@20", "ndcg@20"), batch_size=BATCH_USERS)
            n_users = len(evaluator.table)
            sizes = {
                "users": n_users,
                "items": split.n_items,
                "targets": int(np.diff(evaluator.gt_ptr).sum()),
            }
            print(f"tgraph: {sizes}; RecBole: {recbole_sizes}; {args.threads} threads")
            with torch.no_grad():
                user_emb, item_emb = model.embed(evaluator.queries(model.history_len))

            def matmul() -> None:
                with torch.no_grad():
                    for lo in range(0, n_users, BATCH_USERS):
                        user_emb[lo : lo + BATCH_USERS] @ item_emb.T

            def timed_tgraph() -> float:
                start = time.perf_counter()
                evaluator.evaluate(model)
                return time.perf_counter() - start

            matmul()
            ours = evaluator.evaluate(model)
            theirs = recbole_run()  # warm-up
            floors, tgraph_s, recbole_s = [], [], []
            for _ in range(args.repeats):
                start = time.perf_counter()
                matmul()
                floors.append(time.perf_counter() - start)
                tgraph_s.append(timed_tgraph())
                theirs = recbole_run()
                recbole_s.append(theirs["seconds"])
        finally:
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=60)

    floor_a, ours_a, theirs_a = (np.array(x) for x in (floors, tgraph_s, recbole_s))
    record: dict[str, object] = {
        "command": "python experiments/benchmarks/recbole_full_sort.py "
        f"--recbole-python {args.recbole_python} --threads {args.threads} "
        f"--repeats {args.repeats}",
        "threads": args.threads,
        **sizes,
        "recbole_sizes": recbole_sizes,
        "native_kernel": native.kernel() is not None,
        "matmul_s": round(float(floor_a.min()), 3),
        "tgraph_s": round(float(ours_a.min()), 3),
        "recbole_s": round(float(theirs_a.min()), 3),
        "tgraph_over_floor": round(float(np.median(ours_a / floor_a)), 2),
        "recbole_over_floor": round(float(np.median(theirs_a / floor_a)), 2),
        "recbole_over_tgraph": round(float(np.median(theirs_a / ours_a)), 2),
        "matmul_runs_s": [round(t, 3) for t in floors],
        "tgraph_runs_s": [round(t, 3) for t in tgraph_s],
        "recbole_runs_s": [round(t, 3) for t in recbole_s],
        "tgraph_metrics": ours.metrics,
        "recbole_metrics": theirs["metrics"],
        "load_average_after": round(os.getloadavg()[0], 2),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__,
        "recbole": "1.2.1",
    }
    for key in ("matmul_s", "tgraph_s", "recbole_s"):
        print(f"{key:10s} {record[key]:8.3f} s")
    for key in ("tgraph_over_floor", "recbole_over_floor", "recbole_over_tgraph"):
        print(f"{key:20s} {record[key]:6.2f} (median of the repeats)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
