"""Temporal patterns of interaction data, in local time: weekly activity, periodicity, gaps, trend.

Every function takes an :class:`~tgraph.data.interactions.Interactions` and returns a tidy
:class:`pandas.DataFrame`; each has a companion ``plot_<name>(data, path)`` that writes a PNG.

Periodicity works on the hourly activity series :math:`x_t` (events in local hour ``t``):

.. math::
    \\rho(k) = \\frac{\\sum_t (x_t - \\bar x)(x_{t+k} - \\bar x)}{\\sum_t (x_t - \\bar x)^2},
    \\qquad P(f) = \\Big|\\sum_t w_t (x_t - \\bar x) e^{-2\\pi i f t}\\Big|^2

(biased autocorrelation; ``w`` a Hann window). Peaks of :math:`P` give the dominant periods
``1 / f`` in hours.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import fft as sp_fft
from scipy import signal
from tqdm.auto import tqdm

from tgraph.analysis.plots import mark_x, new_figure, save_png
from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import time_features
from tgraph.data.transitions import Transitions
from tgraph.errors import DataError

logger = logging.getLogger(__name__)

WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EPOCH_MONDAY_DAY = 4  # 1970-01-05, the first Monday after the epoch


def _local_hours(inter: Interactions) -> np.ndarray:
    """Local hour index (hours since the epoch, local clock) of every event."""
    feats = time_features(inter)
    return feats["day"].to_numpy() * 24 + feats["hour"].to_numpy()


def _positive(name: str, value: float) -> float:
    if not np.isfinite(value) or value <= 0:
        raise DataError(f"{name} must be positive, got {value!r}", column=name)
    return float(value)


# ---------------------------------------------------------------------------- weekly activity
def hour_weekday_activity(inter: Interactions) -> pd.DataFrame:
    """Events per (local weekday, hour): 168 rows ``weekday, day_name, weekend, hour, count,
    share`` (``share`` = count / all events) and ``rate`` = mean events per calendar occurrence
    of that weekday-hour in the data's span (fair when the span has unequal weekday counts)."""
    feats = time_features(inter)
    key = feats["weekday"].to_numpy() * 24 + feats["hour"].to_numpy()
    counts = np.bincount(key, minlength=168)
    days = np.arange(feats["day"].min(), feats["day"].max() + 1)
    occurrences = np.bincount((days + 3) % 7, minlength=7)  # 1970-01-01 was a Thursday
    weekday, hour = np.divmod(np.arange(168), 24)
    return pd.DataFrame(
        {
            "weekday": weekday,
            "day_name": np.array(WEEKDAY_NAMES)[weekday],
            "weekend": (weekday >= 5).astype(np.int64),
            "hour": hour,
            "count": counts,
            "share": counts / counts.sum(),
            "rate": counts / np.maximum(occurrences[weekday], 1),
        }
    )


def hour_profile(activity: pd.DataFrame) -> pd.DataFrame:
    """Share of weekday / weekend events per hour from :func:`hour_weekday_activity`:
    columns ``hour, weekday_share, weekend_share`` (each column sums to 1)."""
    table = activity.pivot_table(index="hour", columns="weekend", values="count", aggfunc="sum")
    table = table.reindex(columns=[0, 1], fill_value=0)
    share = table / table.sum(axis=0).replace(0, 1)
    return pd.DataFrame(
        {
            "hour": share.index.to_numpy(),
            "weekday_share": share[0].to_numpy(),
            "weekend_share": share[1].to_numpy(),
        }
    )


