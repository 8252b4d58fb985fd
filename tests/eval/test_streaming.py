"""The streaming evaluator: no leak of the target, ties in time, equality with the static
evaluator when updates change nothing, update == rebuild for counts, and the run records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import Tensor

import tgraph.models as models
from tests.models.helpers import make_interactions, random_split
from tgraph.config import ExperimentConfig, load_config
from tgraph.data.queries import Queries
from tgraph.data.split import Split, event_targets
from tgraph.errors import ConfigError
from tgraph.eval import Evaluator
from tgraph.eval.streaming import StreamingEvaluator, seen_and_replayed, write_report
from tgraph.models.base import Recommender
from tgraph.runs import RunDir

METRICS = ["acc@1", "acc@5", "mrr"]


def tied_split(seed: int = 0, n_users: int = 8, n_items: int = 40) -> Split:
    """Train before t=100, valid in [100, 200), test at only four instants (200, 210, 220, 230),
    so that many test events share a timestamp; one query per test event, no masking."""
    rng = np.random.default_rng(seed)

    def events(n: int, times: np.ndarray) -> pd.DataFrame:
        frame = pd.DataFrame(
            {"user": rng.integers(0, n_users, n), "item": rng.integers(0, n_items, n)}
        )
        frame["timestamp"] = rng.choice(times, n)
        frame = frame.drop_duplicates().sort_values("timestamp", kind="stable")
        return frame.reset_index(drop=True)

    parts = {
        "train": events(120, np.arange(100)),
        "valid": events(30, np.arange(100, 200)),
        "test": events(40, np.array([200, 210, 220, 230])),
    }
    tables = {
        k: make_interactions(v.itertuples(index=False), n_users, n_items) for k, v in parts.items()
    }
    return Split(
        train=tables["train"],
        valid=tables["valid"],
        test=tables["test"],
        valid_targets=event_targets(tables["valid"].events),
        test_targets=event_targets(tables["test"].events),
        mask_history=False,
        protocol="tied",
    )


class FutureCheater(Recommender):
    """Scores item ``i`` by how soon after the query time ``t`` it was ingested (by anyone):
    ``1 / (1 + s_i - t)`` for its latest ingest time ``s_i >= t``, else 0; and 2 for an item
    of the query's history at or after ``t``. A leak of any event at or after ``t`` into the
    state or the history gives the target (ingested at ``t``) a top score; without one, every
    score is 0 and the pessimistic rank of every target is ``n_items``."""

    supports_update = True
    needs_training = False

    def __init__(self, split: Split) -> None:
        super().__init__(split)
        self.require_history(10)
        self.item_time = np.full(split.n_items, -np.inf)

    def update(self, events: pd.DataFrame) -> None:
        items, times = events["item"].to_numpy(), events["timestamp"].to_numpy(np.float64)
        np.maximum.at(self.item_time, items, times)

    def full_sort_predict(self, queries: Queries) -> Tensor:
        ahead = self.item_time[None, :] - queries.timestamp.numpy()[:, None]
        scores = torch.from_numpy(np.where(ahead >= 0, 1 / (1 + np.abs(ahead)), 0.0)).float()
        late = (queries.hist_times >= queries.timestamp[:, None]) & queries.hist_mask
        rows = torch.arange(len(queries)).unsqueeze(1).expand_as(late)
        return scores.index_put((rows[late], queries.hist_items[late]), torch.tensor(2.0))


class LastItem(Recommender):
    """The last history item first, then by item code; an update that changes nothing."""

    supports_update = True
    needs_training = False

    def __init__(self, split: Split) -> None:
        super().__init__(split)
        self.require_history(3)

    def update(self, events: pd.DataFrame) -> None:
        pass

    def full_sort_predict(self, queries: Queries) -> Tensor:
        scores = -torch.arange(self.n_items, dtype=torch.float32).repeat(len(queries), 1) / 1e3
        real = queries.hist_len > 0
        rows = torch.arange(len(queries))[real]
        return scores.index_put((rows, queries.last_item[real]), torch.tensor(1.0))


def test_the_target_is_never_visible_before_it_is_ranked():
    """The cheater gets zero hits streaming (every target at the pessimistic rank), although
    test events share timestamps; the same cheater given the test events up front hits."""
    split = tied_split()
    streamed = StreamingEvaluator(split, METRICS).evaluate(FutureCheater(split))
    assert (streamed.result.per_query["best_rank"] == split.n_items).all()
    assert streamed.metrics.test["acc@5"] == 0.0
    leaky = FutureCheater(split)
    leaky.update(split.test.events)
    static = Evaluator(split, "test", METRICS).evaluate(leaky)
    assert static.metrics["acc@5"] > 0.2  # the check above can fail


def test_events_of_one_instant_are_ranked_before_any_is_ingested():
    """One update per query instant with new events before it; all replayed events strictly
    before the last instant (230) are ingested, those at 230 are not."""
    split = tied_split()
    seen, replay = seen_and_replayed(split, holds_valid=False)
    assert len(seen) == len(split.train.events)
    assert replay["timestamp"].is_monotonic_increasing
    assert len(replay) == len(split.valid.events) + len(split.test.events)
    streamed = StreamingEvaluator(split, METRICS).evaluate(LastItem(split))
    assert streamed.metrics.updates == 4  # valid before 200, then 200, 210, 220
    assert streamed.metrics.events_ingested == int((replay["timestamp"] < 230).sum())
    refit_seen, refit_replay = seen_and_replayed(split, holds_valid=True)
    assert len(refit_seen) == len(split.train.events) + len(split.valid.events)
    assert refit_replay.equals(split.test.events[refit_replay.columns].reset_index(drop=True))


@pytest.mark.parametrize("make", [tied_split, random_split])
def test_streaming_equals_static_when_updates_change_nothing(make):
    """Same histories, masks (random_split masks the history) and ranking code: equal ranks,
    per-query table and metrics; latencies are recorded per query."""
    split = make()
    static = Evaluator(split, "test", METRICS).evaluate(LastItem(split))
    streamed = StreamingEvaluator(split, METRICS).evaluate(LastItem(split))
    np.testing.assert_array_equal(streamed.result.ranks, static.ranks)
    assert streamed.result.metrics == static.metrics
    pd.testing.assert_frame_equal(
        streamed.result.per_query.drop(columns="latency_ms"), static.per_query
    )
    assert (streamed.result.per_query["latency_ms"] > 0).all()
    m = streamed.metrics
    assert 0 < m.latency_p50_ms <= m.latency_p99_ms and m.ingest_events_per_s > 0


def test_popularity_streaming_equals_rebuild_at_every_query():
    """pop's ``update`` against brute force: each query ranked by counts refitted on every
    event strictly before its time (train, valid, earlier test events)."""
    split = tied_split(seed=3)
    pop = models.get("pop")
    streamed = StreamingEvaluator(split, METRICS).evaluate(pop(split))
    _, replay = seen_and_replayed(split, holds_valid=False)
    table = streamed.result.per_query
    evaluator = Evaluator(split, "test", METRICS)
    for row, at in enumerate(evaluator.table["timestamp"]):
        before = pd.concat([split.train.events, replay[replay["timestamp"] < at]])
        rebuilt = pop(split).fit(
            make_interactions(
                before[["user", "item", "timestamp"]].itertuples(index=False),
                split.n_users,
                split.n_items,
            )
        )
        ranks = evaluator.rank(rebuilt, evaluator.queries(0)[row : row + 1], np.array([row]))
        assert table["best_rank"].iloc[row] == ranks.min()
    static = Evaluator(split, "test", METRICS).evaluate(pop(split))
    assert not np.array_equal(static.ranks, streamed.result.ranks)  # the updates mattered


def test_finetune_steps_train_between_queries():
    """With ``finetune_steps`` the weights move after each ingest (without: they do not)."""
    split = tied_split()
    bprmf = models.get("bprmf")
    before = bprmf(split).state_dict()
    for steps in (0, 2):
        model = bprmf(split)
        model.load_state_dict(before)
        options = {"lr": 0.05, "batch_size": 8}
        streamed = StreamingEvaluator(
            split, METRICS, finetune_steps=steps, finetune_options=options
        ).evaluate(model)
        moved = not torch.equal(model.state_dict()["user_emb.weight"], before["user_emb.weight"])
        assert moved == (steps > 0) and streamed.metrics.finetune_steps == steps


class Frozen(LastItem):
    supports_update = False


def test_a_model_without_update_is_refused(monkeypatch):
    split = tied_split()
    with pytest.raises(NotImplementedError, match="streaming"):
        StreamingEvaluator(split, METRICS).evaluate(Frozen(split))
    monkeypatch.setattr(models.get("bprmf"), "supports_update", False)
    config = ExperimentConfig.model_validate(
        {"eval": {"mode": "streaming"}, "models": [{"name": "pop"}, {"name": "bprmf"}]}
    )
    with pytest.raises(ConfigError, match=r"models\[1\]\.name"):
        config.check()


def test_eval_section_is_validated():
    with pytest.raises(ConfigError, match="eval.mode"):
        load_config(overrides=["eval.mode=online"])
    with pytest.raises(ConfigError, match="finetune_steps"):
        load_config(overrides=["eval.finetune_steps=2"])
    assert load_config().eval.mode == "static"


def test_a_streaming_run_records_both_evaluations(tmp_path):
    """One training, two test rankings: metrics.json has the static ``test`` and the
    ``streaming`` record; per_query_streaming.csv has the same queries; a static run's
    fingerprint does not mention ``eval``."""
    from tgraph.experiment import run_experiment

    base = {
        "output_dir": str(tmp_path),
        "dataset": {
            "name": "synthetic",
            "options": {"n_users": 30, "n_pois": 60, "n_events": 1500, "days": 20},
        },
        "models": [{"name": "pop"}, {"name": "markov"}],
        "metrics": METRICS,
        "train": {"progress": False, "metrics": ["mrr"], "valid_metric": "mrr"},
    }
    for mode in ("static", "streaming"):
        config = ExperimentConfig.model_validate(
            {**base, "experiment": mode, "eval": {"mode": mode}}
        )
        run_experiment(config)
    for label in ("pop", "markov"):
        static = RunDir(tmp_path / "static" / "synthetic" / label / "seed0")
        streaming = RunDir(tmp_path / "streaming" / "synthetic" / label / "seed0")
        assert static.read_metrics().streaming is None
        assert "eval" not in json.loads(static.layout.fingerprint.read_text())["values"]
        metrics = streaming.read_metrics()
        assert metrics.test == static.read_metrics().test  # same weights, same static ranking
        assert set(metrics.streaming.test) == set(METRICS)
        assert metrics.streaming.latency_p99_ms >= metrics.streaming.latency_p50_ms > 0
        frame = streaming.read_per_query(streaming=True)
        assert frame["query"].tolist() == streaming.read_per_query()["query"].tolist()
        assert frame["mrr"].mean() == pytest.approx(metrics.streaming.test["mrr"])
    table = write_report(tmp_path / "streaming", tmp_path / "report", METRICS)
    assert sorted(table["model"].unique()) == ["markov", "pop"] and len(table) == 6
    row = table.set_index(["model", "metric"]).loc[("markov", "mrr")]
    markov = RunDir(tmp_path / "streaming" / "synthetic" / "markov" / "seed0").read_metrics()
    assert row["frozen"] == pytest.approx(markov.test["mrr"])
    assert row["streaming"] == pytest.approx(markov.streaming.test["mrr"])
    assert "| markov | 1 |" in (tmp_path / "report" / "summary.md").read_text()
    assert (tmp_path / "report" / "pop_seed0_streaming.csv").is_file()


class OffsetRecorder(LastItem):
    """LastItem that records the UTC offset (seconds) of every query it ranks."""

    def __init__(self, split: Split) -> None:
        super().__init__(split)
        self.offsets: list[int] = []

    def full_sort_predict(self, queries: Queries) -> Tensor:
        self.offsets += queries.offset.tolist()
        return super().full_sort_predict(queries)


def test_a_streamed_query_has_its_own_events_local_time():
    """Clocks change between validation (+60 min) and test (+120 min): each streamed test query
    carries its target event's offset, not its user's last history offset (+60)."""
    split = tied_split()
    shifted = {
        name: part.with_events(part.events.assign(tz_offset=offset))
        for name, part, offset in (
            ("train", split.train, 60),
            ("valid", split.valid, 60),
            ("test", split.test, 120),
        )
    }
    split = Split(
        **shifted,
        valid_targets=split.valid_targets,
        test_targets=split.test_targets,
        mask_history=False,
        protocol="tied",
    )
    model = OffsetRecorder(split)
    StreamingEvaluator(split, METRICS).evaluate(model)
    assert model.offsets == [7200] * len(split.test_targets)
