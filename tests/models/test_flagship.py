"""STHeteroRec ("sthrec"): shapes, gradients, ablation flags, causality, determinism, training."""

import dataclasses

import dgl
import numpy as np
import pandas as pd
import pytest
import torch

import tgraph.models as models
from tgraph.data import registry
from tgraph.data.protocols import getnext_nyc, next_poi_chronological
from tgraph.data.queries import build_queries, context_events, history_index, target_queries
from tgraph.data.split import Split, empty_targets, event_targets
from tgraph.data.synthetic import generate
from tgraph.errors import ConfigError, DataError
from tgraph.graph.sampling import NeighborSampling
from tgraph.models.base import Batch
from tgraph.models.flagship import STHeteroRec
from tgraph.serve.state import LiveState
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
        hist_offsets=queries.hist_offsets[:, :width],
        hist_len=queries.hist_len.clamp(max=width),
    )
    keep = queries.hist_len <= width
    assert 0 < int(keep.sum()) < len(queries)
    torch.testing.assert_close(model.full_sort_predict(narrow)[keep], ref[keep])
    assert not torch.allclose(model.full_sort_predict(narrow)[~keep], ref[~keep])


BERLIN = """user,venue,time,lat,lon
a,x,2024-01-15 08:00:00,52.52,13.40
a,y,2024-01-16 08:00:00,52.50,13.42
b,y,2024-07-01 08:00:00,52.50,13.42
b,x,2024-07-02 08:00:00,52.52,13.40
a,x,2024-07-03 08:00:00,52.52,13.40
b,y,2024-07-03 08:00:00,52.50,13.42
"""


def _berlin_split(tmp_path) -> Split:
    """Check-ins at 08:00 Berlin wall time (CET +60 min in January, CEST +120 in July);
    the two 3 July check-ins are the test targets: a's history is January's, b's July's."""
    path = tmp_path / "berlin.csv"
    path.write_text(BERLIN)
    columns = {"user": "user", "item": "venue", "timestamp": "time", "lat": "lat", "lon": "lon"}
    inter = registry.load("table", path=str(path), columns=columns, timezone="Europe/Berlin")
    assert sorted(set(inter.events["tz_offset"])) == [60, 120]
    events = inter.events
    late = events["timestamp"] >= pd.Timestamp("2024-07-03", tz="UTC").timestamp()
    test = events[late].reset_index(drop=True)
    return Split(
        inter.with_events(events[~late]),
        None,
        inter.with_events(test),
        empty_targets(),
        event_targets(test),
        mask_history=False,
        protocol="berlin",
    )


@pytest.mark.parametrize(("slots", "expected"), [(24, 8), (86400, 8 * 3600)])
def test_berlin_8am_is_hour_8_in_winter_and_summer(tmp_path, slots, expected):
    """Each check-in's own offset: the time-of-day of January's (UTC 07:00) and July's (UTC
    06:00) history events and of the July queries is 08:00 (hour 8, or second 28800)."""
    split = _berlin_split(tmp_path)
    model = _model(split, time_slots=slots, max_len=4, n_regions=2)
    # training samples: queries at each training check-in, with their own offsets
    train = split.train.events
    samples = build_queries(
        train["user"].to_numpy(),
        train["timestamp"].to_numpy(),
        history_index(context_events(split, "train")),
        model.history_len,
        split.n_items,
        offsets=train["tz_offset"].to_numpy(),
    )
    queries, _ = target_queries(split, "test", model.history_len)
    assert queries.hist_len.tolist() == [2, 2]  # a: two January events, b: two July ones
    for q in (samples, queries):
        hist, query = model.time_slots(q)
        assert (hist[q.hist_mask] == expected).all() and (query == expected).all()
    # the former single offset, the median of the training offsets (+90 min), is wrong here
    median = int(np.median(train["tz_offset"])) * 60
    old_hist = torch.remainder(queries.hist_times + median, 86400) * slots // 86400
    old_query = torch.remainder(queries.timestamp + median, 86400) * slots // 86400
    assert (old_hist[queries.hist_mask] != expected).any() or (old_query != expected).any()


