"""Leaderboard of run directories: ``python experiments/compare.py RUNS_DIR [--baselines ...]``.

The same as ``tgraph compare``. Example::

    python experiments/compare.py runs/demo --baselines pop markov

Writes leaderboard.md / .csv / .tex (mean ± std over seeds, paired t-test and Wilcoxon
p-values against the best baseline per metric) and learning curves into RUNS_DIR.
"""

import sys

from tgraph.cli import main

if __name__ == "__main__":
    sys.exit(main(["compare", *sys.argv[1:]]))
