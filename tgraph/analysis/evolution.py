"""How users' preferences evolve over time: per-window distributions, drift and its null baseline.

**Preference drift.** The events are cut into time windows (``windows=k``: ``k`` equal-width
windows over the span; ``windows="M"`` / ``"W"`` / ...: calendar periods of the *local* time).
For each user and window, :func:`preference_table` gives the distribution ``p_{u,w}`` of the
user's events over the values of ``key`` (an event column such as ``"category"`` or
``"region"``, or a column of the items table). :func:`preference_drift` compares windows by the
Jensen-Shannon divergence in bits

.. math::
    \\mathrm{JSD}(p, q) = \\tfrac12 \\mathrm{KL}(p \\| m) + \\tfrac12 \\mathrm{KL}(q \\| m),
    \\qquad m = \\tfrac12 (p + q),

which lies in ``[0, 1]`` (computed as the square of
:func:`scipy.spatial.distance.jensenshannon` with ``base=2``, which returns the JS *distance*).
Pairs: consecutive windows ``(w, w + 1)`` where the user has ``>= min_events`` events in both,
and the user's first vs last such window.

**Null baseline.** Empirical distributions of a few events differ by chance, so the JSD is
biased upwards. :func:`null_drift` recomputes the drift after permuting each user's timestamps
among that user's own events (the user's activity per window and overall preferences are kept,
any temporal order is destroyed); :func:`drift_summary` compares the two.

**Embedding drift.** :func:`snapshot_embeddings` trains a model (any
:class:`~tgraph.models.base.EmbeddingRecommender`, e.g. ``bprmf`` or ``lightgcn``) with the
training recipe (:mod:`tgraph.train.recipe`) on cumulative snapshots (events before the cut at each
fraction of the events; the next ``valid_fraction`` of the events selects the epoch).
Embedding spaces of separate trainings are only defined up to a rotation, so
:func:`embedding_drift` first aligns snapshot ``a`` onto ``b`` by orthogonal Procrustes,

.. math::
    R^\\star = \\arg\\min_{R^\\top R = I} \\| \\hat A R - \\hat B \\|_F,

fitted on the L2-normalised embeddings of anchor rows present in both snapshots
(:func:`snapshot_drift`: by default the items trained in both), and reports per user the cosine
distance ``1 - cos(a_u R, b_u)``. The same procedure on time-shuffled events
(:func:`shuffle_times`) gives the drift expected without any temporal change. Embeddings of a
model restored from a checkpoint come from :func:`model_embeddings`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import jensenshannon
from tqdm.auto import tqdm

from tgraph.analysis.plots import new_figure, save_png
from tgraph.config import ExperimentConfig, ModelEntry
from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import deduplicate
from tgraph.data.protocols import chronological_split
from tgraph.data.queries import Queries
from tgraph.errors import DataError
from tgraph.models.base import EmbeddingRecommender
from tgraph.train.recipe import build_trainer

logger = logging.getLogger(__name__)

__all__ = [
    "Snapshot",
    "assign_windows",
    "drift_summary",
    "embedding_drift",
    "model_embeddings",
    "null_drift",
    "plot_drift_distribution",
    "plot_user_preferences",
    "preference_drift",
    "preference_table",
    "shuffle_times",
    "snapshot_drift",
    "snapshot_embeddings",
]


# ------------------------------------------------------------------------------ windows
def assign_windows(inter: Interactions, windows: int | str = 4) -> tuple[np.ndarray, list[str]]:
    """Window code (``0..W-1``, in time order) of every event, and the windows' labels.

    ``windows``: an integer ``k`` gives ``k`` equal-width windows over ``[t_min, t_max]``;
    a pandas period alias (``"M"`` month, ``"W"`` week, ``"D"`` day) gives calendar periods of
    the local time (only periods holding events get a code).
    """
    ts = inter.events["timestamp"].to_numpy(np.int64)
    if isinstance(windows, str):
        try:
            periods = inter.local_time().dt.to_period(windows)
        except ValueError as err:
            raise DataError(
                f"unknown period alias {windows!r} ({err})",
                column="windows",
                fix="use an integer number of windows or a pandas period alias: 'M', 'W', 'D'",
            ) from err
        codes, labels = pd.factorize(periods, sort=True)
        return codes.astype(np.int64), [str(p) for p in labels]
    if isinstance(windows, bool) or not isinstance(windows, int | np.integer) or windows < 1:
        raise DataError(
            f"windows must be an integer >= 1 or a period alias, got {windows!r}",
            column="windows",
            fix="pass e.g. windows=4 or windows='M'",
        )
    t0, t1 = int(ts.min()), int(ts.max())
    width = max(t1 - t0, 1) / windows
    codes = np.minimum(((ts - t0) / width).astype(np.int64), windows - 1)
    edges = pd.to_datetime(t0 + width * np.arange(windows), unit="s")
    return codes, [str(e.date()) for e in edges]


def _values(inter: Interactions, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Integer values of ``key`` per event and the mask of events where it is known."""
    if inter.has(key):
        raw = inter.events[key].to_numpy()
    elif key in inter.items.columns:
        raw = inter.items[key].to_numpy()[inter.events["item"].to_numpy()]
    else:
        raise DataError(
            f"no column {key!r} in the events or the items table",
            source=inter.source,
            column=key,
            fix="add it first (e.g. preprocess.add_regions for 'region') or choose another key",
        )
    numeric = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
    known = np.isfinite(numeric) & (numeric >= 0)
    return np.where(known, numeric, 0).astype(np.int64), known


