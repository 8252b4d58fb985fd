"""STHeteroRec ("sthrec"): shapes, gradients, ablation flags, causality, determinism, training."""

import dataclasses

import pytest
import torch

import tgraph.models as models
from tgraph.data.protocols import getnext_nyc, next_poi_chronological
from tgraph.data.queries import target_queries
from tgraph.data.synthetic import generate
from tgraph.models.base import Batch
from tgraph.models.flagship import STHeteroRec
from tgraph.train import Trainer
from tgraph.train.seed import seed_everything

SMALL = {"embedding_dim": 16, "max_len": 8, "ff_dim": 32, "time_dim": 8, "dist_dim": 8}


@pytest.fixture(scope="module")
def split():
    inter = generate(n_users=60, n_pois=120, n_events=3000, days=30, n_regions=6, seed=1)
    return next_poi_chronological(inter)


def _model(split, **config) -> STHeteroRec:
    seed_everything(0)
    return models.get("sthrec")(split, {**SMALL, "n_regions": 10, **config})


def test_shapes_predict_matches_full_sort(split):
    model = _model(split).eval()
    assert model.history_len == 8
    queries, _ = target_queries(split, "test", model.history_len)
    full = model.full_sort_predict(queries)
    assert full.shape == (len(queries), split.n_items) and torch.isfinite(full).all()
    items = torch.randint(0, split.n_items, (len(queries), 5))
    torch.testing.assert_close(model.predict(queries, items), full.gather(1, items))
    torch.testing.assert_close(
        model.predict(queries, items[:, 0]), full.gather(1, items[:, :1])[:, 0]
    )


def test_gradients_reach_every_parameter(split):
    model = _model(split).train()
    queries, _ = target_queries(split, "valid", model.history_len)
    batch = Batch(queries[:32], torch.randint(0, split.n_items, (32,)))
    loss = model.calculate_loss(batch)
    assert model.config.loss == "ce" and torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        if name == "empty" and bool((queries[:32].hist_len > 0).all()):
            continue  # the empty-history vector only gets gradients from empty histories
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_ablation_flags_change_the_graph(split):
    full = _model(split)
    assert {"user", "item", "location"} == set(full.graph.ntypes)
    assert {"transition", "visits", "near", "in_location", "interacts"} <= set(full.graph.etypes)
    no_transition = _model(split, graph={"transitions": False})
    assert "transition" not in no_transition.graph.etypes
    assert "rev_transition" not in no_transition.graph.etypes
    no_location = _model(split, graph={"locations": False})
    assert "location" not in no_location.graph.ntypes
    assert not {"visits", "near", "in_location"} & set(no_location.graph.etypes)
    no_user = _model(split, use_user_relation=False)
    assert "user" not in no_user.graph.ntypes
    assert not any("user" in (et[0], et[2]) for et in no_user.graph.canonical_etypes)
    assert no_user.user_emb is not None and full.user_emb is None
    for model in (no_transition, no_location, no_user):
        for layer in model.encoder.layers:
            assert set(layer.etypes) <= set(model.graph.canonical_etypes)


def _shifted_times(queries, seconds):
    """Query time + ``seconds``; history event ``p`` + ``p * seconds`` (so gaps change too)."""
    return dataclasses.replace(
        queries,
        timestamp=queries.timestamp + seconds,
        hist_times=torch.where(
            queries.hist_mask,
            queries.hist_times + seconds * torch.arange(queries.hist_times.shape[1]),
            queries.hist_times,
        ),
    )


def test_time_flags(split):
    queries, _ = target_queries(split, "test", 8)
    moved = _shifted_times(queries, 3 * 3600 + 17)
    with_time = _model(split).eval()
    assert not torch.allclose(
        with_time.full_sort_predict(queries), with_time.full_sort_predict(moved)
    )
    assert hasattr(with_time, "time_proj")
    no_time = _model(split, use_time_encoding=False, use_query_time=False).eval()
    assert not hasattr(no_time, "time_proj") and not hasattr(no_time, "query_slot_emb")
    torch.testing.assert_close(no_time.full_sort_predict(queries), no_time.full_sort_predict(moved))


