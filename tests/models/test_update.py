"""``Recommender.update``: update-then-query equals rebuild-then-query.

Fixture: 12 users and 15 items; a model is built on a split whose catalogue stops at 10 users
and 12 items (its train events), then updated with later events that revisit, add new pairs,
and bring users 10-11 and items 12-14. The reference is the same model class built directly
on train + those events (the full catalogue) with the updated model's weights loaded: graph
edges, degree norms, counts and scores must agree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tgraph.data.interactions import Interactions
from tgraph.data.queries import Queries, history_index
from tgraph.data.split import Split
from tgraph.errors import DataError
from tgraph.models import get
from tgraph.train.seed import seed_everything

from .helpers import make_interactions

N_USERS, N_ITEMS = 12, 15
OLD_USERS, OLD_ITEMS = 10, 12
HISTORY = 4

CONFIGS = {
    "pop": {},
    "markov": {"max_gap": 50},
    "revisit": {"max_gap": 50, "max_len": HISTORY},
    "bprmf": {"embedding_dim": 8},
    "lightgcn": {"embedding_dim": 8, "n_layers": 2},
    "ngcf": {"embedding_dim": 8, "hidden_dim": 8, "n_layers": 2},
    "sasrec": {"embedding_dim": 8, "n_heads": 2, "ff_dim": 16, "max_len": HISTORY},
    "gru4rec": {"embedding_dim": 8, "hidden_size": 8, "max_len": HISTORY},
    "tgat": {"embedding_dim": 8, "num_heads": 2, "time_dim": 8, "max_len": HISTORY},
    "sthgcn": {
        "embedding_dim": 8,
        "n_heads": 2,
        "time_dim": 4,
        "dist_dim": 4,
        "max_len": HISTORY,
        "gap_hours": 0.01,
        "n_neighbours": 5,
        "neighbour_rule": "sthgcn",
    },
}


def _events(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train events (old catalogue) and later events (every user and item, ties in time)."""
    rng = np.random.default_rng(seed)
    train = pd.DataFrame(
        {
            "user": np.r_[np.arange(OLD_USERS), rng.integers(0, OLD_USERS, 50)],
            "item": np.r_[np.arange(OLD_USERS) % OLD_ITEMS, rng.integers(0, OLD_ITEMS, 50)],
            "timestamp": np.r_[np.arange(OLD_USERS), rng.integers(0, 100, 50)],
        }
    )
    later = pd.DataFrame(
        {
            "user": np.r_[[10, 10, 11, 3, 3], rng.integers(0, N_USERS, 30)],
            "item": np.r_[[0, 12, 13, 14, 12], rng.integers(0, N_ITEMS, 30)],
            "timestamp": np.r_[[120, 125, 130, 140, 140], rng.integers(100, 200, 30)],
        }
    )
    return train, later


def _split(train: Interactions, later: Interactions) -> Split:
    targets = later.events[["user", "item", "timestamp"]].head(3).copy()
    targets.insert(0, "query", np.arange(len(targets)))
    return Split(train, later, later, targets, targets, mask_history=False, protocol="update")


def _interactions(frame: pd.DataFrame, n_users: int, n_items: int) -> Interactions:
    return make_interactions(frame.itertuples(index=False), n_users, n_items)


def _setup(seed: int = 0) -> tuple[Split, Interactions, Split]:
    """(split on the old catalogue, later events on the full one, split on train + later)."""
    train, later = _events(seed)
    small = _interactions(train, OLD_USERS, OLD_ITEMS)
    later_full = _interactions(later, N_USERS, N_ITEMS)
    everything = _interactions(pd.concat([train, later]), N_USERS, N_ITEMS)
    small_later = _interactions(later[(later.user < OLD_USERS) & (later.item < OLD_ITEMS)], 10, 12)
    return _split(small, small_later), later_full, _split(everything, later_full)


