"""Config layering (defaults < files < overrides) and errors that name the key."""

from __future__ import annotations

import pytest

from tgraph.config import ConfigError, load_config, parse_override


def test_override_parsing():
    assert parse_override("train.lr=0.01") == {"train": {"lr": 0.01}}
    assert parse_override("seeds=[0,1,2]") == {"seeds": [0, 1, 2]}
    assert parse_override("dataset.name=foursquare_nyc") == {"dataset": {"name": "foursquare_nyc"}}
    for bad in ("train.lr", "=3", "a..b=1"):
        with pytest.raises(ConfigError):
            parse_override(bad)


def test_layers_later_wins(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(
        "experiment: a\nseeds: [0]\ntrain: {lr: 0.1, epochs: 5}\nmodels: [{name: pop}]\n"
    )
    top = tmp_path / "top.yaml"
    top.write_text("train: {lr: 0.2}\ndataset: {name: movielens_100k}\n")
    config = load_config([base, top], ["train.epochs=7", "seeds=[1,2]"])
    assert config.experiment == "a"
    assert config.train == {"lr": 0.2, "epochs": 7}  # nested dicts merge key by key
    assert config.seeds == [1, 2]
    assert config.dataset.name == "movielens_100k"
    assert config.dataset.protocol == "next_poi_chronological"  # schema default kept
    assert config.models[0].name == "pop"


def test_unknown_key_and_bad_type_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="key 'dataset.protocl'"):
        load_config([], ["dataset.protocl=lightgcn"])
    with pytest.raises(ConfigError, match="key 'seeds.1'"):
        load_config([], ["seeds=[0,x]"])
    with pytest.raises(ConfigError, match="not found"):
        load_config([tmp_path / "missing.yaml"])
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config([listing])
