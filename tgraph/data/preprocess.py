"""Preprocessing: filters with counts, id compaction, time features, regions and POI neighbours.

Every function that changes an :class:`~tgraph.data.interactions.Interactions` returns a new
one together with a *report* (a dict of counts) and logs that report, so that nothing is
dropped silently::

    inter, dedup = deduplicate(inter)
    inter, core = kcore(inter, user_k=10, item_k=10)          # also compacts ids
    regions = fit_kmeans(*item_coordinates(train), k=50, seed=0)  # training coordinates only
    inter, rep = add_regions(inter, regions)                  # assign every item and event
    feats = time_features(inter)                              # hour, weekday, slots (local time)
    src, dst, km = knn_pois(inter, k=10)                      # POI-POI haversine neighbours
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from tgraph.data.geo import (
    KM_PER_DEGREE,
    chord_to_km,
    from_unit_vectors,
    haversine,
    km_to_chord,
    to_unit_vectors,
)
from tgraph.data.interactions import Interactions
from tgraph.errors import DataError

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400

__all__ = [
    "GridRegions",
    "KMeansRegions",
    "add_regions",
    "compact",
    "deduplicate",
    "fit_grid",
    "fit_kmeans",
    "haversine",
    "from_items_table",
    "item_codes",
    "item_coordinates",
    "kcore",
    "knn_pois",
    "radius_pois",
    "static_item_columns",
    "time_features",
]


def _log(report: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in report.items() if k not in ("iterations", "step")}
    logger.info("%s: %s", report["step"], shown)
    return report


def _active(codes: np.ndarray, size: int) -> int:
    return int(np.count_nonzero(np.bincount(codes, minlength=size)))


# ---------------------------------------------------------------------------- filters
def deduplicate(
    inter: Interactions, subset: tuple[str, ...] = ("user", "item", "timestamp")
) -> tuple[Interactions, dict[str, Any]]:
    """Drop events that repeat an earlier event on all columns of ``subset`` (keeps the first).

    Times compare at the stored resolution: with ``timestamp`` in ``subset``, a
    ``subsecond`` column is compared too, so two events 800 ms apart are not duplicates.
    """
    missing = [c for c in subset if c not in inter.events.columns]
    if missing:
        raise DataError(
            f"cannot deduplicate on missing column(s) {missing}",
            source=inter.source,
            column=missing[0],
            fix=f"choose subset columns among {list(inter.events.columns)}",
        )
    subset = tuple(subset)
    if "timestamp" in subset and inter.has("subsecond") and "subsecond" not in subset:
        subset = (*subset, "subsecond")
    duplicated = inter.events.duplicated(subset=list(subset), keep="first").to_numpy()
    report = {
        "step": "deduplicate",
        "subset": list(subset),
        "time_resolution": inter.meta.get("time_resolution", "s"),
        "events_before": len(inter),
        "dropped": int(duplicated.sum()),
        "events_after": int(len(inter) - duplicated.sum()),
    }
    if report["events_after"] == len(inter):
        return inter, _log(report)
    return inter.with_events(inter.events.loc[~duplicated]), _log(report)


def compact(inter: Interactions) -> tuple[Interactions, dict[str, Any]]:
    """Drop users and items without events and renumber the rest ``0..n-1`` in code order.

    The ``users`` / ``items`` tables keep their ``raw_id`` (and other) columns, so the id map to
    the source file survives any number of compactions. Compact *before* splitting: train,
    validation and test must share one id space.
    """
    events = inter.events.copy()
    tables = {}
    report: dict[str, Any] = {"step": "compact"}
    for column, table in (("user", inter.users), ("item", inter.items)):
        present = np.bincount(events[column].to_numpy(), minlength=len(table)) > 0
        new_code = np.cumsum(present) - 1
        events[column] = new_code[events[column].to_numpy()]
        tables[column] = table.loc[present].reset_index(drop=True)
        report[f"{column}s_before"] = len(table)
        report[f"{column}s_dropped"] = int((~present).sum())
        report[f"{column}s_after"] = int(present.sum())
    out = inter.with_events(events, users=tables["user"], items=tables["item"])
    return out, _log(report)


def _check_k(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise DataError(
            f"{name} must be a non-negative integer, got {value!r}",
            column=name,
            fix=f"pass {name}=10 (or another count >= 0)",
        )
    return int(value)


def kcore(
    inter: Interactions, user_k: int = 10, item_k: int = 10, *, remap: bool = True
) -> tuple[Interactions, dict[str, Any]]:
    """Iterative k-core: keep events whose user has >= ``user_k`` and item >= ``item_k`` events.

    Removing users can push items below ``item_k`` and vice versa, so the filter repeats until
    nothing changes; each round's counts go to ``report["iterations"]``. Counts are events, not
    distinct pairs: call :func:`deduplicate` first to count distinct (user, item) pairs.
    With ``remap`` the ids are compacted (:func:`compact`), keeping the raw ids.
    """
    user_k, item_k = _check_k(user_k, "user_k"), _check_k(item_k, "item_k")
    users = inter.events["user"].to_numpy()
    items = inter.events["item"].to_numpy()
    keep = np.ones(len(users), dtype=bool)
    before = {"users": _active(users, inter.n_users), "items": _active(items, inter.n_items)}
    iterations: list[dict[str, int]] = []
    while True:
        user_count = np.bincount(users[keep], minlength=inter.n_users)
        item_count = np.bincount(items[keep], minlength=inter.n_items)
        drop = keep & ((user_count[users] < user_k) | (item_count[items] < item_k))
        if not drop.any():
            break
        keep &= ~drop
        iterations.append(
            {
                "iteration": len(iterations) + 1,
                "events_dropped": int(drop.sum()),
                "events_left": int(keep.sum()),
                "users_left": _active(users[keep], inter.n_users),
                "items_left": _active(items[keep], inter.n_items),
            }
        )
    if not keep.any():
        raise DataError(
            f"the {user_k}/{item_k}-core of {inter.name} is empty",
            source=inter.source,
            fix="lower user_k / item_k",
        )
    report: dict[str, Any] = {
        "step": "kcore",
        "user_k": user_k,
        "item_k": item_k,
        "events_before": len(inter),
        "events_after": int(keep.sum()),
        "events_dropped": int((~keep).sum()),
        "users_before": before["users"],
        "users_after": _active(users[keep], inter.n_users),
        "items_before": before["items"],
        "items_after": _active(items[keep], inter.n_items),
        "iterations": iterations,
    }
    out = inter if keep.all() else inter.with_events(inter.events.loc[keep])
    _log(report)
    if remap:
        out, report["compact"] = compact(out)
    return out, report


# ---------------------------------------------------------------------------- time
def time_features(inter: Interactions, slots_per_day: int = 48) -> pd.DataFrame:
    """Calendar features of each event's *local* time (``timestamp + tz_offset * 60``).

    Returns a frame aligned with ``inter.events`` (same length and index) with int64 columns
    ``day`` (local days since 1970-01-01), ``hour`` (0-23), ``weekday`` (0 = Monday),
    ``weekend`` (1 on Saturday and Sunday), ``slot`` (``0..slots_per_day-1``, equal slices of
    the day), ``week_hour`` (``weekday * 24 + hour``, 0-167) and ``daytype_hour``
    (``weekend * 24 + hour``, 0-47: the weekday/weekend x hour slots of STAN-style models).
    """
    if isinstance(slots_per_day, bool) or not isinstance(slots_per_day, int | np.integer):
        raise DataError(f"slots_per_day must be an integer, got {slots_per_day!r}")
    if not 1 <= slots_per_day <= SECONDS_PER_DAY:
        raise DataError(
            f"slots_per_day must be in [1, {SECONDS_PER_DAY}], got {slots_per_day}",
            fix="use 24 (hourly) or 48 (half-hourly) slots",
        )
    local = inter.events["timestamp"].to_numpy(dtype=np.int64)
    if inter.has("tz_offset"):
        local = local + inter.events["tz_offset"].to_numpy(dtype=np.int64) * 60
    day = np.floor_divide(local, SECONDS_PER_DAY)
    second = local - day * SECONDS_PER_DAY
    hour = second // 3600
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday
    weekend = (weekday >= 5).astype(np.int64)
    return pd.DataFrame(
        {
            "day": day,
            "hour": hour,
            "weekday": weekday,
            "weekend": weekend,
            "slot": second * slots_per_day // SECONDS_PER_DAY,
            "week_hour": weekday * 24 + hour,
            "daytype_hour": weekend * 24 + hour,
        },
        index=inter.events.index,
    )


# ---------------------------------------------------------------------------- coordinates
def _coords_of(obj: Interactions | pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of an items table, or of the items of an Interactions."""
    if isinstance(obj, Interactions):
        return item_coordinates(obj)
    missing = [c for c in ("lat", "lon") if c not in obj.columns]
    if missing:
        raise DataError(
            f"the items table has no {missing} column(s)",
            column=missing[0],
            fix="pass a table with 'lat' and 'lon' in degrees, or an Interactions with coordinates",
        )
    lat, lon = obj["lat"].to_numpy(dtype=float), obj["lon"].to_numpy(dtype=float)
    bad = ~(np.isfinite(lat) & np.isfinite(lon))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            "missing coordinates",
            column="lat" if not np.isfinite(lat[row]) else "lon",
            row=row,
            fix="drop items without coordinates before spatial preprocessing",
        )
    return lat, lon


