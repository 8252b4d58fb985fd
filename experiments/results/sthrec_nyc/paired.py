"""Paired tests of sthrec against models whose per-query test results are committed files.

``tgraph compare`` needs run directories; the committed per-query CSVs of earlier runs on the
same split (getnext_nyc, query_time hidden, the same 1,433 test queries) are compared here with
tgraph's own functions: per-query values averaged over each model's seeds, then the paired
t-test and the Wilcoxon signed-rank test (:func:`tgraph.compare.paired_tests`), Holm-adjusted
per metric and test kind over the references.

    python experiments/results/sthrec_nyc/paired.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.compare import holm, paired_tests

HERE = Path(__file__).parent
RESULTS = HERE.parent
METRICS = ["acc@1", "acc@5", "acc@10", "mrr"]
REFERENCES = {
    "sasrec (seeds 0-2, nyc_getnext)": sorted((RESULTS / "nyc_getnext").glob("sasrec_seed*.csv")),
    "flashback_h64 (seeds 0-4, flashback_nyc)": sorted(
        (RESULTS / "flashback_nyc").glob("flashback_h64_seed*.csv")
    ),
    "sthgcn (seed 0, sthgcn_model_nyc)": [RESULTS / "sthgcn_model_nyc/sthgcn_seed0_per_query.csv"],
    "getnext (seed 0, 3 epochs: under-trained, getnext_model_nyc)": [
        RESULTS / "getnext_model_nyc/getnext_seed0_epoch3.csv"
    ],
    "sthrec before #13 §4 (seeds 0-2, nyc_getnext)": sorted(
        (RESULTS / "nyc_getnext").glob("sthrec_seed*.csv")
    ),
}


def seed_mean(paths: list[Path]) -> pd.DataFrame:
    tables = [pd.read_csv(p).set_index("query").sort_index() for p in paths]
    for table in tables[1:]:
        assert table.index.equals(tables[0].index), "different queries"
    out = tables[0][["user"]].copy()
    for metric in METRICS:
        out[metric] = np.mean([t[metric].to_numpy(float) for t in tables], axis=0)
    return out


def main() -> None:
    ours = seed_mean(sorted(HERE.glob("sthrec_seed*.csv")))
    rows = []
    for name, paths in REFERENCES.items():
        ref = seed_mean(paths)
        assert ref.index.equals(ours.index) and (ref["user"] == ours["user"]).all()
        for metric in METRICS:
            p_t, p_w = paired_tests(ours[metric].to_numpy(), ref[metric].to_numpy())
            rows.append(
                {
                    "reference": name,
                    "metric": metric,
                    "sthrec": ours[metric].mean(),
                    "reference_mean": ref[metric].mean(),
                    "diff": ours[metric].mean() - ref[metric].mean(),
                    "p_t": p_t,
                    "p_wilcoxon": p_w,
                }
            )
    table = pd.DataFrame(rows)
    for metric in METRICS:
        for column in ("p_t", "p_wilcoxon"):
            at = table["metric"] == metric
            table.loc[at, column + "_holm"] = holm(table.loc[at, column].to_numpy())
    table.to_csv(HERE / "paired.csv", index=False, float_format="%.4g")
    head = "| reference | metric | sthrec | reference | diff | p (t) | p (Wilcoxon) | Holm t / W |"
    lines = [head]
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in table.itertuples():
        lines.append(
            f"| {r.reference} | {r.metric} | {r.sthrec:.4f} | {r.reference_mean:.4f} | "
            f"{r.diff:+.4f} | {r.p_t:.2g} | {r.p_wilcoxon:.2g} | "
            f"{r.p_t_holm:.2g} / {r.p_wilcoxon_holm:.2g} |"
        )
    (HERE / "paired.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
