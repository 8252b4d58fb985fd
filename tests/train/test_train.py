"""Negative samplers, seeding, checkpoint resume, early stopping, TensorBoard and log lines, a
real-data run."""

import dataclasses
import logging
import sys

import numpy as np
import pytest
import torch

import tgraph.models as models
from tests.models.helpers import make_interactions, random_split
from tgraph.config import DatasetConfig, load_config
from tgraph.data.geo import haversine
from tgraph.data.paths import data_root
from tgraph.data.protocols import prepare_split
from tgraph.errors import ConfigError
from tgraph.eval import Evaluator
from tgraph.runs import RunDir
from tgraph.train import (
    NegativeSampler,
    PopularitySampler,
    SpatialSampler,
    Trainer,
    seed_everything,
)


def _train():
    rows = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (1, 3, 4), (1, 3, 5), (1, 3, 6), (1, 4, 7)]
    return make_interactions(rows, 2, 8)


def test_uniform_sampler_excludes_positive_and_history():
    rng = np.random.default_rng(0)
    train = _train()
    users = np.array([0] * 200 + [1] * 200)
    pos = np.array([0] * 200 + [3] * 200)
    neg = NegativeSampler(train).sample(users, pos, 5, rng)
    assert neg.shape == (400, 5) and not np.any(neg == pos[:, None])
    neg = NegativeSampler(train, exclude_history=True).sample(users, pos, 5, rng)
    assert not np.isin(neg[:200], [0, 1, 2]).any() and not np.isin(neg[200:], [3, 4]).any()
    assert set(np.unique(neg[:200])) == {3, 4, 5, 6, 7}


def test_popularity_sampler_follows_counts():
    rng = np.random.default_rng(0)
    sampler = PopularitySampler(_train(), alpha=1.0)
    neg = sampler.sample(np.zeros(20000, int), np.full(20000, 7), 1, rng)[:, 0]
    freq = np.bincount(neg, minlength=8) / len(neg)
    # counts 1,1,1,3,1,0,0,0 out of 7
    np.testing.assert_allclose(freq[:5], np.array([1, 1, 1, 3, 1]) / 7, atol=0.01)
    assert freq[5:].sum() == 0


def test_spatial_sampler_draws_nearest_items():
    train = _train()  # items on a meridian, 0.01 degree apart
    sampler = SpatialSampler(train, k=2)
    lat = train.items["lat"].to_numpy()
    lon = train.items["lon"].to_numpy()
    for item in range(8):
        dist = haversine(lat[item], lon[item], lat, lon)
        dist[item] = np.inf
        assert set(sampler.neighbours[item]) == set(np.argsort(dist, kind="stable")[:2]) or (
            sorted(dist[sampler.neighbours[item]]) == sorted(np.sort(dist)[:2])
        )
    neg = sampler.sample(np.zeros(100, int), np.full(100, 4), 3, np.random.default_rng(0))
    assert set(np.unique(neg)) <= {3, 5}


def _fit(split, name="bprmf", epochs=4, run_dir=None, **config):
    def build():
        seed_everything(0)
        return models.get(name)(split)

    options = dict(epochs=epochs, batch_size=32, lr=0.01, progress=False, patience=100)
    options.update(config)
    trainer = Trainer(build(), split, options, run_dir=run_dir, rebuild=build)
    trainer.fit(resume=run_dir is not None)
    return trainer


def test_same_seed_same_run():
    split = random_split()
    first = _fit(split, "lightgcn", 2, batch_size=128)
    second = _fit(split, "lightgcn", 2, batch_size=128)
    assert [r.loss for r in first.history] == [r.loss for r in second.history]
    assert first.evaluate("test").metrics == second.evaluate("test").metrics


def test_resume_equals_uninterrupted(tmp_path):
    split = random_split()
    full = _fit(split, "bprmf", 4, negatives="popularity", n_neg=2)
    _fit(split, "bprmf", 2, negatives="popularity", n_neg=2, run_dir=RunDir(tmp_path))
    resumed = _fit(split, "bprmf", 4, negatives="popularity", n_neg=2, run_dir=RunDir(tmp_path))
    assert [r.loss for r in resumed.history] == [r.loss for r in full.history]
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    assert (tmp_path / "best.pt").exists()


