"""Leaderboards from run directories: models x datasets x seeds, with paired significance tests,
learning curves and stratified results.

Every finished run directory below a folder (see :mod:`tgraph.runs`; runs moved aside by
``--overwrite`` excluded) is collected and grouped by (experiment, dataset). The runs of a
group must agree on what their queries knew of the target's time (``query_time``, recorded
in each run's ``metrics.json``; runs recorded before it existed count as ``known``): runs
with the time hidden and runs with it known (the "time-aware" task) are never put in one
board, and each board's title names its task and ``query_time``. Within a group,
one row is one **configuration**: a model label and a run fingerprint. The runs of one label
must share one fingerprint (same resolved configuration, same split); otherwise the board is
refused, naming the folders of each configuration, unless ``allow_mixed``, which gives each
configuration its own row labelled ``<label> [<short fingerprint>]``. Seeds are counted as
distinct seeds (two runs of one seed in a row are refused). For each group and test metric the
board gives the mean and sample standard deviation over seeds ("n/a" for one seed: there is
no spread to report) and two two-sided paired tests of each model against the **best
baseline** for that metric (the baseline with the highest mean, the model itself excluded):

* the paired t-test and the Wilcoxon signed-rank test (``scipy.stats``), on the per-query
  values of the two models, each first averaged over that model's seeds; queries are paired
  by their ``query`` id, and both models must have ranked the same queries (same split).

Each p-value is reported raw and adjusted for multiple comparisons by Holm's step-down method
(:func:`holm`). A family is the tests of one metric and one test kind in one group: the
distinct pairs (model, reference) of the table on that metric (the best model and its
reference, compared both ways, are one test).

Outputs, in ``out_dir``: ``leaderboard.csv`` (tidy), ``leaderboard.md``, ``leaderboard.tex``;
per group ``curves_<experiment>_<dataset>.png``, the learning curves as the mean over seeds
with a band of one standard deviation, one line per model (:func:`tgraph.study_plots.plot_curves`);
and, unless ``strata=False``, the test metrics stratified by context
(:mod:`tgraph.analysis.stratify`: local hour, weekday, region, user activity, novelty) with the
models side by side: ``stratified.csv`` (tidy), ``stratified.md`` and per group and metric
``strata_<experiment>_<dataset>_<metric>.png``. Stratifying rebuilds each group's split from
the runs' ``dataset`` configuration (so the data must be at hand) and checks it against the
split summary in the runs' fingerprints; a model's per-query values are averaged over its seeds
and each level's interval is a percentile bootstrap over its queries.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tgraph.errors import CompareError, RunDirError
from tgraph.runs import RunDir
from tgraph.runs.fingerprint import canonical_json

log = logging.getLogger(__name__)


def collect_runs(runs_dir: str | Path, *, allow_mixed: bool = False) -> pd.DataFrame:
    """One row per finished run below ``runs_dir``: experiment, dataset, protocol, model (the
    label; ``<label> [<fingerprint>]`` for mixed configurations), fingerprint, seed, path,
    valid_metric and the test metrics (``test:<name>``)."""
    rows = []
    for run in RunDir.finished_below(runs_dir):
        try:
            config, metrics = run.read_config(), run.read_metrics()
        except RunDirError as error:
            raise CompareError(str(error)) from None
        rows.append(
            {
                "experiment": config["experiment"],
                "dataset": config["dataset"]["name"],
                "protocol": config["dataset"]["protocol"],
                # runs recorded before query_time existed gave queries the target's time
                "query_time": metrics.query_time or "known",
                "task": metrics.task,
                "model": metrics.model,
                "fingerprint": metrics.fingerprint,
                "seed": metrics.seed,
                "path": str(run.path),
                "valid_metric": metrics.valid_metric,
                **{f"test:{k}": v for k, v in metrics.test.items()},
            }
        )
    if not rows:
        raise CompareError(f"no finished run directory found below {runs_dir}")
    runs = pd.DataFrame(rows)
    _one_task_per_group(runs)
    return _one_configuration_per_row(runs, allow_mixed)


def _one_task_per_group(runs: pd.DataFrame) -> None:
    """Refuse a group (experiment, dataset) whose runs' queries knew different things of their
    targets' time (``query_time`` hidden and known): they are two tasks, never one board."""
    for (experiment, dataset), group in runs.groupby(["experiment", "dataset"], sort=False):
        kinds = list(dict.fromkeys(group["query_time"]))
        if len(kinds) > 1:
            listing = "; ".join(
                f"{kind}: " + ", ".join(group.loc[group["query_time"] == kind, "path"])
                for kind in kinds
            )
            raise CompareError(
                f"{experiment}/{dataset}: runs with query_time {' and '.join(kinds)} are "
                f"different tasks (with the target's time known it is the time-aware task) "
                f"and are never ranked in one leaderboard: {listing} (fix: give the "
                "time-aware runs their own experiment name, or compare each folder apart)"
            )


