"""LightGCN (He et al., SIGIR 2020) on the user-item graph of the training events."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from tgraph.data.split import Split
from tgraph.graph.bipartite import bipartite_graph
from tgraph.models.base import Batch, EmbeddingRecommender, Queries
from tgraph.models.bprmf import l2_rows
from tgraph.models.registry import register
from tgraph.nn.lightgcn_conv import LightGCNConv, lightgcn_propagate


@register("lightgcn")
class LightGCN(EmbeddingRecommender):
    r"""``score(u, i) = <e_u, e_i>`` with :math:`E = \frac{1}{K+1}\sum_{k=0}^K \tilde A^k E^{(0)}`,
    :math:`\tilde A = D^{-1/2} A D^{-1/2}` (see :class:`~tgraph.nn.LightGCNConv`).

    Config: ``embedding_dim`` (64), ``n_layers`` (3), ``reg_weight`` (1e-4, L2 on the
    layer-0 embeddings of the batch, divided by ``2 B`` as in the official code),
    ``init_std`` (0.1). Training propagates once per batch; in eval mode the propagated
    embeddings are cached until the next call to ``train()`` / ``eval()``.
    """

    input_type = "pairwise"
    defaults = {"embedding_dim": 64, "n_layers": 3, "reg_weight": 1e-4, "init_std": 0.1}

    def __init__(self, split: Split, config: dict[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.register_graph("graph", bipartite_graph(split.train))
        self.embedding = nn.Embedding(self.n_users + self.n_items, self.config["embedding_dim"])
        nn.init.normal_(self.embedding.weight, std=self.config["init_std"])
        self.conv = LightGCNConv()
        self._cache: Tensor | None = None

    def train(self, mode: bool = True) -> LightGCN:
        self._cache = None
        return super().train(mode)

    def propagate(self) -> Tensor:
        """Final embeddings of all ``n_users + n_items`` nodes."""
        if not self.training and self._cache is not None:
            return self._cache
        layers = self.config["n_layers"]
        out = lightgcn_propagate(self.graph, self.embedding.weight, layers, self.conv)
        if not self.training:
            self._cache = out
        return out

    def embed(self, queries: Queries) -> tuple[Tensor, Tensor]:
        out = self.propagate()
        return out[queries.user], out[self.n_users :]

    def regularization(self, batch: Batch) -> Tensor:
        ego = self.embedding.weight
        neg = None if batch.neg_item is None else ego[batch.neg_item + self.n_users]
        return l2_rows(
            self.config["reg_weight"],
            ego[batch.queries.user],
            ego[batch.pos_item + self.n_users],
            neg,
        )
