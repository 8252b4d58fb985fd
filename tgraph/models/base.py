"""The model contract: :class:`Recommender` and the :class:`Batch` record (of
:class:`~tgraph.data.queries.Queries`).

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
* ``update(events)`` (``supports_update``): fold new events into the trained model without
  a gradient step (graph edges and norms, counts; new users and items grow the model with
  the cold start its docstring states, see :mod:`tgraph.models.update`); afterwards what is
  derived from events equals a rebuild on all of them. ``finetune(events, steps)``: a few
  gradient steps on recent events (:mod:`tgraph.train.finetune`).

Hyper-parameters are typed: each model declares ``class Config(ModelConfig)`` (a frozen
:class:`~tgraph.config.StrictModel`, so unknown keys, wrong types and out-of-range values are
refused with the key's name) and reads ``self.config.<field>``. ``ModelConfig.loss`` picks the
training loss: ``"ce"`` scores every item, the others a positive against sampled negatives.

What else a model needs:

* ``needs_training`` (class attribute): ``False`` for statistical models (MostPopular,
  Markov), which ``fit(train)`` from counts and are never given to an optimiser;
* ``history_len`` (instance attribute): how many past events each query must carry
  (0 = none; Markov needs 1; sequence models their ``max_len``).
* ``query_time`` (instance attribute): the split's
  :attr:`~tgraph.data.split.Split.query_time`. ``queries.timestamp`` is the request's "now";
  under ``"hidden"`` it is the last history event's time and says nothing about the target.
  A model that reads the target's time declares it with :meth:`require_query_time`, which
  refuses a split whose time is hidden.

History (see :mod:`tgraph.data.queries`) is built from the events strictly before the
query's timestamp and never contains the target. It is left-aligned, oldest first, padded
at the end with the index ``n_items`` (``Queries.pad``), so that sequence models can use
:func:`padded_item_embedding`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import dgl
import numpy as np
import pandas as pd
import torch
from pydantic import ConfigDict, Field
from torch import Tensor, nn

from tgraph.config import StrictModel, validate_model
from tgraph.data.interactions import Interactions
from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.data.temporal_index import TemporalIndex
from tgraph.errors import ConfigError
from tgraph.graph.bipartite import bipartite_graph, user_item_pairs
from tgraph.graph.sampling import NeighborSampling, SampledBlocks, neighbor_scale
from tgraph.models.losses import Loss, loss_from_scores
from tgraph.models.update import (
    NewEvents,
    cold_start_rows,
    grow_embedding,
    new_events,
    pairs_to_new,
)
from tgraph.nn.lightgcn_conv import Norms, degree_norm

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
    #: whether :meth:`update` folds new events in (else it raises NotImplementedError)
    supports_update: ClassVar[bool] = False
    #: whether ``train.sampling`` can train it on sampled blocks (:meth:`use_sampling`)
    supports_sampling: ClassVar[bool] = False
    #: the neighbour sampler of sampled training (None: full-graph propagation)
    sampling: NeighborSampling | None = None
    #: whether sampled training can give its embedding table sparse gradients
    #: (``train.sampling.sparse``, :meth:`sparse_gradients`)
    supports_sparse_gradients: ClassVar[bool] = False
    #: why a model without ``supports_sampling`` needs none (in the refusal's message)
    sampling_note: ClassVar[str] = ""

    def __init__(self, split: Split, config: ModelConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.config = validate_model(self.Config, config, "config")
        self.n_users = split.n_users
        self.n_items = split.n_items
        self.history_len = 0
        self.query_time = split.query_time
        self._graphs: dict[str, dgl.DGLGraph] = {}
        #: graphs with queued changes (:meth:`defer_graph`): name -> completes and returns it
        self._deferred: dict[str, Callable[[], dgl.DGLGraph]] = {}
        self._eval_cache: Any = None

    def use_sampling(self, sampling: NeighborSampling | None, sparse: bool = False) -> None:
        """Train on ``sampling``'s blocks from now on (``None``: the whole graph again): in
        training mode :meth:`calculate_loss` propagates over each batch's sampled blocks, in
        eval mode the whole graph is propagated layer by layer in chunks. ``sparse``: the
        embedding table's gradients are sparse (the rows the batch read; for
        :class:`~tgraph.train.lazy_adam.LazyAdam`). Raises
        :class:`~tgraph.errors.ConfigError` (key ``train.sampling``) for a model that cannot."""
        if sampling is not None and not self.supports_sampling:
            raise ConfigError(
                f"{type(self).__name__} cannot train on sampled neighbourhoods{self.sampling_note}",
                key="train.sampling",
                fix="remove train.sampling, or use lightgcn, ngcf, hetero_gnn or sthrec",
            )
        if sparse and (sampling is None or not self.supports_sparse_gradients):
            raise ConfigError(
                f"{type(self).__name__} has no sparse-gradient embedding table for sampled "
                "training",
                key="train.sampling.sparse",
                fix="set sparse: false, or use lightgcn or ngcf",
            )
        if sampling is not None:
            self.check_sampling(sampling)
        self.sampling = sampling
        self.sparse_gradients(sparse)
        self._eval_cache = None

    def sparse_gradients(self, sparse: bool) -> None:
        """Make the embedding table's gradients sparse (or dense again): models with
        :attr:`supports_sparse_gradients` override it."""

    def check_sampling(self, sampling: NeighborSampling) -> None:
        """Refuse a sampler that does not fit the model (e.g. fanouts for another number of
        layers) with a :class:`~tgraph.errors.ConfigError`."""

    def require_history(self, max_len: int) -> None:
        """Queries must carry the last ``max_len`` (>= 1) events (sets ``history_len``)."""
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        self.history_len = max_len

    def require_query_time(self, key: str) -> None:
        """This model reads the time of the event each query asks about (the target's): a
        :class:`~tgraph.errors.ConfigError` naming the model's ``key`` when the split hides it
        (``query_time: hidden``)."""
        if self.query_time == "hidden":
            raise ConfigError(
                f"{type(self).__name__} reads the target's time ({key}: true), which the "
                "protocol hides (query_time: hidden)",
                key=f"config.{key}",
                fix=f"set {key}: false, or run the time-aware task (dataset.query_time: known)",
            )

    # ------------------------------------------------------------------ graphs and devices
    def register_graph(self, name: str, graph: dgl.DGLGraph) -> None:
        """Keep ``graph`` as ``self.<name>``; :meth:`to` moves it with the parameters."""
        self._graphs[name] = graph
        object.__setattr__(self, name, graph)

    def defer_graph(self, name: str, complete: Callable[[], dgl.DGLGraph]) -> None:
        """``self.<name>`` has queued changes: the next read of it (or :meth:`to`) calls
        ``complete()`` (once, whatever the number of deferrals since the last read) and
        registers the graph it returns. Lets :meth:`update` queue edges cheaply and pay DGL's
        O(E) ``add_edges`` once, at the next propagation (which an update forces anyway by
        dropping the cached one), instead of once per update."""
        self.__dict__.pop(name, None)
        self._deferred[name] = complete

    def __getattr__(self, name: str) -> Any:
        # a deferred graph has left the instance dict (see defer_graph); not thread-safe,
        # like the eval cache: whoever shares a model across threads serialises the calls
        deferred = self.__dict__.get("_deferred", {})
        if name in deferred:
            self.register_graph(name, deferred[name]())
            del deferred[name]
            return self.__dict__[name]
        return super().__getattr__(name)

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for buffer in self.buffers():
            return buffer.device
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
        for name in list(self._deferred):  # complete queued changes before moving
            getattr(self, name)
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

    def calibrate(self, score: Callable[[], float]) -> bool:
        """Set what the model chooses on validation after training (e.g. a blend weight),
        ``score()`` being the validation metric of the model as it is; the trainer calls it
        once the epoch is selected and keeps the result in the best checkpoint. Returns
        whether the model has such settings (default: none)."""
        return False

    def observe(self, interactions: Interactions) -> None:
        """Rebuild what the model derives from its training events from ``interactions``."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot observe new events, so it cannot be refitted "
            "(set train.refit to false)"
        )

    def update(self, events: Interactions | pd.DataFrame) -> None:
        """Fold new events into the trained model without a gradient step.

        ``events``: an :class:`~tgraph.data.interactions.Interactions` or a DataFrame with
        user, item, timestamp (and the optional columns a model needs) in the split's codes;
        codes ``>= n_users`` / ``n_items`` are new users / items, which grow the model with
        its documented cold start (:mod:`tgraph.models.update`). What is derived from events
        (graph edges and norms, counts) afterwards equals what the model derives from all the
        events it has seen (``update`` then query == rebuild then query); cached
        propagations are dropped. Graph models only queue the new edges (:meth:`defer_graph`):
        the next read of the graph adds them, so that cost moves from ``update`` to the first
        query after it, paid once for any number of updates in between. Histories are not
        model state: whoever ranks keeps them.

        Raises :class:`NotImplementedError` (saying why) for a model that cannot, and
        :class:`~tgraph.errors.DataError` naming the column for bad events.
        """
        new = new_events(events, self.n_users, self.n_items)
        if new is None:
            return
        self.fold(new)
        self.n_users, self.n_items = new.n_users, new.n_items
        self._eval_cache = None

    def fold(self, new: NewEvents) -> None:
        """The model's part of :meth:`update` (models with ``supports_update``): fold ``new``
        in; ``self.n_users`` / ``n_items`` are still the old sizes, ``update`` sets the new
        ones afterwards."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot fold in new events without retraining"
        )

    def finetune(
        self,
        events: Interactions | pd.DataFrame,
        steps: int,
        history: TemporalIndex | None = None,
        **train_options: Any,
    ) -> list[float]:
        """``steps`` gradient steps of the training loss on ``events`` (recent events whose
        users and items the model knows: :meth:`update` first); ``history``: the caller's
        index of the events seen, for models with ``history_len > 0``; ``train_options``:
        :class:`~tgraph.train.config.TrainConfig` fields. Returns the losses; see
        :func:`tgraph.train.finetune.finetune`."""
        # the training machinery (tgraph.train) imports this contract, so it is imported here
        from tgraph.train.finetune import finetune

        return finetune(self, events, steps, history, **train_options)

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
    of the training events (:func:`~tgraph.graph.bipartite.bipartite_graph`), with its degree
    norms kept beside it (:attr:`graph_norm`, non-persistent buffers that move with the
    model); :meth:`observe` rebuilds both from other events, :meth:`update` adds the new
    events' edges. Subclasses keep their layer-0 embeddings in ``self.embedding``, users
    first (rows ``0 .. n_users-1``), then items.

    **Update and cold start.** The new distinct (user, item) pairs become edges in both
    directions and the degree norms are recomputed: the graph and norms equal those
    :meth:`observe` builds from all the events. A new user's layer-0 row is the mean of the
    rows of the known items of its new events, a new item's the mean of the rows of its known
    users (the mean of all known user / item rows when it has none).

    **Lazy edges** (:meth:`~Recommender.defer_graph`). :meth:`update` keeps the degrees (kept
    vectors plus a ``bincount`` of the new endpoints: O(nodes)), the norms and the embeddings
    current, but only queues the new pairs: DGL's ``add_edges`` copies every edge array (O(E)
    per call), and with new users every item node id shifts (a relabel of all edges). The next
    read of ``self.graph`` (the next propagation, which an update forces anyway by dropping the
    cache) adds everything queued at once. So ingest cost moves to the first query after it: a
    stream of updates pays the graph copy once per query, not once per update.
    """

    supports_update = True

    def __init__(self, split: Split, config: ModelConfig | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.observe(split.train)

    def observe(self, interactions: Interactions) -> None:
        self._pairs = _pair_keys(*user_item_pairs(interactions).T)
        self._set_graph(bipartite_graph(interactions).to(self.device))

    def _set_graph(self, graph: dgl.DGLGraph, degrees: tuple[Tensor, Tensor] | None = None) -> None:
        """Keep ``graph`` (with nothing queued), its (out, in) ``degrees`` (CPU; read from the
        graph when not given) and its norms; drop the cached propagation. Without ``degrees``
        every sparse format is built now, so that neither the graph nor its reverse (the
        LightGCN backward pass) rebuilds them per call; after an update the formats are built
        lazily, by the next propagation."""
        self._deferred.pop("graph", None)
        if degrees is None:
            graph.create_formats_()
            degrees = (graph.out_degrees().cpu(), graph.in_degrees().cpu())
        self._queued: list[np.ndarray] = []
        self._graph_users = int((~graph.ndata["is_item"]).sum())
        self.register_graph("graph", graph)
        self._set_norms(degrees, graph.device)

    def _set_norms(self, degrees: tuple[Tensor, ...], device: torch.device) -> None:
        self._degrees = degrees
        out_norm, in_norm = (degree_norm(d).to(device) for d in degrees)
        self.register_buffer("out_norm", out_norm, persistent=False)
        self.register_buffer("in_norm", in_norm, persistent=False)
        self._eval_cache = None

    def fold(self, new: NewEvents) -> None:
        """Queue the new pairs' edges, update degrees, norms and embeddings now (see the
        class docstring: the graph itself is completed by the next read of ``self.graph``)."""
        n_users, n_items = self.n_users, self.n_items
        add_users = new.n_users - n_users
        key = np.unique(_pair_keys(new.user, new.item))
        at = np.searchsorted(self._pairs, key)
        fresh = at == len(self._pairs)
        fresh[~fresh] = self._pairs[at[~fresh]] != key[~fresh]
        key, at = key[fresh], at[fresh]
        self._pairs = np.insert(self._pairs, at, key)
        user, item = key >> PAIR_SHIFT, key & ((1 << PAIR_SHIFT) - 1)
        n_nodes = new.n_users + new.n_items
        degrees = tuple(
            torch.cat([d[:n_users], d.new_zeros(add_users), d[n_users:]]) for d in self._degrees
        )
        ends = torch.from_numpy(np.concatenate([user, item + new.n_users]))
        degree = torch.bincount(ends, minlength=n_nodes)  # symmetric: out == in
        degrees = tuple(torch.cat([d, d.new_zeros(n_nodes - len(d))]) + degree for d in degrees)
        if len(key) or n_nodes > n_users + n_items:
            self._queued.append(key)
            self.defer_graph("graph", self._materialise)
        self._set_norms(degrees, self.out_norm.device)
        weight = self.embedding.weight
        user_rows = cold_start_rows(
            weight[n_users:], *pairs_to_new(new.user, new.item, n_users, n_items), add_users
        )
        item_rows = cold_start_rows(
            weight[:n_users],
            *pairs_to_new(new.item, new.user, n_items, n_users),
            new.n_items - n_items,
        )
        grow_embedding(self.embedding, [(n_users, user_rows), (n_users + n_items, item_rows)])

    def _materialise(self) -> dgl.DGLGraph:
        """Add the queued pairs' edges (both directions) to the graph in one ``add_edges``,
        relabelling the item nodes when users were added since the graph was built."""
        graph = self._graphs["graph"]
        device, n_users, old_users = graph.device, self.n_users, self._graph_users
        n_nodes = n_users + self.n_items
        if n_users > old_users:  # item node ids shift: relabel
            src, dst = (
                torch.where(x >= old_users, x + (n_users - old_users), x) for x in graph.edges()
            )
            graph = dgl.graph((src, dst), num_nodes=n_nodes, device=device)
        elif n_nodes > graph.num_nodes():
            graph.add_nodes(n_nodes - graph.num_nodes())
        key = np.concatenate(self._queued)
        user, item = key >> PAIR_SHIFT, (key & ((1 << PAIR_SHIFT) - 1)) + n_users
        if len(key):
            src = torch.from_numpy(np.concatenate([user, item])).to(device)
            dst = torch.from_numpy(np.concatenate([item, user])).to(device)
            graph.add_edges(src, dst)
        graph.ndata["is_item"] = torch.arange(n_nodes, device=device) >= n_users
        self._queued, self._graph_users = [], n_users
        return graph

    @property
    def graph_norm(self) -> Norms:
        """``self.graph``'s :func:`~tgraph.nn.lightgcn_conv.symmetric_norm`, for the layers."""
        return self.out_norm, self.in_norm

    # ------------------------------------------------------------------ sampled training
    supports_sampling = True
    supports_sparse_gradients = True

    def sparse_gradients(self, sparse: bool) -> None:
        """Lookups through ``self.embedding`` (the sampled path's) give sparse gradients."""
        self.embedding.sparse = sparse

    def check_sampling(self, sampling: NeighborSampling) -> None:
        sampling.require_layers(int(getattr(self.config, "n_layers", 0)), "a model")

    def sample_blocks(self, nodes: Tensor) -> SampledBlocks:
        """:attr:`sampling`'s blocks around ``nodes`` (graph ids: users, then items shifted by
        ``n_users``) in ``self.graph``."""
        assert self.sampling is not None  # called on the sampled path only
        return self.sampling.sample(self.graph, nodes)

    def block_norms(self, block: dgl.DGLGraph) -> Norms:
        r"""The graph's norms for ``block``: :math:`d_{out}^{-1/2}` of its sources and
        :math:`d_{in}^{-1/2}` of its destinations (whole-graph degrees), the latter times
        :func:`~tgraph.graph.sampling.neighbor_scale` (1 with full fanout), so that a layer
        over sampled neighbours estimates the full layer without bias."""
        out_norm, in_norm = self.graph_norm
        src, dst = block.srcdata[dgl.NID].long(), block.dstdata[dgl.NID].long()
        in_degrees = self._degrees[1].to(in_norm.device)
        return out_norm[src], in_norm[dst] * neighbor_scale(block, in_degrees)


PAIR_SHIFT = 32


def _pair_keys(user: np.ndarray, item: np.ndarray) -> np.ndarray:
    """One int64 per (user, item) pair, ordered like the pairs (codes below ``2**31``)."""
    return (np.asarray(user, dtype=np.int64) << PAIR_SHIFT) | np.asarray(item, dtype=np.int64)


def _dot(query_emb: Tensor, item_emb: Tensor, items: Tensor) -> Tensor:
    if items.dim() == 1:
        return (query_emb * item_emb[items]).sum(-1)
    return torch.einsum("bd,bkd->bk", query_emb, item_emb[items])
