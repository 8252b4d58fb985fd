"""Full-ranking evaluation shared by 2 processes (gloo on 127.0.0.1, started by torchrun): the
metrics, ranks and per-query rows rank 0 gathers equal one process's, order included, for
static and streaming evaluation; a failure on one rank raises on both; and a ``tgraph run``
in 2 processes tests (and validates) exactly as one process evaluates its selected weights."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tgraph.models as models
from tests.eval.distributed_eval_worker import cases
from tests.train.test_ddp import _config, _run
from tgraph.config import load_config
from tgraph.data import protocols
from tgraph.eval import Evaluator
from tgraph.eval.evaluator import EvalResult
from tgraph.eval.streaming import StreamingResult
from tgraph.train import distributed

WORKER = Path(__file__).with_name("distributed_eval_worker.py")


def _torchrun(*argv: str) -> list[str]:
    port = distributed.free_port()
    return [
        *distributed.launch_command(2, [], port)[:-2],  # torchrun, without "-m tgraph"
        *argv,
    ]


def _assert_equal(one: EvalResult, two: EvalResult) -> None:
    assert two.part == one.part
    assert two.metrics == one.metrics
    np.testing.assert_array_equal(two.ranks, one.ranks)
    pd.testing.assert_frame_equal(two.per_query, one.per_query, check_exact=True)


@pytest.mark.slow
def test_two_processes_rank_exactly_as_one(tmp_path):
    _run(_torchrun(str(WORKER), str(tmp_path)), tmp_path)
    for case in cases():
        one = case.evaluate(case.model(), 0, 1)
        two = pickle.loads((tmp_path / f"{case.name}.pkl").read_bytes())
        assert (tmp_path / f"{case.name}-rank1.none").is_file()  # rank 1 returns nothing
        if isinstance(one, StreamingResult):
            latency = two.result.per_query.pop("latency_ms")  # timings, measured per rank
            assert (latency > 0).all()  # every query ranked once, by one of the ranks
            one.result.per_query.pop("latency_ms")
            _assert_equal(one.result, two.result)
            counts = ("events_ingested", "updates", "finetune_steps")
            assert {k: getattr(two.metrics, k) for k in counts} == {
                k: getattr(one.metrics, k) for k in counts
            }
            assert two.metrics.test == one.metrics.test
        else:
            _assert_equal(one, two)
    # rank 1's batch gave NaN scores: rank 1 raised its error, rank 0 one that names rank 1
    own = (tmp_path / "failure-rank1.txt").read_text()
    assert own == "ValueError: NaNForUser9 produced non-finite scores"
    assert (tmp_path / "failure-rank0.txt").read_text() == (
        f"RuntimeError: the evaluation failed on rank 1 ({own})"
    )


@pytest.mark.slow
def test_a_two_process_run_tests_and_validates_as_one_process_would(tmp_path):
    """``tgraph run`` in 2 ranks (ranks share validation and test): the per-query test rows
    and the selected epoch's validation metrics equal one process's evaluation of the weights
    the run selected (its best checkpoint)."""
    config_path = _config(tmp_path, "runs", [{"name": "bprmf"}])
    overrides = ["train.eval_batch_size=16", "train.epochs=3"]
    _run(_torchrun("-m", "tgraph", "run", "--config", str(config_path), *overrides), tmp_path)
    config = load_config([str(config_path)], overrides)
    split = protocols.prepare_split(config.dataset, None)
    run = tmp_path / "runs" / "ddp" / "synthetic" / "bprmf" / "seed0"
    model = models.get("bprmf")(split)
    model.load_state_dict(torch.load(run / "best.pt", weights_only=False)["model"])
    metric_names = [m.lower() for m in config.metrics]
    test = Evaluator(split, "test", metric_names, batch_size=16).evaluate(model)
    rows = pd.read_csv(run / "per_query.csv")
    expected = pd.read_csv(_written(test.per_query, tmp_path / "expected.csv"))
    pd.testing.assert_frame_equal(rows, expected, check_exact=True)
    recorded = json.loads((run / "metrics.json").read_text())
    assert recorded["test"] == test.metrics
    valid = Evaluator(split, "valid", ["mrr"], batch_size=16).evaluate(model)  # train.metrics
    assert recorded["valid"] == valid.metrics


def _written(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path