def test_serving_keeps_each_events_offset(tmp_path):
    """Served histories carry each ingested event's tz_offset; an event sent without one
    keeps its user's last offset (the client's zone did not change)."""
    split = _berlin_split(tmp_path)
    model = _model(split, max_len=4, n_regions=2)
    state = LiveState.from_events(model, split.train.events, split.train.items)
    user, item = split.train.events.loc[0, ["user", "item"]]  # a's January check-in (+60)
    at = int(split.test.events["timestamp"].max()) + 1
    state.ingest(pd.DataFrame({"user": [user], "item": [item], "timestamp": [at - 1]}))
    state.ingest(
        pd.DataFrame({"user": [user], "item": [item], "timestamp": [at], "tz_offset": [120]})
    )
    served = state.queries(np.array([user]), at + 1)
    assert served.hist_offsets[0, 1:].tolist() == [3600, 3600, 7200]
    assert served.offset.tolist() == [7200]


def test_constant_offset_slots_equal_the_single_offset_ones(split):
    """On data with one offset for every event (GETNext NYC's -300 min), the per-event slots
    equal those of one dataset offset, for every query builder: training samples, targets
    with and without their own events, serving (offsets of the history only)."""
    nyc = dataclasses.replace(
        split,
        **{
            part: getattr(split, part).with_events(
                getattr(split, part).events.assign(tz_offset=-300)
            )
            for part in ("train", "valid", "test")
        },
    )
    model = _model(nyc, time_slots=48)
    train = nyc.train.events
    samples = build_queries(
        train["user"].to_numpy(),
        train["timestamp"].to_numpy(),
        history_index(context_events(nyc, "train")),
        model.history_len,
        nyc.n_items,
        offsets=train["tz_offset"].to_numpy(),
    )
    targets, table = target_queries(nyc, "test", model.history_len)
    served = LiveState.from_events(model, context_events(nyc, "test"), nyc.train.items).queries(
        table["user"].to_numpy(), table["timestamp"].to_numpy()
    )
    assert bool((targets.hist_len > 0).all())  # else serving has no offset to fall back on

    def single(t: torch.Tensor) -> torch.Tensor:  # the former `_slot`, tz_offset_minutes -300
        return torch.remainder(t - 300 * 60, 86400) * 48 // 86400

    for q in (samples, targets, served):
        hist, query = model.time_slots(q)
        mask = q.hist_mask
        torch.testing.assert_close(hist[mask], single(q.hist_times)[mask])
        torch.testing.assert_close(query, single(q.timestamp))
    torch.testing.assert_close(
        model.eval().full_sort_predict(targets), model.full_sort_predict(served)
    )


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
    # NYC reads its distance penalties from the table (the path of the published sthrec_nyc
    # numbers), not the per-batch rows used above MAX_DISTANCE_TABLE_ITEMS POIs
    assert model.log_km.shape == (5136, 5135)
    queries, _ = target_queries(split, "test", model.history_len)
    scores = model.full_sort_predict(queries[:64])
    assert scores.shape == (64, 5135) and torch.isfinite(scores).all()


def _assert_repeat_delta(delta: torch.Tensor, queries) -> None:
    """``delta`` = the scores' change when the repeat weights are set to r_k = k + 1: each
    history POI gains its position from the end, counted from 1 at the last."""
    expected = torch.zeros_like(delta)
    for b in range(len(queries)):
        n = int(queries.hist_len[b])
        for p in range(n):
            expected[b, int(queries.hist_items[b, p])] += float(n - p)
    torch.testing.assert_close(delta, expected, rtol=1e-5, atol=1e-5)


def test_repeat_term_hand_checked(split):
    """The repeat term adds r_k to each history POI, k its position from the end."""
    model = _model(split, use_transition_prior=False).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    queries = queries[:4]
    without = model.full_sort_predict(queries)
    with torch.no_grad():
        model.repeat_weight.copy_(torch.arange(1.0, 9.0))  # r_0 = 1 (last), r_1 = 2, ...
    delta = model.full_sort_predict(queries) - without
    _assert_repeat_delta(delta, queries)


