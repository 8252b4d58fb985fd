"""STHGCN ("sthgcn"): the hypergraph, the hypergraph transformer layer (hand-checked), shapes,
gradients, determinism, no leakage of the target, training."""

import dataclasses

import dgl
import numpy as np
import pytest
import torch

from tests.models.helpers import assert_dropout_only_in_training, make_interactions
from tgraph.data.protocols import getnext_nyc, next_poi_chronological, sthgcn_nyc
from tgraph.data.queries import Queries, build_queries, history_index, target_queries
from tgraph.data.synthetic import generate
from tgraph.graph.hypergraph import (
    CHECKIN_IN,
    checkin_hypergraph,
    current_trajectory,
    own_trajectories,
    pair_jaccard,
    trajectory_links,
    trajectory_neighbours,
)
from tgraph.models import get
from tgraph.models.base import Batch
from tgraph.models.sthgcn import STHGCN, hour_of_week
from tgraph.nn.hypergraph_transformer_conv import HypergraphTransformerConv
from tgraph.train import Trainer, seed_everything

SMALL = {"embedding_dim": 16, "n_heads": 2, "max_len": 8, "time_dim": 8, "dist_dim": 8}
H = 3600


@pytest.fixture(scope="module")
def split():
    inter = generate(n_users=60, n_pois=120, n_events=3000, days=30, n_regions=6, seed=1)
    return next_poi_chronological(inter)


def make(split, **config) -> STHGCN:
    seed_everything(0)
    return get("sthgcn")(split, {**SMALL, **config})


# ---------------------------------------------------------------------- the hypergraph
def test_hypergraph_by_hand():
    # u0: items 0, 1 at 0 h, 1 h; then 2 at 30 h (a new trajectory); u1: 1, 1, 3 at 2, 3, 4 h
    rows = [(0, 0, 0), (0, 1, H), (0, 2, 30 * H), (1, 1, 2 * H), (1, 1, 3 * H), (1, 3, 4 * H)]
    hyper = checkin_hypergraph(make_interactions(rows, 2, 5))
    graph = hyper.graph
    assert graph.num_nodes("checkin") == 6 and hyper.n_trajectories == 3
    src, dst = graph.edges(etype=CHECKIN_IN)
    checkin = graph.nodes["checkin"].data
    # the events arrive in time order: (u0, 0h), (u0, 1h), (u1, 2h), (u1, 3h), (u1, 4h), (u0, 30h)
    assert checkin["time"].tolist() == [0, H, 2 * H, 3 * H, 4 * H, 30 * H]
    assert checkin["user"].tolist() == [0, 0, 1, 1, 1, 0]
    assert dst[src.argsort()].tolist() == [0, 0, 2, 2, 2, 1]
    traj = graph.nodes["trajectory"].data
    assert traj["user"].tolist() == [0, 0, 1]
    assert traj["start"].tolist() == [0, 30 * H, 2 * H]
    assert traj["end"].tolist() == [H, 30 * H, 4 * H]
    assert traj["last_item"].tolist() == [1, 2, 3]
    assert graph.edges[CHECKIN_IN].data["dt"][src.argsort()].tolist() == [H, 0, 2 * H, H, 0, 0]
    dense = hyper.incidence.to_dense()
    assert dense.tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 0, 1, 0]]
    assert hyper.size.tolist() == [2, 1, 2]  # distinct POIs (item 1 twice in u1's)


def test_current_trajectory_is_the_tail_without_a_long_gap():
    times = torch.tensor([[0, 10 * H, 40 * H, 41 * H], [0, H, 0, 0], [5 * H, 0, 0, 0]])
    mask = current_trajectory(times, torch.tensor([4, 2, 0]))
    assert mask.tolist() == [
        [False, False, True, True],
        [True, True, False, False],
        [False, False, False, False],
    ]


