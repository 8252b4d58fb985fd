"""The model contract: :class:`Recommender`, the :class:`Queries` and :class:`Batch` records.

Every model is a ``torch.nn.Module`` built as ``Model(split, config)``; it may read
``split.train`` (and the ``users`` / ``items`` id tables), never validation or test events.
Scores are "higher is better" and finite.

* ``calculate_loss(batch) -> Tensor``: the scalar training loss of a :class:`Batch`.
* ``predict(queries, items) -> Tensor``: scores of given items, ``items`` of shape ``[B]``
  or ``[B, k]`` (one row per query); the result has the shape of ``items``.
* ``full_sort_predict(queries) -> Tensor [B, n_items]``: scores of every item.
* ``observe(interactions)`` (optional): rebuild what the model derives from the training
  events (e.g. its graph) from ``interactions``, a superset of them. The trainer's refit
  (``train.refit``) calls it with the training plus validation events.

Hyper-parameters are typed: each model declares ``class Config(ModelConfig)`` (a frozen
:class:`~tgraph.config.StrictModel`, so unknown keys, wrong types and out-of-range values are
refused with the key's name) and reads ``self.config.<field>``. ``ModelConfig.loss`` picks the
training loss: ``"ce"`` scores every item, the others a positive against sampled negatives.

What else a model needs:

* ``needs_training`` (class attribute): ``False`` for statistical models (MostPopular,
  Markov), which ``fit(train)`` from counts and are never given to an optimiser;
* ``history_len`` (instance attribute): how many past events each query must carry
  (0 = none; Markov needs 1; sequence models their ``max_len``).

History (see :func:`build_queries`) is built from the events strictly before the query's
timestamp: train events, plus validation events for validation and test queries, plus test
events for test queries. The target itself is never part of it. It is left-aligned,
oldest first, padded at the end with the index ``n_items`` (``Queries.pad``), so that
sequence models can use :func:`padded_item_embedding`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Annotated, Any, ClassVar

import dgl
import numpy as np
import pandas as pd
import torch
from pydantic import ConfigDict, Field
from torch import Tensor, nn

from tgraph.config import StrictModel, validate_model
from tgraph.data.interactions import Interactions
from tgraph.data.split import Split
from tgraph.errors import DataError
from tgraph.graph.bipartite import bipartite_graph
from tgraph.models.losses import Loss, loss_from_scores
from tgraph.nn.lightgcn_conv import symmetric_norm

#: a dropout probability (1 would drop everything)
Dropout = Annotated[float, Field(ge=0, lt=1)]
#: a standard deviation of a normal initialisation (0 would start every embedding equal)
InitStd = Annotated[float, Field(gt=0)]


def check_heads(dim: int, heads: int, name: str) -> None:
    """Multi-head attention splits ``dim`` features into ``heads`` equal parts (a model
    ``Config`` validator; the message names both keys)."""
    if dim % heads:
        raise ValueError(
            f"embedding_dim={dim} is not divisible by {name}={heads} (pick {name} among the "
            f"divisors of embedding_dim)"
        )


class ModelConfig(StrictModel):
    """Hyper-parameters every model accepts; each model's ``Config`` extends it.

    Frozen, so that ``model.config`` stays what the model was built (and recorded) with.
    """

    model_config = ConfigDict(frozen=True)

    #: the training loss (:mod:`tgraph.models.losses`); statistical models train none
    loss: Loss = "bpr"


@dataclass
class Queries:
    """A batch of ranking requests.

    Attributes:
        user: ``[B]`` user codes.
        timestamp: ``[B]`` query times (UTC seconds); history is strictly before them.
        hist_items: ``[B, L]`` item codes, oldest first, padded at the end with ``pad``.
        hist_times: ``[B, L]`` timestamps of the history events (0 at padding).
        hist_lat / hist_lon: ``[B, L]`` coordinates of the history items (items table;
            ``None`` when the items have none; 0 at padding).
        hist_len: ``[B]`` number of real history events (0 .. L).
        query: ``[B]`` row of each query in the evaluator's per-query table, or ``None``.
        pad: padding item index (= ``n_items``).
    """

    user: Tensor
    timestamp: Tensor
    hist_items: Tensor | None = None
    hist_times: Tensor | None = None
    hist_lat: Tensor | None = None
    hist_lon: Tensor | None = None
    hist_len: Tensor | None = None
    query: Tensor | None = None
    pad: int = -1

    def __len__(self) -> int:
        return int(self.user.shape[0])

    @property
    def hist_mask(self) -> Tensor:
        """``[B, L]`` True at real history positions."""
        if self.hist_items is None:
            raise ValueError("these queries carry no history (history_len was 0)")
        return self.hist_items != self.pad

    @property
    def last_item(self) -> Tensor:
        """``[B]`` the most recent history item (``pad`` when the history is empty)."""
        if self.hist_items is None or self.hist_len is None:
            raise ValueError("these queries carry no history (history_len was 0)")
        index = (self.hist_len - 1).clamp(min=0).unsqueeze(1)
        last = self.hist_items.gather(1, index).squeeze(1)
        return torch.where(self.hist_len > 0, last, torch.full_like(last, self.pad))

    def to(self, device: torch.device | str) -> Queries:
        """A copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **moved)

    def __getitem__(self, index: slice | Tensor | np.ndarray) -> Queries:
        """Rows ``index`` of every tensor."""
        picked = {
            f.name: getattr(self, f.name)[index]
            for f in fields(self)
            if isinstance(getattr(self, f.name), Tensor)
        }
        return replace(self, **picked)


