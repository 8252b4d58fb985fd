"""The dataset registry: names, descriptions, checksums, loading and missing-file errors."""

from __future__ import annotations

import gzip
import hashlib

import pytest

import tgraph.data as tdata
from tgraph.data import DatasetNotFoundError, Interactions, describe, list_datasets, load
from tgraph.data.registry import DATASETS, SHA256

from .test_readers import write_tsmc

SHARED_FOLDERS = ("foursquare_nyc", "gowalla_lightgcn", "gowalla_mat", "movielens_100k")


def test_names_and_descriptions():
    names = list_datasets()
    assert names == sorted(names)
    for name in (*SHARED_FOLDERS, "foursquare_nyc_getnext", "foursquare_tsmc_nyc", "synthetic"):
        assert name in names
    info = describe("movielens_100k")
    assert info["folder"] == "movielens_100k" and "u.data" in info["files"]
    assert "Harper" in info["citation"] and info["downloads"] == [
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    ]
    assert "split=" in info["options"]
    with pytest.raises(KeyError, match="known"):
        describe("nope")
    for spec in DATASETS.values():  # every download is pinned by a checksum where one is known
        for resource in spec.resources:
            assert resource.url.startswith(("https://", "http://"))
            if "tsmc" not in spec.name:
                assert resource.sha256 or any(resource.members.values())


def test_exported_from_package():
    assert tdata.load is load and tdata.list_datasets is list_datasets
    assert tdata.describe is describe


def test_checksums_match_shared_files(root):
    """The registry's sha256 of each decompressed file equals the shared copy's."""
    for name, sha in SHA256.items():
        paths = [
            path
            for folder in SHARED_FOLDERS
            for path in (root / folder / name, root / folder / f"{name}.gz")
            if path.is_file()
        ]
        assert len(paths) == 1, name
        data = paths[0].read_bytes()
        if paths[0].suffix == ".gz":
            data = gzip.decompress(data)
        assert hashlib.sha256(data).hexdigest() == sha, name


def test_load_real_datasets(root):
    movielens = load("movielens_100k", root=root)
    assert isinstance(movielens, Interactions) and len(movielens) == 100_000
    assert len(load("movielens_100k", root=root, split="u3")["test"]) == 20_000
    assert len(load("gowalla_mat", root=root, part="test")) == 31_730
    nyc = load("foursquare_nyc", root=root)
    assert len(nyc) == 147_938 and nyc.n_users == 1_083 and nyc.n_items == 5_135
    getnext = load("foursquare_nyc_getnext", root=root)
    assert len(getnext["valid"]) == 10_339 and len(getnext["test"]) == 10_374
    assert len(load("foursquare_nyc_getnext", root=root, part="test")) == 10_374
    lightgcn = load("gowalla_lightgcn", root=root)
    assert len(lightgcn["train"]) == 810_128 and len(lightgcn["test"]) == 217_242


def test_load_uses_tgraph_data(tmp_path, monkeypatch):
    folder = tmp_path / "foursquare_tsmc2014"
    folder.mkdir()
    write_tsmc(folder / "dataset_TSMC2014_NYC.txt", gz=True)
    monkeypatch.setenv("TGRAPH_DATA", str(tmp_path))
    data = load("foursquare_tsmc_nyc")
    assert len(data) == 4 and data.name == "foursquare_tsmc_nyc"
    assert data.source == str(folder / "dataset_TSMC2014_NYC.txt.gz")


def test_load_synthetic_is_seeded():
    first = load("synthetic", n_users=20, n_pois=30, n_events=300, seed=3)
    again = load("synthetic", n_users=20, n_pois=30, n_events=300, seed=3)
    assert isinstance(first, Interactions) and len(first) == 300
    assert first.events.equals(again.events)


def test_missing_file_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TGRAPH_DATA", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as info:
        load("movielens_100k")
    message = str(info.value)
    assert "u.data" in message and str(tmp_path / "movielens_100k") in message
    assert "download=True" in message and "TGRAPH_DATA" in message
    assert isinstance(info.value, FileNotFoundError)
    # a dataset with no published checksum names its source page
    with pytest.raises(DatasetNotFoundError, match="sites.google.com/site/yangdingqi"):
        load("foursquare_tsmc_tky", root=tmp_path)
    # one file present, one missing: the missing one is named
    (tmp_path / "gowalla_mat").mkdir()
    (tmp_path / "gowalla_mat" / "specific_train.csv").write_text("x\n")
    with pytest.raises(DatasetNotFoundError, match="specific_test.csv"):
        load("gowalla_mat", root=tmp_path)


def test_unknown_dataset_and_options(root):
    with pytest.raises(KeyError, match="movielens_100k"):
        load("movielens_1m", root=root)
    with pytest.raises(KeyError, match="u9"):
        load("movielens_100k", root=root, split="u9")
    with pytest.raises(KeyError, match="part"):
        load("gowalla_mat", root=root, part="valid")