def test_trajectory_neighbours_by_hand():
    # trajectories' POI sets {0,1}, {2}, {1,3}, ending at 10, 20, 30
    incidence = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1.0]]).to_sparse()
    size, end = torch.tensor([2.0, 1.0, 2.0]), torch.tensor([10, 20, 30])
    items = torch.tensor([[1, 4, 4], [1, 0, 2], [2, 4, 4]])  # pad 4
    mask = items != 4
    traj, query, jac = trajectory_neighbours(
        incidence, size, end, items, mask, torch.tensor([30, 25, 15]), 0.0, 5
    )
    got = sorted(zip(query.tolist(), traj.tolist(), jac.tolist(), strict=True))
    # q0 {1}: T0 (1/2), T2 (1/2); q1 {0,1,2} by 25: T0 (2/3), T1 (1/3); q2 {2} by 15: none
    expected = [(0, 0, 0.5), (0, 2, 0.5), (1, 0, 2 / 3), (1, 1, 1 / 3)]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert np.allclose([g[2] for g in got], [e[2] for e in expected])
    # top-1: the most similar, ties to the later end
    traj, query, _ = trajectory_neighbours(
        incidence, size, end, items, mask, torch.tensor([30, 25, 15]), 0.0, 1
    )
    assert sorted(zip(query.tolist(), traj.tolist(), strict=True)) == [(0, 2), (1, 0)]
    # the threshold is strict
    traj, query, _ = trajectory_neighbours(
        incidence, size, end, items, mask, torch.tensor([30, 25, 15]), 0.5, 5
    )
    assert sorted(zip(query.tolist(), traj.tolist(), strict=True)) == [(1, 0)]
    # other users' only: T0 and T1 are user 0's, T2 user 1's; q0 is user 0's, q1 user 1's
    owner, user = torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0])
    traj, query, _ = trajectory_neighbours(
        incidence, size, end, items, mask, torch.tensor([30, 25, 15]), 0.0, 5, (owner, user)
    )
    assert sorted(zip(query.tolist(), traj.tolist(), strict=True)) == [(0, 2), (1, 0), (1, 1)]


def test_own_trajectories_and_pair_jaccard_by_hand():
    """User 0 owns T0 (ends 10), T1 (20), T3 (40); user 1 owns T2 (30). Each query gets its
    own user's latest k trajectories ended by its "now", whatever their overlap."""
    owner, end = torch.tensor([0, 0, 1, 0]), torch.tensor([10, 20, 30, 40])
    user, now = torch.tensor([0, 1, 0, 2, 0]), torch.tensor([35, 30, 9, 50, 10])
    traj, query = own_trajectories(owner, end, user, now, 2)
    # q0: T1, T0 (T3 ends after 35); q1: T2 (at now: included); q2: none; q3: user 2 has none;
    # q4: T0 (ends at 10)
    assert list(zip(query.tolist(), traj.tolist(), strict=True)) == [(0, 1), (0, 0), (1, 2), (4, 0)]
    traj, query = own_trajectories(owner, end, user, now, 1)
    assert list(zip(query.tolist(), traj.tolist(), strict=True)) == [(0, 1), (1, 2), (4, 0)]
    # POI sets {0,1}, {2}, {1,3}, {1}; queries {1} and {0,1,2}
    incidence = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1], [0, 1, 0, 0.0]])
    size = torch.tensor([2.0, 1.0, 2.0, 1.0])
    items = torch.tensor([[1, 4, 4], [1, 0, 2]])
    got = pair_jaccard(
        incidence.to_sparse(),
        size,
        items,
        items != 4,
        torch.tensor([0, 0, 1, 1, 0]),
        torch.tensor([0, 1, 1, 3, 3]),
    )
    torch.testing.assert_close(got, torch.tensor([0.5, 0.0, 1 / 3, 1 / 3, 1.0]))


