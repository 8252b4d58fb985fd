"""The revisit rule recomputed without tgraph's model, queries or evaluator: a user's
check-ins before each target straight from the split's three parts, Markov counts from
``split.train``, the target's rank with ties counted against it. Prints Acc@1, Acc@10 and MRR
of the selected configuration, to compare with ``revisit_<preset>_metrics.json``.

    python experiments/results/revisit/independent_check.py sthgcn_nyc valid 400 0.97 3 keep
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from tgraph.config import DatasetConfig, validate_model
from tgraph.data import data_root
from tgraph.data.protocols import prepare_split


def main(protocol: str, part: str, max_len: int, decay: float, weight: float, last: str) -> None:
    dataset = {"name": "gowalla_mat" if protocol == "gowalla_mat" else "foursquare_nyc"}
    dataset["protocol"] = protocol
    split = prepare_split(validate_model(DatasetConfig, dataset, "dataset"), data_root())
    n = split.n_items
    train = split.train.events.sort_values(["user", "timestamp"], kind="stable")
    same_user = train["user"].to_numpy()[1:] == train["user"].to_numpy()[:-1]
    items = train["item"].to_numpy()
    counts = np.zeros((n, n))
    np.add.at(counts, (items[:-1][same_user], items[1:][same_user]), 1.0)
    pop = np.bincount(items, minlength=n) / (1.0 + len(items))
    parts = [p.events for p in (split.train, split.valid, split.test) if p is not None]
    events = pd.concat(parts).sort_values(["user", "timestamp"], kind="stable")
    by_user = {
        u: (g["item"].to_numpy(), g["timestamp"].to_numpy()) for u, g in events.groupby("user")
    }
    hits1 = hits10 = rr = 0.0
    targets = split.targets(part).groupby("query").first()
    for row in targets.itertuples():
        item, time = by_user[row.user]
        history = item[time < row.timestamp][-max_len:]
        score = np.zeros(n)
        if len(history):
            np.add.at(score, history, decay ** np.arange(len(history))[::-1])
            if last == "skip":
                score[history[-1]] = 0.0
            row_counts = counts[history[-1]]
            score += weight * (row_counts + pop) / (1.0 + row_counts.max())
        else:
            score += weight * pop
        rank = int((score >= score[row.item]).sum())  # the target and every tie above it
        hits1, hits10, rr = hits1 + (rank == 1), hits10 + (rank <= 10), rr + 1.0 / rank
    k = len(targets)
    print(f"{protocol} {part}: acc@1 {hits1 / k:.4f}  acc@10 {hits10 / k:.4f}  mrr {rr / k:.4f}")


if __name__ == "__main__":
    p, part, length, decay, weight, last = sys.argv[1:7]
    main(p, part, int(length), float(decay), float(weight), last)
