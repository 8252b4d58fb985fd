"""The dataset registry: ``load("movielens_100k")`` finds, checks and reads a dataset.

Each :class:`DatasetSpec` names its folder under the data root (see
:func:`tgraph.data.paths.data_root`), the files it needs there (each may also be stored as
``<file>.gz``), its reader, its citation and, where a stable public copy exists, the URLs and
checksums that :func:`tgraph.data.download.fetch` uses.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tgraph.data.paths import data_root
from tgraph.data.readers._io import resolve
from tgraph.errors import ConfigError, DatasetNotFoundError


@dataclass(frozen=True)
class Resource:
    """One download: ``url`` saved as ``<folder>/<filename>`` and checked against ``sha256``.

    For a zip archive, ``members`` maps each file to extract to its sha256 (None = unknown).
    """

    url: str
    filename: str
    sha256: str | None = None
    members: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """What :func:`load` needs to know about a dataset."""

    name: str
    folder: str
    files: tuple[str, ...]
    reader: Callable[..., Any]
    description: str
    citation: str
    options: str = ""
    resources: tuple[Resource, ...] = ()
    manual: str = ""
    #: checks the reader options before any file is read (a config error names the key)
    check_options: Callable[[dict[str, Any]], Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "folder": self.folder,
            "files": list(self.files),
            "description": self.description,
            "options": self.options,
            "citation": self.citation,
            "downloads": [r.url for r in self.resources],
            "manual": self.manual,
        }


def _lazy(path: str) -> Callable[..., Any]:
    """``"module:function"`` imported on first call (readers of other modules load lazily)."""
    module, function = path.split(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), function)(*args, **kwargs)

    call.__qualname__ = path
    return call


def _read_tsmc(city: str) -> Callable[..., Any]:
    def read(folder: Path) -> Any:
        reader = _lazy("tgraph.data.readers.tsmc:read_tsmc")
        name = f"foursquare_tsmc_{city.lower()}"
        return reader(folder / f"dataset_TSMC2014_{city}.txt", name=name)

    return read


def _read_getnext(folder: Path, part: str | None = None) -> Any:
    reader = _lazy("tgraph.data.readers.getnext:read_getnext_csv")
    parts = {"valid": "val", "test": "test"}
    if part is not None and part not in parts:
        raise KeyError(f"unknown part {part!r}; choose 'valid', 'test' or None")
    read = {key: reader(resolve(folder / f"getnext_NYC_{file}.csv")) for key, file in parts.items()}
    return read if part is None else read[part]


#: sha256 of the decompressed files (from each data folder's PROVENANCE.md)
SHA256 = {
    "stan_NYC.npy": "9e28b974a52d233e201ff9e82e1c076818c90b1e8f25f4ef93daaf1d7e8ddf55",
    "stan_NYC_POI.npy": "f709f4796ca117d0b96ad2d0201a9869920364e2c476c4362e746740ded08d95",
    "getnext_NYC_val.csv": "3eeb4e39be8869e4259e9316d1aeda088e0606f7efdb93e3fd436e86cfc58b2e",
    "getnext_NYC_test.csv": "c285494e63475512c3c22b37885c70cf0ee89548cbcac109d72ba4e0d02f8f6e",
    "train.txt": "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",
    "test.txt": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",
    "user_list.txt": "5344c4d0deef610e1f148f23ad216a0db03b36f88834cd39a06786a672c5f5a1",
    "item_list.txt": "6b186f92890cc3f0c15a6dae5d6285f125a302bb8c5ea0cd9a16cf9c16347139",
    "specific_train.csv": "7bb14f3ed4b316a820efd6e4aafe088f372064f5474747e9d8952d0d224e659a",
    "specific_test.csv": "e9ab5476ff5dae060016040779416f6830f262e82857968d318f85bbc89c49d4",
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
    "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
    "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
}
_RAW = "https://raw.githubusercontent.com/"
_LIGHTGCN = _RAW + "kuandeng/LightGCN/b067ec05f16a24e0e1efe63cd82385f0c469af20/Data/gowalla/"
_STAN = (
    _RAW + "yingtaoluo/Spatial-Temporal-Attention-Network-for-POI-Recommendation/"
    "8b82f2840e7f435a25398e1d42a835fc4129a4e2/data/"
)
_GETNEXT = _RAW + "18baby/Next_POI/fdf7ea56e279cf8894f8f2e1bfac566fc2d016b5/data/nyc/raw_basic_ver/"
_MAT = (
    _RAW + "mat-analysis/datasets/f50572553419e667e0bd89173a3e9cbe5b32a99d/"
    "mat/Gowalla/Gowalla%2070-30%20hold-out.zip"
)
_TSMC = Resource(
    url="http://www-public.it-sudparis.eu/~zhang_da/pub/dataset_tsmc2014.zip",
    filename="dataset_tsmc2014.zip",
    members={"dataset_TSMC2014_NYC.txt": None, "dataset_TSMC2014_TKY.txt": None},
)
_TSMC_CITATION = (
    "Dingqi Yang, Daqing Zhang, Vincent W. Zheng, Zhiyong Yu. Modeling User Activity "
    "Preference by Leveraging User Spatial Temporal Characteristics in LBSNs. IEEE Trans. "
    "on Systems, Man, and Cybernetics: Systems 45(1):129-142, 2015."
)
_GOWALLA_CITATION = (
    "E. Cho, S. A. Myers, J. Leskovec. Friendship and Mobility: User Movement in "
    "Location-Based Social Networks. KDD 2011."
)
_ML100K_FILES = ("u.data", "u.item", "u.user", "u.genre", "u.occupation", "u.info", "README")
_ML100K_SPLITS = tuple(
    f"{s}.{e}" for s in ("u1", "u2", "u3", "u4", "u5", "ua", "ub") for e in ("base", "test")
)


def _files(url: str, *names: tuple[str, str]) -> tuple[Resource, ...]:
    """Single-file resources: (remote name, local name), checked against :data:`SHA256`."""
    return tuple(Resource(url + remote, local, SHA256[local]) for remote, local in names)


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="foursquare_nyc",
            folder="foursquare_nyc",
            files=("stan_NYC.npy", "stan_NYC_POI.npy"),
            reader=_lazy("tgraph.data.readers.stan:read_stan_nyc"),
            description="Foursquare NYC check-ins as filtered by GETNext/STAN (147,938 check-ins, "
            "1,083 users, 5,135 POIs; local minute time, POI coordinates)",
            citation=f"{_TSMC_CITATION} Files: Y. Luo, Q. Liu, Z. Liu. STAN. WWW 2021.",
            resources=_files(
                _STAN, ("NYC.npy", "stan_NYC.npy"), ("NYC_POI.npy", "stan_NYC_POI.npy")
            ),
        ),
        DatasetSpec(
            name="foursquare_nyc_getnext",
            folder="foursquare_nyc",
            files=("getnext_NYC_val.csv", "getnext_NYC_test.csv"),
            reader=_read_getnext,
            description="GETNext's NYC validation and test files (10,339 / 10,374 check-ins)",
            options="part='valid' | 'test' | None (dict of both)",
            citation=f"{_TSMC_CITATION} Split: S. Yang, J. Liu, K. Zhao. GETNext. SIGIR 2022.",
            resources=_files(
                _GETNEXT,
                ("NYC_val.csv", "getnext_NYC_val.csv"),
                ("NYC_test.csv", "getnext_NYC_test.csv"),
            ),
        ),
        *(
            DatasetSpec(
                name=f"foursquare_tsmc_{city.lower()}",
                folder="foursquare_tsmc2014",
                files=(f"dataset_TSMC2014_{city}.txt",),
                reader=_read_tsmc(city),
                description=f"raw Foursquare TSMC2014 {label} check-ins ({count} check-ins; UTC "
                "time, timezone offset, per-check-in coordinates, venue categories)",
                citation=_TSMC_CITATION,
                resources=(_TSMC,),
                manual="the zip is linked from https://sites.google.com/site/yangdingqi/home/"
                "foursquare-dataset; no checksum is published",
            )
            for city, label, count in (("NYC", "New York", "227,428"), ("TKY", "Tokyo", "573,703"))
        ),
        DatasetSpec(
            name="gowalla_lightgcn",
            folder="gowalla_lightgcn",
            files=("train.txt", "test.txt"),
            reader=_lazy("tgraph.data.readers.lightgcn:read_lightgcn"),
            description="the NGCF/LightGCN Gowalla split (29,858 users, 40,981 items, 810,128 "
            "train / 217,242 test; no timestamps); returns {'train', 'test'}",
            citation=f"{_GOWALLA_CITATION} Split: X. Wang et al. NGCF. SIGIR 2019; X. He et al. "
            "LightGCN. SIGIR 2020.",
            resources=_files(
                _LIGHTGCN,
                *(
                    (name, name)
                    for name in ("train.txt", "test.txt", "user_list.txt", "item_list.txt")
                ),
            ),
        ),
        DatasetSpec(
            name="gowalla_mat",
            folder="gowalla_mat",
            files=("specific_train.csv", "specific_test.csv"),
            reader=_lazy("tgraph.data.readers.mat:read_gowalla_mat"),
            description="MAT Gowalla weekly trajectories of 300 users (98,158 check-ins, 5,329 "
            "trajectories); weekday + minute only, so timestamps are synthetic",
            options="part='train' | 'test' | None (dict of both)",
            citation=f"{_GOWALLA_CITATION} Subset: L. May Petry et al. MARC. IJGIS 34(7), 2020.",
            resources=(
                Resource(
                    _MAT,
                    "gowalla_70-30_hold-out.zip",
                    members={
                        name: SHA256[name] for name in ("specific_train.csv", "specific_test.csv")
                    },
                ),
            ),
        ),
        DatasetSpec(
            name="movielens_100k",
            folder="movielens_100k",
            files=("u.data", "u.item", "u.user"),
            reader=_lazy("tgraph.data.readers.movielens:read_movielens_100k"),
            description="MovieLens-100K: 100,000 ratings, 943 users, 1,682 movies, with genres and "
            "user age/gender/occupation/zip code (research use only, no redistribution)",
            options="split='u1'..'u5' | 'ua' | 'ub' -> {'train', 'test'}; None -> all ratings",
            citation="F. M. Harper, J. A. Konstan. The MovieLens Datasets: History and Context. "
            "ACM TiiS 5(4), 2015.",
            resources=(
                Resource(
                    "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                    "ml-100k.zip",
                    members={
                        **{name: SHA256[name] for name in _ML100K_FILES},
                        **dict.fromkeys(_ML100K_SPLITS),
                    },
                ),
            ),
        ),
        DatasetSpec(
            name="table",
            folder="",
            files=(),
            reader=_lazy("tgraph.data.readers.generic:read_table_dataset"),
            check_options=_lazy("tgraph.data.readers.generic:table_options"),
            description="your own CSV / TSV / Parquet interaction table (gzip too), read by "
            "tgraph.data.readers.read_table: exact ids, timezone kept as a per-event tz_offset",
            options="path (absolute, or relative to the working directory), columns {user, item, "
            "timestamp, lat, lon, category, ...}, sep, encoding, time_format, time_unit, "
            "timezone | tz_column, item_columns, user_columns, name (see TableOptions)",
            citation="",
        ),
        DatasetSpec(
            name="synthetic",
            folder="",
            files=(),
            reader=_lazy("tgraph.data.synthetic:generate"),
            description="a seeded synthetic check-in table (no files needed)",
            options="keyword arguments of tgraph.data.synthetic.generate",
            citation="",
        ),
    )
}


def register(spec: DatasetSpec) -> None:
    """Add a dataset so that configs can name it (from a module the config ``imports``, or the
    ``tgraph.datasets`` entry point group: :mod:`tgraph.plugins`). A name already taken by a
    spec with another reader is a :class:`~tgraph.errors.ConfigError`: nothing is replaced but
    the same definition run again (same reader module and name: a notebook cell re-run)."""
    taken = DATASETS.get(spec.name)
    if taken is not None and _reader_name(taken) != _reader_name(spec):
        raise ConfigError(
            f"dataset name {spec.name!r} is already registered (reader {_reader_name(taken)}), "
            f"so the spec with reader {_reader_name(spec)} cannot take it",
            fix="register the new dataset under another name",
        )
    DATASETS[spec.name] = spec


def _reader_name(spec: DatasetSpec) -> str:
    name = getattr(spec.reader, "__qualname__", repr(spec.reader))
    return name if ":" in name else f"{spec.reader.__module__}.{name}"  # _lazy: "module:function"


def get_spec(name: str) -> DatasetSpec:
    _load_plugins()
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {list_datasets()}")
    return DATASETS[name]


def list_datasets() -> list[str]:
    """Names of the registered datasets (built-in, imported and installed plugins), sorted."""
    _load_plugins()
    return sorted(DATASETS)


def _load_plugins() -> None:
    from tgraph.plugins import load_entry_points  # plugins register through this module

    load_entry_points()


def describe(name: str) -> dict[str, Any]:
    """Folder, files, options, citation and download URLs of dataset ``name``."""
    return get_spec(name).describe()


def load(
    name: str, root: str | os.PathLike | None = None, *, download: bool = False, **kwargs: Any
) -> Any:
    """Read dataset ``name`` from ``<root>/<folder>`` (root: see :func:`data_root`).

    ``kwargs`` go to the reader (see ``describe(name)["options"]``). With ``download=True``
    missing files are fetched first. Returns an :class:`~tgraph.data.Interactions` or, for
    datasets with fixed parts, a dict of them.
    """
    spec = get_spec(name)
    if not spec.files:
        return spec.reader(**kwargs)
    base = data_root(root)
    folder = base / spec.folder
    if download:
        from tgraph.data.download import fetch

        fetch(name, base)
    for file in spec.files:
        try:
            resolve(folder / file)
        except FileNotFoundError as err:
            raise DatasetNotFoundError(_missing_message(spec, file, base)) from err
    return spec.reader(folder, **kwargs)


def _missing_message(spec: DatasetSpec, file: str, root: Path) -> str:
    where = root / spec.folder
    how = (
        f"download it with tgraph.data.load({spec.name!r}, root={str(root)!r}, download=True) "
        f"or tgraph.data.download.fetch({spec.name!r}, {str(root)!r})"
        if spec.resources
        else "get it from the source named in describe()"
    )
    manual = f" ({spec.manual})" if spec.manual else ""
    return (
        f"dataset {spec.name!r} needs the file {file} (or {file}.gz) in {where}, which is "
        f"missing. {how}{manual}, or put the file there yourself. The data root {root} comes "
        "from the root= argument, else the TGRAPH_DATA environment variable, else "
        "../shared/data beside the project, else ~/.cache/tgraph/data."
    )
