"""Stratified evaluation: a run's per-query metrics broken down by context, with bootstrap CIs.

:func:`query_strata` describes every query of a split's part (``"valid"`` or ``"test"``):

* ``hour`` (0-23) and ``weekday`` (0 = Monday) of the query's *local* time (the target event's
  ``tz_offset`` when the part's events carry one);
* ``region`` of the target item (``item_region`` given, else the items table's or the events'
  ``region`` column; ``-1`` when unknown; for a query with several targets, the most frequent);
* ``activity``: quantile bin of the user's number of training events (bins over the distinct
  users of the part, labelled ``"Q1 [lo-hi]"``);
* ``novelty``: ``"explore"`` when no target item occurs in the user's context events
  (:func:`~tgraph.data.queries.context_events`) strictly before the query, ``"revisit"`` when all
  do, ``"mixed"`` otherwise.

:func:`stratified_metrics` joins these with a per-query table (an
:class:`~tgraph.eval.evaluator.EvalResult`, a frame, a per-query CSV or a run directory; the
join is on the query id) and reports, per stratum level and metric, the number of queries, the
mean and a percentile bootstrap confidence interval (resampling the level's queries with
replacement, ``n_boot`` times, seeded per level so levels do not depend on each other).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tgraph.analysis.plots import new_figure, save_png
from tgraph.data.preprocess import time_features
from tgraph.data.queries import context_events
from tgraph.data.split import EVENT_KEY, Split
from tgraph.errors import DataError
from tgraph.runs import RunDir

logger = logging.getLogger(__name__)

__all__ = [
    "STRATA",
    "bootstrap_ci",
    "load_per_query",
    "plot_strata",
    "query_strata",
    "stratified_metrics",
]

#: the strata :func:`query_strata` describes
STRATA = ("hour", "weekday", "region", "activity", "novelty")
#: per-query columns that are not metrics
_ID_COLUMNS = ("query", "user", "n_gt", "best_rank")
_BOOT_CELLS = 1 << 22  # resampled values held in memory at once


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, ci: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        raise DataError("cannot bootstrap an empty sample")
    if not 0 < ci < 1:
        raise DataError(f"ci must be in (0, 1), got {ci!r}", column="ci", fix="use e.g. 0.95")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise DataError(f"n_boot must be a positive integer, got {n_boot!r}", column="n_boot")
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(n_boot)
    step = max(1, _BOOT_CELLS // n)
    for lo in range(0, n_boot, step):
        hi = min(lo + step, n_boot)
        means[lo:hi] = values[rng.integers(0, n, size=(hi - lo, n))].mean(axis=1)
    alpha = (1 - ci) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def load_per_query(run: Any) -> pd.DataFrame:
    """The per-query table of ``run``: an EvalResult, a DataFrame, a per-query CSV file or a
    finished run directory."""
    if hasattr(run, "per_query"):
        return run.per_query
    if isinstance(run, pd.DataFrame):
        return run
    path = Path(run)
    if path.is_dir():
        path = RunDir(path).layout.per_query
    if not path.is_file():
        raise DataError(
            "no per-query table found",
            source=str(path),
            fix="pass a finished run directory written by tgraph run",
        )
    return pd.read_csv(path)


def _local_time(split: Split, part: str, targets: pd.DataFrame) -> pd.DataFrame:
    """Hour and weekday of each target row (local time via the part's events' tz_offset)."""
    events = split.valid if part == "valid" else split.test
    frame = targets[list(EVENT_KEY)].copy()
    if events is not None and events.has("tz_offset"):
        offsets = events.events.drop_duplicates(list(EVENT_KEY))[[*EVENT_KEY, "tz_offset"]]
        frame = frame.merge(offsets, on=list(EVENT_KEY), how="left")
        missing = frame["tz_offset"].isna().to_numpy()
        if missing.any():
            raise DataError(
                f"{int(missing.sum())} {part} target(s) are not {part} events",
                source=f"{split.protocol}:{part}_targets",
                row=int(np.flatnonzero(missing)[0]),
                fix="take targets from the events of their own part",
            )
        frame["tz_offset"] = frame["tz_offset"].astype(np.int64)
    # time_features needs an Interactions (sorted by time): sort, compute, put back in order
    order = np.argsort(frame["timestamp"].to_numpy(), kind="stable")
    inter = split.train.with_events(frame.iloc[order], name=f"{split.protocol}_{part}_targets")
    feats = time_features(inter)[["hour", "weekday"]].to_numpy()
    out = np.empty_like(feats)
    out[order] = feats
    return pd.DataFrame(out, columns=["hour", "weekday"], index=targets.index)


def _item_region(split: Split, item_region: np.ndarray | None) -> np.ndarray:
    if item_region is not None:
        item_region = np.asarray(item_region, dtype=np.int64)
        if len(item_region) != split.n_items:
            raise DataError(
                f"item_region has {len(item_region)} entries for {split.n_items} items",
                column="item_region",
                fix="give one region code per item code (e.g. regions.assign(lat, lon))",
            )
        return item_region
    if "region" in split.train.items.columns:
        values = pd.to_numeric(split.train.items["region"], errors="coerce").to_numpy(float)
        return np.where(np.isfinite(values), values, -1).astype(np.int64)
    region = np.full(split.n_items, -1, dtype=np.int64)
    parts = [split.train, split.valid, split.test]
    for inter in parts:
        if inter is not None and inter.has("region"):
            events = inter.events
            region[events["item"].to_numpy()] = events["region"].to_numpy(np.int64)
    return region


def _activity_bins(counts: pd.Series, n_bins: int) -> pd.Series:
    """Quantile bin label of each user's training-event count (bins over these users)."""
    codes = pd.qcut(counts.rank(method="first"), q=min(n_bins, len(counts)), labels=False)
    labels = {}
    for code, group in counts.groupby(codes.to_numpy()):
        labels[code] = f"Q{int(code) + 1} [{int(group.min())}-{int(group.max())}]"
    return pd.Series([labels[c] for c in codes], index=counts.index)


