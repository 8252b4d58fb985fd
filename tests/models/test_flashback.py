"""Flashback (Yang et al., IJCAI 2020): spatio-temporally weighted RNN states (issue 13, §3)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from tests.models.helpers import random_split, synthetic_acc10, tiny_split
from tgraph.data.queries import Queries, target_queries
from tgraph.errors import ConfigError
from tgraph.models import get
from tgraph.models.base import Batch
from tgraph.models.flashback import Flashback, flashback_weights
from tgraph.train import seed_everything
from tgraph.train.trainer import Trainer

SMALL = {"max_len": 8, "hidden_dim": 6}
DAY = 86400


def make(split=None, **config) -> Flashback:
    seed_everything(0)
    return get("flashback")(split or random_split(), {**SMALL, **config})


def history_queries(items, times, width: int, pad: int = 30, users=None) -> Queries:
    """Queries with the given histories; item ``i`` at latitude ``40 + 0.01 i``, lon -74."""
    rows = [seq + [pad] * (width - len(seq)) for seq in items]
    time_rows = [t + [0] * (width - len(t)) for t in times]
    hist = torch.tensor(rows)
    real = hist != pad
    lat = torch.where(real, 40.0 + 0.01 * hist.float(), torch.zeros(()))
    lon = torch.where(real, torch.full_like(lat, -74.0), torch.zeros(()))
    n = len(items)
    return Queries(
        user=torch.tensor(users if users is not None else [0] * n),
        timestamp=torch.zeros(n, dtype=torch.long),
        hist_items=hist,
        hist_times=torch.tensor(time_rows, dtype=torch.long),
        hist_lat=lat,
        hist_lon=lon,
        hist_len=torch.tensor([len(s) for s in items]),
        pad=pad,
    )


def test_registry_defaults_are_the_authors():
    model = get("flashback")(random_split())
    assert get("Flashback") is Flashback and model.needs_training
    cfg = model.config
    assert (cfg.max_len, cfg.hidden_dim, cfg.rnn, cfg.lambda_t, cfg.lambda_s, cfg.loss) == (
        20,
        10,
        "rnn",
        0.1,
        100.0,
        "ce",
    )
    assert model.history_len == 20
    with pytest.raises(ConfigError, match=r"key 'config\.lambda_s'"):
        get("flashback")(random_split(), {"lambda_s": -1})
    with pytest.raises(ConfigError, match=r"key 'config\.rnn'"):
        get("flashback")(random_split(), {"rnn": "transformer"})


def test_weights_by_hand():
    """Three check-ins, the last one "now": one a day earlier at the same place (daily
    cosine 1, decay e^-0.1), one half a day earlier 0.01 degrees away (cosine 0)."""
    times = torch.tensor([[0, DAY // 2, DAY, 0]])
    lat = torch.tensor([[40.0, 40.01, 40.0, 0.0]])
    lon = torch.full((1, 4), -74.0)
    alpha = flashback_weights(times, lat, lon, torch.tensor([3]), lambda_t=0.1, lambda_s=100.0)
    w = torch.tensor([math.exp(-0.1), 0.0, 1.0]) + 1e-10
    assert torch.allclose(alpha[0, :3], w / w.sum(), atol=1e-7)
    assert alpha[0, 3] == 0  # padding
    # the spatial factor: the same times, the first check-in 0.01 degrees away -> e^-1
    lat2 = torch.tensor([[40.01, 40.01, 40.0, 0.0]])
    alpha2 = flashback_weights(times, lat2, lon, torch.tensor([3]), 0.1, 100.0)
    w2 = torch.tensor([math.exp(-0.1) * math.exp(-1.0), 0.0, 1.0]) + 1e-10
    # float32 latitudes: 40.01 - 40.0 = 0.0099983 degrees
    assert torch.allclose(alpha2[0, :3], w2 / w2.sum(), atol=1e-4)
    # no coordinates: time only; empty history: all weight on position 0
    alpha3 = flashback_weights(times, None, None, torch.tensor([3]), 0.1, 100.0)
    assert torch.allclose(alpha3[0, :3], w / w.sum(), atol=1e-7)
    empty = flashback_weights(torch.zeros(1, 4), None, None, torch.tensor([0]), 0.1, 100.0)
    assert torch.equal(empty, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))


def test_query_state_by_hand():
    """The Elman recurrence written out, averaged with the hand weights, next to p_u."""
    model = make(rnn="rnn").eval()
    queries = history_queries([[3, 5, 3]], [[0, DAY // 2, DAY]], 8, users=[7])
    rnn = model.rnn
    h = model.h0
    states = []
    for item in (3, 5, 3):
        x = model.item_emb.weight[item]
        h = torch.tanh(
            rnn.weight_ih_l0 @ x + rnn.bias_ih_l0 + rnn.weight_hh_l0 @ h + rnn.bias_hh_l0
        )
        states.append(h)
    # item 5 is 0.02 degrees from item 3: spatial e^-2, and half a day: cosine 0
    w = torch.tensor([math.exp(-0.1), 0.0, 1.0]) + 1e-10
    mixed = sum(wj * hj for wj, hj in zip(w / w.sum(), states, strict=True))
    expected = torch.cat([mixed, model.user_emb.weight[7]])
    with torch.no_grad():
        state = model.query_state(queries)[0]
        assert torch.allclose(state, expected, atol=1e-6)
        scores = model.full_sort_predict(queries)[0]
        assert torch.allclose(scores, model.out.weight @ expected + model.out.bias, atol=1e-5)


@pytest.mark.parametrize("rnn", ["rnn", "gru", "lstm"])
def test_shapes_and_predict_agree_with_full_sort(rnn):
    split = tiny_split()
    model = make(split, rnn=rnn).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    assert queries.hist_lat is not None  # the tiny items have coordinates
    scores = model.full_sort_predict(queries)
    assert scores.shape == (3, split.n_items) and torch.isfinite(scores).all()
    items = torch.tensor([[0, 5], [1, 2], [3, 3]])
    assert torch.allclose(model.predict(queries, items), scores.gather(1, items), atol=1e-6)
    assert torch.allclose(model.predict(queries, items[:, 0]), scores[:, [0, 1, 3]].diagonal())


@pytest.mark.parametrize("loss", ["ce", "sampled_softmax", "bpr"])
def test_losses_backpropagate_to_every_part(loss):
    model = make(loss=loss).train()
    queries = history_queries(
        [[1, 2, 3], [4], [5, 6, 7]], [[0, 100, 7200], [50], [0, DAY, 2 * DAY]], 8, users=[0, 1, 2]
    )
    neg = None if loss == "ce" else torch.tensor([[0, 7], [9, 10], [20, 21]])
    value = model.calculate_loss(Batch(queries, torch.tensor([4, 5, 13]), neg))
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["item_emb.weight"][[1, 4, 5]].abs().sum(1).min() > 0
    assert torch.equal(grads["item_emb.weight"][30], torch.zeros(6))  # padding row
    assert grads["user_emb.weight"][[0, 1, 2]].abs().sum(1).min() > 0
    assert grads["user_emb.weight"][3:].abs().sum() == 0
    for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "out.weight", "out.bias"):
        assert grads[name].abs().sum() > 0, name
    assert "h0" not in grads  # the authors' initial state is fixed


def test_padding_invariance_and_causality():
    model = make().eval()
    seqs = [[1, 2, 3], [4], [5, 6, 7, 8, 9], []]
    times = [[10, 20, 30], [5], [1, 2, 3, 4, 5], []]
    with torch.no_grad():
        short = model.full_sort_predict(history_queries(seqs, times, 5))
        long = model.full_sort_predict(history_queries(seqs, times, 8))
        assert torch.allclose(short, long, atol=1e-5)
        alone = model.full_sort_predict(history_queries([[1, 2, 3]], [[10, 20, 30]], 3))
        assert torch.allclose(alone[0], short[0], atol=1e-5)


def test_scores_depend_on_history_times_and_places_but_not_on_the_query_time():
    model = make().eval()
    base = history_queries([[1, 2, 3, 4]], [[0, 3600, 7200, 4 * DAY]], 8)
    with torch.no_grad():
        scores = model.full_sort_predict(base)
        later = dataclasses.replace(base, timestamp=torch.tensor([10 * DAY]))
        assert torch.equal(model.full_sort_predict(later), scores)
        moved = dataclasses.replace(base, hist_times=torch.tensor([[0, 0, 0, 4 * DAY] + [0] * 4]))
        assert not torch.allclose(model.full_sort_predict(moved), scores, atol=1e-6)
        far = dataclasses.replace(
            base, hist_lat=base.hist_lat + torch.tensor([[1.0, 0, 0, 0] + [0] * 4])
        )
        assert not torch.allclose(model.full_sort_predict(far), scores, atol=1e-6)


def _move_test_targets(split, new_time: dict[int, int]):
    """``split`` with each user's test events (and targets) moved to ``new_time[user]``."""
    events = split.test.events.copy()
    targets = split.test_targets.copy()
    for user, time in new_time.items():
        events.loc[events["user"] == user, "timestamp"] = time
        targets.loc[targets["user"] == user, "timestamp"] = time
    test = dataclasses.replace(split.test, events=events)
    return dataclasses.replace(split, test=test, test_targets=targets)


