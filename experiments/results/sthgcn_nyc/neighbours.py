"""Who tgraph's STHGCN attends over: for each test query of ``sthgcn_nyc``, the neighbour
trajectories its inter-trajectory hyperedges select (``STHGCN.neighbours``, which depends only
on the training hypergraph and the query's history and user), and the share that are the query
user's own.

    python experiments/results/sthgcn_nyc/neighbours.py
"""

from __future__ import annotations

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE
import tgraph  # noqa: F401  # isort: skip
import numpy as np

from tgraph.data import data_root, protocols
from tgraph.data.queries import target_queries
from tgraph.models.registry import get

#: model options: the board's entry, the tighter screen, and STHGCN's two relations
SETTINGS = (
    {"jaccard_threshold": 0.005, "n_neighbours": 50},
    {"jaccard_threshold": 0.1, "n_neighbours": 10},
    {"jaccard_threshold": 0.005, "n_neighbours": 50, "neighbour_rule": "sthgcn"},
)


def main() -> None:
    split = protocols.sthgcn_nyc(data_root())
    for options in SETTINGS:
        model = get("sthgcn")(split, {"embedding_dim": 64, **options})
        queries, _ = target_queries(split, "test", model.history_len)
        assert queries.hist_len is not None and bool((queries.hist_len > 0).all())
        src, dst, _, own = model.neighbours(queries)
        own = own.numpy()
        per_query = np.bincount(dst.numpy(), minlength=len(queries))
        own_per_query = np.bincount(dst.numpy(), weights=own, minlength=len(queries))
        some = per_query > 0
        print(
            f"{options}: {len(src):,} edges over {len(queries):,} test "
            f"queries, {per_query.mean():.1f} per query ({(~some).sum()} with none); "
            f"the user's own trajectories: {own.mean():.3f} of the edges, "
            f"{own_per_query.mean():.1f} per query; queries attending "
            f"only over other users' trajectories: {(own_per_query[some] == 0).mean():.3f}, "
            f"only over their own: {(own_per_query[some] == per_query[some]).mean():.3f}"
        )


if __name__ == "__main__":
    main()