def _one_configuration_per_row(runs: pd.DataFrame, allow_mixed: bool) -> pd.DataFrame:
    """Refuse (or, with ``allow_mixed``, relabel) a label with several fingerprints; refuse a
    seed that appears twice in one configuration."""
    runs = runs.copy()
    for (experiment, dataset, model), group in runs.groupby(
        ["experiment", "dataset", "model"], sort=False
    ):
        configurations = list(dict.fromkeys(group["fingerprint"]))
        if len(configurations) > 1:
            if not allow_mixed:
                listing = "; ".join(
                    f"{fp[:8]}: " + ", ".join(group.loc[group["fingerprint"] == fp, "path"])
                    for fp in configurations
                )
                raise CompareError(
                    f"{experiment}/{dataset}: the runs of {model} have {len(configurations)} "
                    f"configurations (fingerprints), which cannot be averaged: {listing} "
                    "(fix: move the runs of one configuration away, or allow mixed "
                    "configurations to give each its own row)"
                )
            runs.loc[group.index, "model"] = [f"{model} [{fp[:8]}]" for fp in group["fingerprint"]]
    for (experiment, dataset, model), group in runs.groupby(
        ["experiment", "dataset", "model"], sort=False
    ):
        repeated = group[group["seed"].duplicated(keep=False)]
        if len(repeated):
            raise CompareError(
                f"{experiment}/{dataset}: {model} has seed {int(repeated['seed'].iloc[0])} "
                f"more than once: {', '.join(repeated['path'])}"
            )
    return runs


def seed_mean_per_query(paths: list[str] | list[Path], metrics: list[str]) -> pd.DataFrame:
    """Per-query ``metrics`` averaged over the runs in ``paths`` (one configuration's seeds:
    run directories, or their ``per_query.csv`` files as committed under
    ``experiments/results``; index: query; columns: user and the metrics); the runs must have
    ranked the same queries."""
    tables: list[pd.DataFrame] = []
    for path in paths:
        if Path(path).suffix == ".csv":
            file = Path(path)
        else:
            file = RunDir(path).layout.per_query
        if not file.is_file():
            raise CompareError(f"{file} not found: significance tests need per-query results")
        table = pd.read_csv(file, usecols=["query", "user", *metrics]).set_index("query")
        table = table.sort_index()
        if tables and not (
            table.index.equals(tables[0].index) and (table["user"] == tables[0]["user"]).all()
        ):
            raise CompareError(f"{file}: its queries differ from those of {paths[0]}")
        tables.append(table)
    out = tables[0][["user"]].copy()
    for metric in metrics:
        out[metric] = np.mean([t[metric].to_numpy(dtype=float) for t in tables], axis=0)
    return out


