"""Paired tests of sthrec (``paired.md``, ``paired.csv``) and of sthrec blended with the revisit
rule (``paired_blend.md``) against models whose per-query test results are committed files.

``tgraph compare`` needs run directories; the committed per-query CSVs of earlier runs on the
same split (getnext_nyc, query_time hidden, the same 1,433 test queries) are compared here with
tgraph's own functions: per-query values averaged over each model's seeds, then the paired
t-test and the Wilcoxon signed-rank test (:func:`tgraph.compare.paired_tests`), Holm-adjusted
per metric and test kind over the references.

    python experiments/results/sthrec_nyc/paired.py
"""

from __future__ import annotations

from pathlib import Path

from tgraph.compare import paired_markdown, paired_table, seed_mean_per_query

HERE = Path(__file__).parent
RESULTS = HERE.parent
METRICS = ["acc@1", "acc@5", "acc@10", "mrr"]
REFERENCES = {
    "sasrec (seeds 0-2, nyc_getnext)": sorted((RESULTS / "nyc_getnext").glob("sasrec_seed*.csv")),
    "flashback_h64 (seeds 0-4, flashback_nyc)": sorted(
        (RESULTS / "flashback_nyc").glob("flashback_h64_seed*.csv")
    ),
    "sthgcn (seeds 0-4, this config)": sorted(HERE.glob("sthgcn_seed*.csv")),
    "getnext (seeds "
    + ", ".join(p.stem.removeprefix("getnext_seed") for p in sorted(HERE.glob("getnext_seed*.csv")))
    + ", this config)": sorted(HERE.glob("getnext_seed*.csv")),
    "sthrec before #13 §4 (seeds 0-2, nyc_getnext)": sorted(
        (RESULTS / "nyc_getnext").glob("sthrec_seed*.csv")
    ),
}


def main() -> None:
    ours = seed_mean_per_query(sorted(HERE.glob("sthrec_seed*.csv")), METRICS)
    refs = {name: seed_mean_per_query(paths, METRICS) for name, paths in REFERENCES.items()}
    table = paired_table(ours, refs, METRICS)
    table.rename(columns={"ours": "sthrec"}).to_csv(
        HERE / "paired.csv", index=False, float_format="%.4g"
    )
    text = paired_markdown(table, "sthrec")
    (HERE / "paired.md").write_text(text)
    print(text)
    # the flagship blended with the revisit rule against the rule, sthrec and the references
    blend = seed_mean_per_query(sorted(HERE.glob("sthrec_blend_seed*.csv")), METRICS)
    refs = {
        "revisit (deterministic)": seed_mean_per_query(
            [RESULTS / "revisit/revisit_getnext_nyc.csv"], METRICS
        ),
        "sthrec (seeds 0-4)": ours,
        **{name: refs[name] for name in list(REFERENCES)[:4]},
    }
    text = paired_markdown(paired_table(blend, refs, METRICS), "sthrec_blend")
    (HERE / "paired_blend.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
