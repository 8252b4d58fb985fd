"""A synthetic city of check-ins with planted spatio-temporal structure (dataset ``"synthetic"``).

Generative process (every random draw comes from ``numpy.random.default_rng(seed)``):

**World.**
1. ``n_regions`` region centres are spread over a ``2 * city_km`` square around ``centre``
   (farthest-point sampling among uniform candidates, so regions are well apart). Region ``r``
   has a popularity ``rho_r ~ Dirichlet(2)`` and a category mix ``m_r ~ Dirichlet(0.5)``.
2. POI ``p`` lies in region ``g_p ~ Cat(rho)`` (every region gets at least one POI) at the
   region centre plus Gaussian noise of ``region_km`` km per axis; its category is
   ``c_p ~ Cat(m_{g_p})`` (every category gets at least one POI); its popularity is
   ``pi_p ~ LogNormal(0, 1)``.
3. Each category has an affinity ``A[c, x] ~ LogNormal(0, 0.75)`` to each of 8 time contexts
   ``x = 4 * weekend + daypart`` (dayparts: night 0-6 h, morning 6-11 h, midday 11-15 h,
   evening 15-24 h).
4. Each POI has ``n_successors`` (at most 32) successors drawn among its 32 nearest POIs with
   weights ``pi_q * exp(-d(p, q) / transition_km)``, and transition probabilities
   ``~ Dirichlet(0.7)``.

**Users.** User ``u`` has a home region ``~ Cat(rho)`` and a work region ``~ Cat(Dirichlet(1))``;
an activity weight ``~ LogNormal(0, 0.75)`` (share of the events); a weekend ratio
``~ LogNormal(log 1.3, 0.3)`` (activity of a weekend day relative to a weekday); daily-rhythm
weights over the peaks of :data:`WEEKDAY_PEAKS` / :data:`WEEKEND_PEAKS` plus a uniform
component (``Dirichlet``, so little happens at night); two category tastes
``theta0, theta1 ~ Dirichlet(taste_alpha)``, and ``n_favourites`` favourite POIs near home and as
many near work (drawn like exploration below, with taste ``theta0`` and the affinity averaged
over contexts).

**Events.** The user's events (``>= min(10, n_events / n_users)`` each, the rest split by
activity) are cut into sessions (a new session starts with probability
``1 / session_length``). A session starts on a weekend day with probability proportional to the
weekend ratio, at an hour drawn from the user's weekday or weekend rhythm; later events of the
session follow after ``15 min + Exp(45 min)``. Each event's *anchor* is the work region on weekdays
9-17 h and the home region otherwise (each with probability ``p_anchor``, else the other one).
Its POI is chosen by the first rule that fires:

* *transition* (probability ``p_transition``, not for a session's first event): a successor of
  the previous POI of the session, drawn with the planted transition probabilities;
* *revisit* (probability ``p_revisit``): one of the user's favourites at the anchor, with weights
  proportional to ``1 / rank``;
* *explore*: category ``c`` with probability proportional to
  ``((1 - f) theta0_c + f theta1_c) A[c, x]``, where ``f`` in [0, 1] is the event's position in
  the time span (taste **drift**), then a POI of category ``c`` with probability proportional to
  ``pi_p * exp(-d(anchor centre, p) / distance_km)``.

Timestamps are UTC seconds from ``start`` (midnight UTC) with ``tz_offset = 0``, so local time is
UTC; a session that starts late on the last day may run a few hours past the span. Sessions of
one user may overlap in time (rarely). Event coordinates are the POI's plus optional Gaussian
``jitter_m`` metres.

**Tables.** ``events``: user, item, timestamp, lat, lon, category, tz_offset. ``items``: raw_id,
lat, lon, category, region (the true region), popularity. ``users``: raw_id, home_region,
work_region, activity, weekend_ratio, top_category_start / top_category_end (argmax of
``theta0`` / ``theta1``). ``meta["planted"]`` holds every planted parameter as arrays (region
centres, mixes, affinities, tastes, rhythms, favourites, transitions, probabilities), and
``meta["params"]`` the arguments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from tgraph.data.geo import KM_PER_DEGREE, chord_to_km, haversine, to_unit_vectors
from tgraph.data.interactions import Interactions
from tgraph.errors import DataError

#: (mean hour, std hours) of the weekday activity peaks: morning, lunch, evening
WEEKDAY_PEAKS = ((8.5, 1.0), (12.5, 1.0), (19.0, 1.5))
#: (mean hour, std hours) of the weekend activity peaks: late morning, afternoon, evening
WEEKEND_PEAKS = ((11.0, 1.5), (15.0, 2.0), (20.5, 1.5))
#: Dirichlet concentrations of the users' rhythm weights: the three peaks, then uniform
RHYTHM_ALPHA = np.array([3.0, 3.0, 4.0, 0.5])
#: daypart boundaries (hours) of the time contexts: night, morning, midday, evening
DAYPART_START = (0, 6, 11, 15)
WORK_HOURS = (9, 17)
N_CONTEXTS = 8
_CHUNK = 1 << 18
_NEIGHBOURS = 32


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise DataError(
            f"{name} must be an integer >= {low}, got {value!r}",
            column=name,
            fix=f"pass {name} >= {low}",
        )
    return int(value)


def _check_prob(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise DataError(f"{name} must be in [0, 1], got {value!r}", column=name)
    return float(value)


def _categorical(cum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of unnormalised cumulative weights ``cum`` (n, k)."""
    u = rng.random(len(cum)) * cum[:, -1]
    return np.minimum((cum < u[:, None]).sum(axis=1), cum.shape[1] - 1)