@pytest.mark.parametrize("rnn", ["rnn", "lstm"])
def test_no_leakage_of_the_target_time(rnn):
    """Moving each test target anywhere inside the gap after its user's last history event
    leaves the scores unchanged (the query_time contract; the model reads no query time)."""
    split = tiny_split()
    model = make(split, rnn=rnn).eval()
    with torch.no_grad():
        queries, _ = target_queries(split, "test", model.history_len)
        scores = model.full_sort_predict(queries)
        # last history events: u0 at 10 (valid), u2 at 7, u3 at 8
        for moved in ({0: 11, 2: 8, 3: 9}, {0: 10**6, 2: 10**5, 3: 10**7}):
            other = _move_test_targets(split, moved)
            queries2, _ = target_queries(other, "test", model.history_len)
            assert torch.equal(queries2.hist_items, queries.hist_items)
            assert torch.equal(model.full_sort_predict(queries2), scores)


def test_observe_keeps_the_model():
    split = tiny_split()
    model = make(split).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    before = model.full_sort_predict(queries)
    model.observe(split.train)
    assert torch.equal(model.full_sort_predict(queries), before)


@pytest.mark.slow
def test_trains_with_refit_and_the_same_seed_repeats():
    """The trainer's refit calls observe (a no-op: nothing is derived from events); the fixed
    initial state h0 is drawn under the seed, so one seed gives one run."""

    def run():
        split = random_split()

        def build():
            seed_everything(0)
            return get("flashback")(split, SMALL)

        options = {"epochs": 1, "batch_size": 64, "lr": 0.01, "progress": False, "refit": True}
        trainer = Trainer(build(), split, options, rebuild=build)
        trainer.fit()
        return [r.loss for r in trainer.history], trainer.evaluate("test").metrics

    first, second = run(), run()
    assert first == second and all(np.isfinite(first[0]))


@pytest.mark.slow
def test_flashback_beats_most_popular_on_synthetic_checkins():
    acc, pop_acc = synthetic_acc10("flashback", {"hidden_dim": 32})
    assert acc > pop_acc + 0.05, (acc, pop_acc)
    assert np.isfinite(acc)
