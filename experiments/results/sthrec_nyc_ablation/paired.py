"""The flagship's ablations on NYC (seed 0): each variant paired with the full model.

Per-query test results of the full model (``../sthrec_nyc/sthrec_seed0.csv``) and of each
variant (``sthrec_<variant>_seed0.csv``), same split and seed; paired t-test and Wilcoxon
signed-rank test (:func:`tgraph.compare.paired_tests`), Holm-adjusted per metric and test over
the variants. Writes ``ablation.md``.

    python experiments/results/sthrec_nyc_ablation/paired.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tgraph.compare import holm, paired_tests

HERE = Path(__file__).parent
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


def main() -> None:
    full = pd.read_csv(HERE.parent / "sthrec_nyc" / "sthrec_seed0.csv").set_index("query")
    rows = []
    for name, label in VARIANTS:
        variant = pd.read_csv(HERE / f"sthrec_{name}_seed0.csv").set_index("query")
        assert variant.index.equals(full.index), name
        row = {"variant": label}
        for metric in METRICS:
            p_t, p_w = paired_tests(variant[metric].to_numpy(float), full[metric].to_numpy(float))
            row[metric] = variant[metric].mean()
            row[f"{metric} diff"] = variant[metric].mean() - full[metric].mean()
            row[f"{metric} p_t"], row[f"{metric} p_w"] = p_t, p_w
        rows.append(row)
    table = pd.DataFrame(rows)
    for metric in METRICS:
        for kind in ("p_t", "p_w"):
            table[f"{metric} {kind} holm"] = holm(table[f"{metric} {kind}"].to_numpy())
    head = [
        "| variant (seed 0) | " + " | ".join(f"{m} (diff; Holm p t / W)" for m in METRICS) + " |"
    ]
    head.append("|---|" + "---|" * len(METRICS))
    head.append("| full sthrec | " + " | ".join(f"{full[m].mean():.4f}" for m in METRICS) + " |")
    for r in table.to_dict("records"):
        cells = []
        for m in METRICS:
            p_t, p_w = r[f"{m} p_t holm"], r[f"{m} p_w holm"]
            cells.append(f"{r[m]:.4f} ({r[f'{m} diff']:+.4f}; {p_t:.2g} / {p_w:.2g})")
        head.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    (HERE / "ablation.md").write_text("\n".join(head) + "\n")
    print("\n".join(head))


if __name__ == "__main__":
    main()
