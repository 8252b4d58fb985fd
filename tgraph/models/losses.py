"""Ranking losses on score tensors; a model's ``config.loss`` names one of :data:`LOSSES`.

Notation: ``s^+`` the score of the observed item, ``s^-_j`` the scores of ``n`` sampled
negatives, ``s_i`` the scores of all items.

* BPR: :math:`L = -\\frac{1}{Bn} \\sum_b \\sum_j \\log \\sigma(s^+_b - s^-_{bj})`.
* Full cross-entropy (softmax over all items):
  :math:`L = -\\frac{1}{B} \\sum_b \\log \\frac{\\exp s_{b,y_b}}{\\sum_i \\exp s_{b,i}}`.
* Sampled softmax: the same over the positive and its negatives,
  :math:`-\\log \\frac{\\exp s^+}{\\exp s^+ + \\sum_j \\exp s^-_j}`; with ``log_q`` (log sampling
  probability of each column) the logits are corrected to :math:`s - \\log q` (Bengio & Senecal),
  which removes the bias of non-uniform sampling.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

#: "ce" scores every item; the others score the positive against sampled negatives
Loss = Literal["bpr", "ce", "sampled_softmax"]
LOSSES: tuple[str, ...] = get_args(Loss)


def bpr_loss(pos: Tensor, neg: Tensor) -> Tensor:
    """``pos [B]``, ``neg [B, n]`` -> mean over the ``B * n`` pairs."""
    return -F.logsigmoid(pos.unsqueeze(1) - neg).mean()


def full_ce_loss(scores: Tensor, target: Tensor) -> Tensor:
    """``scores [B, n_items]``, ``target [B]`` item codes."""
    return F.cross_entropy(scores, target)


def sampled_softmax_loss(scores: Tensor, log_q: Tensor | None = None) -> Tensor:
    """``scores [B, 1 + n]`` with the positive in column 0; ``log_q`` broadcastable to it."""
    if log_q is not None:
        scores = scores - log_q
    target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores, target)


def loss_from_scores(name: Loss, scores: Tensor, pos_item: Tensor) -> Tensor:
    """Dispatch by name: ``"ce"`` takes ``[B, n_items]`` scores and the positive items;
    ``"bpr"`` / ``"sampled_softmax"`` take ``[B, 1 + n]`` scores, positive first."""
    if name == "bpr":
        return bpr_loss(scores[:, 0], scores[:, 1:])
    if name == "ce":
        return full_ce_loss(scores, pos_item)
    if name == "sampled_softmax":
        return sampled_softmax_loss(scores)
    raise KeyError(f"unknown loss {name!r}; choose one of {LOSSES}")
