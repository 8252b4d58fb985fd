"""Spatial patterns of check-in data: density, regions, mobility radius, home/work, jump lengths.

Every function takes an :class:`~tgraph.data.interactions.Interactions` and returns a tidy
:class:`pandas.DataFrame`; each has a companion ``plot_<name>(data, path)`` that writes a PNG.
Distances are great-circle (haversine) kilometres. The radius of gyration of user ``u`` with
check-ins at :math:`r_1..r_n` and centre of mass :math:`r_c` (mean of the unit vectors,
projected back onto the sphere) is

.. math::
    r_g(u) = \\sqrt{\\tfrac1n \\textstyle\\sum_i d(r_i, r_c)^2}.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.analysis.plots import new_figure, save_png
from tgraph.analysis.temporal import consecutive_events, log_histogram
from tgraph.data.geo import KM_PER_DEGREE, from_unit_vectors, haversine, to_unit_vectors
from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import fit_kmeans, item_coordinates, time_features
from tgraph.errors import DataError

logger = logging.getLogger(__name__)


def event_coordinates(inter: Interactions) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of every event: the event's own coordinates when present, else its item's.

    Raises :class:`DataError` naming the first event without coordinates.
    """
    if inter.has("lat") and inter.has("lon"):
        lat, lon = inter.events["lat"].to_numpy(float), inter.events["lon"].to_numpy(float)
    else:
        item_lat, item_lon = item_coordinates(inter)
        items = inter.events["item"].to_numpy()
        lat, lon = item_lat[items], item_lon[items]
    bad = ~(np.isfinite(lat) & np.isfinite(lon))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"event of item {inter.events['item'].iloc[row]} has no coordinates",
            source=inter.source,
            column="lat",
            row=row,
            fix="drop events of items without coordinates before spatial analysis",
        )
    return lat, lon


def event_locations(inter: Interactions, location: str = "region") -> np.ndarray:
    """Location code of every event: the event column ``location`` or, failing that, the
    items-table column of that name (e.g. the true ``region`` of the synthetic data)."""
    if inter.has(location):
        codes = inter.events[location].to_numpy()
    elif location in inter.items.columns:
        codes = inter.items[location].to_numpy()[inter.events["item"].to_numpy()]
    else:
        raise DataError(
            f"no '{location}' column in the events or items of {inter.name}",
            source=inter.source,
            column=location,
            fix="assign locations first, e.g. tgraph.data.preprocess.add_regions(inter, "
            "fit_grid(*item_coordinates(inter), cell_km=1.0))",
        )
    bad = pd.isna(codes)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            "missing location code",
            source=inter.source,
            column=location,
            row=row,
            fix="drop events of items without a location",
        )
    return codes.astype(np.int64)


# ---------------------------------------------------------------------------- density
def checkin_density(
    inter: Interactions, bins: int = 100, *, quantile: float = 0.005
) -> pd.DataFrame:
    """2-D histogram of the check-ins over latitude x longitude (``bins`` x ``bins`` cells).

    The extent is the ``quantile`` .. ``1 - quantile`` range of each coordinate, so a few far
    outliers do not squash the map; check-ins outside are counted in the log. Returns one row
    per cell: ``lat, lon`` (centre), ``lat_left, lat_right, lon_left, lon_right``, ``count``,
    ``area_km2`` and ``density`` (check-ins per km^2).
    """
    if not 0 <= quantile < 0.5:
        raise DataError(f"quantile must be in [0, 0.5), got {quantile!r}", column="quantile")
    lat, lon = event_coordinates(inter)
    lat_low, lat_high = np.quantile(lat, [quantile, 1 - quantile])
    lon_low, lon_high = np.quantile(lon, [quantile, 1 - quantile])
    lat_edges = np.linspace(lat_low, lat_high, bins + 1)
    lon_edges = np.linspace(lon_low, lon_high, bins + 1)
    counts, _, _ = np.histogram2d(lat, lon, bins=(lat_edges, lon_edges))
    logger.info(
        "checkin_density: %d of %d check-ins outside the mapped extent",
        len(lat) - int(counts.sum()),
        len(lat),
    )
    i, j = np.meshgrid(np.arange(bins), np.arange(bins), indexing="ij")
    i, j = i.ravel(), j.ravel()
    lat_mid = (lat_edges[i] + lat_edges[i + 1]) / 2
    area = (
        (lat_edges[i + 1] - lat_edges[i])
        * KM_PER_DEGREE
        * (lon_edges[j + 1] - lon_edges[j])
        * KM_PER_DEGREE
        * np.cos(np.radians(lat_mid))
    )
    count = counts.ravel().astype(np.int64)
    return pd.DataFrame(
        {
            "lat": lat_mid,
            "lon": (lon_edges[j] + lon_edges[j + 1]) / 2,
            "lat_left": lat_edges[i],
            "lat_right": lat_edges[i + 1],
            "lon_left": lon_edges[j],
            "lon_right": lon_edges[j + 1],
            "count": count,
            "area_km2": area,
            "density": count / area,
        }
    )