def paired_table(
    ours: pd.DataFrame, references: dict[str, pd.DataFrame], metrics: list[str]
) -> pd.DataFrame:
    """Paired tests of one model's per-query results (:func:`seed_mean_per_query`) against
    each reference's on the same queries: one row per (reference, metric) with both means,
    ``diff`` (ours minus reference), ``p_t`` / ``p_wilcoxon`` (:func:`paired_tests`) and their
    Holm adjustments over the references, per metric and test."""
    rows = []
    for name, ref in references.items():
        if not (ref.index.equals(ours.index) and (ref["user"] == ours["user"]).all()):
            raise CompareError(f"reference {name!r} ranked other queries than ours")
        for metric in metrics:
            p_t, p_w = paired_tests(ours[metric].to_numpy(), ref[metric].to_numpy())
            mean, ref_mean = float(ours[metric].mean()), float(ref[metric].mean())
            rows.append(
                {
                    "reference": name,
                    "metric": metric,
                    "ours": mean,
                    "reference_mean": ref_mean,
                    "diff": mean - ref_mean,
                    "p_t": p_t,
                    "p_wilcoxon": p_w,
                }
            )
    table = pd.DataFrame(rows)
    for metric in metrics:
        at = table["metric"] == metric
        for column in ("p_t", "p_wilcoxon"):
            table.loc[at, column + "_holm"] = holm(table.loc[at, column].to_numpy())
    return table


def paired_markdown(table: pd.DataFrame, ours: str) -> str:
    """:func:`paired_table`'s rows as a markdown table, ``ours`` naming the tested model."""
    lines = [
        f"| reference | metric | {ours} | reference | diff | p (t) | p (Wilcoxon) | Holm t / W |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.reference} | {r.metric} | {r.ours:.4f} | {r.reference_mean:.4f} | "
            f"{r.diff:+.4f} | {r.p_t:.2g} | {r.p_wilcoxon:.2g} | "
            f"{r.p_t_holm:.2g} / {r.p_wilcoxon_holm:.2g} |"
        )
    return "\n".join(lines) + "\n"


