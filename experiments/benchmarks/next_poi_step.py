"""STHGCN's and GETNext's training step and validation pass: the code before session 17
against the current one, side by side in one process.

    python experiments/benchmarks/next_poi_step.py --model sthgcn [--threads 1]
        [--protocol sthgcn_nyc] [--batches 5] [--rounds 3]

Each model with its settings of ``tgraph/configs/sthgcn_nyc.yaml``: ``sthgcn`` embedding 64,
4 heads, dropout 0.1, Jaccard threshold 0.005, 50 neighbours, batch 2048, lr 0.002;
``getnext`` its defaults, batch 256, lr 0.001, weight decay 5e-4. "old" is a subclass with the
old code path, "new" the model as it is:

* ``sthgcn``: the old path encodes every training trajectory at every step, computes the
  distance encodings of every check-in anew (their subnormal floats kept) and searches every
  query's neighbours; the new one encodes only the trajectories the batch attends over,
  remembers each query's neighbours, computes the check-ins' distance encodings once and
  sets their subnormal floats (far RBF centres) to 0.
* ``getnext``: the old path runs the Transformer over the whole batch, padded to its longest
  current trajectory; the new one in groups of similar length (no work on the padding).

The same ``--batches`` batches of training samples are stepped once (a first epoch: STHGCN
searches and remembers the neighbours), then ``--rounds`` times, interleaved with one full
ranking of the validation queries per setting; the best round is kept. Printed: process CPU
seconds (steadier than wall-clock seconds on a loaded machine, equal to them on an idle one
with one thread) per step (first pass, then best), per epoch at that rate, per validation
pass, and the ratio to the old path. On a shared machine compare the ratios.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch
import torch.nn.functional as F
from torch import Tensor

from tgraph.data import data_root, protocols
from tgraph.data.queries import Queries
from tgraph.graph.hypergraph import CHECKIN_IN, trajectory_neighbours
from tgraph.models.getnext import GETNext
from tgraph.models.sthgcn import STHGCN
from tgraph.train import Trainer, seed_everything
from tgraph.train.trainer import gradient_step


class OldSTHGCN(STHGCN):
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


class OldGETNext(GETNext):
    """The old code path (commit db30037): the input and the Transformer run over the whole
    batch, padded to its longest current trajectory."""

    def encode(self, queries: Queries, poi: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        items, tau, length = self.trajectory(queries)
        table = torch.cat([poi, poi.new_zeros(1, poi.shape[1])])
        user = self.user_emb(queries.user).unsqueeze(1).expand(-1, items.shape[1], -1)
        fused = F.leaky_relu(self.fuse(torch.cat([table[items], user], -1)), 0.2)
        x = torch.cat([fused, self.time2vec(tau)], -1) * math.sqrt(self.dim)
        x = self.input_dropout(x + self.positional[: items.shape[1]])
        return self.encoder(x), items, tau, length


#: model -> (old class, new class, model config, training options of sthgcn_nyc.yaml)
SETTINGS: dict[str, tuple[type, type, dict[str, Any], dict[str, Any]]] = {
    "sthgcn": (
        OldSTHGCN,
        STHGCN,
        {
            "embedding_dim": 64,
            "n_heads": 4,
            "dropout": 0.1,
            "jaccard_threshold": 0.005,
            "n_neighbours": 50,
        },
        {"batch_size": 2048, "lr": 0.002},
    ),
    "getnext": (
        OldGETNext,
        GETNext,
        {},
        {"batch_size": 256, "lr": 0.001, "weight_decay": 0.0005},
    ),
}


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
    parser.add_argument("--model", choices=sorted(SETTINGS), default="sthgcn")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--protocol", default="sthgcn_nyc")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = getattr(protocols, args.protocol)(data_root())
    old, new, config, options = SETTINGS[args.model]
    settings = {f"{args.model} old": old, f"{args.model} new": new}
    trainers = []
    for cls in settings.values():
        seed_everything(0)
        model = cls(split, config)
        trainers.append(Trainer(model, split, {**options, "progress": False}))
    batch_size = options["batch_size"]
    n_samples = len(trainers[0].split.train.events)
    n_steps = math.ceil(n_samples / batch_size)
    order = torch.randperm(n_samples, generator=torch.Generator().manual_seed(0))
    batches = list(order[: args.batches * batch_size].split(batch_size))
    print(
        f"{args.protocol}: {n_samples:,} training samples, {n_steps} steps of {batch_size} "
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
