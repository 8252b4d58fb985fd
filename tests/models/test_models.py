"""The model contract, each baseline model, and LightGCN against a dense computation."""

import dgl
import numpy as np
import pandas as pd
import pytest
import torch

import tgraph.models as models
from tests.models.helpers import make_interactions, random_split, tiny_split
from tgraph.data.queries import Queries, build_queries, history_index, target_queries
from tgraph.errors import ConfigError
from tgraph.graph.bipartite import bipartite_graph
from tgraph.models.base import Batch
from tgraph.nn import LightGCNConv


def test_registry():
    assert {"pop", "bprmf", "markov", "lightgcn"} <= set(models.list_models())
    assert models.get("LightGCN") is models.get("lightgcn")
    with pytest.raises(KeyError, match="unknown model"):
        models.get("nope")


def test_unknown_config_key_raises():
    with pytest.raises(ConfigError, match="key 'config.embeding_dim'"):
        models.get("bprmf")(tiny_split(), {"embeding_dim": 8})


def test_history_is_strictly_before_the_query_and_never_the_target():
    split = tiny_split()
    queries, table = target_queries(split, "test", history_len=3)
    assert table["query"].tolist() == [0, 1, 2]
    pad = split.n_items
    # u0 at t=20: train 0,1,2 (t 1..3) and valid 3 (t 10) -> last three, oldest first;
    # the test targets 4 and 5 (t=20) are excluded
    assert queries.hist_items.tolist() == [[1, 2, 3], [0, 4, pad], [2, pad, pad]]
    assert queries.hist_times.tolist() == [[2, 3, 10], [6, 7, 0], [8, 0, 0]]
    assert queries.hist_len.tolist() == [3, 2, 1]
    assert queries.last_item.tolist() == [3, 4, 2]
    np.testing.assert_allclose(queries.hist_lat[0].numpy(), [40.01, 40.02, 40.03], rtol=1e-6)
    valid, _ = target_queries(split, "valid", history_len=5)
    # validation queries never see validation events at or after their time, nor test events
    assert valid.hist_items.tolist() == [[0, 1, 2, pad, pad], [1, 3, pad, pad, pad]]


def test_build_queries_same_timestamp_excluded_and_empty_history():
    context = pd.DataFrame({"user": [0, 0, 1], "item": [1, 2, 0], "timestamp": [5, 9, 3]})
    index = history_index(context)
    q = build_queries(np.array([0, 0, 1, 2]), np.array([9, 10, 3, 99]), index, 2, n_items=4)
    assert q.hist_items.tolist() == [[1, 4], [1, 2], [4, 4], [4, 4]]
    assert q.hist_len.tolist() == [1, 2, 0, 0]
    assert q.last_item.tolist() == [1, 2, 4, 4]


def test_queries_to_and_slicing():
    split = tiny_split()
    queries, _ = target_queries(split, "test", history_len=2)
    moved = queries.to("cpu")
    assert moved.hist_items.device.type == "cpu"
    sub = queries[torch.tensor([2, 0])]
    assert sub.user.tolist() == [3, 0]
    assert len(sub) == 2


@pytest.mark.parametrize("name", ["pop", "markov", "bprmf", "lightgcn"])
def test_shapes_and_predict_agrees_with_full_sort(name):
    split = random_split()
    model = models.get(name)(split).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    full = model.full_sort_predict(queries)
    assert full.shape == (len(queries), split.n_items)
    items = torch.randint(0, split.n_items, (len(queries), 4))
    torch.testing.assert_close(model.predict(queries, items), full.gather(1, items))
    first = items[:, 0]
    torch.testing.assert_close(model.predict(queries, first), full.gather(1, first[:, None])[:, 0])


