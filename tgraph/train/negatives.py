"""Negative samplers: uniform, popularity-proportional and spatially hard.

Every sampler returns ``[B, n]`` item codes different from each row's positive item; with
``exclude_history=True`` also outside the user's training items (LightGCN's official sampler).
Collisions are redrawn (vectorised, up to ``max_rounds`` rounds); draws still colliding
after that (a user who has seen almost every item) are replaced by uniform items that only
avoid the positive, and counted in ``self.fallbacks``. All randomness comes from the
``numpy.random.Generator`` passed to :meth:`sample`, which the trainer checkpoints.
"""

from __future__ import annotations

import logging

import numpy as np

from tgraph.data.interactions import Interactions
from tgraph.data.preprocess import knn_pois
from tgraph.errors import DataError

log = logging.getLogger(__name__)


class NegativeSampler:
    """Uniform over all items (the base class; subclasses override :meth:`draw`)."""

    def __init__(self, train: Interactions, exclude_history: bool = False, max_rounds: int = 20):
        if train.n_items < 2:
            raise DataError("negative sampling needs at least two items", source=train.source)
        self.n_items = train.n_items
        self.exclude_history = exclude_history
        self.max_rounds = max_rounds
        self.fallbacks = 0
        events = train.events
        key = events["user"].to_numpy(np.int64) * self.n_items + events["item"].to_numpy(np.int64)
        self._seen = np.unique(key)

    def draw(self, pos: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """Candidate negatives ``[len(pos), n]`` before the collision check."""
        return rng.integers(0, self.n_items, size=(len(pos), n))

    def _bad(self, users: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
        bad = neg == pos[:, None]
        if self.exclude_history:
            key = users[:, None] * self.n_items + neg
            found = np.searchsorted(self._seen, key).clip(max=len(self._seen) - 1)
            bad |= self._seen[found] == key
        return bad

    def sample(
        self, users: np.ndarray, pos: np.ndarray, n: int, rng: np.random.Generator
    ) -> np.ndarray:
        users, pos = np.asarray(users, np.int64), np.asarray(pos, np.int64)
        neg = self.draw(pos, n, rng)
        bad = self._bad(users, pos, neg)
        for _ in range(self.max_rounds):
            if not bad.any():
                return neg
            rows, cols = np.nonzero(bad)
            neg[rows, cols] = self.draw(pos[rows], 1, rng)[:, 0]
            bad[rows, cols] = self._bad(users[rows], pos[rows], neg[rows, cols][:, None])[:, 0]
        if bad.any():
            rows, cols = np.nonzero(bad)
            shift = rng.integers(1, self.n_items, size=len(rows))
            neg[rows, cols] = (pos[rows] + shift) % self.n_items
            self.fallbacks += len(rows)
            log.debug("%d negatives fell back to uniform-except-positive", len(rows))
        return neg


class PopularitySampler(NegativeSampler):
    """``P(i) ∝ (count_i)^alpha`` over the training events (``alpha=1``: proportional)."""

    def __init__(
        self, train: Interactions, alpha: float = 0.75, exclude_history: bool = False, **kw
    ):
        super().__init__(train, exclude_history, **kw)
        counts = np.bincount(train.events["item"].to_numpy(), minlength=self.n_items)
        weight = counts.astype(np.float64) ** alpha
        weight[counts == 0] = 0.0
        self.cdf = np.cumsum(weight) / weight.sum()

    def draw(self, pos: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        index = np.searchsorted(self.cdf, rng.random((len(pos), n)), side="right")
        return index.clip(max=self.n_items - 1)


class SpatialSampler(NegativeSampler):
    """Hard negatives: uniform among the ``k`` items geographically nearest to the positive."""

    def __init__(self, train: Interactions, k: int = 50, exclude_history: bool = False, **kw):
        super().__init__(train, exclude_history, **kw)
        k = min(k, self.n_items - 1)
        _, neighbours, _ = knn_pois(train, k)  # haversine k-NN, nearest first, no self
        self.neighbours = neighbours.reshape(self.n_items, k)

    def draw(self, pos: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        column = rng.integers(0, self.neighbours.shape[1], size=(len(pos), n))
        return self.neighbours[pos[:, None], column]


SAMPLERS = {"uniform": NegativeSampler, "popularity": PopularitySampler, "spatial": SpatialSampler}


def make_sampler(name: str, train: Interactions, **options) -> NegativeSampler:
    """``name`` in :data:`SAMPLERS`; ``options`` go to the sampler's constructor."""
    if name not in SAMPLERS:
        raise KeyError(f"unknown negative sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[name](train, **options)
