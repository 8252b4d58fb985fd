"""Typed model hyper-parameters: every model declares a frozen ``Config`` (issue 10, section 2).

``Model(split, config)`` takes the ``Config`` or a mapping; unknown keys, wrong types and
out-of-range values raise one :class:`ConfigError` naming ``config.<key>``, and
``model.config`` is the typed instance the model reads.
"""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

import tgraph.models as models
from tests.models.helpers import tiny_split
from tgraph.errors import ConfigError
from tgraph.graph.spec import GraphSpec
from tgraph.models.base import ModelConfig
from tgraph.models.losses import LOSSES

#: small settings so that every model builds in milliseconds on the tiny split
SMALL = {
    "bprmf": {"embedding_dim": 4},
    "flashback": {"hidden_dim": 4, "max_len": 3},
    "getnext": {
        "poi_dim": 4,
        "user_dim": 4,
        "time_dim": 2,
        "gcn_hidden": [4],
        "ff_dim": 8,
        "max_len": 3,
        "attn_hidden": 4,
    },
    "gru4rec": {"embedding_dim": 4, "hidden_size": 4, "max_len": 3},
    "hetero_gnn": {"embedding_dim": 4, "n_regions": 2},
    "lightgcn": {"embedding_dim": 4},
    "markov": {"max_gap": 3600},
    "ngcf": {"embedding_dim": 4, "hidden_dim": 4},
    "pop": {},
    "revisit": {"max_len": 3},
    "sasrec": {"embedding_dim": 4, "ff_dim": 8, "max_len": 3},
    "sthgcn": {"embedding_dim": 4, "n_heads": 2, "max_len": 3, "time_dim": 2, "dist_dim": 2},
    "sthrec": {"embedding_dim": 4, "ff_dim": 8, "max_len": 3, "n_regions": 2, "dist_dim": 2},
    "tgat": {"embedding_dim": 4, "time_dim": 4, "max_len": 3},
}


def test_every_registered_model_declares_a_typed_config():
    assert sorted(SMALL) == models.list_models()
    for name in models.list_models():
        config = models.get(name).Config
        assert issubclass(config, ModelConfig), name
        defaults = config()
        assert defaults.loss in LOSSES
        # the dump is plain YAML and validates back to the same config
        dumped = defaults.model_dump(mode="json")
        assert config.model_validate(yaml.safe_load(yaml.safe_dump(dumped))) == defaults


@pytest.mark.parametrize("name", sorted(SMALL))
def test_model_config_is_the_typed_instance(name):
    split = tiny_split()
    cls = models.get(name)
    from_dict = cls(split, SMALL[name])
    assert type(from_dict.config) is cls.Config
    assert from_dict.config == cls.Config(**SMALL[name])
    typed = cls.Config.model_validate(SMALL[name])
    assert cls(split, typed).config is typed  # a Config is used as given
    with pytest.raises(ValidationError, match="frozen"):
        from_dict.config.loss = "ce"  # what the model was built with stays recorded


@pytest.mark.parametrize("name", sorted(SMALL))
def test_unknown_key_and_bad_loss_name_the_key(name):
    cls = models.get(name)
    with pytest.raises(ConfigError, match=r"^key 'config\.embeding_dim': Extra inputs"):
        cls(tiny_split(), {**SMALL[name], "embeding_dim": 8})
    with pytest.raises(ConfigError, match=r"^key 'config\.loss': Input should be 'bpr'"):
        cls(tiny_split(), {**SMALL[name], "loss": "hinge"})


@pytest.mark.parametrize(
    ("name", "bad", "problem"),
    [
        ("bprmf", {"embedding_dim": 0}, "greater than 0"),
        ("bprmf", {"embedding_dim": 2.5}, "valid integer"),
        ("bprmf", {"embedding_dim": "64"}, "valid integer"),
        ("bprmf", {"reg_weight": -1e-4}, "greater than or equal to 0"),
        ("bprmf", {"init_std": 0}, "greater than 0"),
        ("lightgcn", {"n_layers": -1}, "greater than or equal to 0"),
        ("lightgcn", {"n_layers": True}, "valid integer"),
        ("ngcf", {"mess_dropout": 1.0}, "less than 1"),
        ("ngcf", {"hidden_dim": 0}, "greater than 0"),
        ("markov", {"max_gap": -1}, "greater than or equal to 0"),
        ("gru4rec", {"n_layers": 0}, "greater than 0"),
        ("sasrec", {"max_len": 0}, "greater than 0"),
        ("sasrec", {"dropout": -0.1}, "greater than or equal to 0"),
        ("tgat", {"num_heads": 0}, "greater than 0"),
        ("hetero_gnn", {"norm": "left"}, "Input should be 'right', 'both' or 'none'"),
        ("hetero_gnn", {"n_regions": 0}, "greater than 0"),
        ("sthrec", {"use_distance": "no"}, "valid boolean"),
        ("sthrec", {"dist_dim": 1}, "greater than or equal to 2"),
        ("sthrec", {"time_slots": 0}, "greater than or equal to 1"),
        ("sthrec", {"time_slots": 86401}, "less than or equal to 86400"),
    ],
)
def test_out_of_range_and_wrong_types_name_the_key(name, bad, problem):
    """Before: accepted, then a failure deep in torch (or silently odd training)."""
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=rf"^key 'config\.{key}': .*{problem}"):
        models.get(name)(tiny_split(), {**SMALL[name], **bad})


@pytest.mark.parametrize(
    ("name", "heads"), [("sasrec", "n_heads"), ("tgat", "num_heads"), ("sthrec", "n_heads")]
)
def test_attention_heads_must_divide_the_embedding(name, heads):
    with pytest.raises(ConfigError, match=rf"embedding_dim=4 is not divisible by {heads}=3"):
        models.get(name)(tiny_split(), {**SMALL[name], heads: 3})


@pytest.mark.parametrize("name", ["hetero_gnn", "sthrec"])
def test_graph_section_is_a_nested_graph_spec(name):
    """A bad value inside ``graph`` names the nested key (before: a DataError without the
    model's key path, or for sthrec no ``graph`` section at all)."""
    model = models.get(name)(tiny_split(), {**SMALL[name], "graph": {"transitions": False}})
    assert model.config.graph == GraphSpec(transitions=False)
    assert "transition" not in model.graph.etypes
    with pytest.raises(ConfigError, match=r"^key 'config\.graph\.time_slots': .*less than"):
        models.get(name)(tiny_split(), {**SMALL[name], "graph": {"time_slots": 10**6}})
    with pytest.raises(ConfigError, match=r"^key 'config\.graph\.near_kk': Extra inputs"):
        models.get(name)(tiny_split(), {**SMALL[name], "graph": {"near_kk": 1}})


def test_all_bad_keys_in_one_error():
    with pytest.raises(ConfigError) as caught:
        models.get("ngcf")(tiny_split(), {"embedding_dim": 0, "n_layers": -1, "dropout": 0.1})
    message = str(caught.value)
    for key in ("config.embedding_dim", "config.n_layers", "config.dropout"):
        assert f"key '{key}'" in message