def query_strata(
    split: Split,
    part: str = "test",
    item_region: np.ndarray | None = None,
    activity_bins: int = 4,
) -> pd.DataFrame:
    """One row per query of ``split.targets(part)`` (sorted by query id) with the columns
    ``query, user, timestamp, n_targets`` and the strata of :data:`STRATA` (module docstring)."""
    if isinstance(activity_bins, bool) or not isinstance(activity_bins, int | np.integer):
        raise DataError(f"activity_bins must be an integer, got {activity_bins!r}")
    if activity_bins < 1:
        raise DataError(f"activity_bins must be >= 1, got {activity_bins}", column="activity_bins")
    targets = split.targets(part).reset_index(drop=True)
    if len(targets) == 0:
        raise DataError(f"the {part} part has no targets", source=split.protocol)
    rows = pd.concat(
        [targets[["query", "user", "item", "timestamp"]], _local_time(split, part, targets)], axis=1
    )
    rows["region"] = _item_region(split, item_region)[rows["item"].to_numpy()]
    # novelty: first time the user met the item in the context events before the query
    context = context_events(split, part)
    first_seen = context.groupby(["user", "item"])["timestamp"].min().rename("first_seen")
    rows = rows.join(first_seen, on=["user", "item"])
    rows["seen"] = (rows["first_seen"] < rows["timestamp"]).to_numpy()
    grouped = rows.groupby("query", sort=True)
    table = grouped.agg(
        user=("user", "first"),
        timestamp=("timestamp", "first"),
        n_targets=("item", "nunique"),
        hour=("hour", "first"),
        weekday=("weekday", "first"),
        seen=("seen", "mean"),
    )
    regions = rows.groupby(["query", "region"]).size().rename("n").reset_index()
    regions = regions.sort_values(["query", "n", "region"], ascending=[True, False, True])
    table["region"] = regions.drop_duplicates("query").set_index("query")["region"]
    table["novelty"] = np.select(
        [table["seen"] == 0, table["seen"] == 1], ["explore", "revisit"], "mixed"
    )
    train_counts = split.train.events["user"].value_counts()
    users = pd.Index(table["user"].unique())
    counts = train_counts.reindex(users, fill_value=0)
    table["activity"] = _activity_bins(counts, activity_bins).reindex(table["user"]).to_numpy()
    table["train_events"] = counts.reindex(table["user"]).to_numpy()
    table = table.drop(columns="seen").reset_index()
    return table[["query", "user", "timestamp", "n_targets", "train_events", *STRATA]]


