"""One rank of ``test_distributed_eval``, started by torchrun: every case of :func:`cases`
evaluated by all ranks together (``evaluate_sharded``); rank 0 pickles each result to
``OUT/<case>.pkl``, every other rank writes ``OUT/<case>-rank<r>.none`` when it got ``None``.

The test imports :func:`cases` to evaluate the same models in one process."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import tgraph.models as models
from tests.models.helpers import split_from_parts
from tgraph.data.protocols import next_poi_chronological
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.data.synthetic import generate
from tgraph.eval import Evaluator
from tgraph.eval.streaming import StreamingEvaluator
from tgraph.models.base import Recommender
from tgraph.models.popular import MostPopular
from tgraph.train import distributed
from tgraph.train.seed import seed_everything


def multi_target_split(n_users: int = 67, n_items: int = 50, per_user: int = 12) -> Split:
    """Each user's last 3 events (moved to one instant) are one test query with 3 targets, the one
    before them the validation query (the LightGCN protocol's shape: masking, several
    targets per query, one query per user)."""
    rng = np.random.default_rng(5)
    rows = [
        (u, int(item), 1000 * u + t)
        for u in range(n_users)
        for t, item in enumerate(rng.choice(n_items, size=per_user, replace=False))
    ]
    events = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    rank = events.groupby("user")["timestamp"].rank(ascending=False)
    events.loc[rank <= 3, "timestamp"] = 1000 * events["user"] + per_user  # one instant
    parts = {"train": events[rank > 4], "valid": events[rank == 4], "test": events[rank <= 3]}
    return split_from_parts(parts, n_users, n_items, protocol="multi")


def next_poi_split() -> Split:
    options = {"n_users": 60, "n_pois": 120, "n_events": 3000, "days": 30, "seed": 3}
    return next_poi_chronological(generate(**options))


def seeded(name: str, split: Split, config: dict | None = None) -> Recommender:
    seed_everything(0)
    return models.get(name)(split, config)


@dataclass
class Case:
    """A model (made afresh by ``model()``: streaming changes it) and the evaluation of it."""

    name: str
    model: Callable[[], Recommender]
    evaluate: Callable[[Recommender, int, int], Any]  # (model, rank, world size) -> result


def cases() -> list[Case]:
    multi, poi = multi_target_split(), next_poi_split()
    metrics = ["recall@5", "ndcg@5", "mrr", "acc@1"]
    out = []
    # batches of 8: 9 batches for 67 queries (rank 0 takes 5, rank 1 4, the last one short)
    for name in ("lightgcn", "pop"):
        evaluator = Evaluator(multi, "test", metrics, batch_size=8)
        model = lambda n=name: seeded(n, multi)  # noqa: E731
        out.append(Case(f"multi-{name}", model, evaluator.evaluate_sharded))
    # a history model on next-POI validation queries, and one batch (rank 1 ranks nothing)
    for part, batch in (("valid", 16), ("test", 1024)):
        evaluator = Evaluator(poi, part, metrics, batch_size=batch)
        model = lambda: seeded("sasrec", poi, {"max_len": 10})  # noqa: E731
        out.append(Case(f"poi-sasrec-{part}-{batch}", model, evaluator.evaluate_sharded))
    # streaming: counts folded in; and weights finetuned between queries on every rank
    for name, steps in (("markov", 0), ("bprmf", 2)):
        streaming = StreamingEvaluator(
            poi, metrics, finetune_steps=steps, finetune_options={"lr": 0.05, "batch_size": 16}
        )
        out.append(
            Case(f"stream-{name}", lambda n=name: seeded(n, poi), streaming.evaluate_sharded)
        )
    return out


class NaNForUser9(MostPopular):
    """MostPopular with NaN scores for user 9's query: with batches of 8 it is in the second
    batch, which rank 1 of 2 scores."""

    def full_sort_predict(self, queries: Queries) -> torch.Tensor:
        scores = super().full_sort_predict(queries).clone()
        scores[queries.user == 9] = float("nan")
        return scores


def main(out: Path) -> None:
    torch.set_num_threads(1)
    ctx = distributed.init("cpu")
    for case in cases():
        result = case.evaluate(case.model(), ctx.rank, ctx.world_size)
        if ctx.is_main:
            (out / f"{case.name}.pkl").write_bytes(pickle.dumps(result))
        elif result is None:
            (out / f"{case.name}-rank{ctx.rank}.none").touch()
    # a failure on one rank raises on every rank (none waits at the gather)
    split = multi_target_split()
    try:
        Evaluator(split, "test", ["mrr"], batch_size=8).evaluate_sharded(
            NaNForUser9(split), ctx.rank, ctx.world_size
        )
    except Exception as error:
        (out / f"failure-rank{ctx.rank}.txt").write_text(f"{type(error).__name__}: {error}")
    distributed.finish()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
