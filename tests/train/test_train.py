"""Negative samplers, seeding, checkpoint resume, early stopping and a real-data run."""

import numpy as np
import pytest
import torch

import tgraph.models as models
from tests.models.helpers import make_interactions, random_split
from tgraph.data.geo import haversine
from tgraph.data.paths import data_root
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