def _queries(events: pd.DataFrame, at: int, n_items: int = N_ITEMS) -> Queries:
    """Every user at time ``at``, with its last ``HISTORY`` events before it (brute force)."""
    hist = np.full((N_USERS, HISTORY), n_items)
    times = np.zeros((N_USERS, HISTORY), dtype=np.int64)
    length = np.zeros(N_USERS, dtype=np.int64)
    ordered = events.sort_values("timestamp", kind="stable")
    for user in range(N_USERS):
        mine = ordered[(ordered.user == user) & (ordered.timestamp < at)].tail(HISTORY)
        length[user] = len(mine)
        hist[user, : len(mine)] = mine["item"].to_numpy(copy=True)
        times[user, : len(mine)] = mine["timestamp"].to_numpy()
    return Queries(
        user=torch.arange(N_USERS),
        timestamp=torch.full((N_USERS,), at),
        hist_items=torch.from_numpy(hist),
        hist_times=torch.from_numpy(times),
        hist_len=torch.from_numpy(length),
        pad=n_items,
    )


def _edges(graph) -> set[tuple[int, int]]:
    src, dst = graph.edges()
    return set(zip(src.tolist(), dst.tolist(), strict=True))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_update_then_query_equals_rebuild_then_query(name):
    small, later, full = _setup()
    seed_everything(0)
    model = get(name)(small, CONFIGS[name]).eval()
    everything = pd.concat([small.train.events, later.events])
    queries = _queries(everything, at=300)
    old = queries[torch.arange(OLD_USERS)]
    old.hist_items = torch.where(old.hist_items < OLD_ITEMS, old.hist_items, OLD_ITEMS)
    old.pad = OLD_ITEMS
    model.full_sort_predict(old)  # fills the eval cache, which update must drop
    model.update(later)
    assert (model.n_users, model.n_items) == (N_USERS, N_ITEMS)
    rebuilt = get(name)(full, CONFIGS[name]).eval()
    if model.needs_training:
        rebuilt.load_state_dict(model.state_dict())
    else:
        assert all(
            torch.equal(a, b)
            for a, b in zip(model.state_dict().values(), rebuilt.state_dict().values(), strict=True)
        )
    if hasattr(rebuilt, "graph"):
        assert _edges(model.graph) == _edges(rebuilt.graph)
        assert torch.equal(model.out_norm, rebuilt.out_norm)
        assert torch.equal(model.in_norm, rebuilt.in_norm)
        assert torch.equal(model.graph.ndata["is_item"], rebuilt.graph.ndata["is_item"])
    got, expected = model.full_sort_predict(queries), rebuilt.full_sort_predict(queries)
    assert got.shape == (N_USERS, N_ITEMS)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["pop", "markov", "lightgcn"])
