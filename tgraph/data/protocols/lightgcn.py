"""The NGCF/LightGCN top-K protocol on a released train/test split (e.g. Gowalla)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tgraph.data.protocols.builders import require_no_duplicates
from tgraph.data.protocols.next_poi import data_folder
from tgraph.data.readers.lightgcn import read_lightgcn
from tgraph.data.split import Split, empty_targets, event_targets
from tgraph.errors import DataError

logger = logging.getLogger(__name__)

GOWALLA_FOLDER = "gowalla_lightgcn"


def hold_out_per_user(
    events: pd.DataFrame, ratio: float, seed: int
) -> tuple[np.ndarray, dict[str, int]]:
    """Boolean mask of the validation rows: ``round(ratio * n_u)`` random rows of each user.

    Each user keeps at least one training row, and every item keeps at least one training
    row (a held-out row whose item would vanish from training goes back; counted).
    """
    if not 0 <= ratio < 1:
        raise DataError(f"valid_ratio={ratio}", column="valid_ratio", fix="use 0 <= ratio < 1")
    rng = np.random.default_rng(seed)
    users = events["user"].to_numpy()
    key = rng.random(len(users))
    order = np.lexsort((key, users))
    counts = np.bincount(users)
    rank = np.empty(len(users), dtype=np.int64)
    rank[order] = np.arange(len(users)) - np.searchsorted(users[order], users[order])
    quota = np.minimum(np.floor(ratio * counts + 0.5), counts - 1).astype(np.int64)
    held = rank < quota[users]
    items = events["item"].to_numpy()
    kept = np.bincount(items[~held], minlength=items.max() + 1)
    orphan = held & (kept[items] == 0)
    # give back, per orphaned item, its held-out row with the smallest random key
    candidates = np.flatnonzero(orphan)
    first = candidates[np.lexsort((key[candidates], items[candidates]))]
    back = first[np.r_[True, items[first][1:] != items[first][:-1]]] if len(first) else first
    held[back] = False
    return held, {"held_out": int(held.sum()), "returned_to_keep_items": len(back)}


def lightgcn(root: Path, valid_ratio: float = 0.1, seed: int = 0) -> Split:
    """The NGCF/LightGCN protocol on the released ``train.txt`` / ``test.txt`` (e.g. Gowalla).

    The official code has no validation set and early-stops on test; tgraph holds out
    ``valid_ratio`` of each user's training pairs at random (``seed``; see
    :func:`hold_out_per_user`) and selects on them. ``split.train`` excludes those pairs;
    masking (``mask_history=True``, see :meth:`Split.history_items`) removes the training pairs
    when ranking validation and the whole ``train.txt`` (train + validation) when ranking test.
    Targets: one query per user, all of the user's held-out (valid) or test items. There is
    no time (``timestamp`` 0), so leakage is checked on ``(user, item)`` pairs.

    ``root`` is the data root or the dataset folder itself.
    """
    folder = data_folder(root, GOWALLA_FOLDER)
    data = read_lightgcn(folder)
    full, test = data["train"], data["test"]
    require_no_duplicates(test)
    held, held_counts = hold_out_per_user(full.events, valid_ratio, seed)
    report = {
        "train_file_events": len(full),
        "test_events": len(test),
        "valid_ratio": valid_ratio,
        "seed": seed,
        **held_counts,
    }
    train = full.with_events(full.events[~held], name=f"{full.name}_fit")
    valid = full.with_events(full.events[held], name=f"{full.name}_valid") if held.any() else None
    logger.info("lightgcn split: %s", report)
    split = Split(
        train=train,
        valid=valid,
        test=test,
        valid_targets=event_targets(valid.events, "user") if valid is not None else empty_targets(),
        test_targets=event_targets(test.events, "user"),
        mask_history=True,
        protocol="lightgcn",
        report=report,
        time_order=None,
        require_seen=True,
    )
    split.report["leakage_checks"] = split.check_no_leakage()
    return split