def plot_hour_weekday_activity(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Heatmap of events per weekday x hour with a colour bar, and the hour profiles below."""
    fig, (ax, ax2) = new_figure(2, 1, width=8.0, height=3.2, height_ratios=[1.2, 1])
    grid = data.pivot(index="weekday", columns="hour", values="count").to_numpy()
    image = ax.imshow(grid, aspect="auto", origin="upper", extent=(-0.5, 23.5, 6.5, -0.5))
    ax.set_yticks(range(7), WEEKDAY_NAMES)
    ax.set_xticks(range(0, 24, 3))
    ax.set_xlabel("local hour of day (h)")
    ax.set_ylabel("weekday")
    ax.grid(False)
    ax.set_title(title or "Activity by weekday and hour (local time)")
    fig.colorbar(image, ax=ax, label="events")
    profile = hour_profile(data)
    ax2.plot(profile["hour"], 100 * profile["weekday_share"], "o-", label="Mon-Fri")
    ax2.plot(profile["hour"], 100 * profile["weekend_share"], "s-", label="Sat-Sun")
    ax2.set_xticks(range(0, 24, 3))
    ax2.set_xlim(-0.5, 23.5)
    ax2.set_xlabel("local hour of day (h)")
    ax2.set_ylabel("share of events (%)")
    ax2.legend(title="day type")
    return save_png(fig, path)


# ---------------------------------------------------------------------------- periodicity
def hourly_series(inter: Interactions) -> pd.DataFrame:
    """Events per local hour over the whole span (empty hours included): ``hour_index``
    (hours since the epoch, local clock), ``time`` (local wall-clock) and ``count``."""
    hours = _local_hours(inter)
    start = hours.min()
    counts = np.bincount(hours - start)
    index = start + np.arange(len(counts))
    return pd.DataFrame(
        {"hour_index": index, "time": pd.to_datetime(index * 3600, unit="s"), "count": counts}
    )


def _acf_rows(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Biased autocorrelation of each row of ``x`` for lags ``0..max_lag`` (via FFT)."""
    x = x - x.mean(axis=1, keepdims=True)
    size = sp_fft.next_fast_len(x.shape[1] + max_lag, real=True)  # no circular wrap-around
    spec = sp_fft.rfft(x, size, axis=1)
    acov = sp_fft.irfft(spec.real**2 + spec.imag**2, size, axis=1)[:, : max_lag + 1]
    var = acov[:, :1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, acov / var, np.nan)


def autocorrelation(
    inter: Interactions,
    max_lag_hours: int = 336,
    *,
    min_user_events: int = 20,
    chunk: int = 64,
    progress: bool = False,
) -> pd.DataFrame:
    """Autocorrelation of the hourly activity series, globally and per user.

    Returns one row per lag ``0..max_lag_hours`` with ``acf`` (global series), ``user_mean``,
    ``user_median``, ``user_q25``, ``user_q75`` (over the per-user series of users with at
    least ``min_user_events`` events; each over the whole span) and ``n_users``.
    """
    hours = _local_hours(inter)
    start, n = hours.min(), hours.max() - hours.min() + 1
    if not 1 <= max_lag_hours < n:
        raise DataError(
            f"max_lag_hours must be in [1, {n - 1}] for a span of {n} hours, got {max_lag_hours}",
            column="max_lag_hours",
            fix="ask for a lag shorter than the data's span",
        )
    glob = _acf_rows(np.bincount(hours - start, minlength=n)[None, :].astype(float), max_lag_hours)
    users = inter.events["user"].to_numpy()
    per_user = np.bincount(users)
    kept = np.flatnonzero(per_user >= min_user_events)
    logger.info(
        "autocorrelation: %d of %d users have >= %d events",
        len(kept),
        int((per_user > 0).sum()),
        min_user_events,
    )
    rows = []
    mask = np.isin(users, kept)
    u_pos = np.searchsorted(kept, users[mask])
    h_rel = hours[mask] - start
    order = np.argsort(u_pos, kind="stable")
    u_pos, h_rel = u_pos[order], h_rel[order]
    bounds = np.searchsorted(u_pos, np.arange(0, len(kept) + chunk, chunk))
    for b in tqdm(range(len(bounds) - 1), desc="user acf", disable=not progress):
        lo, hi = bounds[b], bounds[b + 1]
        if lo == hi:
            continue
        first = u_pos[lo]
        n_rows = u_pos[hi - 1] - first + 1
        dense = np.bincount((u_pos[lo:hi] - first) * n + h_rel[lo:hi], minlength=n_rows * n)
        rows.append(_acf_rows(dense.reshape(n_rows, n).astype(float), max_lag_hours))
    if not rows:  # no user has enough events: per-user statistics are undefined
        rows = [np.full((1, max_lag_hours + 1), np.nan)]
    user = np.concatenate(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN lags of constant series
        stats = {
            "user_mean": np.nanmean(user, axis=0),
            "user_median": np.nanmedian(user, axis=0),
            "user_q25": np.nanquantile(user, 0.25, axis=0),
            "user_q75": np.nanquantile(user, 0.75, axis=0),
        }
    return pd.DataFrame(
        {"lag_hours": np.arange(max_lag_hours + 1), "acf": glob[0], **stats, "n_users": len(kept)}
    )


def plot_autocorrelation(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """ACF against lag (h) with day/week guide lines; per-user median and IQR as a band."""
    fig, ax = new_figure(width=8.0, height=3.5)
    lag = data["lag_hours"]
    ax.plot(lag, data["acf"], color="C0", label="global hourly series")
    if data["user_median"].notna().any():
        n_users = int(data["n_users"].iloc[0])
        ax.plot(lag, data["user_median"], color="C1", label=f"per-user median ({n_users} users)")
        ax.fill_between(
            lag, data["user_q25"], data["user_q75"], color="C1", alpha=0.25, label="per-user IQR"
        )
    for k in range(24, int(lag.max()) + 1, 24):
        ax.axvline(k, color="grey", lw=1.2 if k % 168 == 0 else 0.4, alpha=0.6, zorder=0)
    ax.set_xlabel("lag (hours; grey lines every 24 h, bold every 168 h)")
    ax.set_ylabel("autocorrelation")
    ax.set_xlim(0, lag.max())
    ax.set_title(title or "Autocorrelation of hourly activity")
    ax.legend(loc="upper right")
    return save_png(fig, path)


def power_spectrum(inter: Interactions) -> pd.DataFrame:
    """Power spectrum of the mean-removed, Hann-windowed hourly activity series of ``n`` hours.

    Returns one row per Fourier frequency ``k / n`` (``k = 1 .. n / 2``): ``frequency``
    (cycles per hour), ``period_hours`` and ``power`` (normalised to sum 1).
    """
    x = hourly_series(inter)["count"].to_numpy(dtype=float)
    if len(x) < 48:
        raise DataError(
            f"the data span only {len(x)} hours; a spectrum needs at least 48",
            column="timestamp",
            fix="use data spanning several days",
        )
    x = (x - x.mean()) * np.hanning(len(x))
    power = np.abs(np.fft.rfft(x)) ** 2
    freq = np.fft.rfftfreq(len(x), d=1.0)
    power, freq = power[1:], freq[1:]
    power = power / power.sum()
    return pd.DataFrame({"frequency": freq, "period_hours": 1.0 / freq, "power": power})


def find_periods(
    spectrum: pd.DataFrame,
    n_peaks: int = 5,
    *,
    min_period_hours: float = 2.0,
    max_period_hours: float | None = None,
    min_strength: float = 5.0,
    background_octaves: float = 0.5,
) -> pd.DataFrame:
    """The ``n_peaks`` strongest fundamental periods of a :func:`power_spectrum`.

    A peak is a local maximum of the power whose ``strength`` (power over the median power
    within ``+- background_octaves`` octaves, the local background) is at least
    ``min_strength``. Peaks are visited by decreasing power; a peak at frequency ``f`` is a
    *harmonic* of an already accepted fundamental ``f0`` when ``|f - k f0| <= 2 / n`` for an
    integer ``k >= 2`` (``n`` the span in hours, ``2 / n`` the Hann main-lobe half-width), and
    is then counted in that fundamental's ``n_harmonics`` instead of being listed (24 h absorbs
    12 h, 8 h, ...; 168 h absorbs 84 h and the weekly sidebands 28 h and 21 h of the daily
    peak). Periods outside ``[min_period_hours, max_period_hours]`` (default: a third of the
    span) are ignored. The period is refined by a parabola through the log power of the peak
    bin and its neighbours. Returns ``rank, period_hours, frequency, power, strength,
    n_harmonics`` sorted by power.
    """
    freq = spectrum["frequency"].to_numpy()
    power = spectrum["power"].to_numpy()
    span = 1.0 / freq.min()
    longest = max_period_hours or span / 3.0
    peaks, _ = signal.find_peaks(power)
    period = 1.0 / freq[peaks]
    peaks = peaks[(period >= min_period_hours) & (period <= longest)]
    log_f = np.log2(freq)
    lo = np.searchsorted(log_f, log_f[peaks] - background_octaves)
    hi = np.searchsorted(log_f, log_f[peaks] + background_octaves)
    background = np.array([np.median(power[a:b]) for a, b in zip(lo, hi, strict=True)])
    strength = power[peaks] / np.maximum(background, np.finfo(float).tiny)
    keep = strength >= min_strength
    peaks, strength = peaks[keep], strength[keep]
    order = np.argsort(-power[peaks], kind="stable")
    peaks, strength = peaks[order], strength[order]
    # parabolic refinement of each peak's frequency on the log power
    a, b, c = (
        np.log(np.maximum(power[np.clip(peaks + d, 0, len(power) - 1)], 1e-300)) for d in (-1, 0, 1)
    )
    denom = a - 2 * b + c
    inner = (peaks > 0) & (peaks < len(power) - 1) & (denom < 0)
    shift = np.where(inner, 0.5 * (a - c) / np.where(denom == 0, -1, denom), 0.0)
    refined = freq[peaks] + shift * (freq[1] - freq[0])
    fundamentals: list[int] = []
    harmonics: list[int] = []
    for i, f in enumerate(refined):
        for j, slot in enumerate(fundamentals):
            k = np.round(f / refined[slot])
            if k >= 2 and abs(f - k * refined[slot]) <= 2.0 / span:
                harmonics[j] += 1
                break
        else:
            fundamentals.append(i)
            harmonics.append(0)
    top = np.array(fundamentals[:n_peaks], dtype=np.int64)
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(top) + 1),
            "period_hours": 1.0 / refined[top],
            "frequency": refined[top],
            "power": power[peaks[top]],
            "strength": strength[top],
            "n_harmonics": np.array(harmonics[:n_peaks], dtype=np.int64),
        }
    )


