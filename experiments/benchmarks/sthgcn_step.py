"""STHGCN's training step and validation pass: the code before session 17 (every step encodes
every training trajectory and searches the neighbours anew) against the current one.

    python experiments/benchmarks/sthgcn_step.py [--threads 1] [--protocol sthgcn_nyc]
        [--batches 5] [--batch-size 2048] [--rounds 3]

The settings of ``tgraph/configs/sthgcn_nyc.yaml`` (embedding 64, 4 heads, dropout 0.1,
Jaccard threshold 0.005, 50 neighbours, batch 2048, lr 0.002). "full pass (old)" is a
subclass with the old code path; "subset (new)" is :class:`~tgraph.models.sthgcn.STHGCN` as
it is: only the trajectories a batch attends over are encoded, the neighbour lists are
remembered per query, the distance encodings of the check-ins are computed once, and their
subnormal floats (far RBF centres) are set to 0, which makes the CPU's matrix products with
them several times faster. The same
``--batches`` batches of training samples (``min_history`` 0: every training event) are
stepped once (the first epoch: the new model searches and remembers the neighbours), then
``--rounds`` times, interleaved with one full ranking of the validation queries per setting;
the best round is kept. Printed: process CPU seconds (steadier than wall-clock seconds on a
loaded machine, equal to them on an idle one with one thread) per step (first pass, then
best), per epoch at that rate, per validation pass, and the ratio to the old path. On a shared
machine compare the ratios, taken in this one process.
"""

from __future__ import annotations

import argparse
import math
import time

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch
from torch import Tensor

from tgraph.data import data_root, protocols
from tgraph.graph.hypergraph import CHECKIN_IN, trajectory_neighbours
from tgraph.models.sthgcn import STHGCN
from tgraph.train import Trainer, seed_everything
from tgraph.train.trainer import gradient_step

CONFIG = {
    "embedding_dim": 64,
    "n_heads": 4,
    "dropout": 0.1,
    "jaccard_threshold": 0.005,
    "n_neighbours": 50,
}


class FullPass(STHGCN):
    """The old code path (commit db30037): every training step encodes every training
    trajectory (distance encodings included, subnormal floats kept) and searches every
    query's neighbours."""

    def trajectory_embeddings(self, which: Tensor | None = None) -> Tensor:
        full = self.eval_cached(self._full_pass)
        return full if which is None else full[which]

    def _full_pass(self) -> Tensor:
        graph = self.hypergraph
        checkin, traj = graph.nodes["checkin"].data, graph.nodes["trajectory"].data
        x = self._checkin(checkin["item"], checkin["user"], checkin["local"])
        start = self._checkin(traj["last_item"], traj["user"], traj["local_end"])
        src, dst = graph.edges(etype=CHECKIN_IN)
        edge = self._edge(
            graph.edges[CHECKIN_IN].data["dt"], checkin["item"][src], traj["last_item"][dst]
        )
        return self.conv_intra(graph, x, start, edge)

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        return self.dist_enc(self._km(a, b))  # subnormal floats kept

    def _neighbours(self, items: Tensor, member: Tensor, now: Tensor) -> tuple[Tensor, Tensor]:
        end = self.hypergraph.nodes["trajectory"].data["end"]
        cfg = self.config
        src, dst, _ = trajectory_neighbours(
            self.incidence, self.traj_size, end, items, member, now,
            cfg.jaccard_threshold, cfg.n_neighbours,
        )  # fmt: skip
        return src, dst


def steps(trainer: Trainer, batches: list[Tensor]) -> float:
    """Process CPU seconds of one gradient step (loss, backward, Adam) on each of
    ``batches``."""
    assert trainer._samples is not None and trainer.optimizer is not None
    queries, positives = trainer._samples
    trainer.model.train()
    start = time.process_time()
    for index in batches:
        gradient_step(
            trainer.model,
            trainer.optimizer,
            None,
            queries[index],
            positives[index],
            0,
            trainer.negatives_generator,
            trainer.device,
        )
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--protocol", default="sthgcn_nyc")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = getattr(protocols, args.protocol)(data_root())
    settings = {"full pass (old)": FullPass, "subset (new)": STHGCN}
    trainers = []
    for cls in settings.values():
        seed_everything(0)
        model = cls(split, CONFIG)
        options = {"batch_size": args.batch_size, "lr": 0.002, "progress": False}
        trainers.append(Trainer(model, split, options))
    n_samples = len(trainers[0].split.train.events)
    n_steps = math.ceil(n_samples / args.batch_size)
    order = torch.randperm(n_samples, generator=torch.Generator().manual_seed(0))
    batches = list(order[: args.batches * args.batch_size].split(args.batch_size))
    print(
        f"{args.protocol}: {n_samples:,} training samples, {n_steps} steps of {args.batch_size} "
        f"per epoch; {args.threads} thread(s); best of {args.rounds} interleaved rounds"
    )
    first = [steps(trainer, batches) for trainer in trainers]  # the new model's cache fills
    train_best = [float("inf")] * len(settings)
    eval_best = [float("inf")] * len(settings)
    for _ in range(args.rounds):
        for index, trainer in enumerate(trainers):
            train_best[index] = min(train_best[index], steps(trainer, batches))
            start = time.process_time()
            trainer.evaluate("valid", ("mrr",))
            eval_best[index] = min(eval_best[index], time.process_time() - start)
    print(
        "| setting | CPU s / step (1st epoch) | CPU s / step | CPU s / epoch | vs old | "
        "validation CPU s | vs old |"
    )
    print("|---|---|---|---|---|---|---|")
    for index, name in enumerate(settings):
        step = train_best[index] / args.batches
        print(
            f"| {name} | {first[index] / args.batches:.3f} | {step:.3f} | {step * n_steps:.0f} | "
            f"{train_best[index] / train_best[0]:.2f}x | {eval_best[index]:.2f} | "
            f"{eval_best[index] / eval_best[0]:.2f}x |"
        )


if __name__ == "__main__":
    main()
