"""Config layering (defaults < files < overrides) and errors that name the key."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest
import yaml

from tgraph import cli, models
from tgraph.config import (
    ConfigError,
    config_summary,
    load_config,
    parse_override,
    read_layers,
    shipped_configs,
    validate_config,
)
from tgraph.data import registry
from tgraph.errors import DatasetNotFoundError
from tgraph.train.config import TrainConfig


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
    with pytest.raises(ConfigError, match=r"key 'seeds\[1\]'"):
        load_config([], ["seeds=[0,x]"])
    with pytest.raises(ConfigError, match="not found"):
        load_config([tmp_path / "missing.yaml"])
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config([listing])


# ------------------------------------------------------------------ issue 10, case 7
def _config_file(tmp_path, text: str):
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("override", "key", "problem"),
    [
        ("train.epochs=-3", "train.epochs", "greater than or equal to 1"),
        ("train.patience=0", "train.patience", "greater than or equal to 1"),
        ("seeds=[0,0]", "seeds", "distinct"),
        ("train.epochs=2.7", "train.epochs", "valid integer"),
        ("train.eval_every=0", "train.eval_every", "greater than or equal to 1"),
        ("train.batch_size=0", "train.batch_size", "greater than or equal to 1"),
        ("seeds=[]", "seeds", "at least 1 item"),
        ("seeds=[-1]", r"seeds\[0\]", "greater than or equal to 0"),
        ("train.lr=0", "train.lr", "greater than 0"),
    ],
)
def test_degenerate_options_are_refused_naming_the_key(override, key, problem):
    """Case 7: each of these ran (an untrained model's metrics, one seed counted twice,
    3 epochs for 2.7, ZeroDivisionError / range() deep in the trainer) instead of an error."""
    with pytest.raises(ConfigError, match=rf"key '{key}': .*{problem}"):
        load_config([], [override, "models=[{name: bprmf}]"])


def test_yaml_strings_are_not_booleans_and_exponents_are_floats(tmp_path):
    """Case 7: ``refit: 'no'`` ran a refit (a non-empty string is truthy); ``lr: 1e-3`` (YAML
    1.1 reads it as a string) reached Adam as a string."""
    quoted = _config_file(tmp_path, "train: {refit: 'no'}\nmodels: [{name: bprmf}]\n")
    with pytest.raises(ConfigError, match="key 'train.refit': Input should be a valid boolean"):
        load_config([quoted])
    written = _config_file(
        tmp_path, "train: {lr: 1e-3, weight_decay: 1E-5}\nmodels: [{name: bprmf}]\n"
    )
    config = load_config([written])
    assert config.train == {"lr": 0.001, "weight_decay": 1e-5}
    options = config.train_config(config.models[0])
    assert options.lr == 0.001 and isinstance(options.lr, float)


# ------------------------------------------------------------------ issue 10, case 8
def test_wrong_values_name_the_full_key_path():
    """Case 8: one ConfigError naming every bad key, under train, models[i].train,
    models[i].config and a model's graph section."""
    models = (
        "models=[{name: pop}, {name: hetero_gnn, config: {graph: {time_slots: -1}}},"
        " {name: bprmf, config: {embedding_dim: 0, reg_weight: fast}, train: {lr: -1}}]"
    )
    with pytest.raises(ConfigError) as caught:
        load_config([], [models, "train.eval_every=0"])
    message = str(caught.value)
    for key in (
        "train.eval_every",
        "models[1].config.graph.time_slots",
        "models[2].config.embedding_dim",
        "models[2].config.reg_weight",
        "models[2].train.lr",
    ):
        assert f"key '{key}'" in message, (key, message)
    assert message.count("train.eval_every") == 1  # reported once, not once per model


def test_option_is_named_where_it_was_written():
    """The merged trainer options name the section that holds the bad value."""
    with pytest.raises(ConfigError, match=r"key 'models\[1\]\.train\.lr'"):
        load_config([], ["models=[{name: pop}, {name: bprmf, train: {lr: -1}}]"])
    with pytest.raises(ConfigError, match=r"^key 'train\.lr'"):
        load_config([], ["train.lr=-1", "models=[{name: pop}, {name: bprmf}]"])
    with pytest.raises(ConfigError, match=r"key 'models\[0\]\.train\.epochs'"):
        load_config([], ["models=[{name: pop, train: {epochs: 0}}]"])
    # a valid per-model value overrides the experiment's
    config = load_config(
        [], ["train.lr=0.1", "models=[{name: pop}, {name: bprmf, train: {lr: 0.5}}]"]
    )
    assert [config.train_config(m).lr for m in config.models] == [0.1, 0.5]


def test_run_settings_under_train_say_where_they_belong():
    with pytest.raises(ConfigError, match="key 'train.seed': .*setting of the run.*'seeds'"):
        load_config([], ["train.seed=3", "models=[{name: pop}]"])
    with pytest.raises(ConfigError, match=r"key 'models\[0\]\.train\.device': .*'device'"):
        load_config([], ["models=[{name: pop, train: {device: cuda}}]"])


