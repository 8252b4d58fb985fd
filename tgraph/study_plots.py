"""PNG plots of studies (``optuna.visualization.matplotlib``) and learning curves of runs.

:func:`plot_study` draws the optimisation history, the parameter importances, the
intermediate (per-epoch) values, the parallel coordinates and, for a multi-objective study,
the Pareto front (plots that a study cannot support yet, e.g. importances before two trials
finished, are skipped with a log line). :func:`plot_curves` draws training loss and
validation metric per epoch from the curves of run directories, one line per model: the mean
over its seeds with a band.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
import pandas as pd  # noqa: E402
from optuna.visualization import matplotlib as ovm  # noqa: E402

from tgraph.runs import CurveRecord  # noqa: E402

log = logging.getLogger(__name__)


def _save(draw: Callable[[], Any], path: Path) -> Path | None:
    """Run ``draw`` (returns Axes or an array of Axes) and save its figure as ``path``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message=".*computes the importances of params")
        warnings.filterwarnings("ignore", message=".*identical low and high ylims")
        try:
            axes = draw()
        except (ValueError, RuntimeError) as error:
            log.info("plot %s skipped: %s", path.name, error)
            plt.close("all")
            return None
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    figure = first.get_figure()
    figure.set_size_inches(8, 5)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_study(study: optuna.Study, out_dir: str | Path, target_name: str = "valid") -> list[Path]:
    """Write the study's PNG plots into ``out_dir``; return the files written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    multi = len(study.directions) > 1
    first = (lambda t: t.values[0]) if multi else None
    names = [target_name, "train seconds"] if multi else None
    draws: dict[str, Callable[[], Any]] = {
        "history": lambda: ovm.plot_optimization_history(
            study, target=first, target_name=target_name
        ),
        # with a target, importances are those of achieving low values: negate the metric
        "importances": lambda: ovm.plot_param_importances(
            study, target=(lambda t: -t.values[0]) if multi else None, target_name=target_name
        ),
        "parallel_coordinates": lambda: ovm.plot_parallel_coordinate(
            study, target=first, target_name=target_name
        ),
    }
    if multi:
        draws["pareto_front"] = lambda: ovm.plot_pareto_front(study, target_names=names)
    else:
        draws["intermediate_values"] = lambda: ovm.plot_intermediate_values(study)
    written = [_save(draw, out / f"{name}.png") for name, draw in draws.items()]
    return [path for path in written if path is not None]


def curve_band(
    runs: list[list[CurveRecord]], value: Callable[[CurveRecord], float | None]
) -> pd.DataFrame:
    """Per epoch, the mean and sample standard deviation over ``runs`` (the curves of one
    model's seeds) of ``value(record)`` (records where it is None are left out), and ``n``, the
    number of seeds with a value: after a seed stops early, the band is over the seeds left.
    Columns ``epoch, mean, std, n`` (``std`` NaN where ``n`` is 1)."""
    rows = [
        (r.epoch, seed, v)
        for seed, records in enumerate(runs)
        for r in records
        if (v := value(r)) is not None
    ]
    frame = pd.DataFrame(rows, columns=["epoch", "seed", "value"])
    grouped = frame.groupby("epoch", sort=True)["value"]
    return pd.DataFrame(
        {"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.size()}
    ).reset_index()


def plot_curves(
    curves: dict[str, list[list[CurveRecord]]], path: str | Path, metric: str
) -> Path | None:
    """Training loss (refit epochs left out) and validation ``metric`` per epoch, one line per
    model (``label -> the curves of its seeds``, e.g. :meth:`tgraph.runs.RunDir.read_curve`):
    the mean over seeds with a band of one standard deviation (:func:`curve_band`).

    Returns ``None`` (and writes nothing) when no run has a loss or that metric.
    """
    figure, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(11, 4))
    drawn = False
    panels = (
        (loss_ax, lambda r: None if r.refit else r.loss),
        (metric_ax, lambda r: r.valid.get(metric)),
    )
    for k, (label, runs) in enumerate(curves.items()):
        color = f"C{k % 10}"
        for ax, value in panels:
            band = curve_band(runs, value)
            if band.empty:
                continue
            drawn = True
            seeds = int(band["n"].max())
            ax.plot(
                band["epoch"],
                band["mean"],
                color=color,
                marker="o" if len(band) == 1 else None,
                label=f"{label} ({seeds} seed{'s' if seeds > 1 else ''})",
            )
            spread = band["std"].fillna(0.0)
            ax.fill_between(
                band["epoch"], band["mean"] - spread, band["mean"] + spread, color=color, alpha=0.2
            )
    if not drawn:
        plt.close(figure)
        return None
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss (mean ± 1 s.d.)")
    metric_ax.set(
        xlabel="epoch", ylabel=f"valid {metric}", title=f"validation {metric} (mean ± 1 s.d.)"
    )
    for ax in (loss_ax, metric_ax):
        ax.grid(alpha=0.3)
    metric_ax.legend(fontsize=7, loc="best")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path