def test_early_stopping_selects_on_validation_and_logs(tmp_path):
    run_dir = RunDir(tmp_path)
    trainer = _fit(random_split(), "bprmf", 30, patience=2, lr=0.5, run_dir=run_dir)
    history = trainer.history
    values = [r.valid["ndcg@20"] for r in history]
    assert trainer.best_epoch == 1 + int(np.argmax(values))
    assert len(history) < 30 and len(history) == trainer.best_epoch + 2
    assert run_dir.read_curve() == history
    # the best weights are restored
    restored = Evaluator(trainer.split, "valid", ["ndcg@20"]).evaluate(trainer.model)
    assert restored.metrics["ndcg@20"] == pytest.approx(max(values))


def test_lr_decays_on_plateau_and_the_decay_is_logged():
    trainer = _fit(random_split(), "bprmf", 30, patience=6, lr=0.5, lr_decay=0.1, lr_patience=2)
    lrs, history = [r.lr for r in trainer.history], trainer.history
    improved = [r.best_epoch == r.epoch for r in history]
    stale, expected, lr = 0, [], 0.5
    for better in improved:  # eval_every=1: every epoch is validated
        stale = 0 if better else stale + 1
        if stale == 2:
            stale, lr = 0, lr * 0.1
        expected.append(lr)
    assert lrs == pytest.approx(expected) and min(lrs) < 0.5


def test_time_budget_stops_training_and_validates_the_last_epoch():
    trainer = _fit(random_split(), "bprmf", 1000, eval_every=50, time_budget_s=0.0)
    assert len(trainer.history) == 1 and "ndcg@20" in trainer.history[0].valid
    assert trainer.best_epoch == 1


def test_refit_retrains_on_train_and_valid_with_the_selected_schedule(tmp_path):
    split = random_split()
    options = dict(batch_size=128, lr_decay=0.5, lr_patience=1, run_dir=RunDir(tmp_path))
    trainer = _fit(split, "lightgcn", 8, refit=True, **options)
    selection = [r for r in trainer.history if not r.refit]
    refits = [r for r in trainer.history if r.refit]
    best = trainer.best_epoch
    assert [r.refit_epoch for r in refits] == list(range(1, best + 1))
    assert [r.lr for r in refits] == [0.01] + [r.lr for r in selection[: best - 1]]
    assert not any(r.validated for r in refits)
    pairs = len(split.train) + len(split.valid)  # distinct (user, item) pairs here
    assert trainer.model.graph.num_edges() == 2 * pairs
    assert len(trainer._samples[1]) == pairs
    # retrained from the seeded initialisation: the same first loss up to the extra events
    assert refits[0].loss == pytest.approx(selection[0].loss, rel=0.2)
    assert (tmp_path / "refit.pt").exists()


def test_a_refit_stopped_midway_resumes_after_its_last_checkpointed_epoch(tmp_path, monkeypatch):
    split = random_split()
    options = dict(batch_size=128, lr=0.003, lr_decay=0.5, lr_patience=1, refit=True)
    full = _fit(split, "lightgcn", 6, **options)
    best = full.best_epoch
    assert best >= 3  # a refit long enough to stop in its middle

    record = Trainer._record

    def stop_after_the_second_refit_record(self, rec):
        record(self, rec)  # the record is in the curve, its checkpoint not yet written
        if rec.refit_epoch == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(Trainer, "_record", stop_after_the_second_refit_record)
        with pytest.raises(KeyboardInterrupt):
            _fit(split, "lightgcn", 6, run_dir=RunDir(tmp_path), **options)
    assert (tmp_path / "refit_last.pt").exists() and not (tmp_path / "refit.pt").exists()

    trained = []
    train_epoch = Trainer.train_epoch
    monkeypatch.setattr(Trainer, "train_epoch", lambda self: trained.append(1) or train_epoch(self))
    resumed = _fit(split, "lightgcn", 6, run_dir=RunDir(tmp_path), **options)
    assert len(trained) == best - 1  # refit epochs 2..best: epoch 1 came from its checkpoint
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)
    times = {"train_s", "eval_s"}
    expected = [r.model_dump(exclude=times) for r in full.history]
    assert [r.model_dump(exclude=times) for r in resumed.history] == expected
    curve = RunDir(tmp_path).read_curve()  # the second refit epoch recorded once
    assert [r.model_dump(exclude=times) for r in curve] == expected
    assert full.evaluate("test").metrics == resumed.evaluate("test").metrics