@pytest.mark.parametrize("name", ["bprmf", "lightgcn"])
@pytest.mark.parametrize("loss", ["bpr", "ce", "sampled_softmax"])
def test_gradients_reach_every_used_parameter(name, loss):
    split = random_split()
    model = models.get(name)(split, {"loss": loss})
    users = torch.tensor([0, 1, 2, 3])
    negatives = torch.tensor([[5], [6], [7], [8]])
    batch = Batch(Queries(users, users), torch.tensor([0, 1, 2, 3]), negatives)
    value = model.calculate_loss(batch)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_most_popular_counts_train_only():
    split = tiny_split()
    model = models.get("pop")(split)
    assert model.counts.tolist() == [2, 2, 2, 1, 1, 0]


def _hand_transitions():
    """Training rows (user, item, time) and a split over them: 0 -> 1 twice, 0 -> 2 once."""
    # user 0: 0 -> 1 -> 2 ; user 1: 0 -> 1, 1 -> 3 ; user 2: 0 -> 2
    rows = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (1, 0, 4), (1, 1, 5), (1, 3, 6), (2, 0, 7), (2, 2, 8)]
    train = make_interactions(rows, 3, 5)
    split = tiny_split()
    split = type(split)(
        train=train,
        valid=None,
        test=train,
        valid_targets=split.valid_targets.iloc[:0],
        test_targets=pd.DataFrame({"query": [0], "user": [0], "item": [1], "timestamp": [99]}),
        mask_history=False,
        protocol="hand",
        time_order=None,
    )
    return rows, split


def test_markov_transitions_then_popularity():
    rows, split = _hand_transitions()
    model = models.get("markov")(split)
    pop = np.bincount([r[1] for r in rows], minlength=5) / (1 + len(rows))
    queries = Queries(
        user=torch.tensor([0, 0, 0]),
        timestamp=torch.tensor([9, 9, 9]),
        hist_items=torch.tensor([[0], [1], [5]]),
        hist_len=torch.tensor([1, 1, 0]),
        pad=5,
    )
    scores = model.full_sort_predict(queries).numpy()
    np.testing.assert_allclose(scores[0], pop + [0, 2, 1, 0, 0], rtol=1e-6)  # 0->1 twice, 0->2 once
    np.testing.assert_allclose(scores[1], pop + [0, 0, 1, 1, 0], rtol=1e-6)
    np.testing.assert_allclose(scores[2], pop, rtol=1e-6)  # no history: popularity
    assert model.history_len == 1


def test_bipartite_graph_dedupes_and_is_symmetric():
    train = make_interactions([(0, 1, 1), (0, 1, 2), (1, 0, 3)], 2, 3)
    graph = bipartite_graph(train)
    assert graph.num_nodes() == 5 and graph.num_edges() == 4
    src, dst = graph.edges()
    assert sorted(zip(src.tolist(), dst.tolist())) == [(0, 3), (1, 2), (2, 1), (3, 0)]
    assert graph.ndata["is_item"].tolist() == [False, False, True, True, True]


def test_lightgcn_conv_equals_dense_normalised_adjacency():
    src, dst = torch.tensor([0, 0, 1, 2, 3, 3]), torch.tensor([2, 3, 3, 0, 0, 1])
    graph = dgl.graph((src, dst), num_nodes=5)
    feat = torch.randn(5, 3, dtype=torch.float64)
    adj = torch.zeros(5, 5, dtype=torch.float64)
    src, dst = graph.edges()
    adj[dst, src] = 1.0  # row = destination
    d_in = adj.sum(1).clamp(min=1)
    d_out = adj.sum(0).clamp(min=1)
    expected = torch.diag(d_in.rsqrt()) @ adj @ torch.diag(d_out.rsqrt()) @ feat
    torch.testing.assert_close(LightGCNConv()(graph, feat), expected)
    assert torch.all(LightGCNConv()(graph, feat)[4] == 0)  # isolated node


