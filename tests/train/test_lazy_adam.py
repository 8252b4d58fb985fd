"""Sparse-gradient sampled training (``train.sampling.sparse``): the lazy Adam against torch's
Adam and SparseAdam, the first step equal to dense training, untouched rows left alone,
learning, and the configuration errors."""

from __future__ import annotations

import pytest
import torch

import tgraph.models as models
from tests.models.helpers import random_split
from tgraph.errors import ConfigError
from tgraph.train import Trainer, seed_everything
from tgraph.train.config import TrainConfig
from tgraph.train.lazy_adam import LazyAdam

LIGHTGCN = ("lightgcn", {"n_layers": 2, "embedding_dim": 8})
NGCF = ("ngcf", {"n_layers": 2, "embedding_dim": 8, "hidden_dim": 8, "mess_dropout": 0.0})


def _steps(make_optimizer, sparse: bool, batches: list[torch.Tensor]) -> torch.Tensor:
    torch.manual_seed(0)
    table = torch.nn.Embedding(20, 4, sparse=sparse)
    optimizer = make_optimizer(table.parameters())
    for rows in batches:
        optimizer.zero_grad()
        (table(rows) ** 2).sum().backward()
        optimizer.step()
    return table.weight.detach()


BATCHES = [torch.tensor([1, 3, 3, 7]), torch.tensor([0, 1]), torch.tensor([7, 7, 9])]


def test_lazy_adam_on_dense_gradients_is_adam():
    ours = _steps(lambda p: LazyAdam(p, lr=0.1), False, BATCHES)
    torch.testing.assert_close(ours, _steps(lambda p: torch.optim.Adam(p, lr=0.1), False, BATCHES))


def test_lazy_adam_on_sparse_gradients_is_sparse_adam_and_leaves_other_rows():
    ours = _steps(lambda p: LazyAdam(p, lr=0.1), True, BATCHES)
    torch.testing.assert_close(
        ours, _steps(lambda p: torch.optim.SparseAdam(list(p), lr=0.1), True, BATCHES)
    )
    initial = _steps(lambda p: LazyAdam(p, lr=0.1), True, [])
    untouched = [r for r in range(20) if r not in {0, 1, 3, 7, 9}]
    assert torch.equal(ours[untouched], initial[untouched])
    assert not torch.equal(ours[[0, 1, 3, 7, 9]], initial[[0, 1, 3, 7, 9]])
    # dense Adam keeps moving row 3 after its last gradient (momentum); lazy Adam does not
    dense = _steps(lambda p: torch.optim.Adam(p, lr=0.1), False, BATCHES)
    after_first = _steps(lambda p: LazyAdam(p, lr=0.1), True, BATCHES[:1])
    assert torch.equal(ours[3], after_first[3]) and not torch.equal(dense[3], after_first[3])


def _trainer(split, name, config, sampling, **options):
    seed_everything(0)
    model = models.get(name)(split, config)
    settings = {"epochs": 1, "batch_size": 64, "progress": False, "sampling": sampling}
    return model, Trainer(model, split, {**settings, **options}, seed=0)


@pytest.mark.parametrize(("name", "config"), [LIGHTGCN, NGCF])
def test_first_sparse_step_equals_the_dense_one(name, config):
    """From zero moments lazy and dense Adam take the same first step; every row the sampled
    blocks read gets it, and the gradient is sparse."""
    split = random_split(60, 30, 10)
    dense, dense_trainer = _trainer(split, name, config, {"fanouts": [-1, -1]})
    sparse, sparse_trainer = _trainer(split, name, config, {"fanouts": [-1, -1], "sparse": True})
    assert isinstance(sparse_trainer.optimizer, LazyAdam)
    dense_trainer.train_epoch(max_batches=1)
    sparse_trainer.train_epoch(max_batches=1)
    assert sparse.embedding.weight.grad.is_sparse
    for key, value in dense.state_dict().items():
        torch.testing.assert_close(sparse.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_sparse_training_leaves_rows_outside_the_batches_alone():
    split = random_split(60, 30, 10)
    model, trainer = _trainer(split, *LIGHTGCN, {"fanouts": [1, 1], "sparse": True})
    before = model.embedding.weight.detach().clone()
    trainer.train_epoch(max_batches=1)
    moved = (model.embedding.weight.detach() != before).any(1)
    # the first batch's blocks read some rows (at most users, items and 2 hops of 1 neighbour)
    assert 0 < int(moved.sum()) < len(before)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "config"), [LIGHTGCN, NGCF])
def test_sparse_sampled_training_learns(name, config):
    split = random_split(60, 30, 10)
    _, trainer = _trainer(
        split, name, config, {"fanouts": [4, 4], "sparse": True}, epochs=15, lr=0.01
    )
    trainer.fit()
    # planted groups of 10 items: a model that learned puts the group first
    assert trainer.history[-1].valid["recall@20"] > 0.9


def test_sparse_configuration_errors():
    split = random_split(30, 20, 6)
    with pytest.raises(ValueError, match="train.optimizer: adam"):
        TrainConfig.model_validate(
            {"optimizer": "sgd", "sampling": {"fanouts": [5], "sparse": True}}
        )
    with pytest.raises(ValueError, match="weight_decay"):
        TrainConfig.model_validate(
            {"weight_decay": 0.1, "sampling": {"fanouts": [5], "sparse": True}}
        )
    seed_everything(0)
    hetero = models.get("hetero_gnn")(split, {"n_layers": 1, "embedding_dim": 8, "n_regions": 4})
    with pytest.raises(ConfigError, match="train.sampling.sparse"):
        Trainer(hetero, split, {"sampling": {"fanouts": [5], "sparse": True}, "progress": False})
    # off by default, and then not in the dump (fingerprints of earlier sampled runs)
    assert (
        "sparse"
        not in TrainConfig.model_validate({"sampling": {"fanouts": [5]}}).model_dump()["sampling"]
    )
    on = TrainConfig.model_validate({"sampling": {"fanouts": [5], "sparse": True}}).model_dump()
    assert on["sampling"]["sparse"] is True
