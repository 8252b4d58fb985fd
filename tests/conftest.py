"""Shared fixtures: the real data root (CI has ../shared/data) and small synthetic data.

Test tiers (markers registered in setup.cfg): ``real_data`` is set here on every test that uses
the ``root`` fixture (directly or through another fixture); ``slow`` (over ~3 s on two cores)
and ``performance`` (wall-clock assertions) are set on the tests themselves.
``make test-fast`` runs the rest.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("DGLBACKEND", "pytorch")

import tgraph  # noqa: E402, F401, I001  (before torch: sets OMP_WAIT_POLICY, see tgraph.threads)
import torch  # noqa: E402

from tgraph.data.paths import data_root  # noqa: E402

# The tests' models are small: one intra-op thread avoids OpenMP oversubscription, which made
# them up to 100x slower whenever another process shared the two cores.
torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.real_data)


@pytest.fixture(scope="session")
def root():
    """The real data root. Tests on real data fail (not skip) when it is missing."""
    path = data_root()
    assert path.is_dir(), f"data root {path} not found: set TGRAPH_DATA to the shared data folder"
    return path