def test_repeat_len_reads_a_longer_history_than_the_encoder(split):
    """With repeat_len > max_len the queries carry repeat_len events: the repeat term reads
    them all, the sequence encoder (and so everything else) only the last max_len."""
    model = _model(split, use_transition_prior=False, max_len=3, repeat_len=8).eval()
    assert model.history_len == 8 and model.repeat_weight.shape == (8,)
    assert model.pos_emb.num_embeddings == 3
    queries, _ = target_queries(split, "test", model.history_len)
    queries = queries[:6]
    assert int(queries.hist_len.max()) > 3
    with torch.no_grad():
        z = model.propagate()
        torch.testing.assert_close(
            model.query_embedding(queries, z), model.query_embedding(queries.tail(3), z)
        )
        without = model.full_sort_predict(queries)
        model.repeat_weight.copy_(torch.arange(1.0, 9.0))
        delta = model.full_sort_predict(queries) - without
    _assert_repeat_delta(delta, queries)


def test_revisit_blend_adds_the_rule_and_is_chosen_on_validation(split, tmp_path):
    """With ``revisit`` the scores are the learned ones plus w times the rule's; w is 0 in
    training and after fit the validation-best of ``revisit_weights``, kept in the best state."""
    rule = {"max_len": 12, "decay": 0.9, "transition_weight": 1.0}
    weights = (0.0, 0.5, 50.0)
    model = _model(split, revisit=rule, revisit_weights=weights)
    assert model.history_len == 12 and float(model.revisit_weight) == 0.0
    queries, _ = target_queries(split, "test", model.history_len)
    queries = queries[:16]
    alone = models.get("revisit")(split, rule).full_sort_predict(queries)
    with torch.no_grad():
        learned = model.eval().full_sort_predict(queries)
        model.revisit_weight.fill_(0.5)
        torch.testing.assert_close(model.full_sort_predict(queries), learned + 0.5 * alone)
        items = torch.randint(0, split.n_items, (16, 3))
        torch.testing.assert_close(
            model.predict(queries, items), (learned + 0.5 * alone).gather(1, items)
        )
        model.revisit_weight.fill_(0.0)
    config = {"epochs": 1, "batch_size": 256, "progress": False, "valid_metric": "mrr"}
    trainer = Trainer(model.train(), split, config)
    trainer.fit()
    chosen = float(model.revisit_weight)
    values = []
    for weight in weights:
        model.revisit_weight.fill_(weight)
        values.append(trainer.evaluate("valid", ("mrr",)).metrics["mrr"])
    assert chosen == weights[int(np.argmax(values))]
    assert float(trainer.best_state["revisit_weight"]) == chosen
    assert trainer.best_value == pytest.approx(max(values))
    assert trainer.calibrated_valid is not None
    assert trainer.calibrated_valid["mrr"] == pytest.approx(max(values))
    assert not STHeteroRec(split, {**SMALL, "n_regions": 10}).calibrate(lambda: 0.0)


def test_transition_prior_counts_train_and_leaves_out_the_own_transition(split):
    model = _model(split, use_repeat=False).train()
    events = split.train.events.sort_values("timestamp", kind="stable")
    counts = np.zeros((split.n_items + 1, split.n_items))
    for _, user_events in events.groupby("user", sort=False):
        items = user_events["item"].to_numpy()
        np.add.at(counts, (items[:-1], items[1:]), 1)
    np.testing.assert_array_equal(model._counts.toarray(), counts)
    queries, _ = target_queries(split, "valid", model.history_len)
    last = queries.last_item
    positives = torch.from_numpy(counts[last.numpy()].argmax(1))  # most often counted: own > 0
    rows = model._transition_rows(last, None)
    torch.testing.assert_close(rows, torch.log1p(torch.tensor(counts[last.numpy()]).float()))
    left_out = model._transition_rows(last, positives)
    own = counts[last.numpy(), positives.numpy()]
    expected = rows.clone()
    expected[torch.arange(len(last)), positives] = torch.log1p(
        torch.tensor(np.maximum(own - 1, 0)).float()
    )
    torch.testing.assert_close(left_out, expected)
    assert (own > 0).any()  # the case is exercised
    # the training loss reads the left-out counts (eval mode: no dropout)
    model.eval()
    with torch.no_grad():
        model.transition_weight.fill_(1.0)
    batch = Batch(queries, positives)
    scores = model._scores(queries, None, exclude=positives)
    expected_loss = torch.nn.functional.cross_entropy(scores, positives)
    torch.testing.assert_close(model.calculate_loss(batch), expected_loss)