def test_distance_flag(split):
    items = split.train.items.copy()
    items["lat"] = items["lat"] + 0.3 * (items.index % 3)  # move POIs apart
    queries, _ = target_queries(split, "test", 8)
    for flag in (True, False):
        a = _model(split, use_distance=flag, graph={"locations": False}).eval()
        b = _model(
            dataclasses.replace(
                split, train=split.train.with_events(split.train.events, items=items)
            ),
            use_distance=flag,
            graph={"locations": False},
        ).eval()
        same = torch.allclose(a.full_sort_predict(queries), b.full_sort_predict(queries))
        assert same != flag  # coordinates matter exactly when the distance flag is on
    assert not hasattr(a, "dist_enc")


def test_padding_is_ignored(split):
    """Scores depend on the real history only: padding times and extra padding columns
    change nothing (causal encoder, masked inputs)."""
    model = _model(split, max_len=64).eval()
    queries, _ = target_queries(split, "test", 64)
    ref = model.full_sort_predict(queries)
    assert bool((queries.hist_len < 64).any())
    junk = torch.where(queries.hist_mask, queries.hist_times, 987654)
    torch.testing.assert_close(
        model.full_sort_predict(dataclasses.replace(queries, hist_times=junk)), ref
    )
    width = int(queries.hist_len.median())
    narrow = dataclasses.replace(
        queries,
        hist_items=queries.hist_items[:, :width],
        hist_times=queries.hist_times[:, :width],
        hist_len=queries.hist_len.clamp(max=width),
    )
    keep = queries.hist_len <= width
    assert 0 < int(keep.sum()) < len(queries)
    torch.testing.assert_close(model.full_sort_predict(narrow)[keep], ref[keep])
    assert not torch.allclose(model.full_sort_predict(narrow)[~keep], ref[~keep])


def test_determinism_and_device(split):
    a = _model(split).to("cpu").eval()
    b = _model(split).eval()
    assert a.graph.device.type == "cpu" and a.item_latlon.device.type == "cpu"
    queries, _ = target_queries(split, "test", 8)
    torch.testing.assert_close(a.full_sort_predict(queries), b.full_sort_predict(queries))
    torch.testing.assert_close(a.full_sort_predict(queries), a.full_sort_predict(queries))


@pytest.mark.slow
def test_short_training_beats_popularity():
    """4 epochs on 12k synthetic check-ins: test MRR 0.199 against MostPopular's 0.074."""
    split = next_poi_chronological(generate(n_users=150, n_pois=300, n_events=12000, days=60))
    config = {
        "epochs": 4,
        "batch_size": 512,
        "lr": 0.005,
        "eval_every": 4,
        "progress": False,
        "metrics": ("mrr",),
        "valid_metric": "mrr",
    }
    results = {}
    for name, model_config in [
        ("pop", {}),
        ("sthrec", {**SMALL, "embedding_dim": 32, "n_regions": 10}),
    ]:
        seed_everything(0)
        trainer = Trainer(models.get(name)(split, model_config), split, config)
        trainer.fit()
        results[name] = trainer.evaluate("test", ("mrr", "acc@10")).metrics
    assert results["sthrec"]["mrr"] > 2 * results["pop"]["mrr"], results
    assert results["sthrec"]["acc@10"] > 2 * results["pop"]["acc@10"], results


def test_builds_and_scores_on_nyc(root):
    split = getnext_nyc(root)
    model = STHeteroRec(split, {"embedding_dim": 16}).eval()
    graph = model.graph
    assert graph.num_edges("interacts") == len(split.train) == 113013
    assert graph.num_nodes("location") == 100 and graph.num_nodes("item") == 5135
    queries, _ = target_queries(split, "test", model.history_len)
    scores = model.full_sort_predict(queries[:64])
    assert scores.shape == (64, 5135) and torch.isfinite(scores).all()
