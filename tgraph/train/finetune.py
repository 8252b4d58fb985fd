"""A few gradient steps on recent events: :meth:`Recommender.finetune
<tgraph.models.base.Recommender.finetune>`.

The steps are the trainer's (:func:`~tgraph.train.trainer.gradient_step`, with its optimiser
and negative sampler, :func:`~tgraph.train.trainer.make_optimizer` /
:func:`~tgraph.train.trainer.negative_sampler`), on batches drawn from the given events only:
each event is a training target whose query is its user at its time, with the history the
caller keeps (a :class:`~tgraph.data.temporal_index.TemporalIndex`) strictly before it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from tgraph.config import validate_model
from tgraph.data.interactions import Interactions
from tgraph.data.queries import build_queries
from tgraph.data.temporal_index import TemporalIndex
from tgraph.errors import DataError
from tgraph.models.base import Recommender
from tgraph.models.update import SOURCE, new_events
from tgraph.train.config import TrainConfig
from tgraph.train.trainer import gradient_step, make_optimizer, negative_sampler


def finetune(
    model: Recommender,
    events: Interactions | pd.DataFrame,
    steps: int,
    history: TemporalIndex | None = None,
    seed: int = 0,
    **train_options: Any,
) -> list[float]:
    """``steps`` gradient steps (batches of ``train.batch_size`` events drawn without
    replacement, reshuffled when exhausted) on ``events``; returns the losses.

    ``train_options`` are :class:`~tgraph.train.config.TrainConfig` fields (``lr``,
    ``batch_size``, ``optimizer``, ``n_neg``, ``negatives`` ...; negatives are sampled over
    ``events``); a fresh optimiser is made per call. The events' users and items must be
    known to the model (fold new ones in with ``update`` first). The model is left in
    training mode.
    """
    if not model.needs_training:
        raise NotImplementedError(
            f"{type(model).__name__} has no trained weights (its update is all it needs)"
        )
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    config = validate_model(TrainConfig, train_options, "finetune")
    new = new_events(events, model.n_users, model.n_items)
    if new is None or steps == 0:
        return []
    for column, size in (("user", model.n_users), ("item", model.n_items)):
        codes = new.events[column].to_numpy()
        if (codes >= size).any():
            row = int(np.flatnonzero(codes >= size)[0])
            raise DataError(
                f"{column} {codes[row]} is not known to the model (n_{column}s={size})",
                source=SOURCE,
                column=column,
                row=row,
                fix="fold new users and items in with model.update(events) first",
            )
    hidden = model.query_time == "hidden"  # samples' times are their last earlier event's
    if (model.history_len or hidden) and history is None:
        raise ValueError(
            f"{type(model).__name__} reads histories: pass history= (a TemporalIndex of the "
            "events seen, keyed by user with the feature item)"
        )
    inter = new.interactions
    queries = build_queries(
        new.user,
        new.timestamp,
        history,
        model.history_len,
        model.n_items,
        inter.items,
        offsets=inter.events["tz_offset"].to_numpy() if inter.has("tz_offset") else None,
        query_time=model.query_time,
        cut=int(new.timestamp.min()),
    )
    positives = torch.from_numpy(new.item.copy())
    optimizer = make_optimizer(model, config)
    sampler = negative_sampler(model, config, inter)
    generator = np.random.default_rng(seed)
    model.train()
    losses: list[float] = []
    order = np.zeros(0, dtype=np.int64)
    for _ in range(steps):
        if len(order) == 0:
            order = generator.permutation(len(positives))
        picked, order = order[: config.batch_size], order[config.batch_size :]
        index = torch.from_numpy(picked)
        losses.append(
            gradient_step(
                model,
                optimizer,
                sampler,
                queries[index],
                positives[index],
                config.n_neg,
                generator,
                model.device,
            )
        )
    return losses
