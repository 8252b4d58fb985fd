"""The flagship's ablations on NYC: each variant paired with the full model, over the seeds run.

Per-query test results of the full model (``../sthrec_nyc/sthrec_seed<k>.csv``) and of each
variant (``sthrec_<variant>_seed<k>.csv``), same split and seeds. A variant's row uses the seeds
it has; the full model's figures in that row use the same seeds. Mean ± std over seeds; paired
t-test and Wilcoxon signed-rank test (:func:`tgraph.compare.paired_tests`) on the per-query
values averaged over those seeds, Holm-adjusted per metric and test over the variants. Writes
``ablation.md``.

    python experiments/results/sthrec_nyc_ablation/paired.py
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.compare import holm, paired_tests

HERE = Path(__file__).parent
FULL = HERE.parent / "sthrec_nyc"
METRICS = ["acc@1", "acc@10", "mrr"]
VARIANTS = [
    ("no_locations", "without location (region) nodes: graph.locations false"),
    ("no_transition_edges", "without transition edges in the graph: graph.transitions false"),
    ("no_transition_prior", "without the transition prior: use_transition_prior false"),
    ("no_repeat", "without the repeat term: use_repeat false"),
    ("no_user_relation", "without the user relation (user nodes): use_user_relation false"),
    ("no_time_encoding", "without time encoding: use_time_encoding false"),
    ("no_distance", "without distance: use_distance false"),
]


def seeds_of(folder: Path, stem: str) -> list[int]:
    pattern = re.compile(rf"{stem}_seed(\d+)\.csv")
    return sorted(int(m.group(1)) for f in folder.iterdir() if (m := pattern.fullmatch(f.name)))


def load(folder: Path, stem: str, seeds: list[int]) -> list[pd.DataFrame]:
    return [pd.read_csv(folder / f"{stem}_seed{s}.csv").set_index("query") for s in seeds]


def mean_std(frames: list[pd.DataFrame], metric: str) -> str:
    values = np.array([f[metric].mean() for f in frames])
    spread = f" ± {values.std(ddof=1):.4f}" if len(values) > 1 else ""
    return f"{values.mean():.4f}{spread}"


def main() -> None:
    rows = []
    for name, label in VARIANTS:
        seeds = seeds_of(HERE, f"sthrec_{name}")
        variant, full = load(HERE, f"sthrec_{name}", seeds), load(FULL, "sthrec", seeds)
        for v, f in zip(variant, full):
            assert v.index.equals(f.index), name
        row: dict = {"variant": label, "seeds": ",".join(map(str, seeds))}
        for metric in METRICS:
            v_mean = sum(v[metric].to_numpy(float) for v in variant) / len(seeds)
            f_mean = sum(f[metric].to_numpy(float) for f in full) / len(seeds)
            p_t, p_w = paired_tests(v_mean, f_mean)
            row[metric], row[f"{metric} full"] = mean_std(variant, metric), mean_std(full, metric)
            row[f"{metric} diff"] = v_mean.mean() - f_mean.mean()
            row[f"{metric} p_t"], row[f"{metric} p_w"] = p_t, p_w
        rows.append(row)
    table = pd.DataFrame(rows)
    for metric in METRICS:
        for kind in ("p_t", "p_w"):
            table[f"{metric} {kind} holm"] = holm(table[f"{metric} {kind}"].to_numpy())
    cols = " | ".join(f"{m}: variant (full; diff; Holm p t / W)" for m in METRICS)
    lines = [f"| variant | seeds | {cols} |", "|---|---|" + "---|" * len(METRICS)]
    for r in table.to_dict("records"):
        cells = []
        for m in METRICS:
            p_t, p_w = r[f"{m} p_t holm"], r[f"{m} p_w holm"]
            cells.append(f"{r[m]} ({r[f'{m} full']}; {r[f'{m} diff']:+.4f}; {p_t:.2g} / {p_w:.2g})")
        lines.append(f"| {r['variant']} | {r['seeds']} | " + " | ".join(cells) + " |")
    (HERE / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