def paired_tests(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided p-values (paired t-test, Wilcoxon signed-rank) of ``a`` against ``b``.

    Identical samples give 1.0 for both (no evidence of a difference).
    """
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if len(diff) < 2 or np.allclose(diff, 0.0):
        return 1.0, 1.0
    p_t = float(stats.ttest_rel(a, b).pvalue)
    p_w = float(stats.wilcoxon(a, b).pvalue)
    return p_t, p_w


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of one family of p-values (NaN: no test, left out).

    With the m p-values sorted ascending, p(1) <= ... <= p(m), the adjusted value of p(i) is
    ``max over j <= i of min(1, (m - j + 1) * p(j))``, in the original order. Rejecting where the
    adjusted value is below alpha controls the family-wise error rate at alpha.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def _metric_names(group: pd.DataFrame, metrics: list[str] | None, where: str) -> list[str]:
    """``metrics`` (default: the test metrics every run of ``group`` has), checked."""
    available = [c[5:] for c in group.columns if c.startswith("test:")]
    available = [m for m in available if group[f"test:{m}"].notna().all()]
    names = [m.lower() for m in (metrics or available)]
    missing = sorted(set(names) - set(available))
    if missing:
        raise CompareError(
            f"{where}: metric(s) {missing} missing from some run; available: {available}"
        )
    return names


def _seed_means(group: pd.DataFrame, metrics: list[str]) -> dict[str, pd.DataFrame]:
    """Model -> its per-query ``metrics`` averaged over its seeds."""
    return {
        model: seed_mean_per_query(list(runs["path"]), metrics)
        for model, runs in group.groupby("model", sort=False)
    }


def _pair(row: dict[str, Any]) -> frozenset[str]:
    return frozenset((row["model"], row["reference"]))


def leaderboard(
    runs: pd.DataFrame, metrics: list[str] | None = None, baselines: list[str] | None = None
) -> pd.DataFrame:
    """The tidy board: one row per (experiment, dataset, model, metric) with seeds, mean, std
    (NaN for one seed), the reference baseline, the difference of means, the two p-values and
    their Holm adjustments (``p_ttest_holm``, ``p_wilcoxon_holm``; module docstring).

    ``baselines`` (default: every model of the group) are the models a reference is chosen
    from; ``metrics`` default to the test metrics every run of the group has.
    """
    out = []
    for (experiment, dataset), group in runs.groupby(["experiment", "dataset"], sort=False):
        names = _metric_names(group, metrics, f"{experiment}/{dataset}")
        models = list(dict.fromkeys(group["model"]))
        pool = [m for m in models if baselines is None or m in baselines]
        seed_means = _seed_means(group, names)
        for metric in names:
            by_model = {
                m: group.loc[group["model"] == m, f"test:{metric}"].to_numpy(float) for m in models
            }
            means = {m: float(v.mean()) for m, v in by_model.items()}
            per_query = {
                m: table[["user", metric]].rename(columns={metric: "value"})
                for m, table in seed_means.items()
            }
            family = []
            for model in models:
                values = by_model[model]
                row: dict[str, Any] = {
                    "experiment": experiment,
                    "dataset": dataset,
                    "protocol": group["protocol"].iloc[0],
                    "query_time": group["query_time"].iloc[0],
                    "task": group["task"].iloc[0],
                    "model": model,
                    "metric": metric,
                    "seeds": int(group.loc[group["model"] == model, "seed"].nunique()),
                    "mean": means[model],
                    "std": float(values.std(ddof=1)) if len(values) > 1 else np.nan,
                    "reference": None,
                    "diff": np.nan,
                    "p_ttest": np.nan,
                    "p_wilcoxon": np.nan,
                    "n_queries": len(per_query[model]),
                }
                others = [m for m in pool if m != model]
                if others:
                    ref = max(others, key=lambda m: means[m])
                    a, b = per_query[model], per_query[ref]
                    if not (a.index.equals(b.index) and (a["user"] == b["user"]).all()):
                        raise CompareError(
                            f"{experiment}/{dataset}: {model} and {ref} ranked different "
                            "queries (different splits?); cannot pair them"
                        )
                    p_t, p_w = paired_tests(a["value"].to_numpy(), b["value"].to_numpy())
                    row.update(reference=ref, diff=means[model] - means[ref])
                    row.update(p_ttest=p_t, p_wilcoxon=p_w)
                family.append(row)
            # the family's hypotheses: a model and its reference compared both ways are one
            pairs = list(dict.fromkeys(_pair(row) for row in family if row["reference"]))
            for test in ("p_ttest", "p_wilcoxon"):
                raw = {_pair(row): row[test] for row in family if row["reference"]}
                adjusted = dict(zip(pairs, holm(np.array([raw[k] for k in pairs])), strict=True))
                for row in family:
                    row[f"{test}_holm"] = adjusted[_pair(row)] if row["reference"] else np.nan
            out.extend(family)
    return pd.DataFrame(out)


def _p(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def _std(value: float) -> str:
    """The spread over seeds; "n/a" for one seed (not a misleading 0)."""
    return "n/a" if np.isnan(value) else f"{value:.4f}"


def _wide(board: pd.DataFrame) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """Per group: (title, one row per model with its cells, metric names)."""
    groups = []
    for (experiment, dataset), group in board.groupby(["experiment", "dataset"], sort=False):
        metric_names = list(dict.fromkeys(group["metric"]))
        best = group.groupby("metric")["mean"].max()
        rows = []
        for model, part in group.groupby("model", sort=False):
            row: dict[str, Any] = {"model": model, "seeds": int(part["seeds"].iloc[0])}
            for _, r in part.iterrows():
                row[r["metric"]] = (r["mean"], r["std"], np.isclose(r["mean"], best[r["metric"]]))
                ref = r["reference"] if isinstance(r["reference"], str) else None
                row[f"p {r['metric']}"] = (r["p_ttest"], r["p_wilcoxon"], ref)
                row[f"holm {r['metric']}"] = (r["p_ttest_holm"], r["p_wilcoxon_holm"])
            rows.append(row)
        title = f"{experiment} / {dataset} ({_setting(group.iloc[0])})"
        groups.append((title, pd.DataFrame(rows), metric_names))
    return groups


def _setting(row: pd.Series) -> str:
    """``"getnext_nyc; next-POI, query_time hidden"``: the protocol and, when the runs
    recorded them, the task and what the queries knew (a board's title)."""
    protocol = str(row["protocol"])
    query_time = row.get("query_time")
    task = row.get("task")
    if not isinstance(query_time, str):  # a board read from a CSV of before query_time
        return protocol
    what = f"query_time {query_time}"
    return f"{protocol}; {task}, {what}" if isinstance(task, str) else f"{protocol}; {what}"


def to_markdown(board: pd.DataFrame) -> str:
    """Markdown tables (one per group): ``mean ± std`` (best in bold), ``p`` columns ``t / W``
    with the reference baseline and their Holm adjustments."""
    parts = []
    for title, rows, names in _wide(board):
        header = ["model", "seeds"]
        for m in names:
            header += [m, f"p {m} (t / W)", f"Holm p {m} (t / W)"]
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for _, row in rows.iterrows():
            cells = [str(row["model"]), str(row["seeds"])]
            for m in names:
                mean, std, is_best = row[m]
                cell = f"{mean:.4f} ± {_std(std)}"
                p_t, p_w, ref = row[f"p {m}"]
                h_t, h_w = row[f"holm {m}"]
                vs = f" vs {ref}" if ref else ""
                cells += [f"**{cell}**" if is_best else cell, f"{_p(p_t)} / {_p(p_w)}{vs}"]
                cells.append(f"{_p(h_t)} / {_p(h_w)}")
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    note = (
        "p: two-sided paired t-test (t) and Wilcoxon signed-rank test (W) on per-query values "
        "averaged over seeds, against the named best baseline of each metric; Holm: the same "
        "p-values adjusted by Holm's step-down method over the distinct pairs compared on the "
        "metric (one family per metric and test). "
        "± n/a: one seed, no spread."
    )
    return "\n\n".join(parts) + "\n\n" + note + "\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&")):
        text = text.replace(a, b)
    return text.replace("#", r"\#")