def test_trajectory_links_by_hand():
    """u0: T0 {0,1} 0-1 h, T1 {2} at 30 h; u1: T2 {1,3} 2-4 h; u2: T3 {1} at 50 h. A link needs
    the earlier trajectory to end strictly before the later one starts."""
    rows = [(0, 0, 0), (0, 1, H), (0, 2, 30 * H), (1, 1, 2 * H), (1, 3, 4 * H), (2, 1, 50 * H)]
    hyper = checkin_hypergraph(make_interactions(rows, 3, 4))
    assert hyper.graph.nodes["trajectory"].data["start"].tolist() == [0, 30 * H, 2 * H, 50 * H]
    earlier, later, jaccard = trajectory_links(hyper, 0.0, 5, chunk=2)
    got = sorted(zip(later.tolist(), earlier.tolist(), jaccard.tolist(), strict=True))
    # T2 starts at 2 h, after T0 ended (1 h): {1,3} vs {0,1} = 1/3; T3 {1}: T0 1/2, T2 1/2;
    # T1 {2} shares nothing; T0 is first
    expected = [(2, 0, 1 / 3), (3, 0, 0.5), (3, 2, 0.5)]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert np.allclose([g[2] for g in got], [e[2] for e in expected])
    earlier, later, _ = trajectory_links(hyper, 0.0, 1)  # ties: the later end first
    assert sorted(zip(later.tolist(), earlier.tolist(), strict=True)) == [(2, 0), (3, 2)]
    earlier, _, _ = trajectory_links(hyper, 0.4, 5)  # the threshold is strict
    assert sorted(earlier.tolist()) == [0, 2]


def test_hour_of_week():
    monday = 4 * 86400  # 1970-01-05 was a Monday
    assert hour_of_week(torch.tensor([monday, monday + 5 * H + 59, monday - 1])).tolist() == [
        0,
        5,
        167,
    ]


# ---------------------------------------------------------------------- the layer
def test_hypergraph_transformer_conv_by_hand():
    torch.manual_seed(0)
    conv = HypergraphTransformerConv(4, 2, n_heads=1).eval()
    graph = dgl.heterograph(
        {CHECKIN_IN: (torch.tensor([0, 1, 2]), torch.tensor([0, 0, 1]))},
        num_nodes_dict={"checkin": 3, "trajectory": 3},  # trajectory 2 has no member
    )
    src, dst, edge = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 2)
    out = conv(graph, src, dst, edge)
    k = conv.key(src) + conv.edge_key(edge)
    v = conv.value(src) + conv.edge_value(edge)
    q = conv.query(dst)
    logits = (k[:2] * q[0]).sum(1) / 2.0  # sqrt(d_h) = 2
    alpha = torch.softmax(logits, 0)
    messages = torch.stack([alpha @ v[:2], v[2], torch.zeros(4)])
    y = conv.norm1(dst + conv.out(messages))
    y[2] = conv.norm1(dst[2] + conv.out.bias)  # no member: zero message, W_o 0 + b
    expected = conv.norm2(y + conv.ffn(y))
    torch.testing.assert_close(out, expected)
    assert "n_heads=1" in repr(conv)