def test_lightgcn_scores_equal_dense_computation():
    split = tiny_split()
    model = models.get("lightgcn")(split, {"embedding_dim": 4, "n_layers": 2}).double().eval()
    n_users, n_items = split.n_users, split.n_items
    r = torch.zeros(n_users, n_items, dtype=torch.float64)
    train = split.train.events
    r[train["user"].to_numpy().copy(), train["item"].to_numpy().copy()] = 1.0
    adj = torch.zeros(n_users + n_items, n_users + n_items, dtype=torch.float64)
    adj[:n_users, n_users:] = r
    adj[n_users:, :n_users] = r.T
    d = adj.sum(1).clamp(min=1).rsqrt()
    norm = d[:, None] * adj * d[None, :]
    e0 = model.embedding.weight.detach()
    final = (e0 + norm @ e0 + norm @ norm @ e0) / 3
    users = torch.arange(n_users)
    expected = final[users] @ final[n_users:].T
    got = model.full_sort_predict(Queries(users, users))
    torch.testing.assert_close(got, expected)


def test_lightgcn_cache_invalidated_by_training():
    split = tiny_split()
    model = models.get("lightgcn")(split).eval()
    users = torch.arange(2)
    before = model.full_sort_predict(Queries(users, users)).clone()
    model.train()
    with torch.no_grad():
        model.embedding.weight.add_(1.0)
    model.eval()
    assert not torch.allclose(model.full_sort_predict(Queries(users, users)), before)


def test_device_plumbing_cpu():
    split = tiny_split()
    model = models.get("lightgcn")(split).to("cpu")
    assert model.graph.device.type == "cpu"
    assert model.device.type == "cpu"
    assert models.get("pop")(split).to(torch.device("cpu")).device.type == "cpu"


def test_eval_cache_follows_mode_weights_and_device():
    split = random_split()
    model = models.get("lightgcn")(split, {"embedding_dim": 8, "n_layers": 2}).eval()
    queries = Queries(user=torch.arange(4), timestamp=torch.zeros(4, dtype=torch.long))
    with torch.no_grad():
        first = model.full_sort_predict(queries)
        assert model.propagate() is model.propagate()  # cached in eval mode
        state = {k: v * 2 for k, v in model.state_dict().items()}
        model.load_state_dict(state)  # new weights, still in eval mode
        torch.testing.assert_close(model.full_sort_predict(queries), first * 4)
        model.train()
        assert model.propagate() is not model.propagate()  # never cached while training


def test_revisit_scores_by_hand():
    rows, split = _hand_transitions()
    model = models.get("revisit")(split, {"max_len": 4, "decay": 0.5, "transition_weight": 2.0})
    assert model.history_len == 4 and not model.needs_training
    pop = np.bincount([r[1] for r in rows], minlength=5) / (1 + len(rows))
    # history 3, 4, 3, 0 (last 0): 3 at 3 and 1 back (0.125 + 0.5), 4 at 2 back (0.25), the
    # last POI 0 skipped; Markov from 0: counts [0, 2, 1, 0, 0] + pop, scaled by 2 / (1 + 2)
    queries = Queries(
        user=torch.tensor([0, 1]),
        timestamp=torch.tensor([9, 9]),
        hist_items=torch.tensor([[3, 4, 3, 0], [5, 5, 5, 5]]),
        hist_len=torch.tensor([4, 0]),
        pad=5,
    )
    scores = model.full_sort_predict(queries).numpy()
    revisit = np.array([0.0, 0.0, 0.0, 0.625, 0.25])
    markov = (np.array([0, 2, 1, 0, 0]) + pop) * 2.0 / 3.0
    np.testing.assert_allclose(scores[0], revisit + markov, rtol=1e-6)
    np.testing.assert_allclose(scores[1], pop * 2.0, rtol=1e-6)  # no history: popularity
    # without skip_last the last POI keeps its weight 1; predict reads the same scores
    kept = models.get("revisit")(split, {"max_len": 4, "decay": 0.5, "skip_last": False})
    assert kept.revisit_scores(queries)[0, 0].item() == 1.0
    picked = model.predict(queries, torch.tensor([[3, 1], [0, 1]]))
    np.testing.assert_allclose(picked.numpy(), scores[[[0], [1]], [[3, 1], [0, 1]]], rtol=1e-6)
