"""Hyper-parameter study: ``python experiments/tune.py --config FILE [--n-trials N]``.

The same as ``tgraph tune`` (``--help`` lists every option). Example::

    python experiments/tune.py --config studies/bprmf_movielens100k

Writes ``runs/<experiment>/<dataset>/study-<study name>/``: study.db, trials.csv, best.yaml,
plots/*.png, retrain/ (top configurations with fresh seeds), retrain.md and selected.yaml.
"""

import sys

from tgraph.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