# ---------------------------------------------------------------------- the model
def test_shapes_predict_matches_full_sort(split):
    model = make(split).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    full = model.full_sort_predict(queries)
    assert full.shape == (len(queries), split.n_items) and torch.isfinite(full).all()
    items = torch.randint(0, split.n_items, (len(queries), 5))
    torch.testing.assert_close(model.predict(queries, items), full.gather(1, items))
    torch.testing.assert_close(
        model.predict(queries, items[:, 0]), full.gather(1, items[:, :1])[:, 0]
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"n_traj_layers": 2},
        {"neighbour_rule": "sthgcn", "n_neighbours": 0},
        {"trajectory_query": "global"},
    ],
)
def test_gradients_reach_every_parameter(split, options):
    model = make(split, **options).train()
    layers = options.get("n_traj_layers", 0)
    assert len(model.conv_traj) == layers
    queries, _ = target_queries(split, "valid", model.history_len)
    loss = model.calculate_loss(Batch(queries, torch.randint(0, split.n_items, (len(queries),))))
    assert torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_ablations_and_config_errors(split):
    queries, _ = target_queries(split, "test", SMALL["max_len"])
    full = make(split).eval().full_sort_predict(queries)
    for flags in ({"n_neighbours": 0}, {"use_time_encoding": False}, {"use_distance": False}):
        other = make(split, **flags).eval().full_sort_predict(queries)
        assert other.shape == full.shape and not torch.allclose(other, full), flags
    with pytest.raises(Exception, match="n_heads"):
        make(split, n_heads=3)
    other = make(split, n_traj_layers=1).eval().full_sort_predict(queries)
    assert other.shape == full.shape and not torch.allclose(other, full)
    with pytest.raises(Exception, match="n_traj_layers.*n_neighbours is 0"):
        make(split, n_traj_layers=1, n_neighbours=0)
    other = make(split, neighbour_rule="sthgcn").eval().full_sort_predict(queries)
    assert other.shape == full.shape and not torch.allclose(other, full)
    other = make(split, trajectory_query="global").eval().full_sort_predict(queries)
    assert other.shape == full.shape and not torch.allclose(other, full)
    # left out of the dump while unused: the fingerprints of earlier runs stay
    dump = STHGCN.Config().model_dump()
    assert not {"n_traj_layers", "neighbour_rule", "n_own_neighbours", "trajectory_query"} & set(
        dump
    )
    assert STHGCN.Config(n_traj_layers=1).model_dump()["n_traj_layers"] == 1
    dump = STHGCN.Config(neighbour_rule="sthgcn").model_dump()
    assert dump["neighbour_rule"] == "sthgcn" and dump["n_own_neighbours"] == 50
    with pytest.raises(Exception, match="neighbour_rule"):
        STHGCN.Config(neighbour_rule="sampled")


def test_dropout_only_in_training(split):
    queries, _ = target_queries(split, "test", SMALL["max_len"])
    assert_dropout_only_in_training(lambda: make(split, dropout=0.3), queries, atol=1e-6)


def test_hypergraph_is_built_from_training_events_only(split):
    model = make(split)
    assert model.hypergraph.num_nodes("checkin") == len(split.train.events)
    ends = model.hypergraph.nodes["trajectory"].data["end"]
    assert int(ends.max()) <= int(split.train.events["timestamp"].max())


@pytest.mark.parametrize("rule", ["jaccard", "sthgcn"])
def test_neighbours_never_end_after_now(split, rule):
    """A training sample's own trajectory (which holds its target) and every later one are
    never neighbours of its query, under either rule."""
    model = make(split, neighbour_rule=rule)
    train = split.train.events
    queries = build_queries(
        train["user"].to_numpy(),
        train["timestamp"].to_numpy(),
        history_index(train),
        model.history_len,
        split.n_items,
    )
    length = queries.hist_len
    now = queries.hist_times[torch.arange(len(queries)), (length - 1).clamp(min=0)]
    traj, query, _, own = model.neighbours(queries)
    end = model.hypergraph.nodes["trajectory"].data["end"]
    assert len(traj) > 0 and bool((length[query] > 0).all())
    assert bool((end[traj] <= now[query]).all())
    assert bool((end[traj] < queries.timestamp[query]).all())  # strictly before the target
    assert bool(own.any()) and bool((~own).any())


def _move_targets(split, part: str, seed: int):
    """``split`` with each ``part`` target moved to a random time in the gap after its
    user's last history event (the history does not change)."""
    queries, table = target_queries(split, part, SMALL["max_len"])
    rows = torch.arange(len(queries))
    last = queries.hist_times[rows, (queries.hist_len - 1).clamp(min=0)].numpy()
    rng = np.random.default_rng(seed)
    old = table["timestamp"].to_numpy()
    new = np.where(queries.hist_len.numpy() > 0, last + 1 + rng.integers(0, old - last), old)
    shift = dict(zip(table["query"], new - old, strict=True))
    targets = split.targets(part).copy()
    targets["timestamp"] += targets["query"].map(shift).to_numpy()
    field = "valid_targets" if part == "valid" else "test_targets"
    return dataclasses.replace(split, **{field: targets}), queries


