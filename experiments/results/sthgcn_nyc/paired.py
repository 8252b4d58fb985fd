"""Paired tests on STHGCN's NYC data from the committed per-query results: the blended
flagship and the flagship each against the other models (per-query values averaged over each
model's seeds; t-test and Wilcoxon, Holm over the references; :func:`tgraph.compare.paired_table`).
Writes ``paired.md``.

    python experiments/results/sthgcn_nyc/paired.py
"""

from __future__ import annotations

from pathlib import Path

from tgraph.compare import paired_markdown, paired_table, seed_mean_per_query

HERE = Path(__file__).parent
METRICS = ["acc@1", "acc@5", "acc@10", "mrr"]
MODELS = {
    "sthrec_blend": sorted(HERE.glob("sthrec_blend_seed*.csv")),
    "sthrec": sorted(HERE.glob("sthrec_seed*.csv")),
    "revisit": [HERE.parent / "revisit" / "revisit_sthgcn_nyc.csv"],
    "sthgcn": sorted(HERE.glob("sthgcn_seed*.csv")),
    "getnext": sorted(HERE.glob("getnext_seed*.csv")),
}


def main() -> None:
    means = {name: seed_mean_per_query(paths, METRICS) for name, paths in MODELS.items() if paths}
    parts = []
    for ours, others in [
        ("sthrec_blend", ["revisit", "sthrec", "sthgcn", "getnext"]),
        ("sthrec", ["sthgcn", "getnext"]),
    ]:
        if ours not in means:
            continue
        refs = {
            f"{name} ({len(MODELS[name])} seeds)": means[name] for name in others if name in means
        }
        table = paired_table(means[ours], refs, METRICS)
        parts.append(f"## {ours} ({len(MODELS[ours])} seeds)\n\n" + paired_markdown(table, ours))
    text = "\n".join(parts)
    (HERE / "paired.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
