"""A user's own recent places first, then the Markov chain: a non-learned next-POI baseline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import torch
from pydantic import Field, NonNegativeFloat, PositiveInt
from torch import Tensor

from tgraph.data.queries import Queries
from tgraph.data.split import Split
from tgraph.models.markov import Markov
from tgraph.models.registry import register


@register("revisit")
class Revisit(Markov):
    r"""Recency-weighted revisits of the query's history plus a scaled first-order Markov
    chain:

    .. math::
        \mathrm{score}(q, j) = [j \ne i_n] \sum_{p=n-L+1}^{n} \gamma^{\,n-p}\,[i_p = j]
            + \lambda\,\frac{m(q, j)}{1 + \max_k c(i_n \to k)},

    :math:`i_1, \dots, i_n` the query's history (oldest first, the last ``L = max_len``
    events), :math:`\gamma` = ``decay``, :math:`\lambda` = ``transition_weight`` and
    :math:`m(q, j) = c(i_n \to j) + pop(j) / (1 + \sum_i pop(i))` the score of
    :class:`~tgraph.models.markov.Markov` (training transition counts, then popularity), so
    that the second term lies in :math:`[0, \lambda)`. With ``skip_last`` the last history POI
    gets no revisit weight (a check-in rarely repeats the one before it); a query without
    history is ranked by popularity.

    Next-POI targets are mostly revisits (79.5% of the test targets of the ``sthgcn_nyc``
    preset are among the user's earlier check-ins): this baseline asks how much of a learned
    model's accuracy such a rule already gives. Nothing is trained; ``update`` folds new
    events' transitions and counts as Markov's does, and histories come with the queries.
    """

    class Config(Markov.Config):
        #: history events read (``L``)
        max_len: PositiveInt = 200
        #: weight ``gamma`` per event further back (1: plain counts)
        decay: Annotated[float, Field(gt=0, le=1)] = 0.97
        #: ``lambda``: weight of the Markov term (0: revisits, ties in index order)
        transition_weight: NonNegativeFloat = 3.0
        #: no revisit weight for the last history POI
        skip_last: bool = True

    config: Config

    def __init__(self, split: Split, config: Config | Mapping[str, Any] | None = None) -> None:
        super().__init__(split, config)
        self.require_history(self.config.max_len)

    def revisit_scores(self, queries: Queries) -> Tensor:
        """``[B, n_items]`` the first term: :math:`\\gamma^{n-p}` summed over each POI's
        history positions (0 for padding and, with ``skip_last``, for the last POI)."""
        items, length = queries.hist_items, queries.hist_len
        if items is None or length is None:
            raise ValueError("revisit needs queries with history")
        mask = queries.hist_mask
        back = length.unsqueeze(1) - 1 - torch.arange(items.shape[1], device=items.device)
        weight = self.config.decay ** back.clamp(min=0).to(self.popularity.dtype) * mask
        # the padding item (= n_items) collects the padding's zero weights in an extra column
        scores = weight.new_zeros(len(queries), self.n_items + 1)
        scores = scores.scatter_add(1, torch.where(mask, items, self.n_items), weight)
        if self.config.skip_last:
            scores[torch.arange(len(queries)), queries.last_item.clamp(max=self.n_items)] = 0.0
        return scores[:, : self.n_items]

    def full_sort_predict(self, queries: Queries) -> Tensor:
        counts = self.transition_counts(queries)
        markov = counts + self.popularity.unsqueeze(0)
        scale = self.config.transition_weight / (1.0 + counts.max(1, keepdim=True).values)
        return self.revisit_scores(queries) + scale * markov
