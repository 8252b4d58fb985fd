"""LightGCN speed on the Gowalla LightGCN split, every figure measured in this one process.

    python experiments/benchmarks/lightgcn_gowalla.py [--threads 2] [--epoch-batches 0]
        [--negatives 1 4 8 --negatives-batch-size 8192]

Prints: one LightGCN propagation layer (DGL ``update_all(copy_u, sum)`` with the symmetric
norm folded into node scaling) against the floor, a bare torch CSR sparse-dense product of the
same normalised adjacency; the fused 3-layer mean used in training (three SpMMs) against three
floors; time per training epoch at batch 2048 (BPR, one negative); and the full-ranking
evaluation of all test users. On a shared machine the epoch and evaluation times vary with the
load: compare runs by their ratios, taken in one process, and quote medians of several runs.
``--epoch-batches N`` times N batches and extrapolates to the epoch (say so when you quote
it); 0 runs the whole epoch. ``--negatives K1 K2 ...`` then times training steps with each
number of sampled negatives per positive (``train.n_neg``), the trainers taking turns in
rounds of 3 steps, and prints each one's median process-CPU seconds per step and its median
ratio to the first; the full-ranking evaluation is skipped.
"""

from __future__ import annotations

import argparse
import statistics
import time

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch
from timing import best_of

from tgraph.config import ExperimentConfig, ModelEntry
from tgraph.data import data_root, protocols
from tgraph.data.split import Split
from tgraph.eval.evaluator import Evaluator
from tgraph.nn.lightgcn_conv import LightGCNConv, lightgcn_propagate
from tgraph.train.recipe import build_trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--epoch-batches", type=int, default=0)
    parser.add_argument("--negatives", type=int, nargs="+", default=[])
    parser.add_argument("--negatives-batch-size", type=int, default=8192)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = protocols.lightgcn(data_root())
    entry = ModelEntry(name="lightgcn", config={"embedding_dim": 64, "n_layers": 3})
    train = {"batch_size": 2048, "lr": 1e-3, "progress": True, "epochs": 1}
    trainer = build_trainer(split, entry, 0, ExperimentConfig(models=[entry], train=train))
    model = trainer.model
    graph, feat = model.graph, model.embedding.weight.detach()
    print(f"graph: {graph.num_nodes():,} nodes, {graph.num_edges():,} edges; dim 64")

    with torch.no_grad():
        conv = LightGCNConv()
        layer = best_of(lambda: conv(graph, feat, model.graph_norm), args.repeats)
        mean = best_of(
            lambda: lightgcn_propagate(graph, feat, 3, norm=model.graph_norm), args.repeats
        )
        src, dst = graph.edges()
        norm = (graph.out_degrees(src).clamp(min=1) * graph.in_degrees(dst).clamp(min=1)).pow(-0.5)
        adjacency = torch.sparse_coo_tensor(
            torch.stack([dst, src]), norm.float(), (graph.num_nodes(),) * 2
        ).to_sparse_csr()
        floor = best_of(lambda: adjacency @ feat, args.repeats)
    print(f"one propagation layer (DGL copy_u+sum, node-scaled norm): {layer * 1e3:8.1f} ms")
    print(f"torch CSR sparse x dense, same matrix (the floor):        {floor * 1e3:8.1f} ms")
    print(f"ratio layer / floor:                                      {layer / floor:8.2f}")
    print(f"fused 3-layer mean (forward, 3 SpMM):                     {mean * 1e3:8.1f} ms")
    print(f"ratio 3-layer mean / (3 x floor):                         {mean / (3 * floor):8.2f}")

    n_batches = -(-len(split.train) // 2048)
    done = min(args.epoch_batches or n_batches, n_batches)
    start = time.perf_counter()
    trainer.train_epoch(max_batches=done)
    epoch = (time.perf_counter() - start) * n_batches / done
    note = "" if done == n_batches else f" (extrapolated from {done} of {n_batches} batches)"
    print(f"training epoch, batch 2048, {n_batches} batches: {epoch:8.1f} s{note}")
    step = epoch / n_batches
    print(f"one training step / floor:                                {step / floor:8.1f}")
    if args.negatives:
        time_negatives(split, entry, args.negatives, args.negatives_batch_size, args.repeats)
        return

    start = time.perf_counter()
    result = Evaluator(split, "test", ("recall@20", "ndcg@20"), batch_size=1024).evaluate(model)
    print(
        f"full-ranking evaluation, {len(result.per_query):,} users x {split.n_items:,} items: "
        f"{time.perf_counter() - start:8.1f} s"
    )


def time_negatives(
    split: Split, entry: ModelEntry, negatives: list[int], batch: int, rounds: int
) -> None:
    """Process-CPU seconds per training step for each ``n_neg``, the trainers taking turns."""
    trainers = {}
    for k in negatives:
        train = {"batch_size": batch, "lr": 3e-3, "progress": False, "epochs": 1, "n_neg": k}
        trainers[k] = build_trainer(split, entry, 0, ExperimentConfig(models=[entry], train=train))
        trainers[k].train_epoch(max_batches=2)  # warm-up
    steps = 3
    cost: dict[int, list[float]] = {k: [] for k in negatives}
    for _ in range(rounds):
        for k, trainer in trainers.items():
            start = time.process_time()
            trainer.train_epoch(max_batches=steps)
            cost[k].append((time.process_time() - start) / steps)
    first = cost[negatives[0]]
    for k, seconds in cost.items():
        ratio = statistics.median(a / b for a, b in zip(seconds, first, strict=True))
        print(
            f"batch {batch}, n_neg {k:3d}: {statistics.median(seconds):.3f} CPU s per step "
            f"(median of {rounds} rounds), ratio to n_neg {negatives[0]}: {ratio:.2f}"
        )


if __name__ == "__main__":
    main()
