import math

import pytest
import torch

from tests.models.helpers import (
    assert_dropout_only_in_training,
    random_split,
    synthetic_acc10,
    tiny_split,
)
from tgraph.data.queries import Queries, target_queries
from tgraph.errors import ConfigError
from tgraph.models import get
from tgraph.models.base import Batch
from tgraph.models.tgat import TGAT
from tgraph.train import seed_everything

SMALL = {"max_len": 8, "embedding_dim": 16, "time_dim": 8, "dropout": 0.3}
PAD = 30  # random_split() has 30 items


def make(split=None, **config) -> TGAT:
    seed_everything(0)
    return get("tgat")(split or random_split(), {**SMALL, **config})


def history_queries(items: list[list[int]], times: list[list[int]], now: list[int]) -> Queries:
    width = SMALL["max_len"]
    return Queries(
        user=torch.arange(len(items)),
        timestamp=torch.tensor(now),
        hist_items=torch.tensor([seq + [PAD] * (width - len(seq)) for seq in items]),
        hist_times=torch.tensor([ts + [0] * (width - len(ts)) for ts in times]),
        hist_len=torch.tensor([len(seq) for seq in items]),
        pad=PAD,
    )


QUERIES = history_queries(
    [[1, 2, 1], [4], [], [5, 6, 7, 8, 9, 10, 11, 12]],
    [[100, 3600, 90_000], [50], [], [10, 20, 30, 40, 50, 60, 70, 80]],
    [100_000, 60, 7, 1000],
)


def test_registry_and_contract_attributes():
    model = make()
    assert get("TGAT") is TGAT and model.needs_training
    assert model.history_len == 8 and model.config.loss == "ce"
    with pytest.raises(ConfigError, match="key 'config.max_lenn'"):
        get("tgat")(random_split(), {"max_lenn": 3})
    with pytest.raises(ConfigError, match="key 'config.max_len'"):
        get("tgat")(random_split(), {"max_len": 0})
    with pytest.raises(ValueError, match="history"):
        model.full_sort_predict(Queries(user=QUERIES.user[:1], timestamp=QUERIES.timestamp[:1]))


def test_block_has_one_edge_per_real_event_and_none_for_padding():
    block, src_items, edge_time = make().neighbourhood(QUERIES)
    assert block.num_dst_nodes() == 4 and block.num_edges() == 12
    assert PAD not in src_items.tolist() and src_items.tolist() == sorted(set(src_items.tolist()))
    src, dst = block.edges()
    pairs = sorted(zip(dst.tolist(), src_items[src].tolist(), edge_time.tolist(), strict=True))
    expected = [
        (q, item, t)
        for q in range(4)
        for item, t in zip(QUERIES.hist_items[q].tolist(), QUERIES.hist_times[q].tolist())
        if item != PAD
    ]
    assert pairs == sorted(expected)
    assert block.in_degrees().tolist() == [3, 1, 0, 8]  # item 1 twice in query 0: two edges


def test_shapes_and_predict_agree_with_full_sort():
    split = tiny_split()
    model = make(split, max_len=3).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    scores = model.full_sort_predict(queries)
    assert scores.shape == (3, split.n_items) and torch.isfinite(scores).all()
    items = torch.tensor([[0, 5], [1, 2], [3, 3]])
    assert torch.allclose(model.predict(queries, items), scores.gather(1, items), atol=1e-6)
    assert torch.allclose(model.predict(queries, items[:, 0]), scores[:, [0, 1, 3]].diagonal())


def test_matches_a_dense_one_head_computation():
    model = make(num_heads=1, dropout=0.0).eval()
    conv = model.conv
    with torch.no_grad():
        conv.time_enc.phase.normal_()  # so that Phi(0) is not all ones
        out, _ = model.embed(QUERIES)
        for q in range(len(QUERIES)):
            n = int(QUERIES.hist_len[q])
            items, times = QUERIES.hist_items[q, :n], QUERIES.hist_times[q, :n]
            h_u = model.user_emb.weight[q]
            query = conv.fc_q(torch.cat([h_u, conv.time_enc(torch.zeros(()))]))
            dt = (QUERIES.timestamp[q] - times).double()
            z_edge = conv.time_enc(dt)
            kv = conv.fc_kv_src(model.item_emb.weight[items]) + conv.fc_kv_edge(z_edge)
            key, value = kv[:, :16], kv[:, 16:]
            alpha = torch.softmax(key @ query / math.sqrt(16), 0)
            agg = alpha @ value if n else torch.zeros(16)
            expected = conv.merge(torch.cat([agg, h_u]))
            assert torch.allclose(out[q], expected, atol=1e-5), q


@pytest.mark.parametrize("loss", ["ce", "sampled_softmax", "bpr"])
def test_losses_backpropagate(loss):
    model = make(loss=loss).train()
    neg = None if loss == "ce" else torch.tensor([[0, 7], [9, 10], [20, 21], [3, 4]])
    value = model.calculate_loss(Batch(QUERIES, torch.tensor([4, 5, 13, 0]), neg))
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["item_emb.weight"][[1, 2, 4, 13]].abs().sum(1).gt(0).all()
    assert torch.equal(grads["item_emb.weight"][PAD], torch.zeros(16))  # padding row
    assert grads["user_emb.weight"][:4].abs().sum(1).gt(0).all()
    conv = [g for n, g in grads.items() if n.startswith("conv")]
    assert conv and all(g is not None and g.abs().sum() > 0 for g in conv)


def test_time_gaps_change_the_output():
    model = make().eval()
    later = history_queries([[1, 2, 1]], [[100, 3600, 90_000]], [100_000])
    earlier = history_queries([[1, 2, 1]], [[100, 3600, 50_000]], [100_000])
    assert not torch.allclose(model.embed(later)[0], model.embed(earlier)[0], atol=1e-6)


def test_eval_is_deterministic_and_dropout_acts_only_in_training():
    assert_dropout_only_in_training(make, QUERIES, atol=1e-6)


def test_device_plumbing_on_cpu():
    model = make().to("cpu").eval()
    assert model.device == torch.device("cpu")
    scores = model.full_sort_predict(QUERIES.to(model.device))
    assert scores.device == model.device and scores.shape == (4, 30)


def test_tgat_beats_most_popular_on_synthetic_checkins():
    acc, pop_acc = synthetic_acc10("tgat", {"max_len": 20, "embedding_dim": 32, "time_dim": 16})
    assert acc > pop_acc + 0.1, (acc, pop_acc)