def test_registry_names_are_checked():
    with pytest.raises(
        ConfigError, match=r"key 'models\[1\]\.name': unknown model 'lightgnc'.*lightgcn"
    ):
        load_config([], ["models=[{name: pop}, {name: lightgnc}]"])
    with pytest.raises(ConfigError, match="key 'dataset.name': unknown dataset 'movielens'"):
        load_config([], ["dataset.name=movielens"])
    with pytest.raises(
        ConfigError, match="key 'dataset.protocol': unknown protocol 'leave_one_out'"
    ):
        load_config([], ["dataset.protocol=leave_one_out"])
    with pytest.raises(ConfigError, match=r"key 'metrics\[1\]': unknown metric 'ndgc@10'"):
        load_config([], ["metrics=[mrr, ndgc@10]"])
    with pytest.raises(ConfigError, match="key 'models': labels must be unique"):
        load_config([], ["models=[{name: bprmf}, {name: pop, label: bprmf}]"])
    with pytest.raises(ConfigError, match=r"key 'dataset.kcore.user_k'"):
        load_config([], ["dataset.kcore={user_k: -1}"])
    assert load_config([], ["dataset.kcore={item_k: 5}"]).dataset.kcore.user_k == 10


def test_typed_views_of_an_entry():
    config = load_config(
        [], ["models=[{name: sasrec, config: {max_len: 7}, train: {epochs: 3}}]", "train.lr=0.01"]
    )
    entry = config.models[0]
    hyper = config.hyperparameters(entry)
    assert isinstance(hyper, models.get("sasrec").Config)
    assert (hyper.max_len, hyper.loss, hyper.n_heads) == (7, "ce", 2)  # defaults filled in
    options = config.train_config(entry)
    assert isinstance(options, TrainConfig) and (options.epochs, options.lr) == (3, 0.01)
    assert entry.config == {"max_len": 7}  # as written: the dump stays plain YAML
    assert yaml.safe_load(yaml.safe_dump(config.model_dump())) == config.model_dump()


def test_a_typo_in_the_third_model_stops_the_run_before_any_data_is_loaded(
    tmp_path, monkeypatch, capsys
):
    """Case 8: the typo was found only after the first two models had trained. The dataset's
    files do not exist, so loading data first would fail with another error (exit 1)."""
    empty_root = tmp_path / "data"
    empty_root.mkdir()
    monkeypatch.setenv("TGRAPH_DATA", str(empty_root))
    out = tmp_path / "runs"
    path = _config_file(
        tmp_path,
        f"output_dir: {out}\n"
        "dataset: {name: movielens_100k, protocol: leave_last_out}\n"
        "models:\n"
        "  - {name: pop}\n"
        "  - {name: bprmf}\n"
        "  - {name: lightgcn, config: {n_layer: 2}}\n",
    )
    assert cli.main(["run", "--config", str(path), "--data-root", str(empty_root)]) == 2
    error = capsys.readouterr().err
    assert "key 'models[2].config.n_layer': Extra inputs are not permitted" in error
    assert not out.exists()
    with pytest.raises(DatasetNotFoundError):  # what loading first would have raised
        registry.load("movielens_100k", empty_root)


def test_every_shipped_config_validates():
    """The experiment configs and the studies' experiment part (their ``study`` section is
    tgraph.tune's) pass the whole validation, model entries included."""
    shipped = shipped_configs()
    assert {"demo", "nyc_getnext", "studies/bprmf_movielens100k"} <= set(shipped)
    for path in shipped.values():
        merged = read_layers([path])
        merged.pop("study", None)
        config = validate_config(merged)
        for entry in config.models:
            config.hyperparameters(entry)
            config.train_config(entry)


def test_shipped_configs_are_described_and_packaged():
    """Each shipped config starts with a one-line ``# description`` (``tgraph configs``), and
    setup.cfg's package_data ships it."""
    parser = configparser.ConfigParser()
    parser.read(Path(__file__).parents[1] / "setup.cfg")
    globs = parser["options.package_data"]["tgraph"].split()
    package = Path(__file__).parents[1] / "tgraph"
    for name, path in shipped_configs().items():
        summary = config_summary(path)
        assert 20 < len(summary) <= 98 and "\n" not in summary, name
        assert any(path.relative_to(package).match(glob) for glob in globs), name


def test_table_options_are_checked_before_any_file_is_read(tmp_path):
    """A typo in the ``table`` dataset's options fails validation (``tgraph run --dry-run``),
    naming the key, even though the file does not exist."""
    merged = {
        "dataset": {
            "name": "table",
            "protocol": "chronological",
            "options": {"path": str(tmp_path / "absent.csv"), "colums": {"user": "u"}},
        },
        "models": [{"name": "pop"}],
    }
    with pytest.raises(ConfigError) as info:
        validate_config(merged)
    message = str(info.value)
    assert "dataset.options.colums" in message and "dataset.options.columns" in message
