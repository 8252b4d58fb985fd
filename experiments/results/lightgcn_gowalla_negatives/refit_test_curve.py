"""Test Recall@20 / NDCG@20 of a refit's kept weights (``keep_refit_weights.py``), each in the
refit's own graph (all of train.txt): the curve from which the LightGCN paper's protocol (early
stopping on test) would pick. A diagnostic of the protocol gap, not a tgraph result: tgraph
ranks test once, after the whole refit. Appends to OUT_CSV, skipping epochs already in it.

    python experiments/results/lightgcn_gowalla_negatives/refit_test_curve.py WEIGHTS_DIR \
        OUT_CSV [config overrides of the run, e.g. train.n_neg=4]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from tgraph.config import load_config
from tgraph.data import protocols
from tgraph.train.recipe import build_trainer

METRICS = ("recall@20", "ndcg@20")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights_dir", type=Path)
    parser.add_argument("out_csv", type=Path)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    done = set()
    if args.out_csv.exists():
        done = {int(row["refit_epoch"]) for row in csv.DictReader(args.out_csv.open())}
    config = load_config(["lightgcn_gowalla"], args.overrides)
    split = protocols.prepare_split(config.dataset, None)
    trainer = build_trainer(split, config.models[0], 0, config)
    trainer.model.observe(trainer._train_and_valid())  # the refit's graph
    new = not args.out_csv.exists()
    with args.out_csv.open("a", newline="") as out:
        writer = csv.writer(out)
        if new:
            writer.writerow(["refit_epoch", *METRICS])
        for path in sorted(args.weights_dir.glob("refit_e*.pt")):
            refit_epoch = int(path.stem.removeprefix("refit_e"))
            if refit_epoch in done:
                continue
            trainer.model.load_state_dict(torch.load(path))
            metrics = trainer.evaluate("test", METRICS).metrics
            writer.writerow([refit_epoch, *(f"{metrics[m]:.6f}" for m in METRICS)])
            out.flush()
            print(refit_epoch, metrics, flush=True)


if __name__ == "__main__":
    main()
