"""A tiny experiment for run-directory tests: synthetic data, one small BPR-MF, a few epochs."""

from __future__ import annotations

from pathlib import Path

from tgraph.config import ExperimentConfig, load_config

TINY = [
    "experiment=t",
    "seeds=[0]",
    "dataset.options={n_users: 60, n_pois: 80, n_events: 2000, days: 20, seed: 3}",
    "models=[{name: bprmf, config: {embedding_dim: 8}}]",
    "train={epochs: 2, batch_size: 256, lr: 0.01, valid_metric: mrr, metrics: [mrr],"
    " progress: false}",
    "metrics=[acc@10, mrr]",
]


def tiny(output_dir: Path, *overrides: str) -> ExperimentConfig:
    return load_config([], [*TINY, f"output_dir={output_dir}", *overrides])


def run_of(output_dir: Path, label: str = "bprmf", seed: int = 0) -> Path:
    return output_dir / "t" / "synthetic" / label / f"seed{seed}"
