"""Exploratory analysis of spatio-temporal interaction data: tidy tables plus paper-ready plots."""

from tgraph.analysis import patterns, spatial, temporal
from tgraph.analysis.evolution import (
    Snapshot,
    assign_windows,
    drift_summary,
    embedding_drift,
    model_embeddings,
    null_drift,
    plot_drift_distribution,
    plot_user_preferences,
    preference_drift,
    preference_table,
    shuffle_times,
    snapshot_drift,
    snapshot_embeddings,
)
from tgraph.analysis.plots import new_figure, save_png, style
from tgraph.analysis.stratify import (
    STRATA,
    bootstrap_ci,
    load_per_query,
    plot_strata,
    query_strata,
    stratified_metrics,
)

__all__ = [
    "STRATA",
    "Snapshot",
    "assign_windows",
    "bootstrap_ci",
    "drift_summary",
    "embedding_drift",
    "load_per_query",
    "model_embeddings",
    "new_figure",
    "null_drift",
    "patterns",
    "plot_drift_distribution",
    "plot_strata",
    "plot_user_preferences",
    "preference_drift",
    "preference_table",
    "query_strata",
    "save_png",
    "shuffle_times",
    "snapshot_drift",
    "snapshot_embeddings",
    "spatial",
    "stratified_metrics",
    "style",
    "temporal",
]
