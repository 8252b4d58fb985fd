"""The heterogeneous GNN recommender and its training heterograph."""

import numpy as np
import torch

import tgraph.models as models
from tests.models.helpers import random_split
from tgraph.data.queries import target_queries
from tgraph.models.base import Batch
from tgraph.models.hetero_gnn import HeteroGNN
from tgraph.train import Trainer
from tgraph.train.seed import seed_everything


def test_registered_and_graph_relations():
    split = random_split()
    model = models.get("hetero_gnn")(split)
    assert isinstance(model, HeteroGNN)
    graph = model.graph
    assert set(graph.ntypes) == {"user", "item", "location"}
    names = set(graph.etypes)
    assert {"interacts", "visits", "transition", "in_location", "near"} <= names
    assert {"rev_interacts", "rev_transition"} <= names
    assert graph.num_edges("interacts") == len(split.train)
    # one weight per relation in the first layer; the last one only feeds users and items
    first, last = model.encoder.layers
    assert len(first.rel_weight) == len(graph.canonical_etypes)
    ends = {et[2] for et in last.etypes}
    assert ends == {"user", "item"} and set(last.ntypes) == {"user", "item"}


def test_shapes_predict_matches_full_sort_and_gradients():
    split = random_split()
    model = HeteroGNN(split, {"embedding_dim": 8})
    queries, _ = target_queries(split, "test")
    model.eval()
    full = model.full_sort_predict(queries)
    assert full.shape == (len(queries), split.n_items) and torch.isfinite(full).all()
    items = torch.randint(0, split.n_items, (len(queries), 3))
    torch.testing.assert_close(model.predict(queries, items), full.gather(1, items))
    model.train()
    batch = Batch(queries[:4], torch.tensor([0, 1, 2, 3]), torch.tensor([[4], [5], [6], [7]]))
    model.calculate_loss(batch).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    assert model.encoder.embedding["location"].grad.abs().sum() > 0


def test_device_and_determinism():
    split = random_split()
    seed_everything(3)
    a = HeteroGNN(split, {"embedding_dim": 8}).to("cpu").eval()
    seed_everything(3)
    b = HeteroGNN(split, {"embedding_dim": 8}).eval()
    assert a.graph.device.type == "cpu" and a.device.type == "cpu"
    queries, _ = target_queries(split, "test")
    torch.testing.assert_close(a.full_sort_predict(queries), b.full_sort_predict(queries))
    torch.testing.assert_close(a.full_sort_predict(queries), a.full_sort_predict(queries))


def test_training_beats_popularity_on_planted_clusters():
    split = random_split()
    config = {"epochs": 8, "batch_size": 256, "lr": 0.05, "eval_every": 8, "progress": False}
    seed_everything(0)
    pop = Trainer(models.get("pop")(split), split, config)
    pop.fit()
    seed_everything(0)
    gnn = Trainer(HeteroGNN(split, {"embedding_dim": 16}), split, config)
    gnn.fit()
    pop_recall = pop.evaluate("test", ("recall@5",)).metrics["recall@5"]
    gnn_recall = gnn.evaluate("test", ("recall@5",)).metrics["recall@5"]
    assert gnn_recall > pop_recall + 0.5, (gnn_recall, pop_recall)
    assert np.isfinite(gnn.history[-1].loss)
