"""Paired tests of the non-learned ``revisit`` baseline against the committed per-query test
results of the learned models on the same queries (time hidden), one table per preset.

Per-query values are averaged over each model's seeds (revisit draws nothing at random: one
run), then the paired t-test and Wilcoxon signed-rank test, Holm-adjusted over the references
per metric and test (:func:`tgraph.compare.paired_table`). Writes ``paired.md``.

    python experiments/results/revisit/paired.py
"""

from __future__ import annotations

from pathlib import Path

from tgraph.compare import paired_markdown, paired_table, seed_mean_per_query

HERE = Path(__file__).parent
RESULTS = HERE.parent
METRICS = ["acc@1", "acc@5", "acc@10", "mrr"]


def _seeds(folder: str, pattern: str) -> list[Path]:
    return sorted((RESULTS / folder).glob(pattern))


PRESETS = {
    "sthgcn_nyc": {
        "sthrec (seeds 0-4)": _seeds("sthgcn_nyc", "sthrec_seed*.csv"),
        "tgraph STHGCN (seeds 0-4)": _seeds("sthgcn_nyc", "sthgcn_seed*.csv"),
        "tgraph GETNext (its seeds so far)": _seeds("sthgcn_nyc", "getnext_seed*.csv"),
    },
    "getnext_nyc": {
        "sthrec (seeds 0-4)": _seeds("sthrec_nyc", "sthrec_seed*.csv"),
        "sasrec (seeds 0-2)": _seeds("nyc_getnext", "sasrec_seed*.csv"),
        "flashback_h64 (seeds 0-4)": _seeds("flashback_nyc", "flashback_h64_seed*.csv"),
        "markov": _seeds("nyc_getnext", "markov_seed0.csv"),
    },
    "gowalla_mat": {
        "sthrec (seeds 0-2)": _seeds("sthrec_gowalla_mat", "sthrec_seed*_per_query.csv"),
        "sasrec (seeds 0-2)": _seeds("gowalla_mat", "sasrec_seed*_per_query.csv"),
        "flashback_h64 (seeds 0-2)": _seeds("gowalla_mat", "flashback_h64_seed*_per_query.csv"),
        "markov": _seeds("gowalla_mat", "markov_seed0_per_query.csv"),
    },
}


def main() -> None:
    parts = []
    for preset, references in PRESETS.items():
        ours = seed_mean_per_query([HERE / f"revisit_{preset}.csv"], METRICS)
        refs = {name: seed_mean_per_query(paths, METRICS) for name, paths in references.items()}
        table = paired_table(ours, refs, METRICS)
        parts.append(
            f"## {preset} ({len(ours)} test queries)\n\n" + paired_markdown(table, "revisit")
        )
    text = "\n".join(parts)
    (HERE / "paired.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
