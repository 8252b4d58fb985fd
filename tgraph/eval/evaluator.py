"""Full-ranking evaluation: scores of all items -> masks -> ranks of the ground truth -> metrics.

For each query the model scores every item (``full_sort_predict``). When
``split.mask_history`` is set, the items of the user's history are removed (score
``-inf``) as :meth:`Split.history_pairs` says: for validation queries the user's train
items, for test queries the train and validation items, whatever their time (LightGCN
protocol); the ground-truth items of the query itself are never removed. Then each
ground-truth item ``g`` gets the rank

.. math::
    r_g = 1 + \\#\\{j \\notin GT: s_j \\ge s_g\\} + \\#\\{h \\in GT \\text{ placed before } g\\}

Ties with non-relevant items are broken **pessimistically** (the relevant item goes last),
so a constant model cannot score above chance and results do not depend on the order of
items in memory; ground-truth items tied with each other get consecutive ranks (their
order does not change any metric). The ranks are exact over the full ranking and are
computed per query, so the metrics do not depend on the batch size.

Computation per batch (``B`` queries, ``N`` items, ``n_b`` ground truths of query ``b``):
``#{j: s_j >= s_g}`` for every ground truth ``g``. On CPU (float32 scores) a small C kernel
(:mod:`tgraph.eval.native`) reads each query's row of scores once and counts, in cache, four
ground truths per sweep, with the finiteness check in the first sweep: on Gowalla the
evaluator then takes about 1.4-1.6 times the bare scoring matmul, against 2.7-3.4 times for
the torch path below (``experiments/benchmarks/full_ranking.py``). Otherwise (no C compiler,
``TGRAPH_NATIVE=0``, a GPU) the same counts come from the torch path: a comparison written
into a reused float buffer and a matrix-vector product with a vector of ones (exact: float32
below ``2^24`` items, float64 above), one pass over the query's scores per ground truth:
``O(N sum_b n_b)`` time, the passes over blocks of 64 rows that stay in cache. Rows are taken
in decreasing order of ``n_b``, so pass ``k`` touches only the rows that have a ``k``-th
ground truth (no padding work). Masked items are not written into the scores (no copy of
the ``B x N`` block): their scores are gathered and their contribution subtracted from the
counts. On Gowalla this was 2.4-7 times faster (on a shared machine) than placing every
score among the ground truths with ``searchsorted`` and counting with ``bincount`` (the
previous path, kept in ``experiments/benchmarks/full_ranking.py``, which measures both).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor
from tqdm.auto import tqdm

from tgraph.data.queries import Queries, target_queries
from tgraph.data.split import Split
from tgraph.errors import DataError
from tgraph.eval import metrics as M
from tgraph.eval import native
from tgraph.models.base import Recommender

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Mean metrics and the per-query table (query, user, n_gt, best_rank, one column per
    metric), for significance tests and stratified analyses; ``ranks`` is ``[Q, G]``."""

    part: str
    metrics: dict[str, float]
    per_query: pd.DataFrame
    ranks: np.ndarray = field(repr=False)


