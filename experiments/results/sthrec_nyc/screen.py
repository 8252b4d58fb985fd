"""Validation-only screening of sthrec variants on getnext_nyc, seed 0 (test is never ranked).

Each argument is a JSON object of sthrec config keys (``"train"``: overrides of the training
settings, which are nyc_getnext's); prints the best validation metrics, the validation MRR
curve and the learned score weights. Run with the data root in ``TGRAPH_DATA``:

    python experiments/results/sthrec_nyc/screen.py '{}' '{"max_len": 50}'
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import torch

import tgraph.models as models
from tgraph.data.protocols import getnext_nyc
from tgraph.train.seed import seed_everything
from tgraph.train.trainer import Trainer

TRAIN = {
    "epochs": 10,
    "batch_size": 1024,
    "lr": 0.003,
    "valid_metric": "mrr",
    "metrics": ["acc@1", "acc@5", "acc@10", "mrr"],
    "patience": 3,
    "progress": False,
}


def main(specs: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    split = getnext_nyc(os.environ["TGRAPH_DATA"])
    for arg in specs:
        spec = json.loads(arg)
        train = {**TRAIN, **spec.pop("train", {})}
        seed_everything(0)
        start = time.time()
        model = models.get("sthrec")(split, spec)
        trainer = Trainer(model, split, train, seed=0)
        trainer.fit()
        best = next(r for r in trainer.history if r.epoch == trainer.best_epoch and r.validated)
        weights = {
            name: [round(float(x), 3) for x in getattr(model, name).detach().flatten()[:6]]
            for name in ("repeat_weight", "transition_weight", "dist_weight")
            if getattr(model, name, None) is not None
        }
        curve = [round(r.valid["mrr"], 4) for r in trainer.history if r.validated]
        row = {
            "spec": arg,
            "best_epoch": trainer.best_epoch,
            "valid": {k: round(v, 4) for k, v in best.valid.items()},
            "curve": curve,
            "seconds": round(time.time() - start),
            **weights,
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