def test_a_stopped_refit_is_not_continued_after_the_selection_went_on(tmp_path, monkeypatch):
    split = random_split()
    options = dict(batch_size=128, lr=0.001, refit=True)
    record = Trainer._record

    def stopped(epochs, refit_epoch):
        """Train ``epochs`` in ``tmp_path``, stopped after the record of ``refit_epoch``
        (before its checkpoint)."""

        def stop(self, rec):
            record(self, rec)
            if rec.refit_epoch == refit_epoch:
                raise KeyboardInterrupt

        with monkeypatch.context() as patched:
            patched.setattr(Trainer, "_record", stop)
            with pytest.raises(KeyboardInterrupt):
                _fit(split, "lightgcn", epochs, run_dir=RunDir(tmp_path), **options)

    stopped(3, refit_epoch=2)  # leaves the refit checkpoint of the 3-epoch selection
    stopped(5, refit_epoch=1)  # the selection went on to 5; its refit has no checkpoint yet
    resumed = _fit(split, "lightgcn", 5, run_dir=RunDir(tmp_path), **options)
    fresh = _fit(split, "lightgcn", 5, **options)
    assert resumed.best_epoch == fresh.best_epoch == 5
    assert [r.refit_epoch for r in resumed.history if r.refit] == [1, 2, 3, 4, 5]
    for key, value in fresh.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_refit_needs_a_model_that_can_observe():
    with pytest.raises(NotImplementedError, match="train.refit"):
        _fit(random_split(), "sasrec", 1, refit=True)


def test_bad_lr_decay_raises():
    with pytest.raises(ConfigError, match="key 'train.lr_decay'"):
        Trainer(models.get("pop")(random_split()), random_split(), {"lr_decay": 0.0})


def test_statistical_models_are_fitted_not_trained():
    trainer = _fit(random_split(), "pop")
    assert trainer.optimizer is None and len(trainer.history) == 1


def test_unknown_trainer_option_raises():
    with pytest.raises(ConfigError, match="key .train.epoch.: Extra inputs"):
        Trainer(models.get("pop")(random_split()), random_split(), {"epoch": 3})