def _csr(rows: np.ndarray, values: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((values, rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, values[order].astype(np.int64)


def _segments(
    indptr: np.ndarray, values: np.ndarray, rows: np.ndarray
) -> tuple[Tensor, Tensor, Tensor]:
    """(row within the batch, value, position within the row) triples of the rows ``rows``
    of a CSR structure, in the order of ``rows``."""
    counts = indptr[rows + 1] - indptr[rows]
    batch_row = np.repeat(np.arange(len(rows)), counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    picked = values[np.repeat(indptr[rows], counts) + within]
    return torch.from_numpy(batch_row), torch.from_numpy(picked), torch.from_numpy(within)


_BLOCK_ROWS = 64  # rows per comparison pass: 64 x 41k items x 4 bytes ~ 10 MB


def count_at_least(scores: Tensor, thresholds: Tensor, n_thresholds: Tensor) -> Tensor:
    """``counts[b, k] = #{j: scores[b, j] >= thresholds[b, k]}`` for ``k < n_thresholds[b]``
    (``0`` elsewhere), as float32 below ``2^24`` items and float64 above (exact).

    Rows are taken ``_BLOCK_ROWS`` at a time in decreasing order of ``n_thresholds`` (copied
    into a reused block unless they already come in that order, as the evaluator's do);
    pass ``k`` compares a prefix of the block (the rows with a ``k``-th threshold) with its
    thresholds into a reused float buffer and counts with a matrix-vector product with ones,
    which is faster on CPU than summing booleans.
    """
    n_rows, n_items = scores.shape
    width = thresholds.shape[1]
    device = scores.device
    dtype = torch.float32 if n_items < 2**24 else torch.float64
    counts = torch.zeros(n_rows, width, dtype=dtype, device=device)
    n_active = int((n_thresholds > 0).sum())
    if n_active == 0 or width == 0:
        return counts
    # the evaluator scores its queries in this order already: then no copy is needed
    in_order = bool((n_thresholds[:-1] >= n_thresholds[1:]).all())
    if in_order:
        order = torch.arange(n_active, device=device)
    else:
        order = torch.argsort(n_thresholds, descending=True, stable=True)[:n_active]
    per_row = n_thresholds[order].cpu()
    ones = torch.ones(n_items, dtype=dtype, device=device)
    block = min(_BLOCK_ROWS, n_active)
    picked = torch.empty(0 if in_order else block, n_items, dtype=scores.dtype, device=device)
    buffer = torch.empty(block, n_items, dtype=dtype, device=device)
    for lo in range(0, n_active, block):
        hi = min(lo + block, n_active)
        rows = order[lo:hi]
        if in_order:
            block_scores = scores[lo:hi]
        else:
            block_scores = torch.index_select(scores, 0, rows, out=picked[: hi - lo])
        level = thresholds[rows]
        found = torch.zeros(hi - lo, width, dtype=dtype, device=device)
        for k in range(int(per_row[lo])):
            active = int((per_row[lo:hi] > k).sum())  # a prefix: n_thresholds decreases
            torch.ge(block_scores[:active], level[:active, k : k + 1], out=buffer[:active])
            found[:active, k] = buffer[:active] @ ones
        if in_order:
            counts[lo:hi] = found
        else:
            counts[rows] = found
    return counts


class NonFiniteScores(ValueError):
    """Raised by :func:`ground_truth_ranks` with ``check_finite`` on a NaN or infinite score."""


def ground_truth_ranks(
    scores: Tensor,
    gt: Tensor,
    masked: tuple[Tensor, Tensor] | None = None,
    check_finite: bool = False,
) -> Tensor:
    """Pessimistic 1-based ranks (see the module docstring).

    Args:
        scores: ``[B, N]`` scores; items at ``-inf`` rank below every ground truth.
        gt: ``[B, G]`` ground-truth items, ``-1`` as padding.
        masked: ``(row, item)`` pairs to remove from the ranking (never a ground truth of
            their row), as an alternative to writing ``-inf`` into ``scores``.
        check_finite: raise :class:`NonFiniteScores` if a score is NaN or infinite (then
            ``-inf`` cannot be used for masking: give ``masked``).

    Returns:
        ``[B, G]`` float64 ranks in increasing order per row, ``inf`` at padding.
    """
    n_rows, width = gt.shape
    device = scores.device
    real = gt >= 0
    n_gt = real.sum(1, keepdim=True)
    gt_scores = scores.gather(1, gt.clamp(min=0))
    gt_scores = torch.where(real, gt_scores, torch.full_like(gt_scores, float("inf")))
    ascending, _ = gt_scores.sort(dim=1)
    # all_ge[b, k] = number of items with score >= ascending[b, k]
    if native.usable(scores):
        # one read of each row, the finiteness test in the same sweep (tgraph.eval.native)
        all_ge, finite = native.count_at_least(scores, ascending, n_gt.squeeze(1))
    else:
        if check_finite:
            low, high = torch.aminmax(scores)  # one pass, NaN propagates; isfinite is ~40x slower
            finite = bool(torch.isfinite(low) and torch.isfinite(high))
        all_ge = count_at_least(scores, ascending, n_gt.squeeze(1)).to(torch.int64)
    if check_finite and not finite:
        raise NonFiniteScores("non-finite scores")
    if masked is not None and len(masked[0]) > 0:
        row, item = masked
        masked_scores = scores[row, item]
        # position = number of ground-truth scores <= the masked item's score (in 0..G)
        position = torch.searchsorted(ascending[row], masked_scores.unsqueeze(1), right=True)
        flat = row * (width + 1) + position.squeeze(1)
        histogram = torch.bincount(flat, minlength=n_rows * (width + 1)).view(n_rows, width + 1)
        all_ge -= histogram[:, 1:].flip(1).cumsum(1).flip(1)
    first = torch.searchsorted(ascending, ascending, right=False)
    gt_ge = n_gt - first
    k = torch.arange(width, device=device).unsqueeze(0)
    rank = 1 + (n_gt - 1 - k) + (all_ge - gt_ge)
    rank = rank.to(torch.float64).masked_fill(k >= n_gt, float("inf"))
    return rank.sort(dim=1).values


@contextmanager
def settled(rank: int, world_size: int) -> Iterator[None]:
    """Around one rank's share of a sharded evaluation: if it raises on any of the
    ``world_size`` ranks, it raises on all of them (the rank's own error, or a
    ``RuntimeError`` naming the rank that failed) instead of leaving the others waiting at
    the gather for the process group's timeout."""
    error: Exception | None = None
    try:
        yield
    except Exception as raised:
        if world_size == 1:
            raise
        error = raised
    if world_size == 1:
        return
    errors: list[str | None] = [None] * world_size
    dist.all_gather_object(errors, None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    failed = [(r, e) for r, e in enumerate(errors) if e is not None]
    if failed:
        where, message = failed[0]
        raise RuntimeError(f"the evaluation failed on rank {where} ({message})")


class Evaluator:
    """Ranks the targets of ``split.targets(part)`` with a model.

    Args:
        split: the protocol's split.
        part: ``"valid"`` or ``"test"``.
        metrics: names understood by :func:`tgraph.eval.metrics.parse`.
        batch_size: queries scored at once (memory ~ ``(batch_size + 128) * n_items * 4`` bytes:
            the scores and two blocks of ``_BLOCK_ROWS`` rows);
            results do not depend on it.
        progress: show a tqdm bar.
    """

    def __init__(
        self,
        split: Split,
        part: str = "valid",
        metrics: tuple[str, ...] | list[str] = ("recall@20", "ndcg@20"),
        batch_size: int = 1024,
        progress: bool = False,
    ) -> None:
        for name in metrics:
            M.parse(name)
        if part == "valid" and (split.valid_targets is None or len(split.valid_targets) == 0):
            raise DataError(
                f"protocol {split.protocol!r} has no validation targets",
                fix="hold out part of the training events for validation in the protocol preset",
            )
        self.split, self.part = split, part
        self.metrics = [m.strip().lower() for m in metrics]
        self.batch_size = int(batch_size)
        self.progress = progress
        self._queries: dict[int, Queries] = {}
        _, self.table = target_queries(split, part, 0)
        targets = split.targets(part)
        position = pd.Index(self.table["query"]).get_indexer(targets["query"])
        items = targets["item"].to_numpy(np.int64)
        if np.any((items < 0) | (items >= split.n_items)):
            raise DataError(
                f"{part} targets hold item codes outside [0, {split.n_items})", column="item"
            )
        n_items = split.n_items
        key = np.unique(position * n_items + items)
        if len(key) < len(targets):
            duplicates = len(targets) - len(key)
            log.info("%s: %d duplicate (query, item) targets counted once", part, duplicates)
        self.gt_ptr, self.gt_items = _csr(key // n_items, key % n_items, len(self.table))
        self.mask_ptr, self.mask_items = (None, None)
        if split.mask_history:
            self.mask_ptr, self.mask_items = self._history_mask(key)

    def _history_mask(self, gt_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """CSR of the items to mask per query: the user's history minus the query's targets."""
        n_items = self.split.n_items
        history = self.split.history_pairs(self.part)
        pairs = np.unique(
            history["user"].to_numpy(np.int64) * n_items + history["item"].to_numpy(np.int64)
        )
        hist_user, hist_item = pairs // n_items, pairs % n_items
        user_ptr = np.searchsorted(hist_user, np.arange(self.split.n_users + 1))
        users = self.table["user"].to_numpy(np.int64)
        counts = user_ptr[users + 1] - user_ptr[users]
        rows = np.repeat(np.arange(len(users)), counts)
        starts = np.repeat(user_ptr[users], counts)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        items = hist_item[starts + within]
        keep = ~np.isin(rows * n_items + items, gt_key)
        return _csr(rows[keep], items[keep], len(users))

    def queries(self, history_len: int) -> Queries:
        if history_len not in self._queries:
            self._queries[history_len], _ = target_queries(self.split, self.part, history_len)
        return self._queries[history_len]

    @torch.no_grad()
    def evaluate(self, model: Recommender) -> EvalResult:
        """Evaluate in eval mode (the model's mode is restored afterwards)."""
        result = self.evaluate_sharded(model, 0, 1)
        assert result is not None  # one process is rank 0
        return result

    @torch.no_grad()
    def evaluate_sharded(self, model: Recommender, rank: int, world_size: int) -> EvalResult | None:
        """:meth:`evaluate` shared by the ``world_size`` processes of the default
        ``torch.distributed`` group, each with its own identical replica of ``model``. Every
        rank must call it. The queries are cut into the batches one process scores (most
        targets first, ``batch_size`` queries each); rank ``r`` scores and ranks batches
        ``r, r + world_size, ...``, and rank 0 gathers every batch's ranks and returns the
        result; the other ranks return ``None``. Each batch is the one a single process
        scores, so the ranks, metrics and per-query rows are those of :meth:`evaluate`
        (bit for bit when the model scores a batch deterministically)."""
        was_training = model.training
        model.eval()
        queries = self.queries(model.history_len)
        n = len(self.table)
        # most targets first: each batch then holds queries with similar numbers of targets
        # and count_at_least runs its passes over prefixes of the scores without a copy
        order = np.argsort(-np.diff(self.gt_ptr), kind="stable")
        starts = range(0, n, self.batch_size)
        mine = starts[rank::world_size]
        chunks: dict[int, np.ndarray] = {}
        with settled(rank, world_size):
            for lo in tqdm(mine, desc=f"eval {self.part}", disable=not self.progress, leave=False):
                rows = order[lo : lo + self.batch_size]
                chunks[lo] = self.rank(model, queries[torch.from_numpy(rows)], rows)
        model.train(was_training)
        if world_size > 1:
            gathered: list[dict[int, np.ndarray]] | None = [{}] * world_size if rank == 0 else None
            dist.gather_object(chunks, gathered, dst=0)
            if gathered is None:
                return None
            chunks = {lo: ranks for part in gathered for lo, ranks in part.items()}
        width = max(c.shape[1] for c in chunks.values())
        ranks = np.full((n, width), np.inf)
        ranks[order] = np.concatenate(
            [
                np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=np.inf)
                for _, c in sorted(chunks.items())
            ]
        )
        return self.result([ranks])

    @torch.no_grad()
    def rank(self, model: Recommender, queries: Queries, rows: np.ndarray) -> np.ndarray:
        """``[len(rows), G]`` ranks of the ground truths of the per-query table's rows
        ``rows``, scored by ``model`` (in its current mode) on ``queries`` (one query per row,
        in the same order), with this evaluator's masks."""
        device = model.device
        scores = model.full_sort_predict(queries.to(device)).float()
        if scores.shape != (len(rows), self.split.n_items):
            raise ValueError(f"full_sort_predict returned {tuple(scores.shape)}")
        masked = None
        if self.mask_ptr is not None and self.mask_items is not None:
            # counted out, not written: the scores may be a view of model state (e.g.
            # popularity counts) and a copy of the block costs a pass over it
            batch_row, items, _ = _segments(self.mask_ptr, self.mask_items, rows)
            masked = (batch_row.to(device), items.to(device))
        batch_row, items, within = _segments(self.gt_ptr, self.gt_items, rows)
        width = int((self.gt_ptr[rows + 1] - self.gt_ptr[rows]).max())
        gt = torch.full((len(rows), width), -1, dtype=torch.long)
        gt[batch_row, within] = items
        try:
            ranks = ground_truth_ranks(scores, gt.to(device), masked, check_finite=True)
        except NonFiniteScores:
            raise ValueError(f"{type(model).__name__} produced non-finite scores") from None
        return ranks.cpu().numpy()

    def result(self, chunks: list[np.ndarray]) -> EvalResult:
        """The :class:`EvalResult` of the ranks of every row of the per-query table, given as
        consecutive chunks (in table order) of :meth:`rank`'s output."""
        width = max(c.shape[1] for c in chunks)
        ranks = np.concatenate(
            [np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=np.inf) for c in chunks]
        )
        values = M.compute(self.metrics, ranks)
        per_query = self.table[["query", "user"]].copy()
        per_query["n_gt"] = M.n_ground_truth(ranks)
        per_query["best_rank"] = ranks.min(1).astype(np.int64)
        for name, column in values.items():
            per_query[name] = column
        summary = {name: float(column.mean()) for name, column in values.items()}
        return EvalResult(self.part, summary, per_query, ranks)
