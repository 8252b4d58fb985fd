"""Interaction data: the canonical table, readers, registry, synthetic generator, splits."""

from tgraph.data.interactions import Interactions
from tgraph.data.paths import data_root
from tgraph.data.registry import describe, list_datasets, load
from tgraph.data.split import Split
from tgraph.errors import DataError, DatasetNotFoundError

__all__ = [
    "DataError",
    "DatasetNotFoundError",
    "Interactions",
    "Split",
    "data_root",
    "describe",
    "list_datasets",
    "load",
]
