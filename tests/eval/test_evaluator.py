"""The evaluator: ranks by hand, pessimistic ties, masking, batch-size invariance."""

import numpy as np
import pytest
import torch

import tgraph.models as models
from tests.models.helpers import random_split, tiny_split
from tgraph.eval import Evaluator, ground_truth_ranks, native
from tgraph.eval.evaluator import count_at_least
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


@pytest.fixture(params=["native", "torch"])
def counting_path(request, monkeypatch):
    """Runs a test with the native counting kernel and with the pure-torch path."""
    if request.param == "torch":
        monkeypatch.setenv("TGRAPH_NATIVE", "0")
    elif native.kernel() is None:
        pytest.skip("no C compiler for the native kernel")
    return request.param


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_scores_raise(counting_path, bad):
    """One non-finite score in the last query's last item is enough, in either path."""

    class Broken(models.get("pop")):
        def full_sort_predict(self, queries):
            scores = torch.zeros(len(queries), self.n_items)
            scores[-1, -1] = bad
            return scores

    split = tiny_split()
    with pytest.raises(ValueError, match="non-finite"):
        Evaluator(split, "test").evaluate(Broken(split))


def test_evaluate_restores_training_mode():
    split = tiny_split()
    model = models.get("bprmf")(split)
    model.train()
    Evaluator(split, "valid").evaluate(model)
    assert model.training


def reference_ranks(scores: np.ndarray, gt: list[list[int]], masked: list[set[int]]) -> np.ndarray:
    """Straightforward ranks, one query and one ground truth at a time: the ``i``-th best
    ground truth (ties among ground truths in any order) has rank ``1 + i + #{j not in GT,
    not masked: s_j >= its score}``; padded with ``inf`` to the widest query."""
    width = max(len(g) for g in gt)
    out = np.full((len(gt), width), INF)
    for b, (row, items) in enumerate(zip(scores, gt, strict=True)):
        others = np.ones(len(row), dtype=bool)
        others[list(items) + sorted(masked[b])] = False
        for i, score in enumerate(sorted((row[g] for g in items), reverse=True)):
            out[b, i] = 1 + i + np.count_nonzero(row[others] >= score)
    return out


@pytest.mark.parametrize("in_order", [False, True])
@pytest.mark.parametrize("block", [1, 3, 64])
def test_ground_truth_ranks_match_reference_with_ties_and_masks(
    monkeypatch, counting_path, block, in_order
):
    """Seeded random scores on 5 levels (many ties), 1-9 targets per query, up to 12 masked
    items: the counting path (native kernel or torch) equals the reference, with masks given
    as pairs or as ``-inf``, whatever the torch path's comparison block size, with the queries
    in any order or (as the evaluator gives them) by decreasing number of targets."""
    monkeypatch.setattr("tgraph.eval.evaluator._BLOCK_ROWS", block)
    rng = np.random.default_rng(0)
    n_rows, n_items = 40, 30
    scores = rng.integers(0, 5, size=(n_rows, n_items)).astype(np.float32)
    gt, masked = [], []
    for _ in range(n_rows):
        chosen = rng.permutation(n_items)
        n_gt, n_mask = int(rng.integers(1, 10)), int(rng.integers(0, 13))
        gt.append(chosen[:n_gt].tolist())
        masked.append(set(chosen[n_gt : n_gt + n_mask].tolist()))
    if in_order:
        order = np.argsort([-len(g) for g in gt], kind="stable")
        scores, gt, masked = scores[order], [gt[i] for i in order], [masked[i] for i in order]
    expected = reference_ranks(scores, gt, masked)
    padded = torch.full((n_rows, expected.shape[1]), -1, dtype=torch.long)
    for b, items in enumerate(gt):
        padded[b, : len(items)] = torch.tensor(items)
    pairs = [(b, j) for b in range(n_rows) for j in sorted(masked[b])]
    row, item = (torch.tensor(x) for x in zip(*pairs, strict=True))
    ranks = ground_truth_ranks(torch.from_numpy(scores), padded, (row, item)).numpy()
    np.testing.assert_array_equal(ranks, expected)
    written = torch.from_numpy(scores).index_put((row, item), torch.tensor(-INF))
    np.testing.assert_array_equal(ground_truth_ranks(written, padded).numpy(), expected)


