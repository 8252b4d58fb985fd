"""Leaderboards from run directories: models x datasets x seeds, with paired significance tests.

Every finished run directory below a folder (see :mod:`tgraph.runs`; runs moved aside by
``--overwrite`` excluded) is collected and grouped by (experiment, dataset). Within a group,
one row is one **configuration**: a model label and a run fingerprint. The runs of one label
must share one fingerprint (same resolved configuration, same split); otherwise the board is
refused, naming the folders of each configuration, unless ``allow_mixed``, which gives each
configuration its own row labelled ``<label> [<short fingerprint>]``. Seeds are counted as
distinct seeds (two runs of one seed in a row are refused). For each group and test metric the
board gives the mean and sample standard deviation over seeds and two two-sided paired tests
of each model against the **best baseline** for that metric (the baseline with the highest
mean, the model itself excluded):

* the paired t-test and the Wilcoxon signed-rank test (``scipy.stats``), on the per-query
  values of the two models, each first averaged over that model's seeds; queries are paired
  by their ``query`` id, and both models must have ranked the same queries (same split).

No correction for multiple comparisons is applied. Outputs: ``leaderboard.csv`` (tidy),
``leaderboard.md``, ``leaderboard.tex`` and one learning-curve PNG per group.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from tgraph.errors import CompareError, RunDirError
from tgraph.runs import RunDir

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
    return _one_configuration_per_row(pd.DataFrame(rows), allow_mixed)


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


def _per_query(paths: list[str], metric: str) -> pd.DataFrame:
    """Per-query ``metric`` averaged over the runs in ``paths`` (index: query; columns: user,
    value); the runs must have ranked the same queries."""
    tables: list[pd.DataFrame] = []
    for path in paths:
        run = RunDir(path)
        if not run.layout.per_query.is_file():
            raise CompareError(
                f"{run.layout.per_query} not found: significance tests need per-query results"
            )
        table = run.read_per_query(["query", "user", metric]).set_index("query")
        if tables and not (
            table.index.equals(tables[0].index) and (table["user"] == tables[0]["user"]).all()
        ):
            raise CompareError(
                f"{run.layout.per_query}: its queries differ from those of {paths[0]}"
            )
        tables.append(table)
    values = np.mean([t[metric].to_numpy(dtype=float) for t in tables], axis=0)
    return pd.DataFrame({"user": tables[0]["user"], "value": values}, index=tables[0].index)


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


def leaderboard(
    runs: pd.DataFrame, metrics: list[str] | None = None, baselines: list[str] | None = None
) -> pd.DataFrame:
    """The tidy board: one row per (experiment, dataset, model, metric) with seeds, mean, std,
    the reference baseline, the difference of means and the two p-values.

    ``baselines`` (default: every model of the group) are the models a reference is chosen
    from; ``metrics`` default to the test metrics every run of the group has.
    """
    out = []
    for (experiment, dataset), group in runs.groupby(["experiment", "dataset"], sort=False):
        available = [c[5:] for c in group.columns if c.startswith("test:")]
        available = [m for m in available if group[f"test:{m}"].notna().all()]
        names = [m.lower() for m in (metrics or available)]
        missing = sorted(set(names) - set(available))
        if missing:
            raise CompareError(
                f"{experiment}/{dataset}: metric(s) {missing} missing from some run; "
                f"available: {available}"
            )
        models = list(dict.fromkeys(group["model"]))
        pool = [m for m in models if baselines is None or m in baselines]
        for metric in names:
            by_model = {
                m: group.loc[group["model"] == m, f"test:{metric}"].to_numpy(float) for m in models
            }
            means = {m: float(v.mean()) for m, v in by_model.items()}
            per_query = {}
            for model in models:
                paths = list(group.loc[group["model"] == model, "path"])
                per_query[model] = _per_query(paths, metric)
            for model in models:
                values = by_model[model]
                row: dict[str, Any] = {
                    "experiment": experiment,
                    "dataset": dataset,
                    "protocol": group["protocol"].iloc[0],
                    "model": model,
                    "metric": metric,
                    "seeds": int(group.loc[group["model"] == model, "seed"].nunique()),
                    "mean": means[model],
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
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
                out.append(row)
    return pd.DataFrame(out)


def _p(value: float) -> str:
    return "–" if np.isnan(value) else f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


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
            rows.append(row)
        title = f"{experiment} / {dataset} ({group['protocol'].iloc[0]})"
        groups.append((title, pd.DataFrame(rows), metric_names))
    return groups


def to_markdown(board: pd.DataFrame) -> str:
    """Markdown tables (one per group): ``mean ± std`` (best in bold) and ``p`` columns
    ``t / W`` with the reference baseline."""
    parts = []
    for title, rows, names in _wide(board):
        header = ["model", "seeds"]
        for m in names:
            header += [m, f"p {m} (t / W)"]
        lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for _, row in rows.iterrows():
            cells = [str(row["model"]), str(row["seeds"])]
            for m in names:
                mean, std, is_best = row[m]
                cell = f"{mean:.4f} ± {std:.4f}"
                p_t, p_w, ref = row[f"p {m}"]
                vs = f" vs {ref}" if ref else ""
                cells += [f"**{cell}**" if is_best else cell, f"{_p(p_t)} / {_p(p_w)}{vs}"]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    note = (
        "p: two-sided paired t-test (t) and Wilcoxon signed-rank test (W) on per-query values "
        "averaged over seeds, against the named best baseline of each metric."
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
        spec = "lr" + "rl" * len(names)
        header = ["Model", "Seeds"]
        for m in names:
            header += [_tex(m), "$p$ (t / W)"]
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
                cells += [
                    rf"{value} $\pm$ {std:.4f}",
                    f"{_p(p_t)} / {_p(p_w)}" + (f" ({_tex(ref)})" if ref else ""),
                ]
            lines.append(" & ".join(cells) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def compare(
    runs_dir: str | Path,
    out_dir: str | Path | None = None,
    metrics: list[str] | None = None,
    baselines: list[str] | None = None,
    *,
    allow_mixed: bool = False,
) -> dict[str, Any]:
    """Collect ``runs_dir``, write the board (CSV, Markdown, LaTeX) and learning curves into
    ``out_dir`` (default ``runs_dir``); return the board and the files written.
    ``allow_mixed``: see the module docstring."""
    from tgraph.study_plots import plot_curves

    runs = collect_runs(runs_dir, allow_mixed=allow_mixed)
    board = leaderboard(runs, metrics, baselines)
    out = Path(out_dir or runs_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"csv": out / "leaderboard.csv", "md": out / "leaderboard.md"}
    files["tex"] = out / "leaderboard.tex"
    board.to_csv(files["csv"], index=False)
    files["md"].write_text(to_markdown(board))
    files["tex"].write_text(to_latex(board))
    curves = []
    for (experiment, dataset), group in runs.groupby(["experiment", "dataset"], sort=False):
        labelled = {
            f"{r.model}/seed{r.seed}": RunDir(r.path).read_curve() for r in group.itertuples()
        }
        labelled = {label: curve for label, curve in labelled.items() if curve}
        target = out / f"curves_{experiment}_{dataset}.png"
        path = plot_curves(labelled, target, group["valid_metric"].iloc[0]) if labelled else None
        if path is not None:
            curves.append(path)
    log.info("leaderboard of %d runs written to %s", len(runs), out)
    return {"board": board, "files": files, "curves": curves}
