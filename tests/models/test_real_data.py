"""Every trainable model, trained briefly on real data, clears a floor well above MostPopular.

Pairwise models run on MovieLens-100K (leave-last-out, history masked, Recall@20); sequence and
temporal models on Foursquare NYC (GETNext/STHGCN protocol, Acc@10). Epochs are few, so the
floors are far below converged quality: these tests catch a model that does not learn.
"""

from __future__ import annotations

import pytest
import yaml

import tgraph.models as models
from tgraph.config import shipped_configs
from tgraph.data import data_root
from tgraph.data.protocols import getnext_nyc, leave_last_out
from tgraph.data.readers.movielens import read_movielens_100k
from tgraph.eval.evaluator import Evaluator
from tgraph.train.seed import seed_everything
from tgraph.train.trainer import Trainer


@pytest.fixture(scope="module")
def movielens(root):
    return leave_last_out(
        read_movielens_100k(data_root(root) / "movielens_100k"), mask_history=True
    )


@pytest.fixture(scope="module")
def nyc(root):
    return getnext_nyc(root)


def _pop(split, metric):
    return Evaluator(split, "test", [metric]).evaluate(models.get("pop")(split).fit(split.train))


def _train(split, name, config, metric, **options):
    seed_everything(0)
    model = models.get(name)(split, config)
    settings = dict(batch_size=1024, lr=5e-3, metrics=(metric,), valid_metric=metric)
    settings.update(progress=False, patience=100, **options)
    trainer = Trainer(model, split, settings)
    trainer.fit()
    return trainer.evaluate("test", (metric,)).metrics[metric]


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("bprmf", {}),
        ("lightgcn", {"n_layers": 2}),
        ("ngcf", {"n_layers": 2, "embedding_dim": 32, "hidden_dim": 32}),
        ("hetero_gnn", {}),
    ],
)
def test_pairwise_models_on_movielens(movielens, name, config):
    pop = _pop(movielens, "recall@20").metrics["recall@20"]
    recall = _train(movielens, name, config, "recall@20", epochs=6)
    assert recall > pop + 0.02, (name, recall, pop)


@pytest.mark.parametrize(
    ("name", "config", "lr"),
    [
        ("gru4rec", {"max_len": 20}, 1e-2),  # a GRU needs a larger step to learn in one epoch
        ("sasrec", {"max_len": 20, "n_layers": 1}, 3e-3),
        ("tgat", {}, 3e-3),
        ("sthrec", {}, 3e-3),
    ],
)
def test_sequence_models_on_nyc(nyc, name, config, lr):
    pop = _pop(nyc, "acc@10").metrics["acc@10"]  # 0.043
    acc = _train(nyc, name, config, "acc@10", epochs=1, lr=lr)
    assert acc > 4 * pop, (name, acc, pop)


def test_revisit_rule_on_nyc_equals_its_committed_result(nyc):
    """The non-learned revisit rule with the settings of the shipped nyc_getnext config: the
    test figures of experiments/results/revisit (deterministic, no training)."""
    shipped = yaml.safe_load(shipped_configs()["nyc_getnext"].read_text())
    config = next(m["config"] for m in shipped["models"] if m["name"] == "revisit")
    result = Evaluator(nyc, "test", ["acc@1", "acc@10", "mrr"]).evaluate(
        models.get("revisit")(nyc, config)
    )
    assert result.metrics["acc@1"] == pytest.approx(0.2736, abs=5e-5)
    assert result.metrics["acc@10"] == pytest.approx(0.6853, abs=5e-5)
    assert result.metrics["mrr"] == pytest.approx(0.4139, abs=5e-5)
