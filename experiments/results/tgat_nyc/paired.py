"""Paired tests of two runs' per-query results (same queries): mean of each, t-test / Wilcoxon p.

python paired.py A.csv B.csv
"""

import sys

import pandas as pd
from scipy import stats

a, b = (pd.read_csv(path).set_index("query").sort_index() for path in sys.argv[1:3])
if not a.index.equals(b.index):
    raise SystemExit("the two files rank different queries")
for metric in ["acc@1", "acc@10", "mrr"]:
    x, y = a[metric], b[metric]
    t = stats.ttest_rel(x, y).pvalue
    w = stats.wilcoxon(x, y).pvalue if (x != y).any() else 1.0
    print(f"| {metric} | {x.mean():.4f} | {y.mean():.4f} | {t:.2g} / {w:.2g} |")
