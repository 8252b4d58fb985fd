"""GETNext ("getnext"): the flow graph by hand, its layers against dense maths, shapes,
gradients, trajectories, determinism and no leakage of the target's time."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

import tgraph.models as models
from tgraph.data.protocols import next_poi_chronological
from tgraph.data.queries import build_queries, context_events, history_index, target_queries
from tgraph.data.synthetic import generate
from tgraph.graph.trajectory_flow import (
    flow_transitions,
    random_walk_weights,
    trajectory_flow_graph,
)
from tgraph.models.base import Batch
from tgraph.models.getnext import GETNext
from tgraph.nn.trajectory_flow_conv import TrajectoryFlowConv
from tgraph.nn.transition_attention import TransitionAttentionMap
from tgraph.train.seed import seed_everything

from .helpers import assert_dropout_only_in_training, make_interactions, synthetic_acc10

SMALL = {
    "poi_dim": 16,
    "user_dim": 16,
    "time_dim": 8,
    "gcn_hidden": [8],
    "ff_dim": 32,
    "max_len": 8,
    "attn_hidden": 8,
}
HOUR = 3600


@pytest.fixture(scope="module")
def split():
    inter = generate(n_users=60, n_pois=120, n_events=3000, days=30, n_regions=6, seed=1)
    return next_poi_chronological(inter)


def _model(split, **config) -> GETNext:
    seed_everything(0)
    return models.get("getnext")(split, {**SMALL, **config})


def _tiny_events():
    """u0: 0 -> 1 -> 2, then 25 h later a new trajectory 2 -> 1; u1: 0 -> 1 -> 1 (a
    repeat) -> 3; u2: one check-in at 4; item 5 never visited."""
    rows = [
        (0, 0, 0),
        (0, 1, HOUR),
        (0, 2, 2 * HOUR),
        (0, 2, 27 * HOUR),  # > 24 h after the previous one: a new trajectory
        (0, 1, 28 * HOUR),
        (1, 0, 5 * HOUR),
        (1, 1, 6 * HOUR),
        (1, 1, 7 * HOUR),
        (1, 3, 8 * HOUR),
        (2, 4, 9 * HOUR),
    ]
    return make_interactions(rows, 3, 6)


def test_flow_graph_by_hand():
    flows = flow_transitions(_tiny_events().events)
    got = {(int(s), int(d)): int(c) for s, d, c in flows.itertuples(index=False)}
    # (2, 2) across the 25-hour gap is not a transition; (0, 1) occurs twice
    assert got == {(0, 1): 2, (1, 2): 1, (2, 1): 1, (1, 1): 1, (1, 3): 1}
    graph = trajectory_flow_graph(_tiny_events())
    assert graph.num_nodes() == 6  # item 5 never visited: an isolated node
    assert graph.ndata["visits"].tolist() == [2, 4, 2, 1, 1, 0]
    assert graph.num_edges() == 5
    # no trajectory cut: the transition 2 -> 2 across the gap appears
    uncut = flow_transitions(_tiny_events().events, gap=10**9)
    assert ((uncut["src"] == 2) & (uncut["dst"] == 2)).sum() == 1


def _dense_rw(graph) -> torch.Tensor:
    n = graph.num_nodes()
    a = torch.zeros(n, n)
    src, dst = graph.edges()
    a[src, dst] = graph.edata["count"]
    a = a + torch.eye(n)
    return a / a.sum(1, keepdim=True)


def test_random_walk_weights_and_conv_match_dense():
    graph = trajectory_flow_graph(_tiny_events())
    lap = _dense_rw(graph)
    # row 0: 0 -> 1 counted twice, plus the self-loop: (2/3, 1/3)
    assert lap[0, 1] == pytest.approx(2 / 3) and lap[0, 0] == pytest.approx(1 / 3)
    message, weight = random_walk_weights(graph)
    torch.manual_seed(0)
    for in_dim, out_dim in ((3, 5), (5, 3)):
        conv = TrajectoryFlowConv(in_dim, out_dim)
        h = torch.randn(6, in_dim)
        expected = lap @ h @ conv.linear.weight.T + conv.linear.bias
        torch.testing.assert_close(conv(message, h, weight), expected)


def test_attention_map_matches_dense():
    graph = trajectory_flow_graph(_tiny_events())
    lap = _dense_rw(graph)
    torch.manual_seed(0)
    layer = TransitionAttentionMap(3, 4)
    x = torch.randn(6, 3)
    phi = layer.proj(x) @ layer.attn.T
    dense = torch.nn.functional.leaky_relu(phi[:, :1] + phi[:, 1].unsqueeze(0), 0.2) * (lap + 1)
    indptr = torch.zeros(7, dtype=torch.int64)
    rows, cols = lap.nonzero(as_tuple=True)
    indptr[1:] = torch.cumsum(torch.bincount(rows, minlength=6), 0)
    items = torch.tensor([1, 0, 1, 5])
    got = layer(x, items, indptr, cols, lap[rows, cols])
    torch.testing.assert_close(got, dense[items])


def test_model_csr_is_the_normalised_flow_matrix():
    inter = _tiny_events()
    split = _split_of(inter)
    model = _model(split)
    lap = _dense_rw(trajectory_flow_graph(inter))
    dense = torch.zeros(6, 6)
    for i in range(6):
        lo, hi = model.flow_indptr[i], model.flow_indptr[i + 1]
        dense[i, model.flow_indices[lo:hi]] = model.flow_values[lo:hi]
    torch.testing.assert_close(dense, lap)


def _split_of(inter):
    from tgraph.data.split import Split

    targets = pd.DataFrame({"query": [0], "user": [0], "item": [3], "timestamp": [29 * HOUR]})
    test = make_interactions([(0, 3, 29 * HOUR)], 3, 6)
    return Split(
        train=inter,
        valid=test,
        test=test,
        valid_targets=targets,
        test_targets=targets,
        mask_history=False,
        protocol="tiny",
    )


def test_current_trajectory_is_the_tail_after_the_last_long_gap():
    split = _split_of(_tiny_events())
    model = _model(split, max_len=6)
    index = history_index(context_events(split, "train"))
    queries = build_queries(
        np.array([0, 1, 2]), np.array([29 * HOUR, 9 * HOUR, 9 * HOUR]), index, 6, 6
    )
    items, tau, length = model.trajectory(queries)
    assert length.tolist() == [2, 4, 0]
    assert items[0, :2].tolist() == [2, 1] and items[1, :4].tolist() == [0, 1, 1, 3]
    assert (items[0, 2:] == 6).all() and (items[2] == 6).all()
    assert tau[0, :2].tolist() == pytest.approx([3 / 24, 4 / 24])
    whole = _model(split, max_len=6, trajectory_gap_hours=0).trajectory(queries)
    assert whole[2].tolist() == [5, 4, 0]


def test_shapes_predict_matches_full_sort(split):
    model = _model(split).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    full = model.full_sort_predict(queries)
    assert full.shape == (len(queries), split.n_items) and torch.isfinite(full).all()
    items = torch.randint(0, split.n_items, (len(queries), 5))
    torch.testing.assert_close(model.predict(queries, items), full.gather(1, items))
    torch.testing.assert_close(model.predict(queries, items[:, 0]), full.gather(1, items)[:, 0])


@pytest.mark.parametrize("config", [{}, {"poi_id_dim": 4}])
def test_gradients_reach_every_parameter(split, config):
    model = _model(split, **config).train()
    queries, _ = target_queries(split, "valid", model.history_len)
    batch = Batch(queries[:32], torch.randint(0, split.n_items, (32,)))
    loss = model.calculate_loss(batch)
    assert model.config.loss == "ce" and torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_sampled_loss_and_empty_history(split):
    model = _model(split, loss="bpr").train()
    queries, _ = target_queries(split, "valid", model.history_len)
    queries = queries[:8]
    queries = dataclasses.replace(
        queries,
        hist_items=torch.full_like(queries.hist_items, split.n_items),
        hist_len=torch.zeros_like(queries.hist_len),
    )
    batch = Batch(queries, torch.randint(0, split.n_items, (8,)), torch.randint(0, 5, (8, 3)))
    loss = model.calculate_loss(batch)
    assert torch.isfinite(loss)
    model.eval()
    assert torch.isfinite(model.full_sort_predict(queries)).all()


def test_dropout_only_in_training(split):
    queries, _ = target_queries(split, "test", 8)
    assert_dropout_only_in_training(lambda: _model(split), queries, atol=1e-6)


def test_no_target_time_leakage(split):
    """Moving every test target to any time after its user's last history event (the
    history unchanged), and changing the query's UTC offset, leaves the scores unchanged:
    the model reads neither ``Queries.timestamp`` nor ``offset``."""
    model = _model(split).eval()
    queries, table = target_queries(split, "test", model.history_len)
    rows = torch.arange(len(queries))
    last = queries.hist_times[rows, (queries.hist_len - 1).clamp(min=0)]
    assert (queries.hist_len > 0).all()
    index = history_index(context_events(split, "test"))
    offsets = None if queries.offset is None else np.zeros(len(queries), dtype=np.int64) + 3600
    for moved in (last + 1, (last + queries.timestamp) // 2 + 1):
        again = build_queries(
            table["user"].to_numpy(),
            moved.numpy(),
            index,
            model.history_len,
            split.n_items,
            offsets=offsets,
        )
        assert torch.equal(again.hist_items, queries.hist_items)
        torch.testing.assert_close(
            model.full_sort_predict(again), model.full_sort_predict(queries), rtol=0, atol=0
        )


def test_observe_rebuilds_the_graph(split):
    model = _model(split)
    edges = model.flow_graph.num_edges()
    both = split.train.with_events(
        pd.concat([split.train.events, split.valid.events], ignore_index=True)
    )
    model.observe(both)
    assert model.flow_graph.num_edges() >= edges
    assert model.flow_indptr[-1] == model.flow_graph.num_edges()


@pytest.mark.slow
def test_learns_beyond_popularity():
    acc, pop = synthetic_acc10("getnext", SMALL)
    assert acc > pop


def test_heads_must_divide_the_transformer_width(split):
    from tgraph.errors import ConfigError

    with pytest.raises(ConfigError, match=r"poi_dim \+ user_dim \+ time_dim = 40 .* n_heads=3"):
        _model(split, n_heads=3)


def test_loss_equals_the_value_of_the_padded_code(split):
    """The training loss on a fixed-seed case (dropout 0) is the one the code before the
    length groups gave (commit db30037: one Transformer pass over the padded batch)."""
    model = _model(split, dropout=0.0, gcn_dropout=0.0).train()
    queries, _ = target_queries(split, "valid", model.history_len)
    positives = torch.randint(
        0, split.n_items, (len(queries),), generator=torch.Generator().manual_seed(0)
    )
    loss = model.calculate_loss(Batch(queries, positives))
    assert float(loss) == pytest.approx(19.241024017333984, abs=1e-4)


def _padded_encode(model, queries):
    """The old code's encoder pass (one Transformer pass over the batch padded to its
    longest current trajectory), for comparison."""
    items, tau, _ = model.trajectory(queries)
    poi = model.poi_embeddings()
    table = torch.cat([poi, poi.new_zeros(1, poi.shape[1])])
    user = model.user_emb(queries.user).unsqueeze(1).expand(-1, items.shape[1], -1)
    fused = torch.nn.functional.leaky_relu(model.fuse(torch.cat([table[items], user], -1)), 0.2)
    x = torch.cat([fused, model.time2vec(tau)], -1) * model.dim**0.5
    return model.encoder(model.input_dropout(x + model.positional[: items.shape[1]]))


def test_length_groups_give_the_padded_outputs(split):
    """Encoding by groups of similar length gives the padded pass's outputs at every real
    position (a query without history: position 0), and the same gradients."""
    model = _model(split).eval()
    queries, _ = target_queries(split, "valid", model.history_len)
    out, items, _, length = model.encode(queries, model.poi_embeddings())
    groups = torch.ceil(torch.log2(length.clamp(min=1).double())).unique()
    assert len(groups) >= 3 and items.shape[1] > 1  # several groups, several widths
    real = torch.arange(items.shape[1]) < length.clamp(min=1).unsqueeze(1)
    padded = _padded_encode(model, queries)
    torch.testing.assert_close(out[real], padded[real], rtol=1e-5, atol=1e-5)
    weight = torch.randn_like(out[real])
    grads = []
    for outputs in (out, padded):
        model.zero_grad()
        (outputs[real] * weight).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 10
    for name, grad in grads[0].items():
        torch.testing.assert_close(grad, grads[1][name], rtol=1e-4, atol=1e-4, msg=name)
