"""One-call reports behind ``tgraph analyse``: every analysis of a dataset, or a run stratified.

:func:`dataset_report` runs the temporal, spatial, pattern and preference-drift analyses of
:mod:`tgraph.analysis` on one :class:`~tgraph.data.interactions.Interactions` and writes each
tidy table as CSV and each figure as PNG into one folder, plus ``summary.md`` with the key
numbers. Event-level tables (inter-event times, next-check-in distances) are written as their
log histograms (:func:`~tgraph.analysis.temporal.log_histogram`) to keep the folder small; the
summary's medians come from the full tables. An analysis whose input is missing (no
coordinates, no categories, too short a span, ...) raises a
:class:`~tgraph.data.errors.DataError`; the report then logs it and lists it with its reason
under "Skipped" in ``summary.md`` — nothing is left out silently.

Regions are seeded k-means regions of the items with coordinates
(:func:`~tgraph.data.preprocess.fit_kmeans`), written into the events' ``region`` column; they
replace any ``region`` the data brings (e.g. the synthetic data's true regions).

:func:`load_dataset` reads a registry dataset; a dataset returning a dict of fixed parts
(``{"train", "test"}``) is analysed on its ``"train"`` part: the parts have separate id maps,
so concatenating would need a re-coding, and the training part is what models learn from.
Other parts are chosen with the reader's own ``part=...`` option.

:func:`run_report` rebuilds the test split of a finished run directory from its recorded
configuration (:func:`tgraph.data.protocols.prepare_split`) and writes the stratified metrics of
its per-query results (:func:`~tgraph.analysis.stratify.stratified_metrics`) with one bar
chart per stratum and metric.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tgraph.analysis import evolution, patterns, spatial, stratify, temporal
from tgraph.data.interactions import Interactions
from tgraph.data.protocols import prepare_split
from tgraph.errors import DataError
from tgraph.runs import RunDir

logger = logging.getLogger(__name__)

__all__ = ["dataset_report", "load_dataset", "parse_options", "run_report"]


def parse_options(texts: Sequence[str]) -> dict[str, Any]:
    """``["n_users=100", "part=test"]`` -> ``{"n_users": 100, "part": "test"}`` (YAML values)."""
    options: dict[str, Any] = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise DataError(
                f"option {text!r} is not of the form key=value",
                column="option",
                fix="pass e.g. --option n_users=100",
            )
        options[key] = yaml.safe_load(raw) if raw else None
    return options


def load_dataset(
    name: str, root: str | Path | None = None, **options: Any
) -> tuple[Interactions, list[str]]:
    """Registry dataset ``name`` as one table, and notes on what was chosen (module docstring)."""
    from tgraph.data import registry

    data = registry.load(name, root, **options)
    if isinstance(data, Interactions):
        return data, []
    if "train" not in data:
        raise DataError(
            f"dataset {name!r} returns the parts {sorted(data)} and no 'train' part",
            source=name,
            column="part",
            fix=f"choose one part, e.g. --option part={sorted(data)[0]}",
        )
    note = f"dataset {name!r} has the parts {sorted(data)}; the 'train' part is analysed"
    logger.info(note)
    return data["train"], [note]


class _Report:
    """Runs analysis steps, records written files, skipped steps and findings."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: list[Path] = []
        self.skipped: dict[str, str] = {}
        self.findings: dict[str, Any] = {}

    def step(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, or None after logging and recording the DataError it raised."""
        try:
            return compute()
        except DataError as err:
            self.skip(name, str(err).splitlines()[0])
            return None

    def skip(self, name: str, reason: str) -> None:
        logger.warning("analysis %s skipped: %s", name, reason)
        self.skipped[name] = reason

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        path = self.out / f"{name}.csv"
        frame.to_csv(path, index=False)
        self.files.append(path)
        return frame

    def plot(self, name: str, draw: Callable[[Path], Path]) -> None:
        self.files.append(draw(self.out / f"{name}.png"))


def _has(inter: Interactions, column: str) -> bool:
    return inter.has(column) or column in inter.items.columns


def _temporal(rep: _Report, inter: Interactions) -> None:
    activity = rep.step("hour_weekday_activity", lambda: temporal.hour_weekday_activity(inter))
    if activity is not None:
        rep.table("hour_weekday_activity", activity)
        draw = temporal.plot_hour_weekday_activity
        rep.plot("hour_weekday_activity", lambda p: draw(activity, p))
    span = int(np.ptp(inter.events["timestamp"].to_numpy()) // 3600)
    acf = rep.step(
        "autocorrelation", lambda: temporal.autocorrelation(inter, min(336, max(span - 1, 0)))
    )
    if acf is not None:
        rep.table("autocorrelation", acf)
        rep.plot("autocorrelation", lambda p: temporal.plot_autocorrelation(acf, p))
    spectrum = rep.step("power_spectrum", lambda: temporal.power_spectrum(inter))
    if spectrum is not None:
        peaks = temporal.find_periods(spectrum)
        rep.table("power_spectrum", spectrum)
        rep.table("periods", peaks)
        rep.plot("power_spectrum", lambda p: temporal.plot_power_spectrum(spectrum, p, peaks=peaks))
        rep.findings["periods"] = peaks
    gaps = rep.step("inter_event_times", lambda: temporal.inter_event_times(inter))
    if gaps is not None and len(gaps):
        rep.table("inter_event_times_hist", temporal.log_histogram(gaps["gap_s"], 60, low=60.0))
        rep.plot("inter_event_times", lambda p: temporal.plot_inter_event_times(gaps, p))
        rep.findings["median_gap_h"] = float(gaps["gap_s"].median()) / 3600
    elif gaps is not None:
        rep.skip("inter_event_times", "no user has two events")
    trend = rep.step("activity_trend", lambda: temporal.activity_trend(inter))
    if trend is not None:
        rep.table("activity_trend", trend)
        rep.plot("activity_trend", lambda p: temporal.plot_activity_trend(trend, p))


def _with_regions(rep: _Report, inter: Interactions, k: int, seed: int) -> Interactions | None:
    from tgraph.data.preprocess import add_regions, fit_kmeans, item_coordinates

    def fit() -> Interactions:
        lat, lon = item_coordinates(inter)
        used = np.unique(inter.events["item"].to_numpy())
        used = used[np.isfinite(lat[used]) & np.isfinite(lon[used])]
        if len(used) == 0:
            raise DataError("no item with events has coordinates", column="lat")
        regions = fit_kmeans(lat[used], lon[used], k, seed=seed)
        return add_regions(inter, regions)[0]

    located = rep.step("regions", fit)
    if located is None:
        return None
    clusters = spatial.region_clusters(inter, k, seed=seed)  # same fit: same codes
    rep.table("region_clusters", clusters)
    rep.plot("region_clusters", lambda p: spatial.plot_region_clusters(clusters, p))
    return located


def _spatial(rep: _Report, inter: Interactions, located: Interactions | None) -> None:
    density = rep.step("checkin_density", lambda: spatial.checkin_density(inter))
    if density is not None:
        rep.table("checkin_density", density)
        rep.plot("checkin_density", lambda p: spatial.plot_checkin_density(density, p))
    rg = rep.step("radius_of_gyration", lambda: spatial.radius_of_gyration(inter))
    if rg is not None and len(rg):
        rep.table("radius_of_gyration", rg)
        rep.plot("radius_of_gyration", lambda p: spatial.plot_radius_of_gyration(rg, p))
        rep.findings["median_rg_km"] = (float(rg["rg_km"].median()), len(rg))
    jumps = rep.step("next_checkin_distance", lambda: spatial.next_checkin_distance(inter))
    if jumps is not None and len(jumps):
        hist = temporal.log_histogram(jumps["distance_km"], 50, low=0.01)
        rep.table("next_checkin_distance_hist", hist)
        rep.plot("next_checkin_distance", lambda p: spatial.plot_next_checkin_distance(jumps, p))
        rep.findings["median_jump_km"] = (float(jumps["distance_km"].median()), len(jumps))
    elif jumps is not None:
        rep.skip("next_checkin_distance", "no consecutive check-ins within 24 h")
    if located is None:
        rep.skip("home_work", "needs regions (see 'regions')")
        return
    homes = rep.step("home_work", lambda: spatial.home_work(located))
    if homes is not None:
        rep.table("home_work", homes)
        rep.plot("home_work", lambda p: spatial.plot_home_work(homes, p))


def _patterns(rep: _Report, inter: Interactions, located: Interactions | None) -> None:
    if located is None:
        for name in ("transitions", "association_rules", "transition_graph"):
            rep.skip(name, "needs regions (see 'regions')")
    else:
        moves = rep.step("transitions", lambda: patterns.transitions(located))
        if moves is not None and len(moves):
            rep.table("transitions", moves)
            rep.plot("transitions", lambda p: patterns.plot_transitions(moves, p))
        elif moves is not None:
            rep.skip("transitions", "no move between regions within 24 h")
        rules = rep.step("association_rules", lambda: patterns.association_rules(located))
        if rules is not None:
            rep.table("association_rules", rules)
            rep.plot("association_rules", lambda p: patterns.plot_association_rules(rules, p))
            moving = rules[rules["antecedent"] != rules["consequent"]]
            rep.findings["top_transitions"] = moving.sort_values(
                ["count", "antecedent", "consequent"],
                ascending=[False, True, True],
                kind="stable",
            ).head(5)

            def graph(path: Path) -> Path:
                positions = patterns.location_positions(located)
                built = patterns.transition_graph(rules, positions)
                return patterns.plot_transition_graph(built, path)

            rep.step("transition_graph", lambda: rep.plot("transition_graph", graph))
    if not _has(inter, "category"):
        rep.skip("category_rules", "no 'category' column in the events or items")
        return
    rules = rep.step("category_rules", lambda: patterns.association_rules(inter, "category"))
    if rules is not None:
        rep.table("category_rules", rules)
        rep.plot("category_rules", lambda p: patterns.plot_association_rules(rules, p))


def _evolution(rep: _Report, inter: Interactions, located: Interactions | None, seed: int) -> None:
    rep.skip(
        "embedding_drift",
        "needs a model trained per snapshot; run evolution.snapshot_embeddings and "
        "evolution.snapshot_drift (see their docstrings)",
    )
    key = "category" if _has(inter, "category") else "region"
    data = inter if key == "category" else located
    if data is None:
        rep.skip("preference_drift", "needs item categories or regions")
        return
    rep.findings["drift_key"] = key
    drift = rep.step("preference_drift", lambda: evolution.preference_drift(data, key))
    if drift is None or drift.empty:
        if drift is not None:
            rep.skip("preference_drift", "no user has >= 5 events in two windows")
        return
    null = evolution.null_drift(data, key, seed=seed)
    summary = evolution.drift_summary(drift, null)
    rep.table("preference_drift", drift)
    rep.table("drift_summary", summary)
    rep.plot("drift_distribution", lambda p: evolution.plot_drift_distribution(drift, p, null))
    table = evolution.preference_table(data, key)
    rep.table("preference_table", table)
    top_user = int(table.groupby("user")["count"].sum().idxmax())  # most events with a value
    rep.plot(
        f"preferences_user{top_user}",
        lambda p: evolution.plot_user_preferences(table, top_user, p),
    )
    rep.findings["drift"] = summary


_KINDS = {"consecutive": "consecutive", "first_last": "first vs last"}


def _summary_md(rep: _Report, inter: Interactions, k: int, seed: int, notes: Sequence[str]) -> str:
    s = inter.summary()
    lines = [
        f"# Analysis of {s['name']}",
        "",
        f"{s['events']:,} events, {s['users']:,} users, {s['items']:,} items, "
        f"time span {s['start']} .. {s['end']}.",
        *(f"Note: {n}." for n in notes),
        "",
        "## Key findings",
        "",
    ]
    f = rep.findings
    if "periods" in f:
        peaks = f["periods"]
        listed = ", ".join(
            f"{r.period_hours:.1f} h (strength {r.strength:.0f}, {r.n_harmonics} harmonics)"
            for r in peaks.itertuples()
        )
        lines.append(f"- Detected periods: {listed or 'none above the strength threshold'}.")
    if "median_gap_h" in f:
        lines.append(f"- Median time to the user's next event: {f['median_gap_h']:.2f} h.")
    if "median_rg_km" in f:
        value, n = f["median_rg_km"]
        lines.append(f"- Median radius of gyration: {value:.2f} km ({n:,} users with >= 2 events).")
    if "median_jump_km" in f:
        value, n = f["median_jump_km"]
        lines.append(
            f"- Median distance to the next check-in (within 24 h): {value:.2f} km ({n:,} moves)."
        )
    if "drift" in f:
        for row in f["drift"].itertuples():
            lines.append(
                f"- {f['drift_key'].capitalize()} drift ({_KINDS[row.kind]} windows, "
                f"JSD bits): mean {row.mean:.3f} vs time-shuffled null {row.null_mean:.3f} "
                f"(excess {row.excess:+.3f}; {100 * row.share_above_null:.0f}% of "
                f"{row.users:,} users above their null)."
            )
    if "top_transitions" in f:
        lines.append(f"- Top region transitions ({k} k-means regions, seed {seed}):")
        for r in f["top_transitions"].itertuples():
            lines.append(
                f"  - {r.antecedent} -> {r.consequent}: {r.count:,} moves, support "
                f"{r.support:.4f}, confidence {r.confidence:.3f}, lift {r.lift:.2f}"
            )
    lines += ["", "## Skipped", ""]
    lines += [f"- {name}: {reason}" for name, reason in rep.skipped.items()] or ["- none"]
    lines += ["", "## Files", ""]
    lines += [f"- {p.name}" for p in rep.files]
    return "\n".join(lines) + "\n"


def dataset_report(
    inter: Interactions,
    out: str | Path,
    *,
    regions: int = 20,
    seed: int = 0,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Run every analysis of ``inter`` and write its CSVs, PNGs and ``summary.md`` into ``out``.

    ``regions``: number of k-means regions (seeded by ``seed``, as are the null shuffles);
    ``notes``: lines added to the summary (e.g. from :func:`load_dataset`). Returns
    ``{"files": [paths], "skipped": {analysis: reason}, "findings": {...}}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = _Report(out)
    _temporal(rep, inter)
    located = _with_regions(rep, inter, regions, seed)
    _spatial(rep, inter, located)
    _patterns(rep, inter, located)
    _evolution(rep, inter, located, seed)
    path = out / "summary.md"
    path.write_text(_summary_md(rep, inter, regions, seed, notes))
    rep.files.append(path)
    logger.info(
        "analysis of %s: %d files in %s, %d skipped",
        inter.name,
        len(rep.files),
        out,
        len(rep.skipped),
    )
    return {"files": rep.files, "skipped": rep.skipped, "findings": rep.findings}


def run_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    n_boot: int = 1000,
    metrics: Sequence[str] | None = None,
    root: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Stratified test metrics of a finished run directory (its configuration and per-query
    results; :class:`~tgraph.runs.RunDir`).

    The split is rebuilt from the config's ``dataset`` section; ``out`` defaults to
    ``<run_dir>/analysis``. Writes ``strata.csv`` (per query), ``stratified.csv`` (per stratum
    level and metric, bootstrap CI over ``n_boot`` resamples) and ``<stratum>_<metric>.png``
    for ``metrics`` (default: the run's configured metrics). Returns ``{"table", "files"}``.
    """
    from tgraph.config import DatasetConfig, validate_model

    run = RunDir(run_dir)
    config = run.read_config()
    per_query = stratify.load_per_query(run.path)
    split = prepare_split(validate_model(DatasetConfig, config.get("dataset"), "dataset"), root)
    strata = stratify.query_strata(split, "test")
    if metrics is None:
        names = [m.lower() for m in config.get("metrics", [])]
        metrics = [m for m in names if m in per_query.columns] or None
    table = stratify.stratified_metrics(
        per_query, strata, metrics=metrics, n_boot=n_boot, seed=seed
    )
    out = Path(out) if out is not None else run.layout.analysis
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "strata.csv", out / "stratified.csv"]
    strata.to_csv(files[0], index=False)
    table.to_csv(files[1], index=False)
    for stratum in table["stratum"].unique():
        for metric in table["metric"].unique():
            path = out / f"{stratum}_{metric.replace('@', '_at_')}.png"
            files.append(stratify.plot_strata(table, stratum, metric, path))
    logger.info("stratified %s: %d files in %s", run.path, len(files), out)
    return {"table": table, "files": files}
