"""Readers: one module per source format, each returning validated :class:`Interactions`.

Every reader accepts ``path`` or ``path.gz`` and raises :class:`~tgraph.data.errors.DataError`
naming the file, column, line and fix for malformed input.
"""

from tgraph.data.readers.generic import read_table
from tgraph.data.readers.mat import read_gowalla_mat
from tgraph.data.readers.movielens import read_movielens_100k
from tgraph.data.readers.tsmc import read_tsmc

__all__ = ["read_gowalla_mat", "read_movielens_100k", "read_table", "read_tsmc"]
