"""Scores of a finished run plus ``w`` times the revisit rule's, ``w`` chosen on validation MRR.

A screening tool (not a model): it loads ``best.pt`` of a run directory, builds the
validation and test queries of the run's split with the longer history of the two models, and
ranks every POI by ``run's score + w * revisit score`` for each ``w``, the target's rank
counting ties against it (as tgraph's evaluator: ``w = 0`` gives the run's own metrics).
Prints one row per ``w``; the selected one is the best validation MRR.

    python experiments/results/sthgcn_nyc/blend.py RUN_DIR \
        experiments/results/revisit/revisit_sthgcn_nyc_best.yaml
"""

from __future__ import annotations

import sys

import torch
import yaml

import tgraph.models as models
from tgraph.config import DatasetConfig, validate_model
from tgraph.data.protocols import prepare_split
from tgraph.data.queries import target_queries
from tgraph.runs import RunDir
from tgraph.train.seed import seed_everything

WEIGHTS = [0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]


def metrics(scores: torch.Tensor, target: torch.Tensor) -> tuple[float, float, float]:
    rank = (scores >= scores.gather(1, target[:, None])).sum(1).float()
    return (
        (rank == 1).float().mean().item(),
        (rank <= 10).float().mean().item(),
        (1 / rank).mean().item(),
    )


def main(run_dir: str, revisit_yaml: str) -> None:
    run = RunDir(run_dir)
    config = run.read_config()
    split = prepare_split(validate_model(DatasetConfig, config["dataset"], "dataset"), None)
    seed_everything(int(config["seed"]))
    model = models.get(config["model"]["name"])(split, config["model"]["config"])
    payload = torch.load(run.layout.best_checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(payload["model"])
    rule_config = yaml.safe_load(open(revisit_yaml))["models"][0]["config"]
    rule = models.get("revisit")(split, rule_config)
    history = max(model.history_len, rule.history_len)
    parts = {}
    for part in ("valid", "test"):
        queries, table = target_queries(split, part, history)
        first = split.targets(part).groupby("query").first()
        target = torch.tensor(first.loc[table["query"], "item"].to_numpy())
        with torch.no_grad():
            learned = model.eval().full_sort_predict(queries.tail(model.history_len))
            revisit = rule.full_sort_predict(queries.tail(rule.history_len))
        parts[part] = (learned, revisit, target)
    print("| w | valid Acc@1 | valid Acc@10 | valid MRR | test Acc@1 | test Acc@10 | test MRR |")
    print("|---|---|---|---|---|---|---|")
    for w in WEIGHTS:
        row = [metrics(a + w * b, t) for a, b, t in parts.values()]
        print(f"| {w:g} | " + " | ".join(f"{v:.4f}" for r in row for v in r) + " |")
    row = [metrics(b, t) for _, b, t in parts.values()]
    print("| revisit alone | " + " | ".join(f"{v:.4f}" for r in row for v in r) + " |")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
