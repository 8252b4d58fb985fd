"""TGAT training steps and evaluation with one layer against ``L`` layers, in one process.

    python experiments/benchmarks/tgat_hops.py [--threads 1] [--batches 10]
        [--batch-size 1024] [--fanouts 20 5,20 10,20] [--rounds 3]

On ``getnext_nyc`` (time hidden), for each ``--fanouts`` (``config.fanouts`` of ``tgat``,
first layer first, the last = ``max_len``), ``--batches`` steps of the real training loop
(``Trainer.train_epoch(max_batches=...)``: the batch's time-respecting blocks, loss, backward,
Adam) are timed, the settings interleaved for ``--rounds`` rounds, the best round kept; also
the full ranking of the validation queries. Printed: ms per step, seconds per epoch at that
rate (every training sample once), the rows of layer 0 per query, and the ratio to the first
setting. On a shared machine compare the ratios, taken in this one process.
"""

from __future__ import annotations

import argparse
import math
import time

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch

import tgraph.models as models
from tgraph.data import data_root, protocols
from tgraph.data.queries import target_queries
from tgraph.models.tgat import TGAT
from tgraph.train import Trainer, seed_everything


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--fanouts", nargs="+", default=["20", "5,20", "10,20"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = protocols.getnext_nyc(data_root())
    settings = [[int(f) for f in text.split(",")] for text in args.fanouts]
    trainers = []
    for fanouts in settings:
        seed_everything(0)
        config = {"max_len": fanouts[-1], "fanouts": fanouts if len(fanouts) > 1 else None}
        model = models.get("tgat")(split, config)
        trainers.append(Trainer(model, split, {"batch_size": args.batch_size, "progress": False}))
    n_samples = len(split.train.events)
    steps = math.ceil(n_samples / args.batch_size)
    print(
        f"getnext_nyc: {n_samples:,} training samples, {steps} steps of {args.batch_size} per "
        f"epoch; dim 64, {args.threads} thread(s); best of {args.rounds} interleaved rounds"
    )
    train_best = [float("inf")] * len(settings)
    eval_best = [float("inf")] * len(settings)
    for _ in range(args.rounds):
        for index, trainer in enumerate(trainers):
            start = time.perf_counter()
            trainer.train_epoch(max_batches=args.batches)
            train_best[index] = min(train_best[index], time.perf_counter() - start)
            start = time.perf_counter()
            trainer.evaluate("valid", ("mrr",))
            eval_best[index] = min(eval_best[index], time.perf_counter() - start)
    print(
        "| fanouts | layer-0 rows / query | ms / step | s / epoch | vs first | eval s | vs first |"
    )
    print("|---|---|---|---|---|---|---|")
    for index, (fanouts, trainer) in enumerate(zip(settings, trainers, strict=True)):
        queries, _ = target_queries(split, "valid", fanouts[-1])
        model = trainer.model
        assert isinstance(model, TGAT)
        # one row per (node, time) a query reads: itself and one per edge below it
        rows = len(queries) + int(queries.hist_mask.sum())
        if len(fanouts) > 1:
            rows = len(model.layered_neighbourhood(queries).input_nodes)
        step = train_best[index] / args.batches
        print(
            f"| {fanouts} | {rows / len(queries):.1f} | {1000 * step:.0f} | {step * steps:.0f} | "
            f"{train_best[index] / train_best[0]:.2f}x | {eval_best[index]:.2f} | "
            f"{eval_best[index] / eval_best[0]:.2f}x |"
        )


if __name__ == "__main__":
    main()