@pytest.mark.parametrize(
    "options",
    [
        {"n_traj_layers": 0},
        {"n_traj_layers": 1},
        {"neighbour_rule": "sthgcn"},
        {"trajectory_query": "global"},
    ],
)
def test_no_target_leakage(split, options):
    """Moving each test target's time within the gap after its last history event (the
    information ``query_time: hidden`` withholds) changes no score of a query with history;
    nor does any query timestamp at all. The split's time is made known, so that the target's
    time reaches the queries and only the model can keep it out of the scores."""
    split = dataclasses.replace(split, query_time="known")
    model = make(split, **options).eval()
    moved, queries = _move_targets(split, "test", seed=0)
    queries_moved, _ = target_queries(moved, "test", SMALL["max_len"])
    assert torch.equal(queries_moved.hist_items, queries.hist_items)
    assert not torch.equal(queries_moved.timestamp, queries.timestamp)
    has = queries.hist_len > 0
    assert bool(has.any())
    first = model.full_sort_predict(queries)[has]
    torch.testing.assert_close(model.full_sort_predict(queries_moved)[has], first)
    shifted = dataclasses.replace(queries, timestamp=queries.timestamp + 10**6)
    torch.testing.assert_close(model.full_sort_predict(shifted)[has], first)


def test_empty_history_scores_finite(split):
    model = make(split).eval()
    queries = Queries(
        user=torch.tensor([0, 1]),
        timestamp=torch.tensor([10**9, 10**9]),
        hist_items=torch.full((2, 8), split.n_items),
        hist_times=torch.zeros(2, 8, dtype=torch.long),
        hist_len=torch.zeros(2, dtype=torch.long),
        pad=split.n_items,
    )
    scores = model.full_sort_predict(queries)
    assert scores.shape == (2, split.n_items) and torch.isfinite(scores).all()
    scores = model.train().full_sort_predict(queries)  # no trajectory to encode in training
    assert scores.shape == (2, split.n_items) and torch.isfinite(scores).all()


@pytest.mark.slow
def test_training_beats_popularity(split):
    options = {
        "epochs": 6,
        "batch_size": 256,
        "lr": 3e-3,
        "metrics": ("acc@10",),
        "valid_metric": "acc@10",
        "progress": False,
    }
    results = []
    for name, config in (("sthgcn", SMALL), ("pop", {})):
        seed_everything(0)
        trainer = Trainer(get(name)(split, config), split, options)
        trainer.fit()
        results.append(trainer.evaluate("test").metrics["acc@10"])
    assert results[0] > results[1] + 0.05, results


@pytest.mark.slow
def test_builds_and_scores_on_nyc(root):
    nyc = getnext_nyc(root)
    model = make(nyc, n_neighbours=20).eval()
    assert model.hypergraph.num_nodes("checkin") == len(nyc.train.events)
    queries, _ = target_queries(nyc, "test", model.history_len)
    with torch.no_grad():
        scores = model.full_sort_predict(queries[:64])
    assert scores.shape == (64, nyc.n_items) and torch.isfinite(scores).all()
    assert float(scores.std()) > 0