def test_update_adds_transitions_like_a_rebuild(split):
    """The counts after :meth:`update` equal those of a model built on train + the events."""
    later = split.valid.events
    model = _model(split)
    model.update(later)
    merged = split.train.with_events(
        pd.concat([split.train.events, later], ignore_index=True).sort_values(
            "timestamp", kind="stable"
        )
    )
    rebuilt = _model(dataclasses.replace(split, train=merged))
    assert model._counts.nnz > 0
    assert (model._counts != rebuilt._counts).nnz == 0
    # an event older than its user's latest folded one: refused, counts unchanged (the graph
    # without transition edges, so that the counter itself refuses it)
    flat = _model(split, graph={"transitions": False})
    before = flat._counts.copy()
    first = split.train.events.iloc[:1].copy()
    with pytest.raises(DataError, match="older than its last folded event"):
        flat.update(first)
    assert (flat._counts != before).nnz == 0


def test_distance_table_equals_per_batch_distances(split):
    model = _model(split).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    last = queries.last_item
    items = torch.randint(0, split.n_items, (len(last), 3))
    table = (
        model._log_km(last, None),
        model._log_km(last, items),
        model._log_km(last, items[:, 0]),
    )
    del model.log_km
    direct = (
        model._log_km(last, None),
        model._log_km(last, items),
        model._log_km(last, items[:, 0]),
    )
    for got, expected in zip(table, direct, strict=True):
        torch.testing.assert_close(got, expected)


def test_distance_rows_without_table_equal_the_pairwise_penalties(split):
    """Without the table (above MAX_DISTANCE_TABLE_ITEMS POIs), one row per distinct last item
    gives the penalties of every (last item, POI) pair: repeated last items, the padding item
    and POIs without coordinates (rows and columns of zeros) included."""
    model = _model(split).eval()
    del model.log_km
    model.item_known[::7] = False  # some POIs without coordinates
    queries, _ = target_queries(split, "test", model.history_len)
    last = torch.cat([queries.last_item, torch.tensor([split.n_items, 7, 7, 8])])
    n = split.n_items
    pairs = model._pair_km(last.unsqueeze(1).expand(-1, n), torch.arange(n).expand(len(last), -1))
    expected = torch.log1p(pairs / 0.1)
    got = model._log_km(last, None)
    assert got.shape == (len(last), n)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    unknown = ~model.item_known[last]
    assert unknown.any() and (got[unknown] == 0).all()
    assert (got[:, ::7] == 0).all() and (got[~unknown] > 0).float().mean() > 0.5


def _grads(model, batch):
    model.zero_grad()
    loss = model.calculate_loss(batch)
    loss.backward()
    return loss.detach(), {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }


