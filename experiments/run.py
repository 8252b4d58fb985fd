"""Train and compare models: ``python experiments/run.py --config FILE [key=value ...]``.

Example: ``python experiments/run.py --config experiments/configs/demo.yaml seeds=[0,1,2]``.
Writes ``runs/<experiment>/<dataset>/<model>/seed<k>/`` and prints mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tgraph.config import load_config
from tgraph.experiment import markdown_table, run_experiment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", required=True, help="YAML file (repeatable)")
    parser.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lr=0.01")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = load_config(args.config, args.overrides)
    summary = run_experiment(config, args.data_root)
    print(f"\n{config.experiment} on {config.dataset.name} ({config.dataset.protocol}), test:")
    print(markdown_table(summary, config.metrics))
    print(f"\nrun directories: {config.output_dir}/{config.experiment}/{config.dataset.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
