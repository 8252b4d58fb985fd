"""``train.fold_valid``: the validation events folded into the selected model before test."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import tgraph.models as models
from tests.models.helpers import random_split, tiny_split
from tests.runs.helpers import run_of, tiny
from tgraph.config import DatasetConfig
from tgraph.data.protocols.prepare import prepare_split
from tgraph.errors import ConfigError
from tgraph.eval import Evaluator
from tgraph.experiment import run_experiment
from tgraph.models.base import Recommender
from tgraph.runs import RunDir
from tgraph.train import Trainer, seed_everything


def _fit(split, name, **options):
    def build():
        seed_everything(0)
        return models.get(name)(split)

    defaults = dict(epochs=2, batch_size=4, lr=0.01, progress=False, metrics=["mrr"])
    trainer = Trainer(build(), split, {**defaults, **options}, rebuild=build)
    trainer.fit()
    return trainer


def _test_mrr(split, model):
    return Evaluator(split, "test", ["mrr"]).evaluate(model).per_query["mrr"].to_numpy()


def test_folded_markov_equals_markov_fitted_on_train_and_valid():
    split = tiny_split(mask_history=False)
    folded = _fit(split, "markov", fold_valid=True).model
    plain = _fit(split, "markov").model
    both = split.train.with_events(pd.concat([split.train.events, split.valid.events]))
    rebuilt = models.get("markov")(split).fit(both)
    np.testing.assert_array_equal(_test_mrr(split, folded), _test_mrr(split, rebuilt))
    # u0's valid check-in 3 makes "2 -> 3" a transition: u0's test query (last POI 3) changes
    assert not np.array_equal(_test_mrr(split, folded), _test_mrr(split, plain))


def test_fold_valid_leaves_selection_alone_and_reaches_the_graph():
    """LightGCN (``update``): the same epochs, validation values and weights as without the
    fold; only the graph gains the validation edges, so test scores change."""
    split = random_split()
    # random_split's validation events are not all before its test targets: move the test later
    split.test.events["timestamp"] += 10**6
    split.test_targets["timestamp"] += 10**6
    folded = _fit(split, "lightgcn", fold_valid=True)
    plain = _fit(split, "lightgcn")
    assert [r.valid for r in folded.history] == [r.valid for r in plain.history]
    for name, value in plain.model.state_dict().items():
        torch.testing.assert_close(folded.model.state_dict()[name], value)
    n_edges = plain.model.graph.num_edges() + 2 * len(split.valid.events)
    assert folded.model.graph.num_edges() == n_edges  # each validation pair is new here
    with torch.no_grad():
        assert not torch.allclose(folded.model.propagate(), plain.model.propagate())


def test_fold_valid_through_observe_rebuilds_the_hypergraph():
    """STHGCN has no ``update``: its hypergraph is rebuilt on train + valid (``observe``)."""
    split = tiny_split(mask_history=False)
    options = dict(valid_metric="mrr", fold_valid=True)
    model = _fit(split, "sthgcn", **options).model
    assert model.hypergraph.num_nodes("checkin") == len(split.train) + len(split.valid)


def test_fold_valid_refusals():
    with pytest.raises(ConfigError, match="train.fold_valid both"):
        _fit(tiny_split(), "markov", fold_valid=True, refit=True)
    # a top-K split: each user's validation event precedes only its own test event
    with pytest.raises(ConfigError, match=r"validation events are not before its first test"):
        _fit(random_split(), "bprmf", fold_valid=True)

    class Frozen(Recommender):
        needs_training = False

        def full_sort_predict(self, queries):
            return torch.zeros(len(queries), self.n_items)

    with pytest.raises(ConfigError, match="can neither update nor observe"):
        Trainer(Frozen(tiny_split()), tiny_split(), {"fold_valid": True, "progress": False})


def test_events_the_model_cannot_fold_stop_the_run_before_training(root):
    """On gowalla_mat, sthrec's update refuses validation POIs that no training event placed
    in a region: the Trainer tries the fold on a copy of the untrained model, so the run stops
    at once, not after its epochs; the model itself is left as it was."""
    split = prepare_split(DatasetConfig(name="gowalla_mat", protocol="gowalla_mat"), root)
    seed_everything(0)
    model = models.get("sthrec")(split)
    n_users, edges = model.n_users, model.graph.num_edges()
    with pytest.raises(ConfigError, match=r"train.fold_valid.*has no region") as err:
        Trainer(model, split, {"fold_valid": True, "progress": False})
    assert "cannot fold the validation events in" in str(err.value)
    assert (model.n_users, model.graph.num_edges()) == (n_users, edges)


def test_resume_adds_fold_valid_to_a_finished_run(tmp_path):
    """Like ``refit``, ``fold_valid`` is amendable: a finished run resumed with it trains no
    further and ranks test as a fresh run with it does."""
    lightgcn = "models=[{name: lightgcn, config: {embedding_dim: 8}}]"
    run_experiment(tiny(tmp_path / "a", lightgcn))
    before = json.loads((run_of(tmp_path / "a", "lightgcn") / "metrics.json").read_text())
    run_experiment(tiny(tmp_path / "a", lightgcn, "train.fold_valid=true"), resume=True)
    run_experiment(tiny(tmp_path / "b", lightgcn, "train.fold_valid=true"))
    resumed, fresh = (RunDir(run_of(tmp_path / d, "lightgcn")) for d in ("a", "b"))
    a, b = (json.loads((r.path / "metrics.json").read_text()) for r in (resumed, fresh))
    assert a["best_epoch"] == b["best_epoch"] == before["best_epoch"]
    assert a["valid"] == b["valid"] == before["valid"]
    assert a["test"] == pytest.approx(b["test"]) and a["test"] != before["test"]
    assert a["fingerprint"] == b["fingerprint"] != before["fingerprint"]


@pytest.mark.parametrize("name", ["sasrec", "flashback"])
def test_fold_valid_changes_nothing_in_models_without_event_state(name):
    """Sequence models read the validation period through the histories only."""
    split = tiny_split(mask_history=False)
    folded, plain = (_fit(split, name, fold_valid=f).model for f in (True, False))
    np.testing.assert_array_equal(_test_mrr(split, folded), _test_mrr(split, plain))


def test_streaming_after_the_fold_replays_the_test_period_only(tmp_path):
    """A streamed Markov reaches each test query with every earlier event counted once, folded
    or not: the two streaming rankings are equal (folding the validation events twice would
    double their transitions)."""
    for fold in ("false", "true"):
        config = tiny(
            tmp_path / fold,
            "models=[{name: markov}]",
            "eval={mode: streaming}",
            f"train.fold_valid={fold}",
        )
        run_experiment(config)
    plain, folded = (RunDir(run_of(tmp_path / f, "markov")) for f in ("false", "true"))
    assert folded.read_metrics().test != plain.read_metrics().test  # the static ranking moved
    a, b = (r.read_per_query(streaming=True)[["query", "mrr"]] for r in (plain, folded))
    assert a.equals(b)
