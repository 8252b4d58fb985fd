"""Who tgraph's STHGCN attends over: for each test query of ``sthgcn_nyc``, the neighbour
trajectories its inter-trajectory hyperedges select (``STHGCN._neighbours``, which depends only
on the training hypergraph and the query's history), and the share that are the query user's own.

    python experiments/results/sthgcn_nyc/neighbours.py
"""

from __future__ import annotations

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE
import tgraph  # noqa: F401  # isort: skip
import numpy as np
import torch

from tgraph.data import data_root, protocols
from tgraph.data.queries import target_queries
from tgraph.graph.hypergraph import current_trajectory
from tgraph.models.registry import get

#: (jaccard_threshold, n_neighbours): the board's entry, and the tighter screen
SETTINGS = ((0.005, 50), (0.1, 10))


def main() -> None:
    split = protocols.sthgcn_nyc(data_root())
    for threshold, k in SETTINGS:
        config = {"embedding_dim": 64, "jaccard_threshold": threshold, "n_neighbours": k}
        model = get("sthgcn")(split, config)
        queries, _ = target_queries(split, "test", model.history_len)
        items, times, length = queries.hist_items, queries.hist_times, queries.hist_len
        assert items is not None and times is not None and length is not None
        # every test query has history, so "now" is its last check-in, as in STHGCN's encoder
        assert bool((length > 0).all()), "a test query without history"
        rows = torch.arange(len(queries))
        now = times[rows, (length - 1).clamp(min=0)]
        member = current_trajectory(times, length, model.config.gap_hours)
        src, dst = model._neighbours(items, member, now)
        owner = model.hypergraph.nodes["trajectory"].data["user"][src]
        own = (owner == queries.user[dst]).numpy()
        per_query = np.bincount(dst.numpy(), minlength=len(queries))
        own_per_query = np.bincount(dst.numpy(), weights=own, minlength=len(queries))
        some = per_query > 0
        print(
            f"jaccard > {threshold}, top {k}: {len(src):,} edges over {len(queries):,} test "
            f"queries, {per_query.mean():.1f} per query ({(~some).sum()} with none); "
            f"the user's own trajectories: {own.mean():.3f} of the edges; queries attending "
            f"only over other users' trajectories: {(own_per_query[some] == 0).mean():.3f}, "
            f"only over their own: {(own_per_query[some] == per_query[some]).mean():.3f}"
        )


if __name__ == "__main__":
    main()
