"""sthrec's training step and validation pass above ``MAX_DISTANCE_TABLE_ITEMS`` POIs (no
distance table): the code before session 17 against the current one.

    python experiments/benchmarks/sthrec_distance.py [--threads 1] [--protocol gowalla_mat]
        [--batches 4] [--batch-size 1024] [--rounds 2]

"per batch (old)" is a subclass with the old code path: each step gathers the coordinates of
the ``[B, n_items]`` (last item, POI) pairs and computes their haversine. "distinct rows
(new)" is :class:`~tgraph.models.flagship.STHeteroRec` as it is: one row per distinct last
item of the batch, its coordinates broadcast against every POI's. The default sthrec config,
``batch_size`` 1024 and lr 0.003 of ``tgraph/configs/gowalla_mat.yaml``. The same
``--batches`` training batches are stepped ``--rounds`` times per setting, interleaved with a
full ranking of the validation queries; the best round is kept. Printed: process CPU
seconds (steadier than wall-clock seconds on a loaded machine) per step, per epoch at that
rate, per validation pass, the ratio to the old path, and the largest difference between the
two paths' penalties on the first batch. Also printed: the share of subnormal floats in the
RBF distance features of that batch's histories and the CPU seconds of ``dist_proj``'s
forward and backward on them as they are and with the subnormals set to 0 (a measurement
only; the model keeps them). On a shared machine compare the ratios, taken in this one
process.
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
from tgraph.models.flagship import STHeteroRec
from tgraph.train import Trainer, seed_everything

# sibling script (this folder is on sys.path when run as a script): the same gradient steps
from next_poi_step import steps  # isort: skip


class PerBatch(STHeteroRec):
    """The old code path (commit 306f036): the ``[B, n_items]`` pairs' coordinates gathered
    and their haversine computed for every batch."""

    def _log_km(self, last: Tensor, targets: Tensor | None) -> Tensor:
        all_items = torch.arange(self.n_items, device=last.device)
        targets_ = all_items.expand(len(last), -1) if targets is None else targets
        last_ = last.view(-1, *([1] * (targets_.dim() - 1))).expand(targets_.shape)
        return torch.log1p(self._pair_km(last_, targets_) / 0.1)


def subnormals(model: STHeteroRec, trainer: Trainer, index: Tensor, repeats: int = 5) -> None:
    """The share of subnormal RBF features of a batch's history steps and ``dist_proj``'s
    forward + backward CPU seconds with them and with them set to 0."""
    assert trainer._samples is not None
    queries = trainer._samples[0][index]
    items = queries.hist_items
    assert items is not None
    prev = torch.cat([items[:, :1], items[:, :-1]], 1)
    with torch.no_grad():
        features = model.dist_enc(model._pair_km(prev, items))
    tiny = (features != 0) & (features.abs() < torch.finfo(torch.float32).tiny)
    print(f"subnormal RBF features: {tiny.float().mean().item():.1%} of {features.numel():,}")
    flushed = torch.where(tiny, torch.zeros_like(features), features)
    for name, x in (("as they are", features), ("subnormals set to 0", flushed)):
        best = float("inf")
        for _ in range(repeats):
            model.zero_grad()
            start = time.process_time()
            model.dist_proj(x).sum().backward()
            best = min(best, time.process_time() - start)
        print(f"dist_proj forward + backward, {name}: {best:.4f} CPU s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--protocol", default="gowalla_mat")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    split = getattr(protocols, args.protocol)(data_root())
    settings = {"per batch (old)": PerBatch, "distinct rows (new)": STHeteroRec}
    trainers = []
    for cls in settings.values():
        seed_everything(0)
        model = cls(split, {})
        assert not hasattr(model, "log_km"), "a distance table: nothing to compare"
        options = {"batch_size": args.batch_size, "lr": 0.003, "progress": False}
        trainers.append(Trainer(model, split, options))
    assert trainers[0]._samples is not None
    queries, _ = trainers[0]._samples
    n_samples = len(queries)
    n_steps = math.ceil(n_samples / args.batch_size)
    order = torch.randperm(n_samples, generator=torch.Generator().manual_seed(0))
    batches = list(order[: args.batches * args.batch_size].split(args.batch_size))
    last = queries[batches[0]].last_item
    distinct = len(torch.unique(last))
    with torch.no_grad():
        old, new = (trainer.model._log_km(last, None) for trainer in trainers)
    print(
        f"{args.protocol}: {split.n_items:,} POIs, {n_samples:,} training samples, {n_steps} "
        f"steps of {args.batch_size} per epoch; {args.threads} thread(s); best of "
        f"{args.rounds} interleaved rounds; first batch: {distinct} distinct last items, "
        f"largest |new - old| penalty {(new - old).abs().max().item():.3g}, "
        f"equal entries {(new == old).float().mean().item():.4%}"
    )
    train_best = [float("inf")] * len(settings)
    eval_best = [float("inf")] * len(settings)
    for _ in range(args.rounds):
        for index, trainer in enumerate(trainers):
            train_best[index] = min(train_best[index], steps(trainer, batches))
            start = time.process_time()
            trainer.evaluate("valid", ("mrr",))
            eval_best[index] = min(eval_best[index], time.process_time() - start)
    print("| setting | CPU s / step | CPU s / epoch | vs old | validation CPU s | vs old |")
    print("|---|---|---|---|---|---|")
    for index, name in enumerate(settings):
        step = train_best[index] / args.batches
        print(
            f"| {name} | {step:.3f} | {step * n_steps:.0f} | "
            f"{train_best[index] / train_best[0]:.2f}x | {eval_best[index]:.2f} | "
            f"{eval_best[index] / eval_best[0]:.2f}x |"
        )
    subnormals(trainers[1].model, trainers[1], batches[0])


if __name__ == "__main__":
    main()