def test_two_updates_equal_one(name):
    small, later, _ = _setup(seed=1)
    seed_everything(0)
    once = get(name)(small, CONFIGS[name]).eval()
    twice = get(name)(small, CONFIGS[name]).eval()
    once.update(later)
    events = later.events
    cut = len(events) // 2
    twice.update(events.iloc[:cut])
    twice.update(events.iloc[cut:])
    queries = _queries(pd.concat([small.train.events, events]), at=300)
    if once.needs_training:  # cold start may differ (a node new in batch 1 is known in 2)
        assert _edges(once.graph) == _edges(twice.graph)
        assert torch.equal(once.out_norm, twice.out_norm)
        twice.load_state_dict(once.state_dict())
    torch.testing.assert_close(
        once.full_sort_predict(queries), twice.full_sort_predict(queries), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", ["lightgcn", "ngcf"])
def test_queued_edges_reach_the_next_score(name):
    """``update`` only queues the user-item graph's edges; the next score sees them whatever
    the mix: a query between updates, then several updates (new users and items in each)
    before one query, equal a rebuild on all the events (same weights)."""
    small, later, full = _setup()
    events = later.events
    seed_everything(0)
    model = get(name)(small, CONFIGS[name]).eval()
    first, second = events.user == 10, events.user == 11  # new users (with new items)
    model.update(events[first])
    sizes = (model.n_users, model.n_items)
    assert sizes == (11, 13)
    between = _queries(events, at=0, n_items=sizes[1])[torch.arange(sizes[0])]
    assert model.full_sort_predict(between).shape == sizes
    model.update(events[second])
    model.update(events[~first & ~second])
    rebuilt = get(name)(full, CONFIGS[name]).eval()
    rebuilt.load_state_dict(model.state_dict())
    queries = _queries(pd.concat([small.train.events, events]), at=300)
    torch.testing.assert_close(
        model.full_sort_predict(queries), rebuilt.full_sort_predict(queries), rtol=1e-5, atol=1e-6
    )
    assert _edges(model.graph) == _edges(rebuilt.graph)
    assert torch.equal(model.graph.ndata["is_item"], rebuilt.graph.ndata["is_item"])
    assert torch.equal(model.out_norm, rebuilt.out_norm)


def test_cold_start_rows_are_neighbour_means():
    """LightGCN: a new user's layer-0 row is the mean of its known items' rows (user 10 saw
    item 0 and new item 12); a new item's the mean of its known users' rows, or of all known
    user rows when only new users saw it."""
    small, later, _ = _setup()
    seed_everything(0)
    model = get("lightgcn")(small, CONFIGS["lightgcn"])
    weight = model.embedding.weight.detach().clone()
    items_of_user_10 = later.events.query("user == 10 and item < @OLD_ITEMS")["item"].to_numpy(
        copy=True
    )
    model.update(later)
    grown = model.embedding.weight.detach()
    expected_user = weight[OLD_USERS + items_of_user_10].mean(0)
    torch.testing.assert_close(grown[10], expected_user)
    users_of_13 = later.events.query("item == 13 and user < @OLD_USERS")["user"].to_numpy(copy=True)
    expected_item = weight[users_of_13].mean(0) if len(users_of_13) else weight[:OLD_USERS].mean(0)
    torch.testing.assert_close(grown[N_USERS + 13], expected_item)
    assert torch.equal(grown[:OLD_USERS], weight[:OLD_USERS])
    assert torch.equal(grown[N_USERS : N_USERS + OLD_ITEMS], weight[OLD_USERS:])


def test_padding_row_moves_to_the_end():
    small, later, _ = _setup()
    model = get("sasrec")(small, CONFIGS["sasrec"])
    model.update(later)
    assert model.item_emb.padding_idx == N_ITEMS
    assert model.item_emb.weight.shape[0] == N_ITEMS + 1
    assert torch.equal(model.item_emb.weight[N_ITEMS], torch.zeros(8))


def test_dataframe_events_are_validated_naming_the_column():
    small, _, _ = _setup()
    model = get("pop")(small)
    with pytest.raises(DataError, match="timestamp"):
        model.update(pd.DataFrame({"user": [0], "item": [1]}))
    with pytest.raises(DataError) as error:
        model.update(pd.DataFrame({"user": [0], "item": ["x"], "timestamp": [5]}))
    assert error.value.column == "item"
    with pytest.raises(DataError) as error:
        model.update(pd.DataFrame({"user": [-1], "item": [1], "timestamp": [5]}))
    assert error.value.column == "user"
    with pytest.raises(DataError) as error:
        model.update(pd.DataFrame({"user": [0], "item": [1], "timestamp": [5], "colour": [1]}))
    assert error.value.column == "colour"
    model.update(pd.DataFrame({"user": [], "item": [], "timestamp": []}))  # nothing to fold
    assert model.n_items == OLD_ITEMS


def test_dataframe_codes_beyond_the_catalogue_grow_it():
    small, _, _ = _setup()
    model = get("bprmf")(small, CONFIGS["bprmf"])
    model.update(pd.DataFrame({"user": [11], "item": [13], "timestamp": [500]}))
    assert (model.n_users, model.n_items) == (12, 14)
    assert model.user_emb.weight.shape[0] == 12 and model.item_emb.weight.shape[0] == 14


def test_markov_refuses_events_older_than_the_users_last():
    small, _, _ = _setup()
    model = get("markov")(small)
    last = int(small.train.events.query("user == 0")["timestamp"].max())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    late = pd.DataFrame({"user": [11, 0], "item": [1, 1], "timestamp": [last - 1, last - 1]})
    with pytest.raises(DataError) as error:
        model.update(late)
    assert error.value.column == "timestamp"
    assert model.n_users == OLD_USERS  # nothing changed
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


HETERO = {
    "hetero_gnn": {"embedding_dim": 8, "n_regions": 3},
    "sthrec": {
        "embedding_dim": 8,
        "n_heads": 2,
        "ff_dim": 16,
        "max_len": HISTORY,
        "n_regions": 3,
    },
}
HETERO["sthrec_no_users"] = {**HETERO["sthrec"], "use_user_relation": False}
GRAPH = {"near_k": 2, "max_gap_seconds": 40, "time_slots": 4}


def _with_trajectories(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(trajectory=[f"{u}:{t // 60}" for u, t in zip(frame.user, frame.timestamp)])


def _hetero_setup() -> tuple[Split, Interactions, Split]:
    """Later events on train's items only (the k-means regions are fitted on the items of
    train's events, so a rebuild on train + later has the same regions); users 10, 11 new."""
    train, later = _events(seed=2)
    train = pd.concat([train, pd.DataFrame({"user": 0, "item": range(12), "timestamp": 99})])
    later = later[later.item < OLD_ITEMS]
    train, later = _with_trajectories(train), _with_trajectories(later)

    def inter(frame: pd.DataFrame, n_users: int) -> Interactions:
        base = _interactions(frame[["user", "item", "timestamp"]], n_users, OLD_ITEMS)
        return base.with_events(frame.sort_values("timestamp", kind="stable"))

    small = inter(train, OLD_USERS)
    known = later[later.user < OLD_USERS]
    later_full = inter(later, N_USERS)
    return (
        _split(small, inter(known, OLD_USERS)),
        later_full,
        _split(inter(pd.concat([train, later]), N_USERS), later_full),
    )


def _edge_rows(graph, etype) -> list[tuple]:
    src, dst = graph.edges(etype=etype)
    data = graph.edges[etype].data
    columns = [src, dst, *(data[k] for k in sorted(data))]
    return sorted(zip(*(c.tolist() for c in columns), strict=True))


@pytest.mark.parametrize(("batches", "query_between"), [(1, False), (3, False), (3, True)])
@pytest.mark.parametrize("variant", sorted(HETERO))
def test_heterograph_update_equals_rebuild(variant, batches, query_between):
    """In one update or three (transitions continue across them; the edges are queued until
    the next score, which may come between the updates or only after all of them)."""
    name = variant.split("_no_")[0]
    config = {**HETERO[variant], "graph": GRAPH}
    small, later, full = _hetero_setup()
    seed_everything(0)
    model = get(name)(small, config).eval()
    model.full_sort_predict(_queries(small.train.events, at=300, n_items=OLD_ITEMS)[:OLD_USERS])
    for part in np.array_split(np.arange(len(later)), batches):
        model.update(later.events.iloc[part])
        if query_between:
            now = _queries(later.events, at=0, n_items=OLD_ITEMS)[: model.n_users]
            assert model.full_sort_predict(now).shape == (model.n_users, OLD_ITEMS)
    rebuilt = get(name)(full, config).eval()
    rebuilt.load_state_dict(model.state_dict())
    got, expected = model.graph, rebuilt.graph
    assert got.canonical_etypes == expected.canonical_etypes
    assert any(got.num_edges(et) > 0 for et in got.canonical_etypes if et[1] == "transition")
    for et in got.canonical_etypes:
        assert _edge_rows(got, et) == _edge_rows(expected, et), et
    relations = {et[1] for et in got.canonical_etypes}
    for nt in got.ntypes:
        assert got.num_nodes(nt) == expected.num_nodes(nt)
        for key, value in expected.nodes[nt].data.items():
            if key.startswith("norm_") and key.split("_", 2)[2] not in relations:
                continue  # left over from a relation training_heterograph dropped
            assert torch.equal(got.nodes[nt].data[key], value), (nt, key)
    queries = _queries(pd.concat([small.train.events, later.events]), at=300, n_items=OLD_ITEMS)
    torch.testing.assert_close(
        model.full_sort_predict(queries), rebuilt.full_sort_predict(queries), rtol=1e-5, atol=1e-5
    )


def test_heterograph_models_refuse_new_items():
    small, _, _ = _hetero_setup()
    model = get("hetero_gnn")(small, {**HETERO["hetero_gnn"], "graph": GRAPH})
    frame = pd.DataFrame(
        {"user": [0], "item": [OLD_ITEMS], "timestamp": [500], "trajectory": ["x"]}
    )
    with pytest.raises(NotImplementedError, match="new"):
        model.update(frame)


@pytest.mark.parametrize("name", ["lightgcn", "sasrec"])
def test_finetune_takes_gradient_steps_on_the_events(name):
    small, later, _ = _setup()
    seed_everything(0)
    model = get(name)(small, CONFIGS[name])
    model.update(later)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    everything = pd.concat([small.train.events, later.events], ignore_index=True)
    history = history_index(everything) if model.history_len else None
    losses = model.finetune(later.events, steps=3, history=history, lr=0.01, batch_size=8)
    assert len(losses) == 3 and all(np.isfinite(losses))
    after = model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_finetune_refuses_unknown_codes_and_statistical_models():
    small, later, _ = _setup()
    model = get("bprmf")(small, CONFIGS["bprmf"])
    with pytest.raises(DataError, match="update"):
        model.finetune(later, steps=1)
    with pytest.raises(NotImplementedError, match="no trained weights"):
        get("pop")(small).finetune(small.train, steps=1)
    with pytest.raises(ValueError, match="history"):
        get("sasrec")(small, CONFIGS["sasrec"]).finetune(small.train, steps=1)


@pytest.fixture(scope="module")
def nyc(root):
    from tgraph.data.protocols import getnext_nyc

    return getnext_nyc(root)


def test_update_equals_rebuild_on_nyc(nyc):
    """Foursquare NYC: LightGCN and Markov updated with the validation events equal the same
    models rebuilt on train + validation; the flagship's heterograph gains one ``interacts``
    edge per validation event."""
    events = pd.concat([nyc.train.events, nyc.valid.events], ignore_index=True)
    combined = nyc.train.with_events(events.sort_values("timestamp", kind="stable"))
    graph_model = get("lightgcn")(nyc, {"embedding_dim": 8})
    graph_model.update(nyc.valid)
    rebuilt = get("lightgcn")(nyc, {"embedding_dim": 8})
    rebuilt.observe(combined)
    assert _edges(graph_model.graph) == _edges(rebuilt.graph)
    assert torch.equal(graph_model.out_norm, rebuilt.out_norm)
    markov = get("markov")(nyc)
    markov.update(nyc.valid)
    refit = get("markov")(nyc).fit(combined)
    for a, b in zip(markov.state_dict().values(), refit.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    flagship = get("sthrec")(nyc, {"embedding_dim": 8, "n_heads": 2, "ff_dim": 8})
    before = flagship.graph.num_edges("interacts")
    flagship.update(nyc.valid)
    assert flagship.graph.num_edges("interacts") == before + len(nyc.valid)


def test_heterograph_refuses_events_older_than_the_groups_last():
    small, _, _ = _hetero_setup()
    model = get("sthrec")(small, {**HETERO["sthrec"], "graph": GRAPH})
    last = small.train.events.query("user == 0").iloc[-1]
    frame = pd.DataFrame(
        {
            "user": [0],
            "item": [1],
            "timestamp": [last.timestamp - 1],
            "trajectory": [last.trajectory],
        }
    )
    edges = model.graph.num_edges("interacts")
    with pytest.raises(DataError) as error:
        model.update(frame)
    assert error.value.column == "timestamp"
    assert model.graph.num_edges("interacts") == edges  # refused before any edge was added
