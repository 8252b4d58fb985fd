"""The NGCF recommender: dense equivalence, gradients, eval cache, determinism, training."""

import numpy as np
import torch
import torch.nn.functional as F

import tgraph.models as models
from tests.models.helpers import random_split, tiny_split
from tgraph.data.queries import Queries, target_queries
from tgraph.models.base import Batch
from tgraph.models.ngcf import NGCF
from tgraph.train import Trainer
from tgraph.train.seed import seed_everything

SMALL = {"embedding_dim": 4, "hidden_dim": 3, "n_layers": 2}


def _batch() -> Batch:
    users = torch.tensor([0, 1, 2, 3])
    negatives = torch.tensor([[5], [4], [3], [1]])
    return Batch(Queries(users, users), torch.tensor([0, 1, 2, 3]), negatives)


def test_registered():
    assert models.get("NGCF") is NGCF
    assert NGCF(tiny_split()).config == NGCF.Config(loss="bpr")


def test_scores_equal_dense_computation():
    split = tiny_split()
    model = NGCF(split, SMALL).double().eval()
    n_users, n_items = split.n_users, split.n_items
    r = torch.zeros(n_users, n_items, dtype=torch.float64)
    train = split.train.events
    r[train["user"].to_numpy().copy(), train["item"].to_numpy().copy()] = 1.0
    n = n_users + n_items
    adj = torch.zeros(n, n, dtype=torch.float64)
    adj[:n_users, n_users:] = r
    adj[n_users:, :n_users] = r.T
    d = adj.sum(1).clamp(min=1).rsqrt()
    lap = d[:, None] * adj * d[None, :]
    h = model.embedding.weight.detach()
    parts = [h]
    eye = torch.eye(n, dtype=h.dtype)
    for layer in model.layers:
        w1, b, w2 = layer.W1.weight.detach(), layer.W1.bias.detach(), layer.W2.weight.detach()
        h = F.leaky_relu((lap + eye) @ h @ w1.T + b + (lap @ h * h) @ w2.T, 0.2)
        parts.append(h / h.norm(dim=1, keepdim=True))
    final = torch.cat(parts, dim=1)
    assert final.shape == (n, 4 + 2 * 3)
    users = torch.arange(n_users)
    got = model.full_sort_predict(Queries(users, users))
    torch.testing.assert_close(got, final[:n_users] @ final[n_users:].T)
    items = torch.tensor([[0, 5], [1, 1], [4, 2], [3, 0]])
    torch.testing.assert_close(model.predict(Queries(users, users), items), got.gather(1, items))


def test_gradients_reach_layers_and_embeddings_and_l2_is_on_layer_zero():
    split = random_split()
    torch.manual_seed(0)
    model = NGCF(split, {**SMALL, "reg_weight": 0.5}).eval()  # eval: no dropout, exact terms
    batch = _batch()
    loss = model.calculate_loss(batch)
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    e0, shift = model.embedding.weight, split.n_users
    rows = [e0[batch.queries.user], e0[batch.pos_item + shift], e0[batch.neg_item + shift]]
    expected_reg = 0.5 * sum(x.pow(2).sum() for x in rows) / (2 * len(batch))
    unregularised = NGCF(split, {**SMALL, "reg_weight": 0.0})
    unregularised.load_state_dict(model.state_dict())
    unregularised.eval()
    torch.testing.assert_close(loss - unregularised.calculate_loss(batch), expected_reg)


def test_eval_cache_follows_mode_and_weights():
    split = random_split()
    model = NGCF(split, SMALL).eval()
    queries = Queries(user=torch.arange(4), timestamp=torch.zeros(4, dtype=torch.long))
    with torch.no_grad():
        first = model.full_sort_predict(queries)
        assert model.propagate() is model.propagate()
        model.load_state_dict({k: v * 2 for k, v in model.state_dict().items()})
        assert not torch.allclose(model.full_sort_predict(queries), first)
        model.train()
        assert model.propagate() is not model.propagate()


def test_device_plumbing_and_determinism():
    split = random_split()
    seed_everything(3)
    a = NGCF(split, SMALL).to("cpu")
    seed_everything(3)
    b = NGCF(split, SMALL)
    assert a.graph.device.type == "cpu" and a.device.type == "cpu"
    queries, _ = target_queries(split, "test")
    a.eval(), b.eval()
    torch.testing.assert_close(a.full_sort_predict(queries), b.full_sort_predict(queries))
    a.train(), b.train()  # message dropout draws from the seeded generator
    seed_everything(5)
    loss_a = a.calculate_loss(_batch())
    seed_everything(5)
    torch.testing.assert_close(loss_a, b.calculate_loss(_batch()))


def test_training_beats_popularity_on_planted_clusters():
    split = random_split()
    config = {"epochs": 10, "batch_size": 128, "lr": 0.01, "eval_every": 10, "progress": False}
    recall = {}
    for name, model_config in (("pop", {}), ("ngcf", {"embedding_dim": 16, "hidden_dim": 16})):
        seed_everything(0)
        trainer = Trainer(models.get(name)(split, model_config), split, config)
        trainer.fit()
        recall[name] = trainer.evaluate("test", ("recall@5",)).metrics["recall@5"]
    assert recall["ngcf"] > recall["pop"] + 0.3, recall
    assert np.isfinite(trainer.history[-1].loss)