def to_latex(board: pd.DataFrame) -> str:
    """LaTeX ``tabular`` environments (booktabs), one per group, as in :func:`to_markdown`."""
    parts = []
    for title, rows, names in _wide(board):
        spec = "lr" + "rll" * len(names)
        header = ["Model", "Seeds"]
        for m in names:
            header += [_tex(m), "$p$ (t / W)", "Holm $p$ (t / W)"]
        lines = [
            f"% {_tex(title)}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(header) + r" \\",
            r"\midrule",
        ]
        for _, row in rows.iterrows():
            cells = [_tex(str(row["model"])), str(row["seeds"])]
            for m in names:
                mean, std, is_best = row[m]
                value = f"{mean:.4f}"
                value = rf"\textbf{{{value}}}" if is_best else value
                p_t, p_w, ref = row[f"p {m}"]
                h_t, h_w = row[f"holm {m}"]
                cells += [
                    rf"{value} $\pm$ {_std(std)}",
                    f"{_p(p_t)} / {_p(p_w)}" + (f" ({_tex(ref)})" if ref else ""),
                    f"{_p(h_t)} / {_p(h_w)}",
                ]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _group_split(group: pd.DataFrame, root: str | Path | None) -> Any:
    """The split the runs of ``group`` were evaluated on, rebuilt from their ``dataset``
    configuration and checked against the data summary of their fingerprints."""
    from tgraph.config import DatasetConfig, validate_model
    from tgraph.data.protocols import prepare_split

    runs = [RunDir(path) for path in group["path"]]
    first = runs[0].read_config()["dataset"]
    for run in runs[1:]:
        if run.read_config()["dataset"] != first:
            raise CompareError(
                f"{run.path}: its dataset section differs from that of {runs[0].path}; "
                "stratified results need one split per group (fix: compare them separately, "
                "or leave out stratified results)"
            )
    split = prepare_split(validate_model(DatasetConfig, first, "dataset"), root)
    rebuilt = json.loads(canonical_json(split.summary()))
    for run in runs:
        fingerprint = run.read_fingerprint()
        if fingerprint is not None and fingerprint.values.get("data") != rebuilt:
            raise CompareError(
                f"{run.path}: the split rebuilt from its dataset section is not the one it was "
                f"evaluated on (recorded {fingerprint.values.get('data')}, rebuilt {rebuilt}) "
                "(fix: point the data root at the data of the runs, or leave out stratified "
                "results)"
            )
    return split