def plot_power_spectrum(
    data: pd.DataFrame, path: str | Path, *, peaks: pd.DataFrame | None = None, title: str = ""
) -> Path:
    """Power against period (log axes) with the detected peaks marked and labelled."""
    fig, ax = new_figure(width=8.0, height=3.5)
    keep = data["period_hours"] <= data["period_hours"].max() / 3  # longer: not resolved
    ax.loglog(
        data["period_hours"][keep], data["power"][keep], color="C0", lw=0.8, label="power spectrum"
    )
    if peaks is not None and len(peaks):
        ax.plot(peaks["period_hours"], peaks["power"], "v", color="C3", label="detected peaks")
        for _, row in peaks.iterrows():
            ax.annotate(
                f"{row['period_hours']:.1f} h",
                (row["period_hours"], row["power"]),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=8,
            )
    for period, name in ((24, "day"), (168, "week")):
        mark_x(ax, period, name)
    ax.set_xlabel("period (hours)")
    ax.set_ylabel("normalised power")
    ax.set_title(title or "Power spectrum of hourly activity", pad=14)
    ax.legend(loc="lower right")
    return save_png(fig, path)


# ---------------------------------------------------------------------------- gaps
def consecutive_events(inter: Interactions, max_gap_s: float | None = None) -> pd.DataFrame:
    """Pairs of consecutive events of the same user (time order; ties in row order), ordered
    by user and time.

    Returns ``user, src_row, dst_row`` (rows of ``inter.events``), ``timestamp`` (of the first
    event) and ``gap_s``; pairs more than ``max_gap_s`` apart are left out (their number is
    logged).
    """
    events = inter.events
    user = events["user"].to_numpy(np.int64)
    # the rows stand in for the items: each step's ``prev`` is then its earlier event's row
    steps = Transitions().steps(user, np.arange(len(events)), events["timestamp"].to_numpy())
    keep = np.ones(len(steps.row), dtype=bool)
    if max_gap_s is not None:
        keep = steps.gap <= _positive("max_gap_s", max_gap_s)
        logger.info(
            "consecutive_events: %d of %d pairs within %.0f s",
            int(keep.sum()),
            len(keep),
            max_gap_s,
        )
    src, dst, time, gap = steps.prev[keep], steps.row[keep], steps.time[keep], steps.gap[keep]
    order = np.lexsort((dst, time, user[dst]))
    src, dst, time, gap = src[order], dst[order], time[order], gap[order]
    return pd.DataFrame(
        {
            "user": user[dst],
            "src_row": src,
            "dst_row": dst,
            "timestamp": time - gap,
            "gap_s": gap,
        }
    )