@dataclass
class Batch:
    """A training batch: queries, their positive item and (optionally) sampled negatives.

    Attributes:
        queries: the ``B`` queries (users, and history for sequence models).
        pos_item: ``[B]`` the observed item.
        neg_item: ``[B, n_neg]`` sampled negatives, or ``None`` (full softmax).
    """

    queries: Queries
    pos_item: Tensor
    neg_item: Tensor | None = None

    def __len__(self) -> int:
        return int(self.pos_item.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        neg = None if self.neg_item is None else self.neg_item.to(device)
        return Batch(self.queries.to(device), self.pos_item.to(device), neg)


class Recommender(nn.Module):
    """Base class of every model (see the module docstring for the contract).

    ``Model(split, config)`` takes the model's ``Config`` or a mapping validated against it
    (a bad key raises :class:`~tgraph.errors.ConfigError` naming ``config.<key>``);
    ``self.config`` is the typed instance.
    """

    Config: ClassVar[type[ModelConfig]] = ModelConfig
    needs_training: ClassVar[bool] = True

    def __init__(self, split: Split, config: ModelConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = validate_model(self.Config, config, "config")
        self.n_users = split.n_users
        self.n_items = split.n_items
        self.history_len = 0
        self._graphs: dict[str, dgl.DGLGraph] = {}
        self._eval_cache: Any = None

    def require_history(self, max_len: int) -> None:
        """Queries must carry the last ``max_len`` (>= 1) events (sets ``history_len``)."""
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.history_len = max_len

    # ------------------------------------------------------------------ graphs and devices
    def register_graph(self, name: str, graph: dgl.DGLGraph) -> None:
        """Keep ``graph`` as ``self.<name>``; :meth:`to` moves it with the parameters."""
        self._graphs[name] = graph
        object.__setattr__(self, name, graph)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ eval-mode cache
    def eval_cached(self, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept in eval mode until the mode, the weights or the device change.

        For work that does not depend on the queries, such as a full-graph propagation: the
        evaluator then propagates once per ranking instead of once per batch of queries.
        """
        if self.training:
            return compute()
        if self._eval_cache is None:
            self._eval_cache = compute()
        return self._eval_cache

    def train(self, mode: bool = True) -> Recommender:
        self._eval_cache = None
        return super().train(mode)

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self._eval_cache = None
        return super().load_state_dict(*args, **kwargs)

    def to(self, *args: Any, **kwargs: Any) -> Recommender:
        self._eval_cache = None
        super().to(*args, **kwargs)
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        if device is not None:
            for name, graph in self._graphs.items():
                self.register_graph(name, graph.to(device))
        return self

    # ------------------------------------------------------------------ the contract
    def fit(self, train: Interactions) -> Recommender:
        """Estimate statistics from the training events (models with ``needs_training=False``)."""
        return self

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        raise NotImplementedError

    def full_sort_predict(self, queries: Queries) -> Tensor:
        raise NotImplementedError

    def observe(self, interactions: Interactions) -> None:
        """Rebuild what the model derives from its training events from ``interactions``."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot observe new events, so it cannot be refitted "
            "(set train.refit to false)"
        )

    def calculate_loss(self, batch: Batch) -> Tensor:
        """``config.loss`` on :meth:`predict` (or, for ``"ce"``, :meth:`full_sort_predict`)
        scores, plus :meth:`regularization`."""
        items = scored_items(batch, self.config.loss)
        queries = batch.queries
        scores = self.full_sort_predict(queries) if items is None else self.predict(queries, items)
        loss = loss_from_scores(self.config.loss, scores, batch.pos_item)
        return loss + self.regularization(batch)

    def regularization(self, batch: Batch) -> Tensor:
        """Extra loss term (e.g. L2 on the embeddings used by the batch); zero by default."""
        return torch.zeros((), device=batch.pos_item.device)


def scored_items(batch: Batch, loss: Loss) -> Tensor | None:
    """The items ``loss`` scores for ``batch``: ``None`` for ``"ce"`` (every item), else
    ``[B, 1 + n_neg]``, the positive first, then its sampled negatives."""
    if loss == "ce":
        return None
    if batch.neg_item is None:
        raise ValueError(f"loss {loss!r} needs sampled negatives (neg_item)")
    return torch.cat([batch.pos_item.unsqueeze(1), batch.neg_item], dim=1)


class EmbeddingRecommender(Recommender):
    """A model scoring by a dot product ``score(q, i) = <q_q, e_i>``.

    Subclasses implement :meth:`embed` (one call computes everything a batch needs, e.g. one
    LightGCN propagation) and may add :meth:`regularization`.
    """

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        """Return ``(query_emb [B, d], item_emb [n_items, d])``."""
        raise NotImplementedError

    def predict(self, queries: Queries, items: Tensor) -> Tensor:
        query_emb, item_emb = self.embed(queries)
        return _dot(query_emb, item_emb, items)

    def full_sort_predict(self, queries: Queries) -> Tensor:
        query_emb, item_emb = self.embed(queries)
        return query_emb @ item_emb.T


def padded_item_embedding(n_items: int, dim: int, std: float) -> nn.Embedding:
    """``n_items + 1`` rows drawn from ``N(0, std^2)``; row ``n_items`` (``Queries.pad``) is a
    zero padding vector."""
    table = nn.Embedding(n_items + 1, dim, padding_idx=n_items)
    nn.init.normal_(table.weight, std=std)
    with torch.no_grad():
        table.weight[n_items].zero_()
    return table


class UserItemGraphRecommender(EmbeddingRecommender):
    """An embedding model that propagates over ``self.graph``, the symmetric user-item graph
    of the training events (:func:`~tgraph.graph.bipartite.bipartite_graph`, degree norms
    cached on it); :meth:`observe` rebuilds it from other events."""

    def __init__(self, split: Split, config: ModelConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.observe(split.train)

    def observe(self, interactions: Interactions) -> None:
        graph = bipartite_graph(interactions).to(self.device)
        symmetric_norm(graph)  # cached on the graph once: degrees never change
        self.register_graph("graph", graph)
        self._eval_cache = None


def _dot(query_emb: Tensor, item_emb: Tensor, items: Tensor) -> Tensor:
    if items.dim() == 1:
        return (query_emb * item_emb[items]).sum(-1)
    return torch.einsum("bd,bkd->bk", query_emb, item_emb[items])


# ---------------------------------------------------------------------- building queries
def context_events(split: Split, part: str) -> pd.DataFrame:
    """Events a ``part`` ("train", "valid" or "test") query may look back on: train, plus
    valid for valid/test, plus test for test (columns user, item, timestamp)."""
    parts = {"train": [split.train], "valid": [split.train, split.valid]}
    parts["test"] = [split.train, split.valid, split.test]
    if part not in parts:
        raise KeyError(f"part must be 'train', 'valid' or 'test', got {part!r}")
    frames = [p.events[["user", "item", "timestamp"]] for p in parts[part] if p is not None]
    return pd.concat(frames, ignore_index=True)


def build_queries(
    users: np.ndarray,
    timestamps: np.ndarray,
    context: pd.DataFrame,
    history_len: int,
    n_items: int,
    items_table: pd.DataFrame | None = None,
    query_ids: np.ndarray | None = None,
) -> Queries:
    """Queries for ``users`` at ``timestamps`` with the last ``history_len`` context events of
    each user strictly before its timestamp (vectorised; see the module docstring)."""
    users = np.asarray(users, dtype=np.int64)
    timestamps = np.asarray(timestamps, dtype=np.int64)
    queries = Queries(
        user=torch.from_numpy(users.copy()),
        timestamp=torch.from_numpy(timestamps.copy()),
        query=None if query_ids is None else torch.as_tensor(np.asarray(query_ids)),
        pad=n_items,
    )
    if history_len <= 0:
        return queries
    ctx = context.sort_values(["user", "timestamp"], kind="stable")
    ctx_user = ctx["user"].to_numpy(np.int64)
    ctx_time = ctx["timestamp"].to_numpy(np.int64)
    ctx_item = ctx["item"].to_numpy(np.int64)
    # one int64 key ordered like (user, timestamp) -> one searchsorted finds every end
    t_min = int(ctx_time.min()) if len(ctx_time) else 0
    t_max = int(ctx_time.max()) if len(ctx_time) else 0
    span = t_max - t_min + 2
    ctx_key = ctx_user * span + (ctx_time - t_min)
    query_key = users * span + (np.clip(timestamps, t_min, t_max + 1) - t_min)
    start = np.searchsorted(ctx_user, users, side="left")
    end = np.searchsorted(ctx_key, query_key, side="left")
    length = np.minimum(end - start, history_len)
    offsets = np.arange(history_len)
    index = (end - length)[:, None] + offsets[None, :]
    valid = offsets[None, :] < length[:, None]
    index = np.where(valid, index, 0)
    if len(ctx_item) == 0:
        valid[:] = False
        index[:] = 0
        ctx_item, ctx_time = np.zeros(1, np.int64), np.zeros(1, np.int64)
    hist_items = np.where(valid, ctx_item[index], n_items)
    hist_times = np.where(valid, ctx_time[index], 0)
    queries.hist_items = torch.from_numpy(hist_items)
    queries.hist_times = torch.from_numpy(hist_times)
    queries.hist_len = torch.from_numpy(length.astype(np.int64))
    if items_table is not None and {"lat", "lon"} <= set(items_table.columns):
        for name in ("lat", "lon"):
            coord = np.append(items_table[name].to_numpy(np.float64), 0.0)
            values = np.where(valid, coord[hist_items], 0.0)
            setattr(queries, f"hist_{name}", torch.from_numpy(values.astype(np.float32)))
    return queries


def target_queries(split: Split, part: str, history_len: int = 0) -> tuple[Queries, pd.DataFrame]:
    """One :class:`Queries` row per query of ``split.targets(part)`` (sorted by query id) and
    the per-query table (columns query, user, timestamp).

    Raises :class:`DataError` when the targets of one query disagree on user or timestamp.
    """
    targets = split.targets(part)
    grouped = targets.groupby("query", sort=True)
    table = grouped.agg(
        user=("user", "first"),
        timestamp=("timestamp", "first"),
        n_user=("user", "nunique"),
        n_time=("timestamp", "nunique"),
    ).reset_index()
    bad = (table["n_user"] > 1) | (table["n_time"] > 1)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"query {table['query'].iloc[row]!r} has several users or timestamps",
            source=f"{split.protocol}:{part}_targets",
            column="query",
            row=row,
            fix="give every (user, timestamp) ranking request its own query id",
        )
    table = table[["query", "user", "timestamp"]]
    queries = build_queries(
        table["user"].to_numpy(),
        table["timestamp"].to_numpy(),
        context_events(split, part),
        history_len,
        split.n_items,
        split.train.items,
        query_ids=np.arange(len(table)),
    )
    return queries, table
