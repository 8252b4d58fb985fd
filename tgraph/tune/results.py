"""After the search: the trials table, ``best.yaml``, plots and re-training the best trials.

Every value is paired only with the settings that produced it: ``best.yaml``, ``selected.yaml``
and the re-trained configurations are the configurations the trials recorded when they ran
(a study named explicitly after an edit holds trials of several definitions), never the current
file with a trial's parameters pasted in. Where that cannot be done (a trial without a recorded
configuration, trials selected on different metrics or re-trained on different data) a
:class:`~tgraph.errors.StudyError` names the trials and the differing keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from tgraph.config import validate_config, validate_model
from tgraph.errors import StudyError
from tgraph.experiment import markdown_table, run_experiment
from tgraph.runs import RunDir, run_path
from tgraph.train.config import TrainConfig
from tgraph.train.distributed import Context
from tgraph.tune import group as groups
from tgraph.tune.search import CONFIG
from tgraph.tune.spec import StudySpec, differing_keys
from tgraph.tune.storage import OWNER, retried_from


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, values, params, worker, retried-from."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        for i, name in enumerate(["valid", "train_seconds"][: len(study.directions)]):
            row[name] = t.values[i] if t.values else np.nan
        row.update({f"param:{k}": v for k, v in t.params.items()})
        owner = t.user_attrs.get(OWNER)
        row["worker"] = None if owner is None else f"{owner['host']}:{owner['pid']}"
        row["retry_of"] = retried_from(t)
        rows.append(row)
    return pd.DataFrame(rows)


def trial_config(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """The experiment config ``trial`` ran (ready for ``tgraph run``)."""
    config = trial.user_attrs.get(CONFIG)
    if config is None:
        raise StudyError(
            f"trial {trial.number} of study {study.study_name} has no recorded configuration "
            "(an older tgraph ran it), so its value cannot be paired with settings: start a new "
            "study (leave 'study.name' unset)"
        )
    return config


def _merged_train(config: dict[str, Any]) -> dict[str, Any]:
    return {**config["train"], **config["models"][0]["train"]}


def _valid_metric(config: dict[str, Any]) -> str:
    return validate_model(TrainConfig, _merged_train(config), "train").valid_metric


def ranked_trials(study: optuna.Study, spec: StudySpec) -> list[FrozenTrial]:
    """Complete trials (the Pareto front if multi-objective), best validation first; they must
    have been selected on one validation metric."""
    if spec.multi_objective:
        pool = study.best_trials
    else:
        pool = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    metrics = {t.number: _valid_metric(trial_config(study, t)) for t in pool}
    if len(set(metrics.values())) > 1:
        raise StudyError(
            f"the trials of study {study.study_name} report different validation metrics "
            f"(key 'train.valid_metric': {metrics}): their values cannot be ranked together"
        )
    return sorted(pool, key=lambda t: (-t.values[0], t.number))


def export_best(study: optuna.Study, spec: StudySpec) -> Path:
    """Write ``best.yaml`` (the best trial's own configuration, for ``tgraph run``) and
    ``trials.csv`` (and ``pareto.csv`` if multi-objective)."""
    ranked = ranked_trials(study, spec)
    if not ranked:
        raise StudyError(f"study {study.study_name} has no complete trial to export")
    best = ranked[0]
    config = trial_config(study, best)
    folder = spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    trials_table(study).to_csv(folder / "trials.csv", index=False)
    if spec.multi_objective:
        pareto = [{"number": t.number, "values": list(t.values), **t.params} for t in ranked]
        pd.DataFrame(pareto).to_csv(folder / "pareto.csv", index=False)
    path = folder / "best.yaml"
    header = (
        f"# best trial {best.number} of study {study.study_name}: "
        f"valid {_valid_metric(config)} = {best.values[0]:.6f}\n"
        f"# run it: tgraph run --config {path}\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


def _retrain_config(study: optuna.Study, spec: StudySpec, top: list[FrozenTrial]) -> dict[str, Any]:
    """One experiment re-training the ``top`` trials, each with its own recorded model and
    trainer options, on the data they ran on (which must be the same for all)."""
    configs = [trial_config(study, t) for t in top]
    first = configs[0]
    for trial, config in zip(top[1:], configs[1:], strict=True):
        keys = differing_keys(first["dataset"], config["dataset"], "dataset")
        if keys:
            raise StudyError(
                f"trials {top[0].number} and {trial.number} of study {study.study_name} ran on "
                f"different data ({', '.join(keys)}), so they cannot be re-trained on one split: "
                "re-train each with 'tgraph run' on its configuration"
            )
    entries = [
        {**c["models"][0], "label": f"trial{t.number:04d}", "train": _merged_train(c)}
        for t, c in zip(top, configs, strict=True)
    ]
    e = spec.experiment
    return {
        **first,
        "experiment": e.experiment,
        "output_dir": str(spec.folder / "retrain"),
        "seeds": list(spec.options.retrain_seeds),
        "device": e.device,
        "metrics": list(e.metrics),
        "train": {},
        "models": entries,
    }


def retrain_top(
    study: optuna.Study,
    spec: StudySpec,
    root: str | Path | None = None,
    group: Context | None = None,
) -> pd.DataFrame:
    """Re-train the ``top_k`` trials with ``retrain_seeds``; choose on mean validation.

    Writes run directories under ``<study folder>/retrain``, ``retrain.csv`` / ``retrain.md``
    and ``selected.yaml``; returns the table (one row per configuration, ``selected`` marks
    the choice). With an active ``group`` (this is its rank 0), the runs train on all its
    ranks, as the trials did (:mod:`tgraph.tune.group`).
    """
    opts = spec.options
    top = ranked_trials(study, spec)[: opts.top_k]
    if not top:
        raise StudyError(f"study {study.study_name} has no complete trial to re-train")
    raw = _retrain_config(study, spec, top)
    config = validate_config(raw)
    if group is not None and group.active:
        groups.send(groups.Order("run", config=raw), group)
    metric = _valid_metric(trial_config(study, top[0]))
    summary = run_experiment(config, root).set_index("model")
    where = (config.output_dir, config.experiment, config.dataset.name)
    rows = []
    for trial, entry in zip(top, config.models, strict=True):
        label = entry.run_name
        values = [
            RunDir(run_path(*where, label, seed)).read_metrics().valid[metric]
            for seed in opts.retrain_seeds
        ]
        row = {"model": label, "trial": trial.number, "search_valid": trial.values[0]}
        row["valid_mean"] = float(np.mean(values))
        row["valid_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        row.update(summary.loc[label].to_dict(), seeds=len(values))
        rows.append(row)
    table = pd.DataFrame(rows)
    chosen = int(table["valid_mean"].to_numpy().argmax())
    table["selected"] = np.arange(len(table)) == chosen
    table.to_csv(spec.folder / "retrain.csv", index=False)
    lines = [
        f"Top {len(top)} trials of study {study.study_name}, re-trained with seeds "
        f"{list(opts.retrain_seeds)}; selected on mean validation {metric}: "
        f"{table.loc[chosen, 'model']} (validation {table.loc[chosen, 'valid_mean']:.4f}).",
        "",
        "Columns: mean validation value (the selection criterion), then test metrics.",
        "",
        markdown_table(table, ["valid", *config.metrics]),
    ]
    (spec.folder / "retrain.md").write_text("\n".join(lines) + "\n")
    (spec.folder / "selected.yaml").write_text(
        f"# selected after re-training: trial {top[chosen].number}\n"
        + yaml.safe_dump(trial_config(study, top[chosen]), sort_keys=False)
    )
    return table


def finish_study(
    study: optuna.Study,
    spec: StudySpec,
    root: str | Path | None = None,
    retrain: bool = True,
    group: Context | None = None,
) -> dict[str, Any]:
    """Export ``best.yaml``, draw the plots and (``retrain``) re-train the top configurations
    (on every rank of an active ``group``, of which this is rank 0)."""
    from tgraph.study_plots import plot_study

    best = export_best(study, spec)
    plots = plot_study(study, spec.folder / "plots", target_name=f"valid {spec.metric}")
    out: dict[str, Any] = {"best_config": best, "plots": plots}
    if retrain and spec.options.top_k > 0:
        out["retrain"] = retrain_top(study, spec, root, group)
    return out
