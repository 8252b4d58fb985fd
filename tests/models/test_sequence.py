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
from tgraph.models.gru4rec import GRU4Rec
from tgraph.models.sasrec import SASRec
from tgraph.train import seed_everything

MODELS = ["sasrec", "gru4rec"]
SMALL = {"max_len": 8, "embedding_dim": 16, "dropout": 0.3}


def make(name: str, split=None, **config):
    seed_everything(0)
    return get(name)(split or random_split(), {**SMALL, **config})


def history_queries(items: list[list[int]], pad: int, width: int) -> Queries:
    rows = [seq + [pad] * (width - len(seq)) for seq in items]
    return Queries(
        user=torch.zeros(len(items), dtype=torch.long),
        timestamp=torch.zeros(len(items), dtype=torch.long),
        hist_items=torch.tensor(rows),
        hist_len=torch.tensor([len(seq) for seq in items]),
        pad=pad,
    )


def test_registry_and_contract_attributes():
    assert get("SASRec") is SASRec and get("gru4rec") is GRU4Rec
    for name in MODELS:
        model = make(name)
        assert model.needs_training
        assert model.history_len == 8 and model.config.loss == "ce"
        assert model.item_emb.padding_idx == model.n_items
        with pytest.raises(ConfigError, match="key 'config.max_lenn'"):
            get(name)(random_split(), {"max_lenn": 3})


@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_predict_agree_with_full_sort(name):
    split = tiny_split()
    model = make(name, split).eval()
    queries, _ = target_queries(split, "test", model.history_len)
    scores = model.full_sort_predict(queries)
    assert scores.shape == (3, split.n_items) and torch.isfinite(scores).all()
    items = torch.tensor([[0, 5], [1, 2], [3, 3]])
    assert torch.allclose(model.predict(queries, items), scores.gather(1, items), atol=1e-6)
    assert torch.allclose(model.predict(queries, items[:, 0]), scores[:, [0, 1, 3]].diagonal())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("loss", ["ce", "sampled_softmax", "bpr"])
def test_losses_backpropagate(name, loss):
    model = make(name, loss=loss).train()
    queries = history_queries([[1, 2, 3], [4], [5, 6, 7, 8, 9, 10, 11, 12]], 30, 8)
    neg = None if loss == "ce" else torch.tensor([[0, 7], [9, 10], [20, 21]])
    value = model.calculate_loss(Batch(queries, torch.tensor([4, 5, 13]), neg))
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["item_emb.weight"][[1, 4, 13]].abs().sum() > 0
    assert torch.equal(grads["item_emb.weight"][30], torch.zeros(16))  # padding row
    encoder = [g for n, g in grads.items() if n.startswith(("encoder", "gru"))]
    assert encoder and all(g is not None and g.abs().sum() > 0 for g in encoder)


@pytest.mark.parametrize("name", MODELS)
def test_causal_masking(name):
    model = make(name).eval()
    items = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    out = model.sequence_output(items)
    changed = items.clone()
    changed[0, 5] = 20
    new = model.sequence_output(changed)
    assert torch.allclose(new[0, :5], out[0, :5], atol=1e-6)
    assert not torch.allclose(new[0, 5:], out[0, 5:], atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_padding_invariance(name):
    model = make(name).eval()
    seqs = [[1, 2, 3], [4], [5, 6, 7, 8, 9], []]
    short = model.full_sort_predict(history_queries(seqs, 30, 5))
    long = model.full_sort_predict(history_queries(seqs, 30, 8))
    assert torch.allclose(short, long, atol=1e-5)
    # the representation is the one at the last real position, not at the end of the row
    alone = model.full_sort_predict(history_queries([[1, 2, 3]], 30, 3))
    assert torch.allclose(alone[0], short[0], atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic_and_dropout_acts_only_in_training(name):
    queries = history_queries([[1, 2, 3], [4, 5]], 30, 8)
    assert_dropout_only_in_training(lambda: make(name), queries, atol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_device_plumbing_on_cpu(name):
    model = make(name).to("cpu").eval()
    assert model.device == torch.device("cpu")
    queries = history_queries([[1, 2]], 30, 8).to(model.device)
    assert model.full_sort_predict(queries).device == model.device


def test_sasrec_rejects_history_longer_than_max_len():
    model = make("sasrec")
    with pytest.raises(ValueError, match="max_len=8"):
        model.sequence_output(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.slow
def test_sasrec_beats_most_popular_on_synthetic_checkins():
    acc, pop_acc = synthetic_acc10("sasrec", {"max_len": 20, "embedding_dim": 32})
    assert acc > pop_acc + 0.1, (acc, pop_acc)