def _window_counts(
    inter: Interactions, key: str, windows: int | str
) -> tuple[pd.DataFrame, list[str]]:
    """Counts per (user, window, value); events without a value are left out (logged)."""
    codes, labels = assign_windows(inter, windows)
    values, known = _values(inter, key)
    unknown = int((~known).sum())
    if unknown:
        logger.info(
            "%s: %d of %d event(s) without a %r value left out",
            inter.name,
            unknown,
            len(inter),
            key,
        )
    frame = pd.DataFrame(
        {
            "user": inter.events["user"].to_numpy()[known],
            "window": codes[known],
            "value": values[known],
        }
    )
    counts = frame.groupby(["user", "window", "value"], sort=True).size().rename("count")
    return counts.reset_index(), labels


# ------------------------------------------------------------------------------ preferences
def preference_table(
    inter: Interactions, key: str = "category", windows: int | str = 4
) -> pd.DataFrame:
    """Each user's distribution over ``key`` per time window, as tidy rows.

    Columns: ``user``, ``window`` (code), ``window_label``, ``value``, ``count``, ``share``
    (``count`` over the user's events of the window with a known value; shares of one
    (user, window) sum to 1). Events without a value are left out (count logged).
    """
    counts, labels = _window_counts(inter, key, windows)
    total = counts.groupby(["user", "window"])["count"].transform("sum")
    counts["share"] = counts["count"] / total
    counts.insert(2, "window_label", np.asarray(labels, dtype=object)[counts["window"]])
    return counts


