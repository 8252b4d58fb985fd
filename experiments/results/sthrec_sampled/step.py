"""CPU seconds (this process's, one thread: less sensitive than wall time to the other jobs of a
shared machine) per sthrec training step (forward + backward, batch of training samples) and per
graph-encoder forward, whole graph against sampled blocks, the settings interleaved in one
process (best of ``--rounds`` rounds of ``--steps`` steps), and the share of the graph's edges
a batch's blocks hold. NYC (getnext_nyc), the default sthrec (sthrec_nyc.yaml's), one thread.

    TGRAPH_DATA=/work/shared/data python experiments/results/sthrec_sampled/step.py \
        --fanouts 10,10 5,5 2,2
"""

from __future__ import annotations

import argparse
import time

import dgl
import torch

import tgraph.models as models
from tgraph.data import data_root
from tgraph.data.protocols import getnext_nyc
from tgraph.graph.sampling import NeighborSampling
from tgraph.models.base import Batch
from tgraph.train import Trainer
from tgraph.train.seed import seed_everything


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fanouts", nargs="+", default=["10,10"])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    split = getnext_nyc(data_root())
    seed_everything(0)
    model = models.get("sthrec")(split, {}).train()
    trainer = Trainer(model, split, {"progress": False}, seed=0)
    assert trainer._samples is not None
    queries, positives = trainer._samples  # the training samples an epoch permutes
    order = torch.randperm(len(positives), generator=torch.Generator().manual_seed(0))
    batches = [
        Batch(queries[index], positives[index])
        for index in order[: args.steps * args.batch_size].split(args.batch_size)
    ]
    graph = model.graph
    settings = [("whole graph", None)] + [
        (f"fanouts [{f.replace(',', ', ')}]", NeighborSampling([int(x) for x in f.split(",")]))
        for f in args.fanouts
    ]
    best = {label: [float("inf"), float("inf")] for label, _ in settings}
    edges = {}
    for _ in range(args.rounds):
        for label, sampling in settings:
            model.use_sampling(sampling)
            start = time.process_time()
            for batch in batches:
                model.zero_grad()
                model.calculate_loss(batch).backward()
            step = (time.process_time() - start) / len(batches)
            start = time.process_time()
            with torch.no_grad():
                for batch in batches:
                    if sampling is None:
                        model.encoder(graph)
                    else:
                        model.sampled_propagate(batch.queries, None)
            encoder = (time.process_time() - start) / len(batches)
            best[label] = [min(best[label][0], step), min(best[label][1], encoder)]
            if sampling is not None and label not in edges:
                nodes = {"item": torch.arange(model.n_items), "user": batches[0].queries.user}
                edges[label] = [
                    _edge_share(graph, b) for b in sampling.sample_types(graph, nodes).blocks
                ]
    whole_step = best["whole graph"][0]
    print("| setting | s per step | vs whole graph | encoder forward s | edges per layer |")
    print("|---|---:|---:|---:|---:|")
    for label, (step, encoder) in best.items():
        share = ", ".join(f"{x:.0%}" for x in edges.get(label, [1.0, 1.0]))
        print(f"| {label} | {step:.3f} | {step / whole_step:.2f} | {encoder:.3f} | {share} |")


def _edge_share(graph: dgl.DGLGraph, block: dgl.DGLGraph) -> float:
    """The block's edges over the graph's edges of the block's relations."""
    etypes = block.canonical_etypes
    return sum(block.num_edges(et) for et in etypes) / sum(graph.num_edges(et) for et in etypes)


if __name__ == "__main__":
    main()