def static_item_columns(inter: Interactions) -> frozenset[str]:
    """Items-table columns the dataset declares static (``meta["static_item_columns"]``): read
    from an item file (e.g. a POI table), not derived from the events."""
    return frozenset(inter.meta.get("static_item_columns", ()))


def from_items_table(inter: Interactions, column: str) -> bool:
    """Whether ``inter.items[column]`` is used as it is: the column is declared static, or
    the events lack it (so it cannot have been derived from them, validation and test
    included). Otherwise the attribute is derived from ``inter``'s own events."""
    return column in inter.items.columns and (
        column in static_item_columns(inter) or not inter.has(column)
    )


def item_coordinates(inter: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of every item code.

    From the items table when it holds static coordinates (:func:`from_items_table`);
    otherwise the per-item median of ``inter``'s events' coordinates (items without events
    get NaN). Pass a split's training part: then validation/test positions of a POI never
    reach a feature, a graph or a normalisation.
    """
    if from_items_table(inter, "lat") and from_items_table(inter, "lon"):
        return inter.items["lat"].to_numpy(dtype=float), inter.items["lon"].to_numpy(dtype=float)
    if not (inter.has("lat") and inter.has("lon")):
        raise DataError(
            f"{inter.name} has no coordinates (no 'lat'/'lon' in items or events)",
            source=inter.source,
            column="lat",
            fix="use a dataset with POI coordinates for spatial preprocessing",
        )
    medians = inter.events.groupby("item")[["lat", "lon"]].median()
    medians = medians.reindex(range(inter.n_items))
    return medians["lat"].to_numpy(dtype=float), medians["lon"].to_numpy(dtype=float)


def _mode_per_item(events: pd.DataFrame, column: str, n_items: int) -> np.ndarray:
    """Most frequent value of ``column`` per item (ties: smallest value); -1 when unseen."""
    counts = events.groupby(["item", column]).size().reset_index(name="n")
    counts = counts.sort_values(["item", "n", column], ascending=[True, False, True])
    first = counts.drop_duplicates("item")
    out = np.full(n_items, -1, dtype=np.int64)
    out[first["item"].to_numpy()] = first[column].to_numpy(dtype=np.int64)
    return out


def item_codes(inter: Interactions, column: str) -> np.ndarray | None:
    """Per-item integer code of ``column`` (e.g. ``"category"``, ``"region"``); -1 unknown.

    From the items table when it may be used as is (:func:`from_items_table`), its unknown
    (missing or negative) codes filled with the most frequent value over ``inter``'s events;
    otherwise that most frequent value alone (pass a split's training part). ``None`` when
    neither table has the column.
    """
    in_items, in_events = from_items_table(inter, column), inter.has(column)
    if not (in_items or in_events):
        return None
    codes = np.full(inter.n_items, -1, dtype=np.int64)
    if in_items:
        values = pd.to_numeric(inter.items[column], errors="coerce").to_numpy(dtype=np.float64)
        known = np.isfinite(values) & (values >= 0)
        if (values[known] % 1 != 0).any():
            row = int(np.flatnonzero(known & (values % 1 != 0))[0])
            raise DataError(
                f"{column} code {values[row]} is not an integer",
                source=f"{inter.source} (items table)",
                column=column,
                row=row,
                fix=f"encode '{column}' as integer codes 0..n-1",
            )
        codes[known] = values[known].astype(np.int64)
    if in_events:
        events = inter.events[inter.events[column] >= 0]
        missing = codes < 0
        codes[missing] = _mode_per_item(events, column, inter.n_items)[missing]
    return codes


# ---------------------------------------------------------------------------- regions
@dataclass
class GridRegions:
    """Square-ish cells of ``cell_km`` x ``cell_km`` on the sphere.

    Rows are bands of ``cell_km`` of latitude; within a row, columns are ``cell_km`` wide at the
    row's central latitude, so cells keep their size at any latitude. Only cells that hold a
    fitted point get a code (``0..n_regions-1``, in row-major order); a point in any other cell
    is assigned to the nearest fitted cell centre, so the set of regions is closed.
    """

    cell_km: float
    keys: np.ndarray  # sorted cell keys of the fitted cells
    lat: np.ndarray  # cell centres
    lon: np.ndarray
    _tree: cKDTree = field(repr=False)

    @property
    def n_regions(self) -> int:
        return len(self.keys)

    @staticmethod
    def _cells(lat: np.ndarray, lon: np.ndarray, cell_km: float):
        row = np.floor((lat + 90.0) * KM_PER_DEGREE / cell_km).astype(np.int64)
        centre_lat = np.minimum(-90.0 + (row + 0.5) * cell_km / KM_PER_DEGREE, 90.0)
        width = np.maximum(np.cos(np.radians(centre_lat)), 1e-9) * KM_PER_DEGREE / cell_km
        col = np.floor((lon + 180.0) * width).astype(np.int64)
        n_cols = int(np.ceil(360.0 * KM_PER_DEGREE / cell_km)) + 1
        centre_lon = -180.0 + (col + 0.5) / width
        return row * n_cols + col, centre_lat, centre_lon

    def assign(self, lat, lon) -> np.ndarray:
        """Region code of each point (nearest fitted cell when its own cell was not fitted)."""
        lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
        keys, _, _ = self._cells(lat, lon, self.cell_km)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        codes = pos.astype(np.int64)
        outside = self.keys[pos] != keys
        if outside.any():
            _, codes[outside] = self._tree.query(to_unit_vectors(lat[outside], lon[outside]))
        return codes


@dataclass
class KMeansRegions:
    """``k`` regions from k-means on the POIs' 3-D unit vectors (chord distance).

    ``lat`` / ``lon`` are the centres projected back onto the sphere; :meth:`assign` gives
    each point its nearest centre.
    """

    lat: np.ndarray
    lon: np.ndarray
    iterations: int
    _tree: cKDTree = field(repr=False)

    @property
    def n_regions(self) -> int:
        return len(self.lat)

    def assign(self, lat, lon) -> np.ndarray:
        """Code of the nearest centre of each point."""
        _, codes = self._tree.query(to_unit_vectors(lat, lon))
        return np.asarray(codes, dtype=np.int64)


def _finite_points(lat, lon) -> tuple[np.ndarray, np.ndarray]:
    lat, lon = np.asarray(lat, dtype=float).ravel(), np.asarray(lon, dtype=float).ravel()
    if lat.shape != lon.shape or len(lat) == 0:
        raise DataError("lat and lon must be non-empty arrays of the same length")
    bad = ~(np.isfinite(lat) & np.isfinite(lon))
    bad |= (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"invalid coordinate ({lat[row]}, {lon[row]})",
            column="lat",
            row=row,
            fix="drop points without valid coordinates before fitting regions",
        )
    return lat, lon


def fit_grid(lat, lon, cell_km: float = 1.0) -> GridRegions:
    """Grid regions over the cells that hold at least one of the given points."""
    if not np.isfinite(cell_km) or cell_km <= 0:
        raise DataError(f"cell_km must be positive, got {cell_km!r}", fix="pass e.g. cell_km=1.0")
    lat, lon = _finite_points(lat, lon)
    keys, centre_lat, centre_lon = GridRegions._cells(lat, lon, cell_km)
    keys, first = np.unique(keys, return_index=True)
    centre_lat, centre_lon = centre_lat[first], centre_lon[first]
    tree = cKDTree(to_unit_vectors(centre_lat, centre_lon))
    return GridRegions(float(cell_km), keys, centre_lat, centre_lon, tree)


def fit_kmeans(lat, lon, k: int, seed: int = 0, max_iter: int = 100) -> KMeansRegions:
    """Seeded k-means (k-means++ initialisation, Lloyd iterations) of points in degrees.

    Works on 3-D unit vectors, so it is valid at any scale (city or world). An empty cluster
    is re-seeded at the point farthest from its centre. Same inputs and seed, same regions.
    """
    if max_iter < 1:
        raise DataError(f"max_iter must be >= 1, got {max_iter!r}")
    lat, lon = _finite_points(lat, lon)
    xyz = to_unit_vectors(lat, lon)
    n_distinct = len(np.unique(xyz.round(12), axis=0))
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n_distinct:
        raise DataError(
            f"k must be an integer in [1, {n_distinct}] (distinct points), got {k!r}",
            column="k",
            fix="choose fewer regions than distinct POI locations",
        )
    rng = np.random.default_rng(seed)
    centres = np.empty((k, 3))
    centres[0] = xyz[rng.integers(len(xyz))]
    closest = ((xyz - centres[0]) ** 2).sum(1)
    for j in range(1, k):
        centres[j] = xyz[rng.choice(len(xyz), p=closest / closest.sum())]
        closest = np.minimum(closest, ((xyz - centres[j]) ** 2).sum(1))
    labels = np.full(len(xyz), -1)
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        dist, new_labels = cKDTree(centres).query(xyz)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=k)
        for j in np.flatnonzero(counts == 0):
            far = int(np.argmax(dist))
            labels[far], dist[far] = j, 0.0
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, xyz[:, d], minlength=k) for d in range(3)], 1)
        centres = sums / counts[:, None]
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    centre_lat, centre_lon = from_unit_vectors(centres)
    return KMeansRegions(centre_lat, centre_lon, iterations, cKDTree(centres))


def add_regions(
    inter: Interactions, regions: GridRegions | KMeansRegions
) -> tuple[Interactions, dict[str, Any]]:
    """Write each item's region (``regions.assign`` of its coordinates) into the items table
    and the events. Fit ``regions`` on training items only to avoid leakage; items without
    coordinates (and no events) get region -1."""
    lat, lon = item_coordinates(inter)
    known = np.isfinite(lat) & np.isfinite(lon)
    item_region = np.full(inter.n_items, -1, dtype=np.int64)
    item_region[known] = regions.assign(lat[known], lon[known])
    items = inter.items.copy()
    items["region"] = item_region
    events = inter.events.copy()
    events["region"] = item_region[events["item"].to_numpy()]
    meta = dict(inter.meta)
    if from_items_table(inter, "lat") and from_items_table(inter, "lon"):
        # regions of static coordinates are static: items without events keep theirs
        meta["static_item_columns"] = sorted(static_item_columns(inter) | {"region"})
    per_region = np.bincount(item_region[known], minlength=regions.n_regions)
    report = {
        "step": "add_regions",
        "method": type(regions).__name__,
        "n_regions": regions.n_regions,
        "items_assigned": int(known.sum()),
        "items_without_coordinates": int((~known).sum()),
        "empty_regions": int((per_region == 0).sum()),
        "items_per_region_max": int(per_region.max()),
    }
    return inter.with_events(events, items=items, meta=meta), _log(report)


# ---------------------------------------------------------------------------- neighbours
def knn_pois(
    items: Interactions | pd.DataFrame, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` nearest other POIs of every POI by great-circle distance.

    ``items`` is an items table with ``lat``/``lon`` or an Interactions. Returns flat arrays
    ``src, dst, dist_km`` of length ``n * k``, grouped by ``src`` and sorted by distance.
    Exact: a k-d tree on 3-D unit vectors (chord distance is monotone in arc length).
    """
    lat, lon = _coords_of(items)
    n = len(lat)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n - 1:
        raise DataError(
            f"k must be an integer in [1, {n - 1}] for {n} POIs, got {k!r}",
            column="k",
            fix="ask for fewer neighbours than POIs",
        )
    chord, idx = cKDTree(to_unit_vectors(lat, lon)).query(to_unit_vectors(lat, lon), k=k + 1)
    own = idx == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True  # self not returned (ties at distance 0): drop the farthest
    dst = idx[~own].reshape(n, k)
    dist = chord_to_km(chord[~own].reshape(n, k))
    return np.repeat(np.arange(n), k), dst.ravel(), dist.ravel()


def radius_pois(
    items: Interactions | pd.DataFrame, radius_km: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs of distinct POIs at most ``radius_km`` apart (great-circle).

    Returns ``src, dst, dist_km`` sorted by ``(src, dst)``; each pair appears in both directions.
    """
    if not np.isfinite(radius_km) or radius_km < 0:
        raise DataError(f"radius_km must be >= 0, got {radius_km!r}", fix="pass e.g. 1.0")
    lat, lon = _coords_of(items)
    xyz = to_unit_vectors(lat, lon)
    pairs = cKDTree(xyz).query_pairs(float(km_to_chord(radius_km)), output_type="ndarray")
    src = np.concatenate([pairs[:, 0], pairs[:, 1]]).astype(np.int64)
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]]).astype(np.int64)
    order = np.lexsort((dst, src))
    src, dst = src[order], dst[order]
    return src, dst, chord_to_km(np.linalg.norm(xyz[src] - xyz[dst], axis=1))