def plot_checkin_density(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Map of check-in density (log colour scale, check-ins per km^2) with a colour bar."""
    from matplotlib.colors import LogNorm

    lat_edges = np.unique(np.concatenate([data["lat_left"], data["lat_right"]]))
    lon_edges = np.unique(np.concatenate([data["lon_left"], data["lon_right"]]))
    grid = data.pivot_table(index="lat", columns="lon", values="density").to_numpy()
    fig, ax = new_figure(width=6.0, height=5.5)
    positive = grid[grid > 0]
    norm = LogNorm(positive.min(), positive.max()) if len(positive) else None
    mesh = ax.pcolormesh(lon_edges, lat_edges, np.ma.masked_less_equal(grid, 0), norm=norm)
    ax.set_aspect(1 / np.cos(np.radians(np.mean(lat_edges))))
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.grid(False)
    ax.set_title(title or "Check-in density")
    fig.colorbar(mesh, ax=ax, label="check-ins per km² (log scale)", shrink=0.8)
    return save_png(fig, path)


# ---------------------------------------------------------------------------- regions
def region_clusters(inter: Interactions, k: int = 20, *, seed: int = 0) -> pd.DataFrame:
    """Seeded k-means regions of the items (:func:`~tgraph.data.preprocess.fit_kmeans` on the
    coordinates of items with events) and their sizes: ``region, lat, lon`` (centre),
    ``n_items``, ``n_events``, ``n_users`` (distinct), ``share_events`` and ``radius_km``
    (root mean square distance of the region's items to its centre), by decreasing events."""
    item_lat, item_lon = item_coordinates(inter)
    used = np.unique(inter.events["item"].to_numpy())
    used = used[np.isfinite(item_lat[used]) & np.isfinite(item_lon[used])]
    regions = fit_kmeans(item_lat[used], item_lon[used], k, seed=seed)
    item_region = np.full(inter.n_items, -1, dtype=np.int64)
    item_region[used] = regions.assign(item_lat[used], item_lon[used])
    event_region = item_region[inter.events["item"].to_numpy()]
    known = event_region >= 0
    logger.info(
        "region_clusters: %d of %d events on items without coordinates",
        int((~known).sum()),
        len(known),
    )
    users = inter.events["user"].to_numpy()[known]
    pairs = np.unique(event_region[known] * inter.n_users + users)
    dist = haversine(
        item_lat[used],
        item_lon[used],
        regions.lat[item_region[used]],
        regions.lon[item_region[used]],
    )
    sq = np.bincount(item_region[used], dist**2, minlength=k)
    n_items = np.bincount(item_region[used], minlength=k)
    n_events = np.bincount(event_region[known], minlength=k)
    table = pd.DataFrame(
        {
            "region": np.arange(k),
            "lat": regions.lat,
            "lon": regions.lon,
            "n_items": n_items,
            "n_events": n_events,
            "n_users": np.bincount(pairs // inter.n_users, minlength=k),
            "share_events": n_events / max(n_events.sum(), 1),
            "radius_km": np.sqrt(sq / np.maximum(n_items, 1)),
        }
    )
    return table.sort_values("n_events", ascending=False, kind="stable").reset_index(drop=True)


def plot_region_clusters(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Region centres on a map: marker area ~ events, colour = distinct users (colour bar),
    each labelled with its region id."""
    fig, ax = new_figure(width=6.5, height=5.5)
    size = 2000 * data["n_events"] / data["n_events"].max()
    points = ax.scatter(
        data["lon"],
        data["lat"],
        s=size,
        c=data["n_users"],
        alpha=0.7,
        edgecolors="k",
        linewidths=0.5,
    )
    for _, row in data.iterrows():
        ax.annotate(
            str(int(row["region"])), (row["lon"], row["lat"]), ha="center", va="center", fontsize=7
        )
    ax.set_aspect(1 / np.cos(np.radians(data["lat"].mean())))
    ax.margins(0.12)
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title(title or f"{len(data)} k-means regions (marker area ∝ check-ins)")
    fig.colorbar(points, ax=ax, label="distinct users", shrink=0.8)
    return save_png(fig, path)


# ---------------------------------------------------------------------------- gyration
def radius_of_gyration(inter: Interactions, *, min_events: int = 2) -> pd.DataFrame:
    """Radius of gyration (km) of every user with at least ``min_events`` check-ins:
    ``user, n_events, centre_lat, centre_lon, rg_km``."""
    lat, lon = event_coordinates(inter)
    users = inter.events["user"].to_numpy()
    n = np.bincount(users, minlength=inter.n_users)
    xyz = to_unit_vectors(lat, lon)
    sums = np.stack([np.bincount(users, xyz[:, d], minlength=inter.n_users) for d in range(3)], 1)
    centre_lat, centre_lon = from_unit_vectors(sums)
    dist = haversine(lat, lon, centre_lat[users], centre_lon[users])
    rg = np.sqrt(np.bincount(users, dist**2, minlength=inter.n_users) / np.maximum(n, 1))
    keep = np.flatnonzero(n >= min_events)
    logger.info(
        "radius_of_gyration: %d of %d active users have >= %d events",
        len(keep),
        int((n > 0).sum()),
        min_events,
    )
    return pd.DataFrame(
        {
            "user": keep,
            "n_events": n[keep],
            "centre_lat": centre_lat[keep],
            "centre_lon": centre_lon[keep],
            "rg_km": rg[keep],
        }
    )


def plot_radius_of_gyration(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Distribution of the users' radius of gyration (log bins from 10 m, km) with its median;
    users below 10 m (one place only) are counted in the legend."""
    rg = data["rg_km"].to_numpy()
    low = 0.01
    hist = log_histogram(rg, 40, low=low)
    fig, ax = new_figure(width=6.5, height=4.0)
    body = hist.iloc[1:]
    ax.bar(
        body["left"],
        body["share"] * 100,
        width=body["right"] - body["left"],
        align="edge",
        edgecolor="white",
        label=f"{len(rg):,} users ({int(hist['count'].iloc[0]):,} below 10 m not shown)",
    )
    median = float(np.median(rg))
    ax.axvline(median, color="C3", ls="--", label=f"median {median:.1f} km")
    ax.set_xscale("log")
    ax.set_xlabel("radius of gyration (km, log scale)")
    ax.set_ylabel("share of users (%)")
    ax.set_title(title or "Radius of gyration per user")
    ax.legend()
    return save_png(fig, path)


# ---------------------------------------------------------------------------- home / work
def home_work(
    inter: Interactions,
    location: str = "region",
    *,
    night_hours: tuple[int, int] = (19, 8),
    work_hours: tuple[int, int] = (9, 17),
) -> pd.DataFrame:
    """Home and work location of every user (local time).

    *Home* is the user's most frequent location among check-ins at night (local hour
    ``>= night_hours[0]`` or ``< night_hours[1]``) or on weekends; *work* the most frequent on
    weekdays within ``work_hours`` (``[start, end)``). Ties go to the smaller code. Locations
    are codes from :func:`event_locations`. Returns ``user, n_events, home, home_support``
    (check-ins at home in the home window), ``home_events`` (check-ins in the home window),
    ``home_share``, the same for ``work``, ``home_lat, home_lon, work_lat, work_lon`` (mean
    position of those check-ins) and ``commute_km``. Users without check-ins in a window get
    location -1 and NaN positions; check-ins with a negative location code are ignored.
    """
    codes = event_locations(inter, location)
    lat, lon = event_coordinates(inter)
    feats = time_features(inter)
    hour, weekend = feats["hour"].to_numpy(), feats["weekend"].to_numpy().astype(bool)
    home_time = weekend | (hour >= night_hours[0]) | (hour < night_hours[1])
    work_time = ~weekend & (hour >= work_hours[0]) & (hour < work_hours[1])
    users = inter.events["user"].to_numpy()
    table = pd.DataFrame({"user": np.unique(users)})
    table["n_events"] = np.bincount(users)[table["user"]]
    located = codes >= 0  # -1: item without a location (add_regions)
    for name, mask in (("home", home_time & located), ("work", work_time & located)):
        frame = pd.DataFrame(
            {"user": users[mask], "loc": codes[mask], "lat": lat[mask], "lon": lon[mask]}
        )
        counts = frame.groupby(["user", "loc"]).agg(
            support=("lat", "size"), lat=("lat", "mean"), lon=("lon", "mean")
        )
        counts = counts.reset_index().sort_values(
            ["user", "support", "loc"], ascending=[True, False, True], kind="stable"
        )
        best = counts.drop_duplicates("user").set_index("user")
        total = frame.groupby("user").size()
        best = best.reindex(table["user"])
        table[name] = best["loc"].fillna(-1).astype(np.int64).to_numpy()
        table[f"{name}_support"] = best["support"].fillna(0).astype(np.int64).to_numpy()
        table[f"{name}_events"] = total.reindex(table["user"]).fillna(0).astype(np.int64).to_numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            table[f"{name}_share"] = table[f"{name}_support"] / table[f"{name}_events"]
        table[f"{name}_lat"] = best["lat"].to_numpy()
        table[f"{name}_lon"] = best["lon"].to_numpy()
    table["commute_km"] = haversine(
        table["home_lat"], table["home_lon"], table["work_lat"], table["work_lon"]
    )
    return table


def plot_home_work(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Left: detected homes and workplaces on a map; right: home-work distance distribution."""
    fig, (ax, ax2) = new_figure(1, 2, width=5.0, height=4.5)
    ax.scatter(data["home_lon"], data["home_lat"], s=8, alpha=0.5, label="home")
    ax.scatter(data["work_lon"], data["work_lat"], s=8, alpha=0.5, marker="^", label="work")
    ax.set_aspect(1 / np.cos(np.radians(np.nanmean(data["home_lat"]))))
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")
    ax.set_title("Detected home and work locations")
    ax.legend(markerscale=2)
    commute = data["commute_km"].dropna().to_numpy()
    same = float(np.mean(data["home"] == data["work"])) * 100
    ax2.hist(
        commute,
        bins=40,
        color="C2",
        edgecolor="white",
        label=f"{len(commute):,} users; home = work for {same:.0f}%",
    )
    ax2.set_xlabel("home-work distance (km)")
    ax2.set_ylabel("users")
    ax2.set_title("Home-work distance")
    ax2.legend()
    if title:
        fig.suptitle(title)
    return save_png(fig, path)


# ---------------------------------------------------------------------------- jumps
def next_checkin_distance(inter: Interactions, max_gap_hours: float = 24.0) -> pd.DataFrame:
    """Distance (km) from each check-in to the same user's next one, for consecutive
    check-ins at most ``max_gap_hours`` apart: ``user, timestamp, gap_s, distance_km``."""
    pairs = consecutive_events(inter, max_gap_s=max_gap_hours * 3600.0)
    lat, lon = event_coordinates(inter)
    src, dst = pairs["src_row"].to_numpy(), pairs["dst_row"].to_numpy()
    return pd.DataFrame(
        {
            "user": pairs["user"].to_numpy(),
            "timestamp": pairs["timestamp"].to_numpy(),
            "gap_s": pairs["gap_s"].to_numpy(),
            "distance_km": haversine(lat[src], lon[src], lat[dst], lon[dst]),
        }
    )


def plot_next_checkin_distance(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Log-log density of the distance to the next check-in (km); same-place moves (< 10 m)
    are counted in the legend."""
    hist = log_histogram(data["distance_km"], 50, low=0.01)
    fig, ax = new_figure(width=6.5, height=4.0)
    body = hist.iloc[1:]
    ax.loglog(
        body["centre"],
        body["density"],
        "o-",
        ms=3,
        label=f"{len(data):,} moves ({int(hist['count'].iloc[0]):,} under 10 m not shown)",
    )
    median = float(np.median(data["distance_km"]))
    ax.axvline(median, color="C3", ls="--", label=f"median {median:.2f} km")
    ax.set_xlabel("distance to the next check-in (km)")
    ax.set_ylabel("probability density (1 / km)")
    ax.set_title(title or "Distance between consecutive check-ins")
    ax.legend()
    return save_png(fig, path)
