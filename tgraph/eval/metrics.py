"""Ranking metrics as pure functions of the ranks of the ground-truth items.

Input of every metric: ``ranks``, a float array ``[Q, G]`` holding, for each query, the
1-based ranks of its ground-truth items in the full ranking (distinct, any order), padded
with ``inf`` where a query has fewer than ``G`` ground-truth items. ``n_gt = (ranks <
inf).sum(1)``. Every metric returns one value per query (``[Q]``); a reported figure is
the mean over queries. With ``rel(r) = 1`` if some ground-truth item has rank ``r``:

* ``HR@K`` (hit ratio) = 1 if any ground-truth item is in the top K, else 0.
* ``Acc@K`` = ``HR@K`` (the next-POI name; with one ground truth, = Recall@K).
* ``Recall@K`` = hits@K / n_gt.
* ``Precision@K`` = hits@K / K.
* ``NDCG@K`` = DCG@K / IDCG@K with binary relevance,
  ``DCG@K = sum_{r <= K} rel(r) / log2(r + 1)`` and
  ``IDCG@K = sum_{i=1}^{min(n_gt, K)} 1 / log2(i + 1)`` (LightGCN / STHGCN definition).
* ``MAP@K`` = ``(1 / min(n_gt, K)) * sum_{r <= K} rel(r) * Precision@r``.
* ``MRR`` = 1 / (rank of the best-ranked ground-truth item), over the full ranking (no cut-off).

Metric names are case-insensitive strings like ``"recall@20"``, ``"ndcg@10"``, ``"mrr"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

# (ranks, K): K is an int for the @K metrics and None for MRR, which has no cut-off
Metric = Callable[[np.ndarray, Any], np.ndarray]


def _check(ranks: np.ndarray) -> np.ndarray:
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.ndim != 2:
        raise ValueError(f"ranks must be [queries, ground truths], got shape {ranks.shape}")
    real = np.isfinite(ranks)
    if np.any(ranks[real] < 1):
        raise ValueError("ranks are 1-based; found a rank below 1")
    if np.any(real.sum(1) == 0):
        raise ValueError("every query needs at least one ground-truth item")
    return ranks


def n_ground_truth(ranks: np.ndarray) -> np.ndarray:
    return np.isfinite(ranks).sum(1)


def hits(ranks: np.ndarray, k: int) -> np.ndarray:
    """Number of ground-truth items ranked in the top ``k``."""
    return (_check(ranks) <= k).sum(1)


def hit_ratio(ranks: np.ndarray, k: int) -> np.ndarray:
    return (hits(ranks, k) > 0).astype(np.float64)


def recall(ranks: np.ndarray, k: int) -> np.ndarray:
    return hits(ranks, k) / n_ground_truth(ranks)


def precision(ranks: np.ndarray, k: int) -> np.ndarray:
    return hits(ranks, k) / k


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = _check(ranks)
    hit = ranks <= k
    gain = np.zeros_like(ranks)  # the logarithm only where it counts (most ranks are > k)
    gain[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
    dcg = gain.sum(1)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    ideal = discounts[np.minimum(n_ground_truth(ranks), k) - 1]
    return dcg / ideal


def average_precision(ranks: np.ndarray, k: int) -> np.ndarray:
    ranks = np.sort(_check(ranks), axis=1)
    position = np.arange(1, ranks.shape[1] + 1)  # i-th best ground truth: i relevant up to it
    terms = np.where(ranks <= k, position / ranks, 0.0).sum(1)
    return terms / np.minimum(n_ground_truth(ranks), k)


def mrr(ranks: np.ndarray, k: int | None = None) -> np.ndarray:
    return 1.0 / _check(ranks).min(1)


_AT_K: dict[str, Metric] = {
    "recall": recall,
    "precision": precision,
    "ndcg": ndcg,
    "hr": hit_ratio,
    "hit": hit_ratio,
    "acc": hit_ratio,
    "map": average_precision,
}
_PATTERN = re.compile(r"^([a-z]+)@(\d+)$")


def parse(name: str) -> tuple[Metric, int | None]:
    """``"ndcg@20"`` -> ``(ndcg, 20)``; ``"mrr"`` -> ``(mrr, None)``."""
    key = name.strip().lower()
    if key == "mrr":
        return mrr, None
    match = _PATTERN.match(key)
    if not match or match.group(1) not in _AT_K or int(match.group(2)) < 1:
        raise KeyError(
            f"unknown metric {name!r}; use 'mrr' or one of {sorted(_AT_K)} with '@K' (K >= 1)"
        )
    return _AT_K[match.group(1)], int(match.group(2))


def compute(names: Iterable[str], ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query values of every metric in ``names`` (keys lower-cased)."""
    out = {}
    for name in names:
        metric, k = parse(name)
        out[name.strip().lower()] = metric(ranks, k)
    return out