def test_trajectory_links_on_nyc_respect_time_and_the_rule(root):
    """On NYC's training hypergraph every link runs from a trajectory that ended before the
    later one started, passes the Jaccard threshold, and no trajectory has more than k."""
    nyc = getnext_nyc(root)
    hyper = checkin_hypergraph(nyc.train, 24.0, nyc.n_items)
    earlier, later, jaccard = trajectory_links(hyper, 0.005, 50)
    data = hyper.graph.nodes["trajectory"].data
    assert len(earlier) > 10 * hyper.n_trajectories  # most trajectories have links
    assert bool((data["end"][earlier] < data["start"][later]).all())
    assert bool((jaccard > 0.005).all())
    assert int(torch.bincount(later).max()) == 50
    # each trajectory's links are the searched neighbours of its POI set just before it began
    pick = torch.arange(0, hyper.n_trajectories, 997)
    dense = hyper.incidence.index_select(0, pick).to_dense()
    items = torch.where(dense > 0, torch.arange(nyc.n_items), nyc.n_items)
    traj, query, _ = trajectory_neighbours(
        hyper.incidence,
        hyper.size,
        data["end"],
        items,
        items < nyc.n_items,
        data["start"][pick] - 1,
        0.005,
        50,
    )
    for row, t in enumerate(pick.tolist()):
        assert sorted(traj[query == row].tolist()) == sorted(earlier[later == t].tolist())


def test_sthgcn_rule_on_nyc(root):
    """On STHGCN's NYC data, STHGCN's rule gives each test query every training trajectory of
    its own user that ended by its last check-in (the cap of 50 is never reached there) and
    only other users' trajectories above the Jaccard threshold, at most n_neighbours of them."""
    nyc = sthgcn_nyc(root)
    model = make(nyc, neighbour_rule="sthgcn", n_neighbours=20).eval()
    queries, _ = target_queries(nyc, "test", model.history_len)
    src, dst, jaccard, own = model.neighbours(queries)
    data = model.hypergraph.nodes["trajectory"].data
    length = queries.hist_len
    assert bool((length > 0).all())
    now = queries.hist_times[torch.arange(len(queries)), length - 1]
    assert bool((data["end"][src] <= now[dst]).all())
    earlier = data["end"].unsqueeze(0) <= now.unsqueeze(1)  # [queries, trajectories]
    mine = data["user"].unsqueeze(0) == queries.user.unsqueeze(1)
    want = torch.bincount(dst[own], minlength=len(queries))
    assert torch.equal(want, (earlier & mine).sum(1))
    assert int(want.max()) < 50 and float(want.float().mean()) > 10
    assert bool((jaccard[~own] > 0.005).all())
    assert int(torch.bincount(dst[~own], minlength=len(queries)).max()) == 20
    assert bool(((jaccard >= 0) & (jaccard <= 1)).all()) and bool((jaccard[own] == 0).any())


def test_update_on_nyc_adds_the_later_periods_trajectories(root):
    """Folding the validation and test events in (what ``eval.mode: streaming`` does up to each
    query's now) puts them in the hypergraph: a test query then also attends over its user's
    validation- and test-period trajectories that ended by its last check-in, still never
    over one that ends later."""
    nyc = sthgcn_nyc(root)
    model = make(nyc, neighbour_rule="sthgcn", n_neighbours=0).eval()
    queries, _ = target_queries(nyc, "test", model.history_len)
    before = torch.bincount(model.neighbours(queries).query, minlength=len(queries))
    model.update(nyc.valid)
    model.update(nyc.test)
    assert model.hypergraph.num_nodes("checkin") == len(nyc.train) + len(nyc.valid) + len(nyc.test)
    src, dst, _, own = model.neighbours(queries)
    assert bool(own.all())
    data = model.hypergraph.nodes["trajectory"].data
    now = queries.hist_times[torch.arange(len(queries)), queries.hist_len - 1]
    assert bool((data["end"][src] <= now[dst]).all())
    earlier = data["end"].unsqueeze(0) <= now.unsqueeze(1)
    mine = data["user"].unsqueeze(0) == queries.user.unsqueeze(1)
    after = torch.bincount(dst, minlength=len(queries))
    assert torch.equal(after, (earlier & mine).sum(1).clamp(max=50))  # n_own_neighbours
    # about 16 own training trajectories per test query before, about 7 more after
    assert float(before.float().mean()) > 15 and float((after - before).float().mean()) > 5


