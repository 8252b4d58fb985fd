"""Paired tests of sthrec blended with the revisit rule on ``gowalla_mat`` (``paired.md``)
against the rule, sthrec alone and the board's learned models, from the committed per-query
test results (the same 1,443 queries): per-query values averaged over each model's seeds,
then the paired t-test and the Wilcoxon signed-rank test (:func:`tgraph.compare.paired_tests`),
Holm-adjusted per metric and test kind over the references.

    python experiments/results/sthrec_gowalla_mat/paired.py
"""

from __future__ import annotations

from pathlib import Path

from tgraph.compare import paired_markdown, paired_table, seed_mean_per_query

HERE = Path(__file__).parent
RESULTS = HERE.parent
METRICS = ["acc@1", "acc@5", "acc@10", "mrr"]


def seeds(paths: list[Path]) -> str:
    return ", ".join(p.name.split("_seed")[1].split("_")[0] for p in paths)


def main() -> None:
    blend_files = sorted(HERE.glob("sthrec_blend_seed*_per_query.csv"))
    blend = seed_mean_per_query(blend_files, METRICS)
    files = {
        "revisit (deterministic)": [RESULTS / "revisit/revisit_gowalla_mat.csv"],
        "sthrec": sorted(HERE.glob("sthrec_seed*_per_query.csv")),
        "sasrec": sorted((RESULTS / "gowalla_mat").glob("sasrec_seed*_per_query.csv")),
        "flashback_h64": sorted(
            (RESULTS / "gowalla_mat").glob("flashback_h64_seed*_per_query.csv")
        ),
    }
    refs = {
        (name if "revisit" in name else f"{name} (seeds {seeds(paths)})"): seed_mean_per_query(
            paths, METRICS
        )
        for name, paths in files.items()
    }
    text = paired_markdown(
        paired_table(blend, refs, METRICS), f"sthrec_blend (seeds {seeds(blend_files)})"
    )
    (HERE / "paired.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
