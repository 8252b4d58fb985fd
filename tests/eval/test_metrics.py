"""Every metric against hand-computed values."""

import numpy as np
import pytest

from tgraph.eval import metrics as M

INF = np.inf
# query 0: ground truths at ranks 1 and 3 (of 2); query 1: one ground truth at rank 2;
# query 2: one at rank 25 (outside every cut-off used here)
RANKS = np.array([[1.0, 3.0], [2.0, INF], [25.0, INF]])


def log2(x):
    return np.log2(x)


def test_hits_recall_precision_hr():
    assert M.hits(RANKS, 2).tolist() == [1, 1, 0]
    np.testing.assert_allclose(M.recall(RANKS, 2), [0.5, 1.0, 0.0])
    np.testing.assert_allclose(M.recall(RANKS, 3), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(M.precision(RANKS, 2), [0.5, 0.5, 0.0])
    np.testing.assert_allclose(M.precision(RANKS, 5), [0.4, 0.2, 0.0])
    np.testing.assert_allclose(M.hit_ratio(RANKS, 1), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(M.hit_ratio(RANKS, 2), [1.0, 1.0, 0.0])


def test_ndcg_uses_ideal_over_min_gt_k():
    # q0 @3: DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    expected_q0 = 1.5 / (1 + 1 / log2(3))
    # q1 @3: DCG = 1/log2(3); IDCG (one ground truth) = 1
    np.testing.assert_allclose(M.ndcg(RANKS, 3), [expected_q0, 1 / log2(3), 0.0])
    # @1: q0 has two ground truths but the ideal is over min(2, 1) = 1 position
    np.testing.assert_allclose(M.ndcg(RANKS, 1), [1.0, 0.0, 0.0])


def test_ndcg_single_ground_truth_is_inverse_log_rank():
    ranks = np.array([[1.0], [4.0], [11.0]])
    np.testing.assert_allclose(M.ndcg(ranks, 10), [1.0, 1 / log2(5), 0.0])


def test_map():
    # q0 @3: precision@1 = 1, precision@3 = 2/3 -> (1 + 2/3) / min(2, 3)
    # q1 @3: precision@2 = 1/2 -> 0.5 / 1
    np.testing.assert_allclose(M.average_precision(RANKS, 3), [(1 + 2 / 3) / 2, 0.5, 0.0])
    # @2: q0 only rank 1 counts; divide by min(2, 2) = 2
    np.testing.assert_allclose(M.average_precision(RANKS, 2), [0.5, 0.5, 0.0])
    # order of the ground truths in a row does not matter
    reverse = RANKS[:, ::-1]
    np.testing.assert_allclose(M.average_precision(reverse, 3), M.average_precision(RANKS, 3))


def test_mrr_full_ranking_and_acc_equals_recall_with_one_ground_truth():
    np.testing.assert_allclose(M.mrr(RANKS), [1.0, 0.5, 1 / 25])
    single = np.array([[1.0], [3.0], [7.0]])
    for k in (1, 5, 10):
        np.testing.assert_array_equal(M.hit_ratio(single, k), M.recall(single, k))


def test_compute_parses_names():
    out = M.compute(["Recall@2", "ndcg@3", "mrr", "acc@1", "map@3", "precision@2", "hr@2"], RANKS)
    assert set(out) == {"recall@2", "ndcg@3", "mrr", "acc@1", "map@3", "precision@2", "hr@2"}
    np.testing.assert_allclose(out["acc@1"], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("name", ["recall", "ndcg@0", "foo@10", "mrr@10", "ndcg@x"])
def test_unknown_metric_names_raise(name):
    with pytest.raises(KeyError, match="unknown metric"):
        M.parse(name)


def test_bad_ranks_raise():
    with pytest.raises(ValueError, match="1-based"):
        M.recall(np.array([[0.0]]), 5)
    with pytest.raises(ValueError, match="at least one"):
        M.recall(np.array([[INF]]), 5)