@pytest.mark.parametrize(
    "config",
    [{"loss": "ce"}, {"loss": "bpr", "use_user_relation": False}, {"loss": "sampled_softmax"}],
)
def test_sampled_step_with_full_fanout_equals_the_full_graph_step(split, config):
    model = _model(split, dropout=0.0, **config).train()
    queries, _ = target_queries(split, "valid", model.history_len)
    neg = None if config["loss"] == "ce" else torch.randint(0, split.n_items, (32, 4))
    batch = Batch(queries[:32], torch.randint(0, split.n_items, (32,)), neg)
    loss, grads = _grads(model, batch)
    model.use_sampling(NeighborSampling([-1, -1]))
    sampled_loss, sampled_grads = _grads(model, batch)
    torch.testing.assert_close(sampled_loss, loss, rtol=1e-5, atol=1e-6)
    assert sampled_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(sampled_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # a small fanout reads fewer edges: another (finite) loss, gradients reach the encoder
    model.use_sampling(NeighborSampling([2, 2]))
    small_loss, small_grads = _grads(model, batch)
    assert torch.isfinite(small_loss) and not torch.isclose(small_loss, loss)
    assert all(small_grads[n].abs().sum() > 0 for n in grads if n.startswith("encoder.layers"))


def test_sampled_blocks_read_the_training_graph_only(split):
    model = _model(split).train()
    model.use_sampling(NeighborSampling([3, 3]))
    graph = model.graph
    assert graph.num_edges("interacts") == len(split.train)
    queries, _ = target_queries(split, "valid", model.history_len)
    nodes = {"item": torch.arange(split.n_items), "user": queries.user.unique()}
    sample = model.sampling.sample_types(graph, nodes)
    for block in sample.blocks:
        for etype in block.canonical_etypes:
            src, dst = block.edges(etype=etype)
            parent = block.edges[etype].data[dgl.EID]
            s = block.srcnodes[etype[0]].data[dgl.NID][src]
            d = block.dstnodes[etype[2]].data[dgl.NID][dst]
            ps, pd_ = graph.find_edges(parent, etype=etype)
            assert torch.equal(s, ps) and torch.equal(d, pd_), etype


def test_sampling_config_errors_name_the_key(split):
    model = _model(split)
    with pytest.raises(ConfigError, match="train.sampling.fanouts.*one fanout per layer \\(2\\)"):
        Trainer(model, split, {"sampling": {"fanouts": [5]}, "progress": False})
    flat = _model(split, n_layers=0)
    with pytest.raises(ConfigError, match="train.sampling.fanouts"):
        flat.use_sampling(NeighborSampling([5]))
    with pytest.raises(ConfigError, match="train.sampling.sparse"):
        Trainer(model, split, {"sampling": {"fanouts": [5, 5], "sparse": True}, "progress": False})


def test_sampled_model_evaluates_on_the_whole_graph(split):
    model = _model(split).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    with torch.no_grad():
        full = model.full_sort_predict(queries)
        model.use_sampling(NeighborSampling([2, 2], inference_chunk=7))
        torch.testing.assert_close(model.full_sort_predict(queries), full, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_sampled_epochs_with_full_fanout_equal_full_graph_training(split):
    """Trainer level: 2 epochs, same losses, weights and validation metrics; under
    ``query_time: known`` a sampled run ends with the same weights (the time is not read).
    SGD and no time encoding: Adam turns the float noise of a gradient that is 0 in exact
    arithmetic (the attention's key bias) into full steps, and the time encoding's
    frequencies multiply gaps of 1e5 s, so that two roundings of one model diverge."""
    options = {
        "epochs": 2,
        "batch_size": 256,
        "lr": 0.5,
        "optimizer": "sgd",
        "progress": False,
        "metrics": ("mrr", "acc@1"),
    }
    runs = []
    for sampling, query_time in (
        (None, "hidden"),
        ({"fanouts": [-1, -1]}, "hidden"),
        ({"fanouts": [-1, -1]}, "known"),
    ):
        data = dataclasses.replace(split, query_time=query_time)
        model = _model(data, dropout=0.0, use_time_encoding=False)
        trainer = Trainer(model, data, {**options, "sampling": sampling}, seed=0)
        trainer.fit()
        runs.append((model.state_dict(), trainer.history))
    (full, full_hist), (sampled, sampled_hist), (known, known_hist) = runs
    assert [r.loss for r in sampled_hist] == pytest.approx([r.loss for r in full_hist], rel=1e-5)
    for a, b, c in zip(full_hist, sampled_hist, known_hist):
        assert a.valid == pytest.approx(b.valid, abs=1e-6) and b.valid == c.valid
    for key, value in full.items():
        torch.testing.assert_close(sampled[key], value, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(known[key], sampled[key], rtol=0, atol=0)
