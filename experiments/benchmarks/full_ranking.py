"""Full-ranking evaluation of all Gowalla test users against its floor, in one process.

    python experiments/benchmarks/full_ranking.py [--threads 2] [--repeats 3] [--torch-path]
        [--previous]

Builds the Gowalla LightGCN split and an untrained LightGCN (dim 64, 3 layers, seed 0; the
evaluator's work does not depend on the scores' values) and prints: the evaluator's time for
all test users (``Evaluator.evaluate``, batch 1024, Recall@20 and NDCG@20, propagation
included), the bare scoring matmul of the same sizes (user rows x all item embeddings in
batches of 1024: the floor), their ratio and the metrics. The evaluator counts with the native
kernel (``tgraph/eval/native.py``) when a C compiler is there; ``--torch-path`` also times, in
each repeat, the evaluator with ``TGRAPH_NATIVE=0`` (its pure-torch counting path, one
comparison pass per target) and checks that both give identical ranks for every user.
``--previous`` also times (once) the evaluator's previous ranking path (``searchsorted`` +
``bincount`` over every score, masks written into a copy of the scores; kept here verbatim) on
the same model and checks that both give identical ranks for every user. Times are the fastest
of ``--repeats`` runs after one warm-up; each repeat times the matmul and then the evaluator
(then the torch path), and ratios are medians of the repeats' ratios, so that on a shared
machine they compare like with like.
Writes ``experiments/results/benchmarks/full_ranking.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch
from torch import Tensor

import tgraph.models as models
from tgraph.data import data_root, protocols
from tgraph.eval import evaluator as E
from tgraph.eval import native
from tgraph.eval.evaluator import Evaluator

OUT = Path(__file__).resolve().parents[1] / "results" / "benchmarks" / "full_ranking.json"


def previous_ranks(scores: Tensor, gt: Tensor) -> Tensor:
    """The evaluator's ranking before this benchmark (commit ccfad7a), for the side-by-side
    time and the identity check."""
    n_rows, width = gt.shape
    scores = scores.contiguous()
    real = gt >= 0
    n_gt = real.sum(1, keepdim=True)
    gt_scores = scores.gather(1, gt.clamp(min=0))
    gt_scores = torch.where(real, gt_scores, torch.full_like(gt_scores, float("inf")))
    ascending, _ = gt_scores.sort(dim=1)
    position = torch.searchsorted(ascending, scores, right=True)
    offsets = torch.arange(n_rows, device=scores.device).unsqueeze(1) * (width + 1)
    histogram = torch.bincount((position + offsets).flatten(), minlength=n_rows * (width + 1))
    histogram = histogram.view(n_rows, width + 1)
    all_ge = histogram[:, 1:].flip(1).cumsum(1).flip(1)
    first = torch.searchsorted(ascending, ascending, right=False)
    gt_ge = n_gt - first
    k = torch.arange(width, device=scores.device).unsqueeze(0)
    rank = 1 + (n_gt - 1 - k) + (all_ge - gt_ge)
    rank = rank.to(torch.float64).masked_fill(k >= n_gt, float("inf"))
    return rank.sort(dim=1).values


def previous_evaluate(evaluator: Evaluator, model: models.Recommender) -> np.ndarray:
    """All ranks by the previous path: masks written into a copy, then :func:`previous_ranks`."""
    assert evaluator.mask_ptr is not None and evaluator.mask_items is not None
    queries = evaluator.queries(model.history_len)
    chunks = []
    for lo in range(0, len(evaluator.table), evaluator.batch_size):
        rows = np.arange(lo, min(lo + evaluator.batch_size, len(evaluator.table)))
        scores = model.full_sort_predict(queries[lo : rows[-1] + 1]).float()
        low, high = torch.aminmax(scores)
        assert torch.isfinite(low) and torch.isfinite(high)
        batch_row, items, _ = E._segments(evaluator.mask_ptr, evaluator.mask_items, rows)
        scores = scores.index_put((batch_row, items), torch.tensor(float("-inf")))
        batch_row, items, within = E._segments(evaluator.gt_ptr, evaluator.gt_items, rows)
        width = int((evaluator.gt_ptr[rows + 1] - evaluator.gt_ptr[rows]).max())
        gt = torch.full((len(rows), width), -1, dtype=torch.long)
        gt[batch_row, within] = items
        chunks.append(previous_ranks(scores, gt).numpy())
    return evaluator.result(chunks).ranks


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--previous", action="store_true", help="time the previous path too")
    parser.add_argument(
        "--torch-path", action="store_true", help="time the evaluator with TGRAPH_NATIVE=0 too"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = protocols.lightgcn(data_root())
    torch.manual_seed(0)
    model = models.get("lightgcn")(split, {"embedding_dim": 64, "n_layers": 3})
    model.eval()
    evaluator = Evaluator(split, "test", ("recall@20", "ndcg@20"), batch_size=args.batch_size)
    n_users, n_items = len(evaluator.table), split.n_items
    n_gt = np.diff(evaluator.gt_ptr)
    print(
        f"Gowalla test: {n_users:,} users x {n_items:,} items, {int(n_gt.sum()):,} targets "
        f"(max {int(n_gt.max())} per user); {args.threads} threads; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )

    with torch.no_grad():
        user_emb, item_emb = model.embed(evaluator.queries(model.history_len))

    @torch.no_grad()
    def matmul() -> None:
        for lo in range(0, n_users, args.batch_size):
            user_emb[lo : lo + args.batch_size] @ item_emb.T

    def torch_path() -> E.EvalResult:
        os.environ["TGRAPH_NATIVE"] = "0"
        try:
            return evaluator.evaluate(model)
        finally:
            del os.environ["TGRAPH_NATIVE"]

    # side by side: each repeat times the floor, then the evaluator, so load changes hit both
    matmul()
    result = evaluator.evaluate(model)
    if args.torch_path:
        torch_result = torch_path()
    floors, evaluations, torch_runs = [], [], []
    for _ in range(args.repeats):
        floors.append(timed(matmul))
        evaluations.append(timed(lambda: evaluator.evaluate(model)))
        if args.torch_path:
            torch_runs.append(timed(torch_path))
    floor, seconds = min(floors), min(evaluations)
    ratio = float(np.median(np.array(evaluations) / np.array(floors)))
    print(f"bare scoring matmul (the floor):      {floor:7.2f} s")
    print(f"Evaluator.evaluate:                   {seconds:7.2f} s")
    print(f"ratio evaluator / floor (median):     {ratio:7.2f}")
    print(f"native counting kernel:               {native.kernel() is not None}")
    record: dict[str, object] = {
        "command": "python experiments/benchmarks/full_ranking.py "
        + f"--threads {args.threads} --repeats {args.repeats} --batch-size {args.batch_size}"
        + (" --torch-path" if args.torch_path else "")
        + (" --previous" if args.previous else ""),
        "threads": args.threads,
        "users": n_users,
        "items": n_items,
        "targets": int(n_gt.sum()),
        "evaluator_s": round(seconds, 3),
        "matmul_s": round(floor, 3),
        "ratio": round(ratio, 2),
        "evaluator_runs_s": [round(t, 3) for t in evaluations],
        "matmul_runs_s": [round(t, 3) for t in floors],
        "metrics": result.metrics,
        "native_kernel": native.kernel() is not None,
    }
    if args.torch_path:
        torch_s = min(torch_runs)
        torch_ratio = float(np.median(np.array(torch_runs) / np.array(evaluations)))
        identical = bool(np.array_equal(torch_result.ranks, result.ranks))
        print(f"torch counting path (TGRAPH_NATIVE=0): {torch_s:6.2f} s")
        print(f"ratio torch path / evaluator (median): {torch_ratio:6.2f}")
        print(f"identical ranks for every user:       {identical}")
        record.update(
            torch_path_s=round(torch_s, 3),
            torch_path_over_evaluator=round(torch_ratio, 2),
            torch_path_runs_s=[round(t, 3) for t in torch_runs],
            torch_path_over_floor=round(
                float(np.median(np.array(torch_runs) / np.array(floors))), 2
            ),
            identical_ranks_torch_path=identical,
        )
    if args.previous:
        ranks = previous_evaluate(evaluator, model)
        identical = bool(np.array_equal(ranks, result.ranks))
        previous = timed(lambda: previous_evaluate(evaluator, model))  # warmed up by the check
        print(f"previous path:                        {previous:7.2f} s")
        print(f"ratio previous / evaluator:           {previous / seconds:7.2f}")
        print(f"identical ranks for every user:       {identical}")
        record.update(previous_s=round(previous, 3), speedup=round(previous / seconds, 2))
        record["identical_ranks"] = identical
    print("metrics: " + ", ".join(f"{k} {v:.6f}" for k, v in result.metrics.items()))
    record["load_average_after"] = round(os.getloadavg()[0], 2)
    record["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    record["torch"] = torch.__version__
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