class _Groups:
    """CSR view of tidy counts sorted by (user, window, value): one row per (user, window)."""

    def __init__(self, counts: pd.DataFrame) -> None:
        pairs = counts[["user", "window"]].drop_duplicates()
        self.index = pd.MultiIndex.from_frame(pairs)
        sizes = counts.groupby(["user", "window"], sort=True).size().to_numpy()
        self.ptr = np.r_[0, np.cumsum(sizes)]
        self.values = counts["value"].to_numpy(np.int64)
        self.counts = counts["count"].to_numpy(np.float64)
        self.n_values = int(self.values.max()) + 1 if len(self.values) else 1

    def rows(self, users: np.ndarray, windows: np.ndarray) -> np.ndarray:
        return self.index.get_indexer(pd.MultiIndex.from_arrays([users, windows]))

    def dense(self, groups: np.ndarray) -> np.ndarray:
        lengths = self.ptr[groups + 1] - self.ptr[groups]
        rows = np.repeat(np.arange(len(groups)), lengths)
        within = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        flat = np.repeat(self.ptr[groups], lengths) + within
        matrix = np.zeros((len(groups), self.n_values))
        matrix[rows, self.values[flat]] = self.counts[flat]
        return matrix

    def jsd(self, ga: np.ndarray, gb: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """JSD in bits between the distributions of rows ``ga[i]`` and ``gb[i]``."""
        out = [np.zeros(0)]
        for lo in range(0, len(ga), chunk):
            p, q = self.dense(ga[lo : lo + chunk]), self.dense(gb[lo : lo + chunk])
            out.append(jensenshannon(p, q, axis=1, base=2) ** 2)
        return np.clip(np.concatenate(out), 0.0, 1.0)


def _check_min_events(min_events: Any) -> int:
    if isinstance(min_events, bool) or not isinstance(min_events, int | np.integer):
        raise DataError(f"min_events must be an integer, got {min_events!r}", column="min_events")
    if min_events < 1:
        raise DataError(f"min_events must be >= 1, got {min_events}", column="min_events")
    return int(min_events)


def preference_drift(
    inter: Interactions, key: str = "category", windows: int | str = 4, min_events: int = 5
) -> pd.DataFrame:
    """Per-user Jensen-Shannon drift of the ``key`` distribution between time windows.

    A (user, window) qualifies when the user has ``>= min_events`` events with a known value in
    it. Rows: ``kind="consecutive"`` for every pair ``(w, w + 1)`` of qualifying windows, and
    ``kind="first_last"`` for the user's first vs last qualifying window (users with at least
    two). Columns: ``user``, ``kind``, ``window_a``, ``window_b``, ``n_a``, ``n_b`` (events),
    ``jsd`` (bits, in ``[0, 1]``).
    """
    min_events = _check_min_events(min_events)
    counts, _ = _window_counts(inter, key, windows)
    groups = _Groups(counts)
    sizes = counts.groupby(["user", "window"], sort=True)["count"].sum()
    active = sizes[sizes >= min_events].reset_index()
    user, window = active["user"].to_numpy(), active["window"].to_numpy()
    same = np.r_[user[1:] == user[:-1], False]
    nxt = same & np.r_[window[1:] == window[:-1] + 1, False]
    first = np.r_[True, user[1:] != user[:-1]]
    last = np.r_[user[1:] != user[:-1], True]
    multi = first & ~last
    last_pos = np.flatnonzero(last)
    pairs = {
        "consecutive": (user[nxt], window[nxt], window[np.flatnonzero(nxt) + 1]),
        "first_last": (
            user[multi],
            window[multi],
            window[last_pos[np.searchsorted(last_pos, np.flatnonzero(multi))]],
        ),
    }
    frames = []
    for kind, (u, wa, wb) in pairs.items():
        jsd = groups.jsd(groups.rows(u, wa), groups.rows(u, wb))
        frames.append(
            pd.DataFrame(
                {
                    "user": u,
                    "kind": kind,
                    "window_a": wa,
                    "window_b": wb,
                    "n_a": sizes.reindex(pd.MultiIndex.from_arrays([u, wa])).to_numpy(),
                    "n_b": sizes.reindex(pd.MultiIndex.from_arrays([u, wb])).to_numpy(),
                    "jsd": jsd,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    return out.astype({"user": np.int64, "window_a": np.int64, "window_b": np.int64})


def shuffle_times(inter: Interactions, seed: int = 0) -> Interactions:
    """A copy where each user's timestamps (with their ``tz_offset``) are randomly permuted
    among that user's own events: per-user activity over time and overall preferences are
    kept, the link between time and what was visited is destroyed."""
    rng = np.random.default_rng(seed)
    events = inter.events
    user = events["user"].to_numpy()
    order = np.lexsort((rng.random(len(events)), user))  # random order within each user
    by_user = np.argsort(user, kind="stable")  # the user's events in their original order
    shuffled = events.copy()
    time_columns = [c for c in ("timestamp", "tz_offset") if c in events.columns]
    for column in time_columns:
        values = events[column].to_numpy()
        new = values.copy()
        new[by_user] = values[order]
        shuffled[column] = new
    return inter.with_events(shuffled, name=f"{inter.name}_time_shuffled")


def null_drift(
    inter: Interactions,
    key: str = "category",
    windows: int | str = 4,
    min_events: int = 5,
    n_shuffles: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`preference_drift` of ``n_shuffles`` time-shuffled copies (:func:`shuffle_times`,
    seeds ``seed, seed + 1, ...``); column ``shuffle`` tells them apart. Window edges are those
    of ``inter`` (permuting times within users keeps the span)."""
    frames = []
    for k in tqdm(range(n_shuffles), desc="null drift", leave=False, disable=n_shuffles < 3):
        drift = preference_drift(shuffle_times(inter, seed + k), key, windows, min_events)
        frames.append(drift.assign(shuffle=k))
    return pd.concat(frames, ignore_index=True)


def drift_summary(observed: pd.DataFrame, null: pd.DataFrame | None = None) -> pd.DataFrame:
    """Aggregate drift per ``kind``: users, mean, median, and with a ``null`` table the null's
    mean and median, ``excess`` (mean minus null mean) and ``share_above_null`` (users whose
    drift exceeds their own mean null drift)."""
    rows = []
    for kind, group in observed.groupby("kind", sort=False):
        row: dict[str, Any] = {
            "kind": kind,
            "users": int(group["user"].nunique()),
            "pairs": len(group),
            "mean": float(group["jsd"].mean()),
            "median": float(group["jsd"].median()),
        }
        if null is not None:
            base = null[null["kind"] == kind]
            row["null_mean"] = float(base["jsd"].mean())
            row["null_median"] = float(base["jsd"].median())
            row["excess"] = row["mean"] - row["null_mean"]
            per_user = base.groupby("user")["jsd"].mean()
            mine = group.groupby("user")["jsd"].mean()
            common = mine.index.intersection(per_user.index)
            row["share_above_null"] = float((mine[common] > per_user[common]).mean())
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ embeddings
@dataclass
class Snapshot:
    """Embeddings of a model trained on the events before ``cut`` (UTC seconds).

    ``user_emb`` ``[n_users, d]`` and ``item_emb`` ``[n_items, d]`` cover the whole id space;
    ``user_events`` / ``item_events`` count each code's training events (rows with 0 were never
    trained and hold their initialisation).
    """

    cut: int
    fraction: float
    user_emb: np.ndarray
    item_emb: np.ndarray
    user_events: np.ndarray
    item_events: np.ndarray
    best_epoch: int
    valid_metric: float


def _check_embedding_model(net: torch.nn.Module) -> EmbeddingRecommender:
    if not isinstance(net, EmbeddingRecommender) or net.history_len:
        raise DataError(
            f"model {type(net).__name__} has no per-user embedding to compare",
            column="model",
            fix="use an embedding model without history, e.g. 'bprmf' or 'lightgcn'",
        )
    return net


@torch.no_grad()
def model_embeddings(net: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """``(user_emb [n_users, d], item_emb [n_items, d])`` of an embedding model in eval mode
    (e.g. LightGCN's propagated embeddings), as float64 arrays. Works on a model restored from
    a checkpoint: ``net.load_state_dict(torch.load(path)["model"])``."""
    net = _check_embedding_model(net)
    was_training = net.training
    net.eval()
    users = torch.arange(net.n_users, device=net.device)
    user_emb, item_emb = net.embed(Queries(user=users, timestamp=torch.zeros_like(users)))
    net.train(was_training)
    return (
        user_emb.detach().cpu().numpy().astype(np.float64),
        item_emb.detach().cpu().numpy().astype(np.float64),
    )


def snapshot_embeddings(
    inter: Interactions,
    fractions: tuple[float, ...] = (0.3, 0.6, 0.9),
    model: str = "bprmf",
    model_config: dict[str, Any] | None = None,
    train_config: dict[str, Any] | None = None,
    valid_fraction: float = 0.05,
    seed: int = 0,
) -> list[Snapshot]:
    """Train ``model`` on cumulative snapshots and return their embeddings.

    Snapshot ``k`` trains on the events before the event at position ``fractions[k] * n`` (time
    order) and selects its epoch on the next ``valid_fraction * n`` events (every event a
    target); the rest is the (unused) test part. Exact duplicate events are dropped first. Every
    snapshot starts from the same seeded initialisation, so initialisation noise does not count
    as drift. The model must be an :class:`~tgraph.models.base.EmbeddingRecommender` without
    history.
    """
    fractions = tuple(float(f) for f in fractions)
    if not 0 < valid_fraction < 1:
        raise DataError(
            f"valid_fraction must be in (0, 1), got {valid_fraction!r}",
            column="valid_fraction",
            fix="the Trainer selects the epoch on validation: use e.g. 0.05",
        )
    if not fractions or any(not 0 < f or f + valid_fraction >= 1 for f in fractions):
        raise DataError(
            f"snapshot fractions {fractions} with valid_fraction {valid_fraction} leave no test",
            column="fractions",
            fix="use fractions in (0, 1 - valid_fraction), e.g. (0.3, 0.6, 0.9)",
        )
    inter, _ = deduplicate(inter)
    options = {"epochs": 20, "patience": 3, "progress": False, **(train_config or {})}
    entry = ModelEntry(name=model, config=model_config or {})
    experiment = ExperimentConfig(models=[entry], train=options)
    snapshots = []
    for fraction in tqdm(fractions, desc=f"{model} snapshots", leave=False):
        split = chronological_split(
            inter, ratios=(fraction, valid_fraction, 1 - fraction - valid_fraction)
        )
        trainer = build_trainer(split, entry, seed, experiment)
        _check_embedding_model(trainer.model)
        trainer.fit()
        user_emb, item_emb = model_embeddings(trainer.model)
        train = split.train.events
        assert split.valid is not None  # valid_fraction > 0
        snapshots.append(
            Snapshot(
                cut=int(split.valid.events["timestamp"].min()),
                fraction=fraction,
                user_emb=user_emb,
                item_emb=item_emb,
                user_events=np.bincount(train["user"].to_numpy(), minlength=split.n_users),
                item_events=np.bincount(train["item"].to_numpy(), minlength=split.n_items),
                best_epoch=trainer.best_epoch,
                valid_metric=float(trainer.best_value),
            )
        )
    return snapshots


def _unit(rows: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norm > 0, norm, 1.0)


def embedding_drift(
    emb_a: np.ndarray,
    emb_b: np.ndarray,
    rows: np.ndarray | None = None,
    anchor_a: np.ndarray | None = None,
    anchor_b: np.ndarray | None = None,
) -> np.ndarray:
    """Cosine distance ``1 - cos(a_r R, b_r)`` of each row ``r`` in ``rows`` (default: all)
    after aligning space ``a`` onto ``b`` by orthogonal Procrustes fitted on the unit-normalised
    anchors ``anchor_a -> anchor_b`` (same rows in both; default: ``emb_a[rows] -> emb_b[rows]``).
    """
    emb_a, emb_b = np.asarray(emb_a, dtype=float), np.asarray(emb_b, dtype=float)
    if emb_a.shape != emb_b.shape:
        raise DataError(f"embedding shapes differ: {emb_a.shape} vs {emb_b.shape}")
    rows = np.arange(len(emb_a)) if rows is None else np.asarray(rows, dtype=np.int64)
    if anchor_a is None or anchor_b is None:
        anchor_a, anchor_b = emb_a[rows], emb_b[rows]
    if len(anchor_a) < emb_a.shape[1]:
        logger.warning(
            "Procrustes fitted on %d anchors in %d dimensions", len(anchor_a), emb_a.shape[1]
        )
    rotation, _ = orthogonal_procrustes(_unit(np.asarray(anchor_a)), _unit(np.asarray(anchor_b)))
    a, b = _unit(emb_a[rows] @ rotation), _unit(emb_b[rows])
    return 1.0 - (a * b).sum(axis=1)


def snapshot_drift(
    snapshots: list[Snapshot], min_events: int = 5, anchor: str = "items"
) -> pd.DataFrame:
    """Per-user embedding drift between consecutive snapshots (:func:`embedding_drift`).

    Users need ``>= min_events`` training events in both snapshots; ``anchor="items"`` fits the
    rotation on the items with ``>= min_events`` events in both, ``"users"`` on the compared
    users themselves. Columns: ``user``, ``snapshot_a``, ``snapshot_b``, ``cosine_distance``.
    """
    min_events = _check_min_events(min_events)
    if anchor not in ("items", "users"):
        raise DataError(f"unknown anchor {anchor!r}", column="anchor", fix="use 'items' or 'users'")
    frames = []
    for k in range(len(snapshots) - 1):
        a, b = snapshots[k], snapshots[k + 1]
        users = np.flatnonzero((a.user_events >= min_events) & (b.user_events >= min_events))
        if anchor == "items":
            items = np.flatnonzero((a.item_events >= min_events) & (b.item_events >= min_events))
            dist = embedding_drift(
                a.user_emb, b.user_emb, users, a.item_emb[items], b.item_emb[items]
            )
        else:
            dist = embedding_drift(a.user_emb, b.user_emb, users)
        frames.append(
            pd.DataFrame(
                {"user": users, "snapshot_a": k, "snapshot_b": k + 1, "cosine_distance": dist}
            )
        )
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------ plots
def plot_drift_distribution(
    observed: pd.DataFrame,
    path: str | Path,
    null: pd.DataFrame | None = None,
    kind: str = "first_last",
    column: str = "jsd",
    bins: int = 30,
) -> Path:
    """Histogram of per-user drift (rows of ``kind`` when the table has a ``kind`` column),
    with the null distribution overlaid; returns the PNG path."""

    def pick(table: pd.DataFrame) -> np.ndarray:
        rows = table[table["kind"] == kind] if "kind" in table.columns else table
        return rows[column].to_numpy(dtype=float)

    values = pick(observed)
    if len(values) == 0:
        raise DataError(f"no drift rows of kind {kind!r} to plot", column="kind")
    fig, ax = new_figure()
    edges = np.histogram_bin_edges(
        np.r_[values, pick(null)] if null is not None else values, bins=bins
    )
    ax.hist(values, bins=edges, alpha=0.7, density=True, label=f"observed (n={len(values)})")
    if null is not None:
        ax.hist(pick(null), bins=edges, alpha=0.5, density=True, label="time-shuffled null")
    ax.axvline(values.mean(), color="C0", linestyle="--", linewidth=1)
    ax.set_xlabel(
        column.replace("_", " ") + (f" ({kind.replace('_', ' ')})" if column == "jsd" else "")
    )
    ax.set_ylabel("density")
    ax.legend()
    return save_png(fig, path)


def plot_user_preferences(
    table: pd.DataFrame, user: int, path: str | Path, top: int = 10, value_names: Any = None
) -> Path:
    """Heatmap of one user's shares (rows: the ``top`` values by total count, columns: windows)
    from a :func:`preference_table`; ``value_names`` maps values to display names."""
    rows = table[table["user"] == user]
    if rows.empty:
        raise DataError(f"user {user} has no rows in the preference table", column="user")
    grid = rows.pivot_table(index="value", columns="window", values="share", fill_value=0.0)
    order = rows.groupby("value")["count"].sum().sort_values(ascending=False).index[:top]
    grid = grid.loc[order]
    labels = rows.drop_duplicates("window").set_index("window")["window_label"]
    fig, ax = new_figure(
        width=max(4.0, 0.6 * grid.shape[1] + 2), height=max(3.0, 0.35 * len(grid) + 1.5)
    )
    image = ax.imshow(grid.to_numpy(), aspect="auto", vmin=0, vmax=1)
    ax.set_xticks(range(grid.shape[1]), [labels[w] for w in grid.columns], rotation=45, ha="right")
    names = [value_names[v] if value_names is not None else v for v in grid.index]
    ax.set_yticks(range(len(grid)), [str(n) for n in names])
    ax.grid(False)
    ax.set_xlabel("window")
    ax.set_title(f"user {user}: preference share per window")
    fig.colorbar(image, ax=ax, label="share")
    return save_png(fig, path)