def inter_event_times(inter: Interactions) -> pd.DataFrame:
    """Gap to the user's next event for every event but each user's last:
    ``user, timestamp, gap_s`` (``gap_s`` >= 0; 0 for events at the same second)."""
    pairs = consecutive_events(inter)
    return pairs[["user", "timestamp", "gap_s"]]


def log_histogram(values, n_bins: int = 50, *, low: float | None = None) -> pd.DataFrame:
    """Histogram of positive values on ``n_bins`` logarithmic bins from ``low`` (default: the
    smallest positive value) to the maximum. Returns ``left, right, centre`` (geometric),
    ``count``, ``share`` (of all values) and ``density`` (share per unit of the value). Values
    below ``low`` (zeros included) are counted in a first row with ``left = 0``."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0 or not np.isfinite(values).all() or (values < 0).any():
        raise DataError("log_histogram needs a non-empty array of finite values >= 0")
    positive = values[values > 0]
    if len(positive) == 0:
        raise DataError("log_histogram needs at least one positive value")
    low = float(positive.min()) if low is None else _positive("low", low)
    high = max(float(values.max()), low * 1.0001)
    edges = np.geomspace(low, high, n_bins + 1)
    counts, _ = np.histogram(values[values >= low], bins=edges)
    left = np.concatenate([[0.0], edges[:-1]])
    right = np.concatenate([[low], edges[1:]])
    counts = np.concatenate([[int((values < low).sum())], counts])
    share = counts / len(values)
    return pd.DataFrame(
        {
            "left": left,
            "right": right,
            "centre": np.where(left > 0, np.sqrt(left * right), right / 2),
            "count": counts,
            "share": share,
            "density": share / (right - left),
        }
    )


_GAP_MARKS = ((3600, "1 h"), (86_400, "1 day"), (604_800, "1 week"))


def plot_inter_event_times(
    data: pd.DataFrame, path: str | Path, *, n_bins: int = 60, title: str = ""
) -> Path:
    """Log-log density of the per-user inter-event times (hours), with 1 h / 1 day / 1 week
    guides; the number of gaps under one minute is given in the legend."""
    hist = log_histogram(data["gap_s"], n_bins, low=60.0)
    fig, ax = new_figure(width=7.0, height=4.0)
    body = hist.iloc[1:]
    ax.loglog(
        body["centre"] / 3600,
        body["density"] * 3600,
        "o-",
        ms=3,
        label=f"{len(data):,} gaps ({int(hist['count'].iloc[0]):,} under 1 min not shown)",
    )
    for seconds, name in _GAP_MARKS:
        mark_x(ax, seconds / 3600, name)
    ax.set_xlabel("time to the user's next event (hours)")
    ax.set_ylabel("probability density (1 / hour)")
    ax.set_title(title or "Inter-event time distribution", pad=14)
    ax.legend()
    return save_png(fig, path)


# ---------------------------------------------------------------------------- trend
def activity_trend(inter: Interactions) -> pd.DataFrame:
    """Weekly activity over the span (weeks start on Monday, local time): ``week_start``,
    ``events``, ``active_users``, ``new_users`` and ``new_items`` (first seen that week).
    Weeks without events are included with zeros."""
    feats = time_features(inter)
    week = (feats["day"].to_numpy() - _EPOCH_MONDAY_DAY) // 7
    frame = pd.DataFrame(
        {
            "week": week,
            "user": inter.events["user"].to_numpy(),
            "item": inter.events["item"].to_numpy(),
        }
    )
    weeks = np.arange(week.min(), week.max() + 1)
    grouped = frame.groupby("week")
    out = pd.DataFrame(index=pd.Index(weeks, name="week"))
    out["events"] = grouped.size()
    out["active_users"] = grouped["user"].nunique()
    out["new_users"] = frame.groupby("user")["week"].min().value_counts()
    out["new_items"] = frame.groupby("item")["week"].min().value_counts()
    out = out.fillna(0).astype(np.int64).reset_index()
    days = (weeks * 7 + _EPOCH_MONDAY_DAY) * 86_400
    out.insert(1, "week_start", pd.to_datetime(days, unit="s"))
    return out.drop(columns="week")


def plot_activity_trend(data: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Three stacked panels over calendar time: events, active users, new items per week."""
    fig, axes = new_figure(3, 1, width=8.0, height=2.0, sharex=True)
    panels = (
        ("events", "events / week"),
        ("active_users", "active users / week"),
        ("new_items", "new items / week"),
    )
    for ax, (column, label) in zip(axes, panels, strict=True):
        ax.plot(data["week_start"], data[column], "o-", ms=3)
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    axes[-1].set_xlabel("week starting (local date)")
    axes[0].set_title(title or "Weekly activity over the data's span")
    fig.autofmt_xdate()
    return save_png(fig, path)