def stratified_metrics(
    per_query: Any,
    strata: pd.DataFrame,
    by: Sequence[str] = STRATA,
    metrics: Sequence[str] | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and bootstrap CI of every metric per level of every stratum in ``by``.

    ``per_query``: see :func:`load_per_query`; ``strata``: a :func:`query_strata` table (or any
    frame with ``query`` and the ``by`` columns). ``metrics`` default to every per-query column
    that is not an id column. Every per-query row must find its query in ``strata``.
    Returns tidy rows: ``stratum, level, metric, n, mean, ci_low, ci_high``.
    """
    table = load_per_query(per_query)
    if "query" not in table.columns:
        raise DataError(
            "the per-query table has no 'query' column",
            column="query",
            fix="use the per_query table of an EvalResult or a run directory",
        )
    metrics = (
        list(metrics) if metrics is not None else [c for c in table.columns if c not in _ID_COLUMNS]
    )
    missing = [c for c in metrics if c not in table.columns] + [
        c for c in by if c not in strata.columns
    ]
    if missing:
        raise DataError(
            f"unknown column(s) {missing}",
            column=missing[0],
            fix=f"metrics among {[c for c in table.columns if c not in _ID_COLUMNS]}, "
            f"strata among {[c for c in strata.columns if c != 'query']}",
        )
    merged = table[["query", *metrics]].merge(
        strata[["query", *by]], on="query", how="left", indicator=True, validate="one_to_one"
    )
    unmatched = (merged["_merge"] != "both").to_numpy()
    if unmatched.any():
        row = int(np.flatnonzero(unmatched)[0])
        raise DataError(
            f"{int(unmatched.sum())} per-query row(s) have no strata, first query "
            f"{merged['query'].iloc[row]!r}",
            column="query",
            row=row,
            fix="build the strata from the same split and part as the run",
        )
    out = []
    for stratum in by:
        for level, group in merged.groupby(stratum, sort=True):
            for k, metric in enumerate(metrics):
                values = group[metric].to_numpy(dtype=float)
                low, high = bootstrap_ci(values, n_boot, ci, seed + k)
                out.append(
                    {
                        "stratum": stratum,
                        "level": level,
                        "metric": metric,
                        "n": len(values),
                        "mean": float(values.mean()),
                        "ci_low": low,
                        "ci_high": high,
                    }
                )
    return pd.DataFrame(out)


def plot_strata(table: pd.DataFrame, stratum: str, metric: str, path: str | Path) -> Path:
    """Bar chart with bootstrap error bars of ``metric`` per level of ``stratum`` (from
    :func:`stratified_metrics`); the query count is written above each bar."""
    rows = table[(table["stratum"] == stratum) & (table["metric"] == metric)]
    if rows.empty:
        raise DataError(
            f"no rows for stratum {stratum!r} and metric {metric!r}",
            column="stratum",
            fix=f"strata: {sorted(table['stratum'].unique())}, metrics: "
            f"{sorted(table['metric'].unique())}",
        )
    mean = rows["mean"].to_numpy()
    error = np.vstack([mean - rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy() - mean])
    fig, ax = new_figure(width=max(4.0, 0.35 * len(rows) + 2))
    x = np.arange(len(rows))
    ax.bar(x, mean, yerr=error, capsize=3, color="C0", alpha=0.8)
    for xi, top, n in zip(x, rows["ci_high"].to_numpy(), rows["n"].to_numpy(), strict=True):
        ax.annotate(str(n), (xi, top), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [str(level) for level in rows["level"]], rotation=45 if len(rows) > 8 else 0)
    ax.set_xlabel(stratum)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by {stratum} (bootstrap CI)")
    return save_png(fig, path)
