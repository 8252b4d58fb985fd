"""LightGCN training steps: full-graph propagation against neighbour-sampled blocks, in one process.

    python experiments/benchmarks/sampled_training.py --dataset nyc|gowalla [--threads 1]
        [--batches 20] [--batch-size 2048] [--fanouts 10,10,10 5,5,5] [--rounds 2]

For each setting (whole graph, then each ``--fanouts``), ``--batches`` training steps of the
real training loop (``Trainer.train_epoch(max_batches=...)``: negatives, loss, backward, Adam)
are timed, the settings interleaved for ``--rounds`` rounds, and the best round is kept. Also
printed: how many nodes the first block of a sampled batch reads (the share of the graph a step
touches), and one evaluation propagation, whole graph against layer-wise chunks. On a shared
machine compare the ratios, taken in this one process.
"""

from __future__ import annotations

import argparse
import time

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch

import tgraph.models as models
from tgraph.data import data_root, protocols
from tgraph.train import Trainer, seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["nyc", "gowalla"], default="nyc")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--fanouts", nargs="+", default=["10,10,10", "5,5,5"])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    root = data_root()
    split = protocols.getnext_nyc(root) if args.dataset == "nyc" else protocols.lightgcn(root)
    config = {"embedding_dim": 64, "n_layers": 3}
    settings: list[list[int] | None] = [None]
    settings += [[int(f) for f in text.split(",")] for text in args.fanouts]
    trainers = []
    for fanouts in settings:
        seed_everything(0)
        model = models.get("lightgcn")(split, config)
        sampling = None if fanouts is None else {"fanouts": fanouts}
        options = {"batch_size": args.batch_size, "progress": False, "sampling": sampling}
        trainers.append(Trainer(model, split, options, seed=0))
    graph = trainers[0].model.graph
    print(
        f"{args.dataset}: {graph.num_nodes():,} nodes, {graph.num_edges():,} edges; dim 64, "
        f"3 layers, batch {args.batch_size}, {args.threads} thread(s)"
    )

    best = [float("inf")] * len(settings)
    for _ in range(args.rounds):
        for index, trainer in enumerate(trainers):
            start = time.perf_counter()
            trainer.train_epoch(max_batches=args.batches)
            best[index] = min(best[index], (time.perf_counter() - start) / args.batches)

    full = best[0]
    print(f"{'setting':<22}{'ms/step':>10}{'x full':>9}{'nodes read':>13}")
    for fanouts, seconds, trainer in zip(settings, best, trainers):
        read = ""
        if fanouts is not None:
            model = trainer.model
            users = torch.randint(0, model.n_users, (args.batch_size,))
            items = torch.randint(0, model.n_items, (2 * args.batch_size,)) + model.n_users
            sample = model.sample_blocks(torch.cat([users, items]))
            read = f"{len(sample.input_nodes) / graph.num_nodes():.0%}"
        name = "whole graph" if fanouts is None else f"fanouts {fanouts}"
        print(f"{name:<22}{seconds * 1e3:>10.1f}{seconds / full:>9.2f}{read:>13}")

    model = trainers[0].model.eval()  # no sampling attached: propagate() is the whole graph
    with torch.no_grad():
        start = time.perf_counter()
        whole = model.propagate()
        whole_s = time.perf_counter() - start
        start = time.perf_counter()
        chunked = model.layerwise_propagate(16384)
        chunk_s = time.perf_counter() - start
    diff = float((whole - chunked).abs().max())
    print(
        f"evaluation propagation: whole graph {whole_s:.2f} s, layer-wise chunks of 16,384 "
        f"{chunk_s:.2f} s (max difference {diff:.1e})"
    )


if __name__ == "__main__":
    main()
