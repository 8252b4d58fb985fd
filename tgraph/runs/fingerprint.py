"""The fingerprint of a run: what it was trained with and on.

A fingerprint holds the resolved configuration of one run (model name and typed config, the
merged trainer options, seed, device, dataset name/options/protocol/protocol options/dedup/
k-core, reported metrics) and a summary of its data (the split's counts,
:meth:`~tgraph.data.split.Split.summary`). Its digest is the SHA-256 of their canonical JSON
without the seed: runs with one digest are seeds of one configuration on one split, which
``compare`` may average.

Rules (enforced by :meth:`tgraph.runs.rundir.RunDir.check`):

* options that cannot change results (:data:`IGNORED`) are left out;
* on ``--resume``, the keys of :data:`AMENDABLE` may change and are recorded as amendments;
  any other difference is refused, naming the key;
* a resumed run equals a fresh run of its final configuration except after a change of the
  learning rate or weight decay (:data:`TRAJECTORY`): those amendments enter the digest, so
  such a run is never averaged with fresh runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from tgraph.runs.records import Amendment

#: options that cannot change a run's results: left out of fingerprints
IGNORED = frozenset({"train.progress", "train.eval_batch_size", "train.tensorboard"})
#: options that may change on resume (recorded as amendments)
AMENDABLE = frozenset(
    {
        "train.epochs",
        "train.patience",
        "train.time_budget_s",
        "train.refit",
        "train.fold_valid",
        "train.lr",
        "train.weight_decay",
    }
)
#: amendments after which the run differs from a fresh run of its final configuration
TRAJECTORY = frozenset({"train.lr", "train.weight_decay"})


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, no NaN: one text per value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [2]}`` -> ``{"a.b": 1, "c": [2]}`` (lists are leaves)."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _without(values: dict[str, Any], drop: frozenset[str]) -> dict[str, Any]:
    """``values`` without the dotted keys in ``drop``."""
    out: dict[str, Any] = {}
    for key, item in values.items():
        if isinstance(item, dict):
            inner = frozenset(k.removeprefix(f"{key}.") for k in drop if k.startswith(f"{key}."))
            out[key] = _without(item, inner)
        elif key not in drop:
            out[key] = item
    return out


@dataclass(frozen=True)
class Fingerprint:
    """``values``: the resolved configuration and ``data`` summary (plain JSON values);
    ``amendments``: the changes made on resume, oldest first."""

    values: dict[str, Any]
    amendments: tuple[Amendment, ...] = field(default=())

    @classmethod
    def of(cls, config: dict[str, Any], data: dict[str, Any]) -> Fingerprint:
        """The fingerprint of a resolved run ``config`` on a split summarised by ``data``."""
        values = json.loads(canonical_json({**config, "data": data}))  # plain JSON values
        return cls(_without(values, IGNORED))

    @property
    def digest(self) -> str:
        """The configuration's identity: every value but the seed, and the amendments that
        changed the run's trajectory."""
        values = {k: v for k, v in self.values.items() if k != "seed"}
        trajectory = [(a.key, a.old, a.new) for a in self.amendments if a.key in TRAJECTORY]
        text = canonical_json({"values": values, "trajectory": trajectory})
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def short(self) -> str:
        """The first 8 hex digits of the digest (labels in tables)."""
        return self.digest[:8]

    def differences(self, other: Fingerprint) -> dict[str, tuple[Any, Any]]:
        """``key -> (this value, other value)`` for every key whose values differ."""
        mine, theirs = flatten(self.values), flatten(other.values)
        return {
            key: (mine.get(key), theirs.get(key))
            for key in sorted(set(mine) | set(theirs))
            if mine.get(key) != theirs.get(key)
        }

    def amended(self, amendments: list[Amendment]) -> Fingerprint:
        return Fingerprint(self.values, (*self.amendments, *amendments))

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "values": self.values,
            "amendments": [a.model_dump(mode="json") for a in self.amendments],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Fingerprint:
        amendments = tuple(Amendment.model_validate(a) for a in payload.get("amendments", []))
        return cls(payload["values"], amendments)


def describe(differences: dict[str, tuple[Any, Any]]) -> str:
    """``"train.lr 0.01 -> 0.001, seed 0 -> 1"``."""
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in differences.items())
