"""The evaluator: ranks by hand, pessimistic ties, masking, batch-size invariance."""

import numpy as np
import pytest
import torch

import tgraph.models as models
from tests.models.helpers import random_split, tiny_split
from tgraph.eval import Evaluator, ground_truth_ranks
from tgraph.train import seed_everything

INF = np.inf


def test_ground_truth_ranks_by_hand():
    scores = torch.tensor(
        [
            [5.0, 3.0, 3.0, 1.0],  # gt item 1 tied with item 2 -> pessimistic rank 3
            [1.0, 2.0, 3.0, 4.0],  # gts 0 and 3 -> ranks 1 (item 3) and 4 (item 0)
            [2.0, 2.0, 2.0, 2.0],  # gts 0 and 1 tied with everything -> ranks 3 and 4
            [0.0, float("-inf"), 1.0, 0.5],  # masked item 1 ranks last; gt 0 -> rank 3
        ]
    )
    gt = torch.tensor([[1, -1], [0, 3], [0, 1], [0, -1]])
    ranks = ground_truth_ranks(scores, gt).numpy()
    np.testing.assert_array_equal(ranks, [[3, INF], [1, 4], [3, 4], [3, INF]])


def test_tiny_split_ranks_and_masking():
    """MostPopular on the tiny split (counts 2,2,2,1,1,0), worked out by hand."""
    split = tiny_split()
    result = Evaluator(split, "test", ["recall@2", "mrr"]).evaluate(models.get("pop")(split))
    # q0 (u0): train+valid items 0,1,2,3 masked; gts 4 (count 1) and 5 (count 0) -> 1, 2
    # q1 (u2): 0,4 masked; gt 1 ties with 2 (count 2) -> 2
    # q2 (u3): history item 2 is the ground truth -> not masked; ties with 0 and 1 -> 3
    np.testing.assert_array_equal(result.ranks, [[1, 2], [2, INF], [3, INF]])
    frame = result.per_query
    assert frame["query"].tolist() == [0, 1, 2]
    assert frame["user"].tolist() == [0, 2, 3]
    assert frame["n_gt"].tolist() == [2, 1, 1]
    assert frame["best_rank"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(frame["recall@2"], [1.0, 1.0, 0.0])
    assert result.metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_validation_masks_train_only_and_no_mask_without_flag():
    split = tiny_split()
    ev = Evaluator(split, "valid", ["mrr"])
    # u0: train items 0,1,2 (gt 3); u1: train items 1,3 (gt 4)
    masks = [ev.mask_items[ev.mask_ptr[i] : ev.mask_ptr[i + 1]].tolist() for i in range(2)]
    assert masks == [[0, 1, 2], [1, 3]]
    unmasked = Evaluator(tiny_split(mask_history=False), "test", ["mrr"])
    assert unmasked.mask_ptr is None
    result = unmasked.evaluate(models.get("pop")(split))
    # q0 without masking: gt 4 behind items 0,1,2 (count 2) and tied with 3 -> rank 5; gt 5 -> 6
    np.testing.assert_array_equal(result.ranks[0], [5, 6])


@pytest.mark.parametrize("name", ["bprmf", "lightgcn", "markov", "pop"])
def test_metrics_do_not_depend_on_batch_size(name):
    split = random_split()
    seed_everything(0)
    model = models.get(name)(split)
    results = [
        Evaluator(split, "test", ["recall@5", "ndcg@5", "mrr"], batch_size=b).evaluate(model)
        for b in (1, 7, 1000)
    ]
    for other in results[1:]:
        np.testing.assert_array_equal(other.ranks, results[0].ranks)
        assert other.metrics == results[0].metrics


def test_constant_scores_rank_last_among_ties():
    """A model with equal scores everywhere cannot look good: every gt ranks behind all ties."""

    class Constant(models.get("pop")):
        def full_sort_predict(self, queries):
            return torch.zeros(len(queries), self.n_items)

    split = random_split()
    result = Evaluator(split, "test", ["recall@20", "mrr"]).evaluate(Constant(split))
    n_masked = np.diff(Evaluator(split, "test").mask_ptr)
    np.testing.assert_array_equal(result.ranks[:, 0], split.n_items - n_masked)


def test_non_finite_scores_raise():
    class Broken(models.get("pop")):
        def full_sort_predict(self, queries):
            return torch.full((len(queries), self.n_items), float("nan"))

    split = tiny_split()
    with pytest.raises(ValueError, match="non-finite"):
        Evaluator(split, "test").evaluate(Broken(split))


def test_evaluate_restores_training_mode():
    split = tiny_split()
    model = models.get("bprmf")(split)
    model.train()
    Evaluator(split, "valid").evaluate(model)
    assert model.training
