"""Train / validation / test splits and the targets each protocol scores.

A :class:`Split` keeps three event tables that share one id space (the same ``users`` and
``items`` tables) and, for validation and test, a *targets* table: one row per
(query, ground-truth item) to rank. Everything a model may learn from (graph, features,
normalisation, popularity) comes from ``split.train`` only; validation and test events are
context available at inference time, strictly before each query's timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tgraph.data.errors import DataError
from tgraph.data.interactions import Interactions

TARGET_COLUMNS = ("query", "user", "item", "timestamp")


@dataclass
class Split:
    """A protocol's split.

    Attributes:
        train: the events a model may learn from.
        valid: events of the validation period (``None`` when the protocol has none).
        test: events of the test period.
        valid_targets / test_targets: columns ``query, user, item, timestamp``; ``query`` groups
            the ground-truth items of one ranking request (one per user for top-K protocols,
            one per target check-in for next-POI protocols).
        mask_history: whether items the user interacted with before (train, and train plus
            validation for test) are removed from the candidates (LightGCN protocol: yes;
            next-POI protocol: no, revisits are valid targets).
        protocol: name of the protocol preset that built the split.
        report: counts of every row a filter dropped, by reason.
    """

    train: Interactions
    valid: Interactions | None
    test: Interactions
    valid_targets: pd.DataFrame
    test_targets: pd.DataFrame
    mask_history: bool
    protocol: str
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for part, targets in (("valid_targets", self.valid_targets), ("test_targets", self.test_targets)):
            missing = [c for c in TARGET_COLUMNS if c not in targets.columns]
            if missing:
                raise DataError(f"{part} lacks column(s) {missing}", column=missing[0])
        if len(self.test_targets) == 0:
            raise DataError(
                f"protocol {self.protocol!r} produced no test targets",
                fix="check the split ratios or timestamps and the filters applied before",
            )
        for part in (self.valid, self.test):
            if part is not None and (
                part.n_users != self.train.n_users or part.n_items != self.train.n_items
            ):
                raise DataError("train, valid and test must share one id space (users/items tables)")

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def targets(self, part: str) -> pd.DataFrame:
        """Targets of ``part`` ("valid" or "test")."""
        if part not in ("valid", "test"):
            raise KeyError(f"part must be 'valid' or 'test', got {part!r}")
        return self.valid_targets if part == "valid" else self.test_targets

    def summary(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "train_events": len(self.train),
            "valid_events": 0 if self.valid is None else len(self.valid),
            "test_events": len(self.test),
            "valid_queries": int(self.valid_targets["query"].nunique()),
            "test_queries": int(self.test_targets["query"].nunique()),
            "users": self.n_users,
            "items": self.n_items,
            "report": self.report,
        }
