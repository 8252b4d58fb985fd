"""The ``tgraph`` command: ``tgraph run``, ``tgraph data list|describe|download``.

Examples::

    tgraph run --config experiments/configs/demo.yaml seeds=[0,1,2] train.lr=0.01
    tgraph data list
    tgraph data describe foursquare_nyc
    tgraph data download movielens_100k --root ~/data
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _run(args: argparse.Namespace) -> int:
    from tgraph.config import load_config
    from tgraph.experiment import markdown_table, run_experiment

    config = load_config(args.config, args.overrides)
    summary = run_experiment(config, args.data_root)
    print(f"\n{config.experiment} on {config.dataset.name} ({config.dataset.protocol}), test:")
    print(markdown_table(summary, config.metrics))
    print(f"\nrun directories: {config.output_dir}/{config.experiment}/{config.dataset.name}/")
    return 0


def _data(args: argparse.Namespace) -> int:
    from tgraph.data import registry

    if args.action == "list":
        root = registry.data_root(args.root)
        for name in registry.list_datasets():
            spec = registry.get_spec(name)
            where = f"{root / spec.folder}" if spec.files else "(generated)"
            print(f"{name:28s} {where}")
        return 0
    if not args.name:
        raise SystemExit(f"tgraph data {args.action}: name a dataset (see 'tgraph data list')")
    if args.action == "describe":
        print(json.dumps(registry.describe(args.name), indent=2, default=str))
        return 0
    from tgraph.data.download import fetch

    fetch(args.name, args.root)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tgraph",
        description="tgraph: temporal heterogeneous graphs and GNN recommenders.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train and compare models from a YAML config")
    run.add_argument("--config", action="append", required=True, help="YAML file (repeatable)")
    run.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lr=0.01")
    run.set_defaults(handler=_run)

    data = commands.add_parser("data", help="list, describe or download datasets")
    data.add_argument("action", choices=["list", "describe", "download"])
    data.add_argument("name", nargs="?", help="dataset name (see 'tgraph data list')")
    data.add_argument("--root", default=None, help="data root (default: $TGRAPH_DATA)")
    data.set_defaults(handler=_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
