"""Plugins: ``imports`` / ``--import`` modules and entry points register models, datasets and
protocols; registries refuse a taken name; failures name the module or entry point."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tgraph import models, plugins
from tgraph.cli import main
from tgraph.config import load_config
from tgraph.data import registry as data_registry
from tgraph.data.protocols import PROTOCOLS
from tgraph.errors import ConfigError
from tgraph.models import registry as model_registry
from tgraph.models.popular import MostPopular
from tgraph.runs import RunDir

TINY = [
    "seeds=[0]",
    "dataset.options={n_users: 60, n_pois: 80, n_events: 3000, days: 30, seed: 2}",
    "train={epochs: 1, valid_metric: mrr, metrics: [mrr], progress: false}",
    "metrics=[acc@10, mrr]",
]

MY_POP = '''
from tgraph.models import register
from tgraph.models.popular import MostPopular


@register("my_pop")
class MyPop(MostPopular):
    """MostPopular under a plugin's name."""
'''


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for plugin modules and distributions; the registries, the entry
    point state and sys.modules are as before the test afterwards."""
    saved = [(d, dict(d)) for d in (model_registry._MODELS, data_registry.DATASETS, PROTOCOLS)]
    monkeypatch.setattr(plugins, "_registered", set())
    monkeypatch.setattr(plugins, "_complete", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for registry, before in saved:
        registry.clear()
        registry.update(before)
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def write_distribution(folder: Path, name: str, entry_points: str) -> None:
    """An installed distribution ``name`` (a ``.dist-info`` folder) with ``entry_points``."""
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_imports_register_a_model_before_validation(plugin_dir):
    write_module(plugin_dir, "my_pop", MY_POP)
    models_key = "models=[{name: my_pop}]"
    with pytest.raises(ConfigError, match=r"key 'models\[0\]\.name': unknown model 'my_pop'"):
        load_config([], [models_key])
    config = load_config([], [models_key, "imports=[my_pop]"])
    assert config.imports == ["my_pop"]
    assert issubclass(config.model_class(config.models[0]), MostPopular)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (None, r"key 'imports\[1\]': module 'plug_x' not found \(fix: .*PYTHONPATH"),
        (
            "raise RuntimeError('no GPU here')\n",
            r"key 'imports\[1\]': importing module 'plug_x' failed: RuntimeError: no GPU here",
        ),
        (  # a dependency of the module is missing: named, not mistaken for the module
            "import plug_missing_dependency\n",
            r"key 'imports\[1\]': importing module 'plug_x' failed: ModuleNotFoundError: "
            r"No module named 'plug_missing_dependency'",
        ),
    ],
)
def test_failing_import_names_module_and_key(plugin_dir, source, message):
    write_module(plugin_dir, "my_pop", MY_POP)
    if source is not None:
        write_module(plugin_dir, "plug_x", source)
    with pytest.raises(ConfigError, match=message):
        load_config([], ["imports=[my_pop, plug_x]"])


def test_imports_must_be_a_list_of_module_names(plugin_dir):
    with pytest.raises(ConfigError, match=r"key 'imports': Input should be a valid list"):
        load_config([], ["imports=my_pop"])
    with pytest.raises(ConfigError, match=r"key 'imports\[0\]': Input should be a valid string"):
        load_config([], ["imports=[3]"])


def test_cli_import_failure_is_one_line_exit_2(plugin_dir, capsys):
    assert main(["run", "--config", "demo", "--dry-run", "--import", "plug_absent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tgraph: error: key '--import': module 'plug_absent' not found")
    assert err.count("\n") == 1


def test_taken_names_are_refused(plugin_dir):
    """A second class under a model name, or another spec under a dataset name, is an error
    naming the holder; registering the same object, or the same definition run again (a
    notebook cell, a reload), is not."""
    write_module(plugin_dir, "my_pop", MY_POP)
    first = importlib.import_module("my_pop").MyPop
    del sys.modules["my_pop"]
    again = importlib.import_module("my_pop").MyPop
    assert again is not first and models.get("my_pop") is again
    with pytest.raises(
        ConfigError, match=r"'BPRMF' is already registered by tgraph\.models\.bprmf\.BPRMF, so"
    ):
        models.register("BPRMF")(type("Other", (MostPopular,), {}))
    assert models.register("pop")(MostPopular) is MostPopular
    synthetic = data_registry.get_spec("synthetic")
    data_registry.register(synthetic)
    clash = data_registry.DatasetSpec("synthetic", "", (), print, "another", "")
    with pytest.raises(ConfigError, match="'synthetic' is already registered .*synthetic:gen"):
        data_registry.register(clash)
    assert data_registry.get_spec("synthetic") is synthetic


LAB_DATA = """
from tgraph.data.registry import DatasetSpec, register
from tgraph.data.synthetic import generate

register(DatasetSpec("lab_checkins", "", (), generate, "our lab's check-ins", ""))
"""


@pytest.mark.slow
def test_runs_record_imports_and_later_commands_import_them(plugin_dir, capsys):
    """``--import`` joins the config's ``imports`` in the run's config.yaml; ``compare``
    (which rebuilds the split for its strata) and ``analyse run`` import them again in a
    process that has not (here: the modules, model and dataset forgotten before each)."""
    write_module(plugin_dir, "my_pop", MY_POP)
    write_module(plugin_dir, "lab_data", LAB_DATA)
    config = plugin_dir / "c.yaml"
    config.write_text(
        "experiment: p\nimports: [lab_data]\ndataset: {name: lab_checkins}\n"
        "models: [{name: my_pop}]\n"
    )
    runs = plugin_dir / "runs"
    argv = ["run", "--config", str(config), "--import", "my_pop", f"output_dir={runs}", *TINY]
    assert main(argv) == 0
    run_dir = runs / "p" / "lab_checkins" / "my_pop" / "seed0"
    assert RunDir(run_dir).read_config()["imports"] == ["lab_data", "my_pop"]

    def forget() -> None:
        del sys.modules["my_pop"], sys.modules["lab_data"]
        del model_registry._MODELS["my_pop"], data_registry.DATASETS["lab_checkins"]

    forget()
    assert main(["compare", str(runs), "--n-boot", "10"]) == 0
    assert "lab_checkins" in data_registry.DATASETS
    forget()
    capsys.readouterr()
    assert main(["analyse", "run", str(run_dir), "--n-boot", "10"]) == 0
    assert model_registry._MODELS["my_pop"].__module__ == "my_pop"
    assert (run_dir / "analysis" / "stratified.csv").is_file()


def test_entry_points_register_on_first_lookup(plugin_dir):
    write_module(
        plugin_dir,
        "plug_ep",
        '''
        from tgraph.data.registry import DatasetSpec
        from tgraph.models.popular import MostPopular


        class EpModel(MostPopular):
            """Registered by its entry point's name."""


        def generate(**options):
            from tgraph.data.synthetic import generate

            return generate(n_users=30, n_pois=40, n_events=600, days=10, seed=1)


        SPEC = DatasetSpec("ep_data", "", (), generate, "an entry point's dataset", "")
        ''',
    )
    write_module(plugin_dir, "plug_ep_module", MY_POP)  # a module registers by importing
    write_distribution(
        plugin_dir,
        "plug_dist",
        """
        [tgraph.models]
        ep_model = plug_ep:EpModel
        whole_module = plug_ep_module
        [tgraph.datasets]
        ep_data = plug_ep:SPEC
        """,
    )
    assert models.get("EP_MODEL").__name__ == "EpModel"  # names are case-insensitive
    assert "my_pop" in models.list_models()
    assert "ep_data" in data_registry.list_datasets()
    assert len(data_registry.load("ep_data").events) == 600
    config = load_config([], ["dataset.name=ep_data", "models=[{name: ep_model}]"])
    assert config.model_class(config.models[0]).__name__ == "EpModel"


def test_entry_point_protocol(plugin_dir):
    write_module(
        plugin_dir,
        "plug_protocol",
        """
        from tgraph.data.protocols import PROTOCOLS


        def chronological_again(inter):
            return PROTOCOLS["chronological"][1](inter)
        """,
    )
    write_distribution(
        plugin_dir, "plug_p", "[tgraph.protocols]\nagain = plug_protocol:chronological_again"
    )
    config = load_config([], ["dataset.protocol=again", "models=[{name: pop}]"])
    assert config.dataset.protocol == "again" and "again" in PROTOCOLS


@pytest.mark.parametrize(
    ("entry", "source", "message"),
    [
        (
            "bad = plug_bad:Model",
            "raise ImportError('needs CUDA 13')",
            r"plugin 'bad = plug_bad:Model' \(entry point group tgraph\.models, from plug_b\) "
            r"failed to load: ImportError: needs CUDA 13 \(fix: fix or uninstall",
        ),
        (
            "bad = plug_bad:Model",
            "Model = 3",
            r"plugin 'bad = plug_bad:Model' .* is int 3, not a Recommender subclass or a module",
        ),
    ],
)
def test_broken_entry_point_is_named_on_every_lookup(plugin_dir, entry, source, message):
    write_module(plugin_dir, "plug_bad", source)
    write_distribution(plugin_dir, "plug_b", f"[tgraph.models]\n{entry}\n")
    for _ in range(2):  # not skipped silently after the first failure
        with pytest.raises(ConfigError, match=message):
            models.get("pop")


def test_dataset_entry_point_must_carry_its_name(plugin_dir):
    write_module(
        plugin_dir,
        "plug_named",
        "from tgraph.data.registry import get_spec\n"
        "SPEC = get_spec('synthetic').__class__('other', '', (), print, '', '')\n",
    )
    write_distribution(plugin_dir, "plug_n", "[tgraph.datasets]\nmine = plug_named:SPEC\n")
    with pytest.raises(ConfigError, match="names a DatasetSpec called 'other'"):
        data_registry.list_datasets()


def test_cli_data_list_shows_imported_datasets(plugin_dir, capsys):
    write_module(plugin_dir, "lab_data", LAB_DATA)
    assert main(["data", "list", "--import", "lab_data"]) == 0
    assert re.search(r"^lab_checkins +\(generated\)$", capsys.readouterr().out, re.M)
