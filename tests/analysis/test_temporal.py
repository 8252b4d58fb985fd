"""Temporal analysis: planted rhythms of the synthetic city are recovered; NYC sanity; plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tgraph.analysis import temporal as T
from tgraph.data import DataError, Interactions, load
from tgraph.data.synthetic import WEEKDAY_PEAKS, generate


@pytest.fixture(scope="module")
def synth():
    return generate(seed=0)


@pytest.fixture(scope="module")
def nyc(root):
    return load("foursquare_nyc", root)


def _tiny(timestamps, users=None, tz_offset=None) -> Interactions:
    n = len(timestamps)
    frame = pd.DataFrame(
        {"user": users if users is not None else [0] * n, "item": [0] * n, "timestamp": timestamps}
    )
    if tz_offset is not None:
        frame["tz_offset"] = tz_offset
    return Interactions.from_frame(frame, name="tiny")


def test_hour_weekday_counts_use_local_time():
    # 1970-01-05 was a Monday: 00:30 UTC; with tz_offset -60 min it is Sunday 23:30 local
    ts = 4 * 86_400 + 1800
    inter = _tiny([ts, ts, ts + 3600], tz_offset=[-60, 0, 0])
    table = T.hour_weekday_activity(inter)
    assert len(table) == 168 and table["count"].sum() == 3
    got = table.set_index(["weekday", "hour"])["count"]
    assert got[(6, 23)] == 1 and got[(0, 0)] == 1 and got[(0, 1)] == 1
    assert np.isclose(table["share"].sum(), 1.0)
    assert set(table.loc[table["weekend"] == 1, "day_name"]) == {"Sat", "Sun"}


def test_hour_profile_peaks_where_planted(synth):
    profile = T.hour_profile(T.hour_weekday_activity(synth))
    share = profile["weekday_share"].to_numpy()
    assert np.isclose(share.sum(), 1.0) and np.isclose(profile["weekend_share"].sum(), 1.0)
    local_max = [
        h for h in range(24) if share[h] >= share[h - 1] and share[h] >= share[(h + 1) % 24]
    ]
    for mean, _ in WEEKDAY_PEAKS:
        assert any(abs(h + 0.5 - mean) <= 1.0 for h in local_max), (mean, local_max)
    # little happens at night: 2-5 h hold < 4 % of weekday events
    assert share[2:6].sum() < 0.04
    # weekend mornings are quieter than weekday mornings (planted weekend peaks are later)
    assert profile["weekend_share"][6:9].sum() < 0.5 * share[6:9].sum()


def test_spectrum_finds_day_and_week(synth):
    spectrum = T.power_spectrum(synth)
    assert np.isclose(spectrum["power"].sum(), 1.0)
    periods = T.find_periods(spectrum, 5)
    found = periods["period_hours"].to_numpy()
    assert abs(found[0] - 24) < 0.1  # the daily rhythm is the strongest
    assert np.any(np.abs(found - 168) < 168 * 0.02), found
    day = periods.iloc[0]
    assert day["n_harmonics"] >= 3  # 12 h, 8 h, 6 h ... are folded into the daily period


def test_find_periods_on_pure_sinusoids():
    # hourly series with a 24 h and a 168 h cosine: events drawn at the expected rate
    hours = np.arange(24 * 7 * 20)
    rate = 10 + 6 * np.cos(2 * np.pi * hours / 24) + 3 * np.cos(2 * np.pi * hours / 168)
    counts = np.round(rate).astype(int)
    ts = np.repeat(hours * 3600, counts)
    periods = T.find_periods(T.power_spectrum(_tiny(ts)), 5)
    assert len(periods) == 2
    assert np.allclose(periods["period_hours"], [24, 168], rtol=0.01)


def test_autocorrelation(synth):
    acf = T.autocorrelation(synth, 24 * 15)
    assert acf["acf"].iloc[0] == 1.0 and acf["user_median"].iloc[0] == 1.0
    a = acf.set_index("lag_hours")
    # daily and weekly lags correlate, half a day anti-correlates
    assert a.at[24, "acf"] > 0.5 and a.at[168, "acf"] > a.at[24, "acf"]
    assert a.at[12, "acf"] < 0
    # per-user series: daily lags beat half-day lags on average
    assert a.at[24, "user_mean"] > a.at[12, "user_mean"]
    assert acf["n_users"].iloc[0] == int((synth.events["user"].value_counts() >= 20).sum())
    with pytest.raises(DataError, match="max_lag_hours"):
        T.autocorrelation(synth, 10**6)


def test_inter_event_times_and_log_histogram():
    inter = _tiny([0, 60, 60, 3660, 100, 7300], users=[0, 0, 0, 0, 1, 1])
    gaps = T.inter_event_times(inter)
    assert sorted(gaps["gap_s"]) == [0, 60, 3600, 7200]
    hist = T.log_histogram(gaps["gap_s"], 2, low=60)
    assert hist["count"].tolist() == [1, 1, 2] and hist["left"].iloc[0] == 0
    assert np.isclose(hist["share"].sum(), 1.0)
    assert np.isclose((hist["density"] * (hist["right"] - hist["left"])).sum(), 1.0)
    with pytest.raises(DataError):
        T.log_histogram([-1.0, 2.0])


def test_activity_trend(synth):
    trend = T.activity_trend(synth)
    assert trend["events"].sum() == len(synth)
    assert trend["new_items"].sum() == synth.events["item"].nunique()
    assert trend["new_users"].sum() == synth.events["user"].nunique()
    assert (trend["week_start"].dt.weekday == 0).all()
    assert (trend["active_users"] <= trend["events"]).all()


def test_nyc_sanity(nyc):
    periods = T.find_periods(T.power_spectrum(nyc), 5)
    assert np.any(np.abs(periods["period_hours"] - 24) < 0.2)
    profile = T.hour_profile(T.hour_weekday_activity(nyc))
    peak = int(profile["weekday_share"].idxmax())
    assert 6 <= peak <= 9  # NYC weekday check-ins peak in the morning commute
    assert profile["weekday_share"][2:5].sum() < 0.05
    acf = T.autocorrelation(nyc, 200).set_index("lag_hours")
    assert acf.at[24, "acf"] > acf.at[12, "acf"]
    gaps = T.inter_event_times(nyc)
    assert len(gaps) == len(nyc) - nyc.events["user"].nunique()
    assert 3600 < gaps["gap_s"].median() < 7 * 86_400
    trend = T.activity_trend(nyc)
    assert trend["events"].sum() == len(nyc) and (trend["events"] == 0).sum() >= 1


def test_plots_written(synth, tmp_path):
    spectrum = T.power_spectrum(synth)
    paths = [
        T.plot_hour_weekday_activity(T.hour_weekday_activity(synth), tmp_path / "a.png"),
        T.plot_autocorrelation(T.autocorrelation(synth, 200), tmp_path / "b.png"),
        T.plot_power_spectrum(spectrum, tmp_path / "c.png", peaks=T.find_periods(spectrum)),
        T.plot_inter_event_times(T.inter_event_times(synth), tmp_path / "d.png"),
        T.plot_activity_trend(T.activity_trend(synth), tmp_path / "e.png"),
    ]
    for path in paths:
        assert path.is_file() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