def test_real_data_nyc_markov_and_movielens_bprmf_beat_popularity(root):
    from tgraph.data.protocols import getnext_nyc, leave_last_out
    from tgraph.data.readers.movielens import read_movielens_100k

    nyc = getnext_nyc(root)
    metrics = ["acc@1", "acc@10", "mrr"]
    pop = Evaluator(nyc, "test", metrics).evaluate(models.get("pop")(nyc)).metrics
    markov = Evaluator(nyc, "test", metrics).evaluate(models.get("markov")(nyc)).metrics
    assert pop["acc@10"] < 0.06 and markov["acc@10"] > 0.3 and markov["mrr"] > 5 * pop["mrr"]

    ml = leave_last_out(read_movielens_100k(data_root(root) / "movielens_100k"), mask_history=True)
    base = Evaluator(ml, "test", ["recall@20"]).evaluate(models.get("pop")(ml)).metrics
    options = dict(batch_size=1024, lr=5e-3, metrics=("recall@20",), valid_metric="recall@20")
    trainer = _fit(ml, "bprmf", 6, **options)
    assert trainer.evaluate("test").metrics["recall@20"] > base["recall@20"] + 0.02


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """``tag -> [(step, value), ...]`` of every event file in ``folder``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_event_file_holds_the_curve_once_after_a_resume(tmp_path):
    split = random_split()
    run_dir = RunDir(tmp_path)
    _fit(split, "bprmf", 2, eval_every=2, run_dir=run_dir, tensorboard=True)
    trainer = _fit(split, "bprmf", 4, eval_every=2, run_dir=run_dir, tensorboard=True)
    history = trainer.history
    assert [r.epoch for r in history] == [1, 2, 3, 4]  # two sessions: epochs 1-2, then 3-4
    scalars = _scalars(tmp_path / "tensorboard")
    assert set(scalars) == {
        "train/loss",
        "train/lr",
        "train/seconds",
        "valid/recall@20",
        "valid/ndcg@20",
        "valid/seconds",
    }
    # each epoch once, although the first session had written epochs 1-2 already
    assert scalars["train/loss"] == [(r.epoch, pytest.approx(r.loss)) for r in history]
    assert scalars["train/lr"] == [(e, pytest.approx(0.01)) for e in (1, 2, 3, 4)]
    # validated every second epoch only
    assert scalars["valid/ndcg@20"] == [
        (e, pytest.approx(history[e - 1].valid["ndcg@20"])) for e in (2, 4)
    ]


def test_tensorboard_scalars_of_a_refit_epoch():
    from tgraph.runs import CurveRecord
    from tgraph.train.tensorboard import scalars

    record = CurveRecord(epoch=7, loss=0.5, train_s=2.0, lr=0.1, refit=True, refit_epoch=3)
    assert scalars(record) == (3, {"refit/loss": 0.5, "refit/lr": 0.1, "refit/seconds": 2.0})
    record = CurveRecord(epoch=0, valid={"mrr": 0.25}, eval_s=1.5)  # a statistical model
    assert scalars(record) == (0, {"valid/mrr": 0.25, "valid/seconds": 1.5})


def test_tensorboard_needs_the_extra_and_a_run_directory(monkeypatch):
    split = random_split()
    with pytest.raises(ConfigError, match=r"key 'train.tensorboard'.*run directory"):
        Trainer(models.get("pop")(split), split, {"tensorboard": True})
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError) as error:
        Trainer(models.get("pop")(split), split, {"tensorboard": True})
    message = str(error.value)
    assert message.startswith("key 'train.tensorboard': TensorBoard is not installed")
    assert "pip install 'tgraph[tensorboard]'" in message
    # an experiment config fails at validation (before any data is read), keyed where written
    with pytest.raises(ConfigError, match=r"^key 'models\[0\]\.train\.tensorboard': TensorBoard"):
        load_config([], ["models=[{name: bprmf, train: {tensorboard: true}}]"])


def test_one_log_line_per_epoch_when_progress_bars_are_off(caplog):
    split = random_split()
    with caplog.at_level(logging.INFO, logger="tgraph.train.trainer"):
        trainer = _fit(split, "bprmf", 3, eval_every=2)
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage()]
    first, second, third = trainer.history
    best = max(second.valid["ndcg@20"], third.valid["ndcg@20"])
    assert lines[:3] == [
        f"epoch 1/3: loss {first.loss:.4f}, {first.train_s:.1f} s",
        f"epoch 2/3: loss {second.loss:.4f}, valid ndcg@20 {second.valid['ndcg@20']:.4f} "
        f"(best {second.valid['ndcg@20']:.4f} at epoch 2), {second.train_s + second.eval_s:.1f} s",
        f"epoch 3/3: loss {third.loss:.4f}, valid ndcg@20 {third.valid['ndcg@20']:.4f} "
        f"(best {best:.4f} at epoch {trainer.best_epoch}), {third.train_s + third.eval_s:.1f} s",
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tgraph.train.trainer"):
        _fit(split, "bprmf", 2, progress=True)  # the tqdm bars show the progress instead
    assert not [r for r in caplog.records if r.getMessage().startswith("epoch ")]


def test_max_target_gap_keeps_the_continuations_of_a_trajectory():
    # user 0: 1 h, 2 h, then 30 h later; user 1: 0 h, 0 h (a tie), 5 h
    hour = 3600
    rows = [
        (0, 0, hour),
        (0, 1, 2 * hour),
        (0, 2, 32 * hour),
        (1, 3, 0),
        (1, 4, 0),
        (1, 5, 5 * hour),
    ]
    split = random_split()
    split = dataclasses.replace(split, train=make_interactions(rows, split.n_users, split.n_items))
    seed_everything(0)
    model = models.get("sasrec")(split, {"embedding_dim": 8, "n_heads": 1, "max_len": 4})
    trainer = Trainer(model, split, {"max_target_gap_hours": 24, "progress": False})
    queries, positives = trainer._samples
    assert positives.tolist() == [1, 5]
    # with min_history 2 as well: item 1 has one earlier event, item 5 two
    both = Trainer(model, split, {"max_target_gap_hours": 24, "min_history": 2, "progress": False})
    assert both._samples[1].tolist() == [5]
    with pytest.raises(ConfigError, match="train.max_target_gap_hours"):
        Trainer(model, split, {"max_target_gap_hours": 0.5, "progress": False})


def test_max_target_gap_on_sthgcn_nyc_trains_on_the_trajectory_continuations(root):
    """On the preset the filter keeps exactly the training events with a strictly earlier
    check-in in their trajectory (72,244: the preset's 73,029 non-first check-ins less 785 that
    share their trajectory's first minute, whose history cannot hold that check-in)."""
    split = prepare_split(DatasetConfig(name="foursquare_nyc", protocol="sthgcn_nyc"), root)
    events = split.train.events
    continuation = events["timestamp"] > events.groupby("trajectory")["timestamp"].transform("min")
    seed_everything(0)
    model = models.get("sasrec")(split, {"embedding_dim": 8, "n_heads": 1, "max_len": 4})
    trainer = Trainer(model, split, {"max_target_gap_hours": 24, "progress": False})
    _, positives = trainer._samples
    assert int(continuation.sum()) == len(positives) == 72_244
    assert positives.tolist() == events.loc[continuation, "item"].tolist()