def stratified_board(
    runs: pd.DataFrame,
    metrics: list[str] | None = None,
    *,
    root: str | Path | None = None,
    n_boot: int = 1000,
) -> pd.DataFrame:
    """The test metrics of every model stratified by context, tidy: one row per (experiment,
    dataset, model, stratum, level, metric) with ``n`` (queries), ``mean`` and the bootstrap
    interval ``ci_low``/``ci_high`` of the model's per-query values averaged over its seeds.

    The levels of one stratum are the same queries for every model of a group (one split),
    so the models compare level by level. ``root``: the data root of the rebuilt splits.
    """
    from tgraph.analysis.stratify import query_strata, stratified_metrics

    out = []
    for (experiment, dataset), group in runs.groupby(["experiment", "dataset"], sort=False):
        names = _metric_names(group, metrics, f"{experiment}/{dataset}")
        strata = query_strata(_group_split(group, root), "test")
        for model, table in _seed_means(group, names).items():
            rows = stratified_metrics(table.reset_index(), strata, metrics=names, n_boot=n_boot)
            rows.insert(0, "model", model)
            rows.insert(0, "dataset", dataset)
            rows.insert(0, "experiment", experiment)
            out.append(rows)
    return pd.concat(out, ignore_index=True)


def stratified_markdown(table: pd.DataFrame) -> str:
    """Markdown tables of :func:`stratified_board`: per group, metric and stratum, one row per
    level with the models side by side (``mean [ci_low, ci_high]``, the best mean in bold)."""
    parts = []
    keys = ["experiment", "dataset", "metric", "stratum"]
    for (experiment, dataset, metric, stratum), part in table.groupby(keys, sort=False):
        models = list(dict.fromkeys(part["model"]))
        # one split per group: a level holds the same queries for every model
        cells_of = part.set_index(["level", "model"])
        header = [stratum, "queries", *models]
        lines = [
            f"### {experiment} / {dataset}: {metric} by {stratum}",
            "",
            "| " + " | ".join(header) + " |",
            "|---" * len(header) + "|",
        ]
        for level in dict.fromkeys(part["level"]):
            level_rows = cells_of.loc[level]
            cells = [str(level), str(int(level_rows["n"].iloc[0]))]
            best = level_rows["mean"].max()
            for model in models:
                r = level_rows.loc[model]
                cell = f"{r['mean']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
                cells.append(f"**{cell}**" if np.isclose(r["mean"], best) else cell)
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    note = (
        "Per-query test values averaged over each model's seeds; [ci_low, ci_high]: percentile "
        "bootstrap interval of the level's mean over its queries."
    )
    return "\n\n".join(parts) + "\n\n" + note + "\n"


