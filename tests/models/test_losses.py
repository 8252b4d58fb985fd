"""The losses, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tgraph.models.losses import bpr_loss, full_ce_loss, sampled_softmax_loss


def test_losses_by_hand():
    pos, neg = torch.tensor([2.0, 0.0]), torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    expected = -np.mean(np.log(1 / (1 + np.exp(-np.array([1.0, 0.0, 0.0, 1.0])))))
    assert bpr_loss(pos, neg).item() == pytest.approx(expected)
    scores = torch.tensor([[1.0, 0.0, 0.0]])
    assert full_ce_loss(scores, torch.tensor([0])).item() == pytest.approx(
        -math.log(math.e / (math.e + 2))
    )
    full = full_ce_loss(scores, torch.tensor([0])).item()
    assert sampled_softmax_loss(scores).item() == pytest.approx(full)
    log_q = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
    corrected = -math.log(2 * math.e / (2 * math.e + 8))
    assert sampled_softmax_loss(scores, log_q).item() == pytest.approx(corrected)
