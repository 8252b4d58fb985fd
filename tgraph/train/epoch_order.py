"""User-uniform epochs (``train.epoch_sampling: users``), LightGCN's official BPR sampler.

An epoch of ``n`` samples draws ``n`` users uniformly (with replacement) among the users with
training samples, then one of each drawn user's samples uniformly. Every user weighs the same
in training, as in per-user metrics such as Recall@20, while an epoch over the events weighs
each user by their number of events.
"""

from __future__ import annotations

import numpy as np


class UserSamples:
    """The training samples grouped by user: ``draw`` returns sample indices."""

    def __init__(self, users: np.ndarray):
        if len(users) == 0:
            raise ValueError("train.epoch_sampling users: there are no training samples")
        self._by_user = np.argsort(users, kind="stable")
        _, self._starts, self._counts = np.unique(
            users[self._by_user], return_index=True, return_counts=True
        )

    @property
    def n_users(self) -> int:
        return len(self._starts)

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` sample indices: a uniform user each, then a uniform sample of that user."""
        user = rng.integers(0, self.n_users, size=n)
        offset = (rng.random(n) * self._counts[user]).astype(np.int64)
        return self._by_user[self._starts[user] + offset]
