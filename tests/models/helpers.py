"""Hand-made splits shared by the model, evaluation and training tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tgraph.data.interactions import Interactions
from tgraph.data.split import Split


def make_interactions(rows, n_users: int, n_items: int) -> Interactions:
    """Events (user, item, timestamp) over fixed catalogues 0..n_users-1 / 0..n_items-1; item
    ``i`` sits at latitude ``40 + 0.01 i`` (about 1.1 km apart), longitude -74."""
    frame = pd.DataFrame(list(rows), columns=["user", "item", "timestamp"]).astype(np.int64)
    users = pd.DataFrame({"raw_id": np.arange(n_users)})
    lat = 40.0 + 0.01 * np.arange(n_items)
    items = pd.DataFrame({"raw_id": np.arange(n_items), "lat": lat, "lon": np.full(n_items, -74.0)})
    return Interactions(events=frame, users=users, items=items, name="tiny")


def tiny_split(mask_history: bool = True) -> Split:
    """4 users, 6 items.

    train: u0: 0,1,2  u1: 1,3  u2: 0,4  u3: 2   (times 1..8)
    valid: u0 -> 3 at t=10;  u1 -> 4 at t=11
    test:  u0 -> 4 and 5 at t=20 (one query);  u2 -> 1 at t=21;  u3 -> 2 at t=22 (a revisit)
    """
    train = [(0, 0, 1), (0, 1, 2), (0, 2, 3), (1, 1, 4), (1, 3, 5), (2, 0, 6), (2, 4, 7), (3, 2, 8)]
    valid = [(0, 3, 10), (1, 4, 11)]
    test = [(0, 4, 20), (0, 5, 20), (2, 1, 21), (3, 2, 22)]
    n_users, n_items = 4, 6
    valid_targets = pd.DataFrame(valid, columns=["user", "item", "timestamp"])
    valid_targets.insert(0, "query", [0, 1])
    test_targets = pd.DataFrame(test, columns=["user", "item", "timestamp"])
    test_targets.insert(0, "query", [0, 0, 1, 2])
    return Split(
        train=make_interactions(train, n_users, n_items),
        valid=make_interactions(valid, n_users, n_items),
        test=make_interactions(test, n_users, n_items),
        valid_targets=valid_targets,
        test_targets=test_targets,
        mask_history=mask_history,
        protocol="tiny",
    )


def split_from_parts(
    parts: dict[str, pd.DataFrame], n_users: int, n_items: int, protocol: str
) -> Split:
    """A masked split from ``train`` / ``valid`` / ``test`` event frames (user, item, timestamp):
    each user's validation (test) events are one query keyed by the user."""
    tables = {
        name: make_interactions(part.itertuples(index=False), n_users, n_items)
        for name, part in parts.items()
    }
    targets = {}
    for name in ("valid", "test"):
        frame = tables[name].events[["user", "item", "timestamp"]].copy()
        frame.insert(0, "query", frame["user"].to_numpy())
        targets[name] = frame
    return Split(
        train=tables["train"],
        valid=tables["valid"],
        test=tables["test"],
        valid_targets=targets["valid"],
        test_targets=targets["test"],
        mask_history=True,
        protocol=protocol,
    )


def random_split(n_users: int = 60, n_items: int = 30, per_user: int = 10, seed: int = 0) -> Split:
    """A planted-cluster split: users and items in 3 groups, users pick items of their group
    (every 4th user has one early event outside it). Each user's last event is the test
    target, the one before it the validation target (a top-K protocol with masking)."""
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % 3
    item_group = np.arange(n_items) % 3
    rows = []
    for u in range(n_users):
        own = np.flatnonzero(item_group == user_group[u])
        seq = rng.choice(own, size=per_user, replace=False)
        if u % 4 == 0:
            seq[0] = rng.choice(np.flatnonzero(item_group != user_group[u]))
        rows += [(u, int(item), 1000 * u + t) for t, item in enumerate(seq)]
    events = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    last = events.groupby("user")["timestamp"].transform("max")
    parts = {
        "train": events[events["timestamp"] < last - 1],
        "valid": events[events["timestamp"] == last - 1],
        "test": events[events["timestamp"] == last],
    }
    return split_from_parts(parts, n_users, n_items, protocol="random")


def synthetic_acc10(name: str, config: dict) -> tuple[float, float]:
    """Test Acc@10 of model ``name`` and of MostPopular after 8 epochs on small synthetic
    check-ins (next-POI protocol)."""
    from tgraph.data.protocols import next_poi_chronological
    from tgraph.data.synthetic import generate
    from tgraph.models import get
    from tgraph.train.seed import seed_everything
    from tgraph.train.trainer import Trainer

    split = next_poi_chronological(generate(n_users=100, n_pois=200, n_events=6000, days=60))
    options = {
        "epochs": 8,
        "batch_size": 256,
        "lr": 3e-3,
        "metrics": ("acc@10",),
        "valid_metric": "acc@10",
        "progress": False,
    }
    results = []
    for model_name, model_config in ((name, config), ("pop", {})):
        seed_everything(0)
        trainer = Trainer(get(model_name)(split, model_config), split, options)
        trainer.fit()
        results.append(trainer.evaluate("test").metrics["acc@10"])
    return results[0], results[1]


def assert_dropout_only_in_training(make, queries, atol: float) -> None:
    """``make()`` (seeded) scores ``queries`` deterministically in eval mode, differently in
    training mode (dropout), and gives the same initial weights every time."""
    model = make()
    model.eval()
    first = model.full_sort_predict(queries)
    assert torch.equal(model.full_sort_predict(queries), first)
    model.train()
    assert not torch.allclose(model.full_sort_predict(queries), first, atol=atol)
    assert all(
        torch.equal(a, b)
        for a, b in zip(make().state_dict().values(), model.state_dict().values(), strict=True)
    )