# ---------------------------------------------------------------------- the fast paths
def _valid_batch(split, model):
    queries, _ = target_queries(split, "valid", model.history_len)
    positives = torch.randint(
        0, split.n_items, (len(queries),), generator=torch.Generator().manual_seed(0)
    )
    return Batch(queries, positives)


def test_loss_equals_the_value_of_the_full_pass_code(split):
    """The training loss on a fixed-seed case is the one the code before the per-batch
    trajectory subset and the neighbour cache gave (commit db30037: every step encoded every
    training trajectory and searched the neighbours anew)."""
    model = make(split, dropout=0.0).train()
    loss = model.calculate_loss(_valid_batch(split, model))
    assert float(loss) == pytest.approx(5.0061845779418945, abs=1e-5)


def test_training_step_encodes_only_the_needed_trajectories_with_the_same_result(split):
    """In training only the trajectories the batch attends over are encoded; without dropout
    the loss and every gradient equal those of the full pass (eval mode encodes every
    trajectory once and indexes it)."""
    model = make(split, dropout=0.0)
    batch = _valid_batch(split, model)
    results = []
    for training in (False, True):
        model.train(training)
        model.zero_grad()
        loss = model.calculate_loss(batch)
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (full_loss, full_grads), (loss, grads) = results
    torch.testing.assert_close(loss, full_loss, rtol=0, atol=1e-6)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, full_grads[name], rtol=1e-5, atol=1e-7, msg=name)
    which = torch.tensor([3, 0, 7, 7])
    model.train()
    torch.testing.assert_close(model.trajectory_embeddings(which), model._trajectories()[which])


@pytest.mark.parametrize("rule", ["jaccard", "sthgcn"])
def test_neighbour_cache_equals_the_search(split, rule):
    """The remembered neighbours equal a fresh search, whatever the batch around a query (a
    cached query in a new batch, repeated queries), and the cache starts over at observe."""
    model = make(split, neighbour_rule=rule, n_own_neighbours=3, n_neighbours=4)
    queries, _ = target_queries(split, "valid", model.history_len)
    rows = torch.arange(len(queries))
    length = queries.hist_len
    now = queries.hist_times[rows, (length - 1).clamp(min=0)]
    member = current_trajectory(queries.hist_times, length)
    data = model.hypergraph.nodes["trajectory"].data
    owner, end = data["user"], data["end"]

    def search(index):
        """The rule, from the hypergraph functions."""
        items, user = queries.hist_items[index], queries.user[index]
        exclude = (owner, user) if rule == "sthgcn" else None
        src, dst, jaccard = trajectory_neighbours(
            model.incidence,
            model.traj_size,
            end,
            items,
            member[index],
            now[index],
            0.005,
            4,
            exclude,
        )
        edges = set(zip(dst.tolist(), src.tolist(), jaccard.tolist(), strict=True))
        if rule == "sthgcn":
            src, dst = own_trajectories(owner, end, user, now[index], 3)
            jaccard = pair_jaccard(model.incidence, model.traj_size, items, member[index], dst, src)
            edges |= set(zip(dst.tolist(), src.tolist(), jaccard.tolist(), strict=True))
        return edges

    first = torch.arange(0, len(queries), 2)
    mixed = torch.cat([torch.arange(len(queries)).flip(0), torch.tensor([0, 0, 1])])
    for index in (first, mixed, first):
        src, dst, jaccard, own = model.neighbours(queries[index])
        want = search(index)
        assert len(want) > 0
        assert set(zip(dst.tolist(), src.tolist(), jaccard.tolist(), strict=True)) == want
        assert bool((dst[1:] >= dst[:-1]).all())  # by query
        assert torch.equal(own, owner[src] == queries.user[index][dst])
        per_query = torch.bincount(dst[own], minlength=len(index))
        assert int(per_query.max()) <= (3 if rule == "sthgcn" else 4)
    assert len(model._neighbour_cache) > 0
    model.observe(split.train)
    assert len(model._neighbour_cache) == 0