def plot_stratified(table: pd.DataFrame, metric: str, path: str | Path) -> Path:
    """One panel per stratum of one group's :func:`stratified_board` rows: for each level, the
    models' ``metric`` as bars side by side with their bootstrap intervals."""
    from tgraph.analysis.plots import new_figure, save_png

    rows = table[table["metric"] == metric]
    strata = list(dict.fromkeys(rows["stratum"]))
    models = list(dict.fromkeys(rows["model"]))
    widest = max(rows.groupby("stratum")["level"].nunique())
    fig, axes = new_figure(
        len(strata),
        1,
        width=min(16.0, max(6.0, 0.15 * widest * len(models) + 2)),
        height=2.6,
        squeeze=False,
        layout="constrained",
    )
    width = 0.8 / len(models)
    for ax, stratum in zip(axes[:, 0], strata, strict=True):
        part = rows[rows["stratum"] == stratum]
        levels = list(dict.fromkeys(part["level"]))
        x = np.arange(len(levels))
        for k, model in enumerate(models):
            r = part[part["model"] == model].set_index("level").reindex(levels)
            mean = r["mean"].to_numpy(float)
            error = np.vstack(
                [mean - r["ci_low"].to_numpy(float), r["ci_high"].to_numpy(float) - mean]
            )
            ax.bar(
                x + (k - (len(models) - 1) / 2) * width,
                mean,
                width,
                yerr=error,
                capsize=2,
                label=model,
            )
        ax.set_xticks(x, [str(level) for level in levels], rotation=45 if len(levels) > 8 else 0)
        ax.set_xlabel(stratum)
        ax.set_ylabel(metric)
    axes[0, 0].legend(fontsize=7, ncols=min(len(models), 4))
    axes[0, 0].set_title(f"test {metric} by context (bootstrap CI)")
    return save_png(fig, path)


def compare(
    runs_dir: str | Path,
    out_dir: str | Path | None = None,
    metrics: list[str] | None = None,
    baselines: list[str] | None = None,
    *,
    allow_mixed: bool = False,
    strata: bool = True,
    root: str | Path | None = None,
    n_boot: int = 1000,
) -> dict[str, Any]:
    """Collect ``runs_dir``, write the board (CSV, Markdown, LaTeX), learning curves and (with
    ``strata``) stratified results into ``out_dir`` (default ``runs_dir``); return the board
    (``board``), the stratified table (``strata``, or None), the tables written (``files``)
    and the PNGs (``curves``, ``strata_plots``). ``allow_mixed``: see the module docstring;
    ``root``: the data root, to rebuild the splits for stratification; ``n_boot``: bootstrap
    resamples of its intervals."""
    from tgraph.study_plots import plot_curves

    runs = collect_runs(runs_dir, allow_mixed=allow_mixed)
    board = leaderboard(runs, metrics, baselines)
    table = stratified_board(runs, metrics, root=root, n_boot=n_boot) if strata else None
    out = Path(out_dir or runs_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "leaderboard.csv", "md": out / "leaderboard.md"}
    files["tex"] = out / "leaderboard.tex"
    board.to_csv(files["csv"], index=False)
    files["md"].write_text(to_markdown(board))
    files["tex"].write_text(to_latex(board))
    curves, strata_plots = [], []
    for (experiment, dataset), group in runs.groupby(["experiment", "dataset"], sort=False):
        by_model: dict[str, list] = {}
        for r in group.itertuples():
            curve = RunDir(r.path).read_curve()
            if curve:
                by_model.setdefault(r.model, []).append(curve)
        target = out / f"curves_{experiment}_{dataset}.png"
        path = plot_curves(by_model, target, group["valid_metric"].iloc[0]) if by_model else None
        if path is not None:
            curves.append(path)
        if table is not None:
            part = table[(table["experiment"] == experiment) & (table["dataset"] == dataset)]
            for metric in dict.fromkeys(part["metric"]):
                name = f"strata_{experiment}_{dataset}_{metric.replace('@', '_at_')}.png"
                strata_plots.append(plot_stratified(part, metric, out / name))
    if table is not None:
        files["strata_csv"], files["strata_md"] = out / "stratified.csv", out / "stratified.md"
        table.to_csv(files["strata_csv"], index=False)
        files["strata_md"].write_text(stratified_markdown(table))
    log.info("leaderboard of %d runs written to %s", len(runs), out)
    return {
        "board": board,
        "strata": table,
        "files": files,
        "curves": curves,
        "strata_plots": strata_plots,
    }