def _offset_degrees(lat0, lon0, north_km, east_km) -> tuple[np.ndarray, np.ndarray]:
    lat = lat0 + north_km / KM_PER_DEGREE
    lon = lon0 + east_km / (KM_PER_DEGREE * np.cos(np.radians(lat0)))
    return lat, lon


class _PoiSampler:
    """Draws a POI of a given category with weights ``pi_p exp(-d(region centre, p) / scale)``.

    One flat cumulative sum over (region, POIs sorted by category) turns each draw into a
    ``searchsorted`` inside the block of its (region, category).
    """

    def __init__(self, region_lat, region_lon, lat, lon, category, popularity, scale_km, n_cat):
        self.order = np.argsort(category, kind="stable")
        self.n_pois = len(category)
        bounds = np.searchsorted(category[self.order], np.arange(n_cat + 1))
        self.start, self.end = bounds[:-1], bounds[1:]
        dist = haversine(region_lat[:, None], region_lon[:, None], lat[self.order], lon[self.order])
        weight = popularity[self.order] * np.exp(-dist / scale_km)
        self.cum = np.cumsum(weight.ravel())

    def __call__(self, region, category, rng) -> np.ndarray:
        base = region * self.n_pois
        lo_idx, hi_idx = base + self.start[category], base + self.end[category] - 1
        lo = np.where(lo_idx > 0, self.cum[np.maximum(lo_idx - 1, 0)], 0.0)
        hi = self.cum[hi_idx]
        flat = np.searchsorted(self.cum, lo + rng.random(len(region)) * (hi - lo), side="right")
        return self.order[np.clip(flat, lo_idx, hi_idx) - base]


