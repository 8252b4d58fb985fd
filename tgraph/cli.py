"""The ``tgraph`` command: ``tgraph run``, ``tune``, ``compare``, ``analyse``, ``configs``,
``data list|describe|download``, ``serve``, ``partition``.

A user error (configuration, data, a run directory or study tgraph refuses to touch) is printed
as one line, without a traceback unless ``--debug`` is given; the exit code is 2 for usage and
configuration errors, 1 for runtime failures and 0 for success.

``--config`` takes a YAML file or the name of a config shipped with tgraph (``tgraph configs``
lists them). ``--import MODULE`` (repeatable) imports a module that registers models, datasets
or protocols before anything is validated, like the config key ``imports`` (see
:mod:`tgraph.plugins`); ``run`` and ``tune`` record it in the config's ``imports``, and
``analyse run`` and ``serve`` import the modules a run recorded. Modules are searched on
``sys.path``, then in the current directory.

Examples::

    tgraph configs
    tgraph run --config demo seeds=[0,1,2] train.lr=0.01
    tgraph run --config demo --dry-run     # resolved runs, no training
    tgraph run --config demo --nproc 2     # data-parallel, 2 processes (torchrun)
    tgraph run --config my_experiment.yaml --import my_models
    tgraph tune --config studies/bprmf_movielens100k --n-trials 20
    tgraph tune --config STUDY.yaml --storage journal:runs/study.journal --search-only  # x N
    tgraph tune --config STUDY.yaml --nproc 2    # each trial data-parallel in 2 processes
    tgraph compare runs/demo
    tgraph analyse dataset foursquare_nyc --regions 30
    tgraph analyse dataset synthetic --option n_users=100 --option n_events=6000
    tgraph analyse run runs/demo/synthetic/bprmf/seed0 --n-boot 2000
    tgraph data list
    tgraph data describe foursquare_nyc
    tgraph data download movielens_100k --root ~/data
    tgraph serve runs/demo/synthetic/sasrec/seed0 --port 8000
    tgraph partition --config my.yaml --parts 2 --out parts/   # for train.distributed=dist_dgl
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import TYPE_CHECKING

from tgraph.errors import TgraphError
from tgraph.plugins import import_module

if TYPE_CHECKING:  # the commands import what they need when they run
    from tgraph.runs import RunDir

_DEBUG_HELP = "show the traceback of an error (default: one line)"
_CONFIG_HELP = "YAML file, or the name of a shipped config (see 'tgraph configs'); repeatable"


def _record_imports(files: list[str], overrides: list[str], imports: list[str]) -> list[str]:
    """``overrides`` plus one that appends the ``--import`` modules to the config's ``imports``
    (so the run records them for ``analyse run`` and ``serve``)."""
    from tgraph.config import read_layers

    if not imports:
        return list(overrides)
    written = read_layers(files, overrides).get("imports") or []
    if not isinstance(written, list):  # left to the validation to report
        return list(overrides)
    merged = [*written, *(name for name in imports if name not in written)]
    return [*overrides, f"imports={json.dumps(merged)}"]


def _import_recorded(*runs: RunDir) -> None:
    """Import the modules each run recorded in its config (its model, dataset or protocol may
    be a plugin's)."""
    for run in runs:
        for index, name in enumerate(run.read_config().get("imports") or []):
            import_module(name, f"imports[{index}] of {run.layout.config}")


def _configs(args: argparse.Namespace) -> int:
    from tgraph.config import config_summary, shipped_configs

    shipped = shipped_configs()
    width = max(map(len, shipped))
    for name, path in shipped.items():
        print(f"{name:{width}s}  {config_summary(path)}")
    print(
        f"\nrun one with 'tgraph run --config NAME' (studies: 'tgraph tune'); files in "
        f"{next(iter(shipped.values())).parent}"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    import yaml

    from tgraph.config import load_config
    from tgraph.experiment import markdown_table, plan, run_experiment
    from tgraph.train import distributed

    config = load_config(args.config, _record_imports(args.config, args.overrides, args.imports))
    if args.dry_run:
        for run in plan(config):
            print(f"# {run.label} seed {run.seed} -> {run.path}")
            print(yaml.safe_dump(run.resolved, sort_keys=False))
        return 0
    if args.nproc < 1:
        raise UsageError(f"--nproc {args.nproc}: give at least 1 process")
    engines = {config.train_config(entry).distributed is not None for entry in config.models}
    if True in engines:
        if args.nproc > 1 or engines != {True}:
            raise UsageError(
                "train.distributed: dist_dgl runs every model of the config on DGL's engine, "
                "started by its own launcher: give it to all models, and no --nproc"
            )
        from tgraph.train import dist_dgl

        dist_dgl.initialize()  # a graph server serves its partition and exits here
    elif args.nproc > 1:
        return _launch(args)
    ctx = distributed.init(config.device)  # joins torchrun's processes, if launched by it
    if not ctx.is_main:  # rank 0 logs and prints
        logging.getLogger("tgraph").setLevel(logging.WARNING)
    try:
        summary = run_experiment(
            config, args.data_root, resume=args.resume, overwrite=args.overwrite
        )
    except BaseException:
        distributed.finish(barrier=False)  # torchrun stops the other ranks
        raise
    distributed.finish()
    if not ctx.is_main:
        return 0
    print(f"\n{config.experiment} on {config.dataset.name} ({config.dataset.protocol}), test:")
    print(markdown_table(summary, config.metrics))
    print(f"\nrun directories: {config.output_dir}/{config.experiment}/{config.dataset.name}/")
    return 0


def _launch(args: argparse.Namespace) -> int:
    """``tgraph run|tune --nproc N``: the same command in N processes through torchrun."""
    from tgraph.train import distributed

    if distributed.launched():
        raise UsageError("--nproc in a process that torchrun started: give one or the other")
    return distributed.launch(args.nproc, args.argv)


def _partition(args: argparse.Namespace) -> int:
    """``tgraph partition``: the training graph of the config's split in N partitions."""
    from tgraph.config import load_config
    from tgraph.data import protocols
    from tgraph.graph.partition import partition

    if args.parts < 1:
        raise UsageError(f"--parts {args.parts}: give at least 1 partition")
    config = load_config(args.config, _record_imports(args.config, args.overrides, args.imports))
    split = protocols.prepare_split(config.dataset, args.data_root)
    part_config = partition(split, args.parts, args.out)
    print(f"partition config: {part_config} (DGL_CONF_PATH of every server and trainer)")
    return 0


def _tune(args: argparse.Namespace) -> int:
    from tgraph.train import distributed
    from tgraph.tune import finish_study, load_study, run_study
    from tgraph.tune.group import GroupBroken, Order, check_same_study, follow, send

    if args.nproc < 1:
        raise UsageError(f"--nproc {args.nproc}: give at least 1 process")
    overrides = _record_imports(args.config, args.overrides, args.imports)
    if args.n_trials is not None:
        overrides.append(f"study.n_trials={args.n_trials}")
    world_size = int(os.environ["WORLD_SIZE"]) if distributed.launched() else 1
    study_def = load_study(args.config, overrides, world_size)  # checks the file first
    if args.nproc > 1:
        return _launch(args)
    group = distributed.init(study_def.experiment.device)  # a group of ranks, if torchrun's
    if group.active:
        if not group.is_main:  # rank 0 logs and prints
            logging.getLogger("tgraph").setLevel(logging.WARNING)
        check_same_study(study_def, group)
    try:
        if not group.is_main:
            follow(study_def, args.data_root, group)  # until rank 0 sends stop
            distributed.finish()
            return 0
        study = run_study(study_def, args.data_root, args.storage, args.worker, group)
        result = None
        if not args.search_only:
            retrain = not args.no_retrain
            result = finish_study(study, study_def, args.data_root, retrain, group)
        if group.active:
            send(Order("stop"), group)
    except GroupBroken as broken:  # the trial is retried by the next worker
        distributed.finish(barrier=False)
        print(f"tgraph: error: {broken}", file=sys.stderr)
        return 1
    except BaseException:
        distributed.finish(barrier=False)  # torchrun stops the other ranks
        raise
    distributed.finish()
    if result is None:
        return 0
    print(f"\nstudy {study.study_name}: {len(study.trials)} trials; folder {study_def.folder}")
    print(f"best configuration: {result['best_config']}")
    if "retrain" in result:
        print((study_def.folder / "retrain.md").read_text())
    return 0


def _compare(args: argparse.Namespace) -> int:
    from tgraph.compare import compare
    from tgraph.runs import RunDir

    if not args.no_strata:  # stratifying rebuilds each group's split
        _import_recorded(*RunDir.finished_below(args.runs_dir))
    result = compare(
        args.runs_dir,
        args.out,
        args.metrics,
        args.baselines,
        allow_mixed=args.allow_mixed,
        strata=not args.no_strata,
        root=args.data_root,
        n_boot=args.n_boot,
    )
    print(result["files"]["md"].read_text())
    written = [*result["files"].values(), *result["curves"], *result["strata_plots"]]
    print("written: " + ", ".join(str(p) for p in written))
    return 0


def _analyse(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tgraph.analysis import report
    from tgraph.runs import RunDir

    if args.target == "dataset":
        options = report.parse_options(args.option)
        inter, notes = report.load_dataset(args.name, args.data_root, **options)
        out = Path(args.out) if args.out else Path("runs") / "analysis" / args.name
        result = report.dataset_report(
            inter, out, regions=args.regions, seed=args.seed, notes=notes
        )
        print((out / "summary.md").read_text())
    else:
        _import_recorded(RunDir(args.run_dir))
        result = report.run_report(
            args.run_dir, args.out, n_boot=args.n_boot, metrics=args.metrics, root=args.data_root
        )
    print(f"written: {len(result['files'])} files in {result['files'][0].parent}")
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
        raise UsageError(f"tgraph data {args.action}: name a dataset (see 'tgraph data list')")
    if args.action == "describe":
        print(json.dumps(registry.describe(args.name), indent=2, default=str))
        return 0
    from tgraph.data.download import fetch

    fetch(args.name, args.root)
    return 0


def _serve(args: argparse.Namespace) -> int:
    import os

    from tgraph.runs import RunDir
    from tgraph.serve import load

    try:
        from tgraph.serve.app import LOOPBACK, TOKEN_ENV, serve
    except ImportError as error:
        raise UsageError(
            f"tgraph serve needs the 'serve' extra ({error.name} is missing): "
            "pip install 'tgraph[serve]'"
        ) from None

    token = args.token or os.environ.get(TOKEN_ENV) or None
    if args.host not in LOOPBACK and not token:
        raise UsageError(
            f"--host {args.host} exposes the server beyond this machine: give an access token "
            f"(--token or ${TOKEN_ENV})"
        )
    log = args.log or RunDir(args.run_dir).layout.serve_log
    _import_recorded(RunDir(args.run_dir))
    session = load(args.run_dir, root=args.data_root, log=log)
    print(
        f"serving {session.name} ({session.n_users} users, {session.n_items} items, "
        f"{session.n_events} events; log {log}) on http://{args.host}:{args.port}",
        flush=True,
    )
    serve(
        session,
        args.host,
        args.port,
        token=token,
        max_body=args.max_body,
        max_batch=args.max_batch,
    )
    return 0


class UsageError(TgraphError):
    """A command line that names too little (argparse reports the rest itself)."""

    exit_code = 2


def build_parser() -> argparse.ArgumentParser:
    from tgraph import __version__

    parser = argparse.ArgumentParser(
        prog="tgraph",
        description="tgraph: temporal heterogeneous graphs and GNN recommenders.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    parser.add_argument("--version", action="version", version=f"tgraph {__version__}")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    # --debug is accepted after the command too (SUPPRESS keeps the top-level value otherwise)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    plugins = argparse.ArgumentParser(add_help=False)
    plugins.add_argument(  # SUPPRESS, as --debug: no empty default overwrites given values
        "--import",
        dest="imports",
        action="append",
        default=argparse.SUPPRESS,
        metavar="MODULE",
        help="import MODULE first, for the models, datasets or protocols it registers "
        "(repeatable; like the config key 'imports')",
    )
    threads = argparse.ArgumentParser(add_help=False, parents=[common])
    threads.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's choice); with several workers or jobs "
        "on one machine give each cores/jobs, since oversubscribed OpenMP threads are very "
        "slow. Waiting threads sleep (OMP_WAIT_POLICY=PASSIVE) unless the variable is set",
    )

    run = commands.add_parser(
        "run", parents=[threads, plugins], help="train and compare models from a YAML config"
    )
    run.add_argument("--config", action="append", required=True, help=_CONFIG_HELP)
    run.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue each unfinished run from its last checkpoint; only epochs, patience, "
        "time_budget_s, refit, fold_valid, lr and weight_decay may differ (recorded as an "
        "amendment); a run without a checkpoint starts afresh",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace runs of another configuration in the same directories (the old run is "
        "moved aside, never deleted)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="validate, print the resolved configuration and directory of every (model, seed) "
        "run, and exit without loading data or writing anything",
    )
    run.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train data-parallel in N processes on this machine (torchrun on 127.0.0.1; gloo "
        "on CPU, nccl on GPU); rank 0 writes the run directories. Several machines: 'torchrun "
        "--nnodes M --node-rank K --nproc-per-node N --master-addr HOST --master-port PORT -m "
        "tgraph run ...' on each (see docs/scale.md)",
    )
    run.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.lr=0.01")
    run.set_defaults(handler=_run)

    part = commands.add_parser(
        "partition",
        parents=[common, plugins],
        help="partition the training graph of a config's split for train.distributed=dist_dgl",
        description="Writes the user-item graph of the split's training events in N "
        "partitions (METIS, dgl.distributed.partition_graph) under --out, with tgraph's node "
        "ids beside them; graph servers and trainers read OUT/tgraph.json (see docs/scale.md).",
    )
    part.add_argument("--config", action="append", required=True, help=_CONFIG_HELP)
    part.add_argument("--parts", type=int, required=True, help="number of partitions (machines)")
    part.add_argument("--out", required=True, help="output folder")
    part.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    part.add_argument("overrides", nargs="*", help="key=value overrides of the config")
    part.set_defaults(handler=_partition)

    tune = commands.add_parser(
        "tune",
        parents=[threads, plugins],
        help="an Optuna hyper-parameter study of one model on one dataset",
        description="Run (or resume) the study of a YAML file: an experiment config with one "
        "model and a 'study' section (space, pruner, n_trials, ...; see tgraph.tune). Then "
        "export best.yaml, draw the plots and re-train the top configurations with fresh "
        "seeds (selected on validation, reported on test).",
    )
    tune.add_argument("--config", action="append", required=True, help=_CONFIG_HELP)
    tune.add_argument(
        "--storage",
        default=None,
        help="sqlite:///FILE (default: study.db in the study folder), journal:FILE for "
        "processes on one machine, postgresql://USER@HOST/DB for several machines",
    )
    tune.add_argument(
        "--n-trials", type=int, default=None, help="total complete+pruned trials over all workers"
    )
    tune.add_argument(
        "--worker", type=int, default=0, help="worker index (each worker samples its own stream)"
    )
    tune.add_argument(
        "--search-only", action="store_true", help="run trials only (parallel workers)"
    )
    tune.add_argument("--no-retrain", action="store_true", help="skip re-training the top trials")
    tune.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train each trial data-parallel in N processes on this machine (a group: torchrun "
        "on 127.0.0.1, as 'tgraph run --nproc'); rank 0 is the Optuna worker. Several "
        "machines: 'torchrun ... -m tgraph tune ...' (see docs/guides/studies.md)",
    )
    tune.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    tune.add_argument("overrides", nargs="*", help="key=value overrides, e.g. study.seed=1")
    tune.set_defaults(handler=_tune)

    comp = commands.add_parser(
        "compare",
        parents=[common, plugins],
        help="leaderboard of run directories with paired significance tests",
        description="Collect every run directory below RUNS_DIR, group by (experiment, "
        "dataset) and write leaderboard.{md,csv,tex} (mean ± std over seeds; paired t-test "
        "and Wilcoxon p-values of each model against the best baseline per metric), "
        "learning curves and, unless --no-strata, the test metrics by stratum side by side.",
    )
    comp.add_argument("runs_dir", help="folder holding run directories (searched recursively)")
    comp.add_argument("--out", default=None, help="output folder (default: RUNS_DIR)")
    comp.add_argument("--metrics", nargs="+", default=None, help="test metrics (default: all)")
    comp.add_argument(
        "--baselines", nargs="+", default=None, help="models to test against (default: all)"
    )
    comp.add_argument(
        "--allow-mixed",
        action="store_true",
        help="runs of one model label with different configurations (fingerprints) become "
        "separate rows instead of an error",
    )
    comp.add_argument(
        "--no-strata",
        action="store_true",
        help="skip the stratified results (they rebuild each dataset's split, so read its data)",
    )
    comp.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    comp.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    comp.set_defaults(handler=_compare)

    analyse = commands.add_parser(
        "analyse",
        parents=[common],
        help="analyse a dataset, or stratify a finished run's metrics",
        description="'dataset NAME': temporal, spatial, pattern and preference-drift analyses "
        "(tables as CSV, figures as PNG, summary.md with the key numbers and every skipped "
        "analysis and its reason). 'run RUN_DIR': the run's test metrics by hour, weekday, "
        "region, user activity and novelty with bootstrap confidence intervals.",
    )
    targets = analyse.add_subparsers(dest="target", required=True)
    dataset = targets.add_parser(
        "dataset", parents=[plugins], help="every analysis of one registry dataset"
    )
    dataset.add_argument("name", help="dataset name (see 'tgraph data list')")
    dataset.add_argument("--out", default=None, help="folder (default: runs/analysis/NAME)")
    dataset.add_argument("--regions", type=int, default=20, help="k-means regions (default 20)")
    dataset.add_argument("--seed", type=int, default=0, help="seed of regions and null shuffles")
    dataset.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="loader option, YAML value (repeatable), e.g. --option part=test",
    )
    dataset.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    run_target = targets.add_parser(
        "run", parents=[plugins], help="stratified evaluation of one run directory"
    )
    run_target.add_argument("run_dir", help="runs/<experiment>/<dataset>/<model>/seed<k>/")
    run_target.add_argument("--out", default=None, help="folder (default: RUN_DIR/analysis)")
    run_target.add_argument(
        "--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)"
    )
    run_target.add_argument(
        "--metrics", nargs="+", default=None, help="metrics (default: the run's configured ones)"
    )
    run_target.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    analyse.set_defaults(handler=_analyse)

    configs = commands.add_parser(
        "configs",
        parents=[common],
        help="list the configs shipped with tgraph (name and description)",
        description="Each name can be given to --config of 'tgraph run' (or 'tgraph tune' for "
        "studies/...) instead of a file.",
    )
    configs.set_defaults(handler=_configs)

    data = commands.add_parser(
        "data", parents=[common, plugins], help="list, describe or download datasets"
    )
    data.add_argument("action", choices=["list", "describe", "download"])
    data.add_argument("name", nargs="?", help="dataset name (see 'tgraph data list')")
    data.add_argument("--root", default=None, help="data root (default: $TGRAPH_DATA)")
    data.set_defaults(handler=_data)

    srv = commands.add_parser(
        "serve",
        parents=[threads, plugins],
        help="serve a finished run over HTTP: recommendations and new events",
        description="GET /recommend?user=&k=&at=, POST /events (a JSON list), GET /health. "
        "Ingested events are appended to an event log (fsync) before they are acknowledged, "
        "and replayed on start. Needs the 'serve' extra (pip install tgraph[serve]).",
    )
    srv.add_argument("run_dir", help="runs/<experiment>/<dataset>/<model>/seed<k>/")
    srv.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    srv.add_argument(
        "--token",
        default=None,
        help="access token checked on every request (default: $TGRAPH_SERVE_TOKEN); "
        "required for a --host other than loopback",
    )
    srv.add_argument("--log", default=None, help="event log (default: RUN_DIR/serve/events.jsonl)")
    srv.add_argument(
        "--max-body", type=int, default=1 << 20, help="request body limit, bytes (default 1 MiB)"
    )
    srv.add_argument(
        "--max-batch", type=int, default=10_000, help="events per POST /events (default 10000)"
    )
    srv.add_argument("--data-root", default=None, help="data root (default: $TGRAPH_DATA)")
    srv.set_defaults(handler=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command of ``argv``; return its exit code (see the module docstring)."""
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --nproc hands to torchrun
    args.imports = getattr(args, "imports", [])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if getattr(args, "threads", None):
        from tgraph.threads import set_threads

        set_threads(args.threads)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # --import / imports: modules beside the user, as python -m
    try:
        for name in args.imports:
            import_module(name, "--import")
        return args.handler(args)
    except TgraphError as error:
        if args.debug:
            raise
        print(f"tgraph: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("tgraph: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