@pytest.mark.slow
def test_evaluator_matches_reference_on_gowalla_sample(root):
    """An untrained LightGCN on the Gowalla LightGCN split: the evaluator's ranks of 300
    sampled test users (batches of 128) equal the reference's, computed from the model's
    scores, the users' train items and their test items."""
    from tgraph.data import protocols

    split = protocols.lightgcn(root)
    seed_everything(0)
    model = models.get("lightgcn")(split, {"embedding_dim": 64, "n_layers": 3}).eval()
    evaluator = Evaluator(split, "test", ["recall@20", "ndcg@20"], batch_size=128)
    rows = np.sort(np.random.default_rng(0).choice(len(evaluator.table), 300, replace=False))
    queries = evaluator.queries(model.history_len)[torch.from_numpy(rows)]
    chunks = [
        evaluator.rank(model, queries[lo : lo + 128], rows[lo : lo + 128]) for lo in (0, 128, 256)
    ]
    width = max(c.shape[1] for c in chunks)
    ranks = np.concatenate(
        [np.pad(c, ((0, 0), (0, width - c.shape[1])), constant_values=INF) for c in chunks]
    )
    users = evaluator.table["user"].to_numpy()[rows]
    history = split.history_pairs("test").groupby("user")["item"].apply(set)
    targets = split.targets("test").groupby("user")["item"].apply(list)
    gt = [sorted(set(targets[u])) for u in users]
    masked = [history.get(u, set()) - set(g) for u, g in zip(users, gt, strict=True)]
    with torch.no_grad():
        scores = model.full_sort_predict(queries).numpy()
    expected = reference_ranks(scores, gt, masked)
    np.testing.assert_array_equal(ranks[:, : expected.shape[1]], expected)
    assert np.isinf(ranks[:, expected.shape[1] :]).all()


def test_native_kernel_builds_where_a_compiler_is(monkeypatch, tmp_path):
    """With a C compiler the kernel is built into ``$TGRAPH_CACHE/native`` and loaded; a
    second first use (another process) loads the cached library without compiling."""
    compiler = native._compiler()
    if compiler is None:
        pytest.skip("no C compiler")
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("TGRAPH_CACHE", str(tmp_path))
    assert native.kernel() is not None
    built = list((tmp_path / "native").glob("count_at_least-*.so"))
    assert len(built) == 1
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setattr(native, "_compiler", lambda: compiler)

    def no_compiling(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(native.subprocess, "run", no_compiling)
    assert native.kernel() is not None


def test_without_the_kernel_the_torch_path_ranks(monkeypatch, tmp_path, caplog):
    """A failing compiler or ``TGRAPH_NATIVE=0``: no kernel, a warning, the same ranks."""
    split = tiny_split()
    expected = Evaluator(split, "test", ["mrr"]).evaluate(models.get("pop")(split)).ranks
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("TGRAPH_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")
    monkeypatch.setattr(native.shutil, "which", lambda name: "/bin/false")
    with caplog.at_level("WARNING", logger="tgraph.eval.native"):
        assert native.kernel() is None
    assert "torch path" in caplog.text
    assert not native.usable(torch.zeros(2, 3))
    result = Evaluator(split, "test", ["mrr"]).evaluate(models.get("pop")(split))
    np.testing.assert_array_equal(result.ranks, expected)
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("TGRAPH_NATIVE", "0")
    assert native.kernel() is None


@pytest.mark.parametrize("n_rows,n_items", [(7, 50), (64, 20_000)])
def test_native_counts_equal_torch_counts(monkeypatch, n_rows, n_items):
    """Integer scores (ties everywhere), 0-13 thresholds per row (across the kernel's groups
    of four), rows taken from a wider tensor (row stride != width); the larger case is split
    over 3 threads. Counts equal the torch path's; finiteness is reported per block."""
    if native.kernel() is None:
        pytest.skip("no C compiler for the native kernel")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    rng = np.random.default_rng(1)
    wide = torch.from_numpy(rng.integers(0, 9, size=(n_rows, n_items + 5)).astype(np.float32))
    scores = wide[:, 2 : 2 + n_items]
    n_thr = torch.from_numpy(rng.integers(0, 14, size=n_rows))
    n_thr[0] = 13
    picked = torch.from_numpy(rng.integers(0, n_items, size=(n_rows, 13)))
    thresholds = scores.gather(1, picked).sort(1).values
    order = torch.argsort(n_thr, descending=True, stable=True)
    counts, finite = native.count_at_least(scores, thresholds, n_thr)
    assert finite
    expected = count_at_least(scores[order], thresholds[order], n_thr[order]).to(torch.int64)
    got = counts[order]
    for b in range(n_rows):
        k = int(n_thr[order][b])
        assert torch.equal(got[b, :k], expected[b, :k])
        assert not got[b, k:].any()
    scores[-1, n_items // 2] = float("nan")
    assert not native.count_at_least(scores, thresholds, n_thr)[1]


def test_thread_pool_is_made_again_after_a_fork(monkeypatch):
    """A forked child (another pid) gets a new pool instead of the parent's threadless one."""
    monkeypatch.setattr(native, "_state", {})
    first = native._pool(2)
    assert native._pool(2) is first
    monkeypatch.setattr(native.os, "getpid", lambda: -1)
    second = native._pool(2)
    assert second is not first
    assert second.submit(lambda: 7).result(timeout=10) == 7
    first.shutdown()
    second.shutdown()