def _spread_centres(n, city_km, rng) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points (km offsets) by farthest-point sampling among uniform candidates."""
    cand = rng.uniform(-city_km, city_km, size=(max(20 * n, 100), 2))
    chosen = [0]
    closest = ((cand - cand[0]) ** 2).sum(1)
    for _ in range(n - 1):
        j = int(np.argmax(closest))
        chosen.append(j)
        closest = np.minimum(closest, ((cand - cand[j]) ** 2).sum(1))
    return cand[chosen, 0], cand[chosen, 1]


def _ensure_all(labels: np.ndarray, n: int, rng) -> np.ndarray:
    """Relabel random members of the largest class until every label ``0..n-1`` occurs."""
    labels = labels.copy()
    for missing in np.flatnonzero(np.bincount(labels, minlength=n) == 0):
        largest = np.argmax(np.bincount(labels, minlength=n))
        labels[rng.choice(np.flatnonzero(labels == largest))] = missing
    return labels


def generate(
    n_users: int = 500,
    n_pois: int = 800,
    n_events: int = 50_000,
    n_regions: int = 12,
    n_categories: int = 20,
    days: int = 120,
    seed: int = 0,
    start: str = "2023-01-02",
    *,
    centre: tuple[float, float] = (40.7, -74.0),
    city_km: float = 18.0,
    region_km: float = 0.8,
    distance_km: float = 2.0,
    transition_km: float = 1.0,
    n_successors: int = 3,
    n_favourites: int = 5,
    session_length: float = 2.5,
    taste_alpha: float = 0.3,
    p_transition: float = 0.35,
    p_revisit: float = 0.3,
    p_anchor: float = 0.85,
    jitter_m: float = 0.0,
    progress: bool = False,
) -> Interactions:
    """Generate the synthetic check-in dataset; see the module docstring for the process."""
    params = {k: v for k, v in locals().items() if k != "progress"}
    n_users = _check_int("n_users", n_users, 1)
    n_regions = _check_int("n_regions", n_regions, 1)
    n_categories = _check_int("n_categories", n_categories, 1)
    n_pois = _check_int("n_pois", n_pois, max(2, n_regions, n_categories))
    n_events = _check_int("n_events", n_events, 1)
    days = _check_int("days", days, 1)
    n_successors = min(_check_int("n_successors", n_successors, 1), _NEIGHBOURS, n_pois - 1)
    n_favourites = _check_int("n_favourites", n_favourites, 1)
    probabilities = {"p_transition": p_transition, "p_revisit": p_revisit, "p_anchor": p_anchor}
    for name, value in probabilities.items():
        _check_prob(name, value)
    if session_length < 1:
        raise DataError(f"session_length must be >= 1, got {session_length!r}")
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    t0 = (t0.tz_localize("UTC") if t0.tzinfo is None else t0.tz_convert("UTC")).normalize()
    t0_s = int(t0.timestamp())

    # ------------------------------------------------------------------ world
    north, east = _spread_centres(n_regions, city_km, rng)
    region_lat, region_lon = _offset_degrees(centre[0], centre[1], north, east)
    region_weight = rng.dirichlet(np.full(n_regions, 2.0))
    work_weight = rng.dirichlet(np.ones(n_regions))
    region_mix = rng.dirichlet(np.full(n_categories, 0.5), size=n_regions)
    poi_region = rng.choice(n_regions, size=n_pois, p=region_weight)
    poi_region = _ensure_all(poi_region, n_regions, rng)
    poi_lat, poi_lon = _offset_degrees(
        region_lat[poi_region],
        region_lon[poi_region],
        rng.normal(0, region_km, n_pois),
        rng.normal(0, region_km, n_pois),
    )
    poi_cat = _categorical(np.cumsum(region_mix[poi_region], axis=1), rng)
    poi_cat = _ensure_all(poi_cat, n_categories, rng)
    popularity = rng.lognormal(0.0, 1.0, n_pois)
    affinity = rng.lognormal(0.0, 0.75, size=(n_categories, N_CONTEXTS))

    xyz = to_unit_vectors(poi_lat, poi_lon)
    n_near = min(_NEIGHBOURS, n_pois - 1)
    chord, near = cKDTree(xyz).query(xyz, k=n_near + 1)
    chord, near = chord[:, 1:], near[:, 1:]
    score = np.log(popularity[near]) - chord_to_km(chord) / transition_km
    score += rng.gumbel(size=score.shape)
    top = np.argsort(-score, axis=1, kind="stable")[:, :n_successors]
    succ = np.take_along_axis(near, top, axis=1)
    succ_prob = -np.sort(-rng.dirichlet(np.full(n_successors, 0.7), size=n_pois), axis=1)
    succ_cum = np.cumsum(succ_prob, axis=1)
    sample_poi = _PoiSampler(
        region_lat, region_lon, poi_lat, poi_lon, poi_cat, popularity, distance_km, n_categories
    )

    # ------------------------------------------------------------------ users
    home = rng.choice(n_regions, size=n_users, p=region_weight)
    work = rng.choice(n_regions, size=n_users, p=work_weight)
    activity = rng.lognormal(0.0, 0.75, n_users)
    weekend_ratio = rng.lognormal(np.log(1.3), 0.3, n_users)
    rhythm = {
        False: rng.dirichlet(RHYTHM_ALPHA, size=n_users),
        True: rng.dirichlet(RHYTHM_ALPHA, size=n_users),
    }
    taste0 = rng.dirichlet(np.full(n_categories, taste_alpha), size=n_users)
    taste1 = rng.dirichlet(np.full(n_categories, taste_alpha), size=n_users)
    mean_affinity = affinity.mean(axis=1)
    favourites = {}
    for key, anchor in (("home", home), ("work", work)):
        flat_anchor = np.repeat(anchor, n_favourites)
        cat = _categorical(np.cumsum(np.repeat(taste0 * mean_affinity, n_favourites, 0), 1), rng)
        favourites[key] = sample_poi(flat_anchor, cat, rng).reshape(n_users, n_favourites)
    fav_cum = np.cumsum(1.0 / np.arange(1, n_favourites + 1))

    # ------------------------------------------------------------------ event skeleton
    floor = min(10, n_events // n_users)
    counts = floor + rng.multinomial(n_events - floor * n_users, activity / activity.sum())
    user = np.repeat(np.arange(n_users), counts)
    first = np.zeros(n_events, dtype=bool)
    first[np.cumsum(counts)[counts > 0] - counts[counts > 0]] = True
    new_session = first | (rng.random(n_events) < 1.0 / session_length)
    session = np.cumsum(new_session) - 1
    session_first = np.flatnonzero(new_session)
    s_user = user[session_first]

    day_index = np.arange(days)
    is_weekend_day = (t0.weekday() + day_index) % 7 >= 5
    weekend_days, week_days = day_index[is_weekend_day], day_index[~is_weekend_day]
    if len(weekend_days) == 0 or len(week_days) == 0:
        p_weekend = np.full(len(s_user), float(len(weekend_days) > 0))
    else:
        ratio = weekend_ratio[s_user] * len(weekend_days)
        p_weekend = ratio / (ratio + len(week_days))
    s_weekend = rng.random(len(s_user)) < p_weekend
    s_day = np.zeros(len(s_user), dtype=np.int64)
    for flag, pool in ((True, weekend_days), (False, week_days)):
        chosen = np.flatnonzero(s_weekend == flag)
        if len(chosen):
            s_day[chosen] = pool[rng.integers(len(pool), size=len(chosen))]
    component = _categorical(
        np.cumsum(np.where(s_weekend[:, None], rhythm[True][s_user], rhythm[False][s_user]), 1),
        rng,
    )
    peaks = np.array([WEEKDAY_PEAKS, WEEKEND_PEAKS])  # (2, 3, 2)
    peak = peaks[s_weekend.astype(int), np.minimum(component, 2)]
    s_hour = np.where(
        component < 3,
        peak[:, 0] + peak[:, 1] * rng.standard_normal(len(s_user)),
        rng.uniform(0, 24, len(s_user)),
    )
    s_start = s_day * 86_400 + np.mod(s_hour, 24.0) * 3600.0
    gap = 900.0 + rng.exponential(2700.0, n_events)
    gap[new_session] = 0.0
    elapsed = np.cumsum(gap)
    elapsed -= elapsed[session_first][session]
    timestamp = t0_s + np.floor(s_start[session] + elapsed).astype(np.int64)

    # ------------------------------------------------------------------ context and anchor
    second = timestamp - t0_s
    hour = (second % 86_400) // 3600
    weekend = (t0.weekday() + second // 86_400) % 7 >= 5
    daypart = np.searchsorted(DAYPART_START, hour, side="right") - 1
    context = 4 * weekend + daypart
    work_time = ~weekend & (hour >= WORK_HOURS[0]) & (hour < WORK_HOURS[1])
    at_work = np.where(work_time, rng.random(n_events) < p_anchor, rng.random(n_events) > p_anchor)
    anchor = np.where(at_work, work[user], home[user])
    drift = np.clip(second / (days * 86_400), 0.0, 1.0)

    # ------------------------------------------------------------------ POI choice
    transition = ~new_session & (rng.random(n_events) < p_transition)
    revisit = ~transition & (rng.random(n_events) < p_revisit)
    explore = ~transition & ~revisit
    poi = np.full(n_events, -1, dtype=np.int64)

    rank = np.searchsorted(fav_cum, rng.random(n_events) * fav_cum[-1], side="right")
    fav = np.where(at_work, favourites["work"][user, rank], favourites["home"][user, rank])
    poi[revisit] = fav[revisit]

    where = np.flatnonzero(explore)
    for lo in tqdm(range(0, len(where), _CHUNK), disable=not progress, desc="synthetic"):
        idx = where[lo : lo + _CHUNK]
        u, f = user[idx], drift[idx, None]
        weight = ((1.0 - f) * taste0[u] + f * taste1[u]) * affinity[:, context[idx]].T
        cat = _categorical(np.cumsum(weight, axis=1), rng)
        poi[idx] = sample_poi(anchor[idx], cat, rng)

    position = np.arange(n_events)
    run_start = np.maximum.accumulate(np.where(~transition, position, 0))
    depth = position - run_start
    by_depth = np.argsort(depth, kind="stable")
    bounds = np.searchsorted(depth[by_depth], np.arange(depth.max() + 2))
    for d in range(1, depth.max() + 1):
        idx = by_depth[bounds[d] : bounds[d + 1]]
        prev = poi[idx - 1]
        poi[idx] = succ[prev, _categorical(succ_cum[prev], rng)]

    # ------------------------------------------------------------------ tables
    lat, lon = poi_lat[poi], poi_lon[poi]
    if jitter_m > 0:
        lat, lon = _offset_degrees(
            lat,
            lon,
            rng.normal(0, jitter_m / 1000, n_events),
            rng.normal(0, jitter_m / 1000, n_events),
        )
    order = np.lexsort((position, timestamp))
    events = pd.DataFrame(
        {
            "user": user[order],
            "item": poi[order],
            "timestamp": timestamp[order],
            "lat": lat[order],
            "lon": lon[order],
            "category": poi_cat[poi][order],
            "tz_offset": np.zeros(n_events, dtype=np.int64),
        }
    )
    items = pd.DataFrame(
        {
            "raw_id": np.arange(n_pois),
            "lat": poi_lat,
            "lon": poi_lon,
            "category": poi_cat,
            "region": poi_region,
            "popularity": popularity,
        }
    )
    users = pd.DataFrame(
        {
            "raw_id": np.arange(n_users),
            "home_region": home,
            "work_region": work,
            "activity": activity,
            "weekend_ratio": weekend_ratio,
            "top_category_start": taste0.argmax(axis=1),
            "top_category_end": taste1.argmax(axis=1),
        }
    )
    planted = {
        "region_lat": region_lat,
        "region_lon": region_lon,
        "region_weight": region_weight,
        "work_weight": work_weight,
        "region_category_mix": region_mix,
        "category_affinity": affinity,
        "taste_start": taste0,
        "taste_end": taste1,
        "rhythm_weekday": rhythm[False],
        "rhythm_weekend": rhythm[True],
        "favourites_home": favourites["home"],
        "favourites_work": favourites["work"],
        "successors": succ,
        "successor_prob": succ_prob,
        "events_per_user": counts,
        "choice_counts": {
            "transition": int(transition.sum()),
            "revisit": int(revisit.sum()),
            "explore": int(explore.sum()),
        },
    }
    return Interactions(
        events=events,
        users=users,
        items=items,
        name="synthetic",
        source=f"synthetic(seed={seed})",
        meta={
            "generator": __name__,
            "params": params,
            "planted": planted,
            # the generator's POI table (events carry jittered positions)
            "static_item_columns": ["lat", "lon", "category", "region", "popularity"],
        },
    )
