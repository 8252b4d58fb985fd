"""Neighbour-sampled training (``train.sampling``): full fanout equals full-graph training,
layer-wise chunked inference equals full propagation, blocks respect fanouts, temporal blocks
never hold a future edge, config errors, and a quality smoke on real data."""

from __future__ import annotations

import copy
from pathlib import Path

import dgl
import numpy as np
import pytest
import torch
import yaml

import tgraph.models as models
from tests.models.helpers import random_split
from tgraph.errors import ConfigError
from tgraph.graph.sampling import NeighborSampling, chunk_blocks, neighbor_scale, temporal_blocks
from tgraph.graph.temporal import RecentNeighborSampler, TimedNeighbors
from tgraph.train import Trainer, seed_everything
from tgraph.train.config import TrainConfig

LIGHTGCN = ("lightgcn", {"n_layers": 2, "embedding_dim": 8})
NGCF = ("ngcf", {"n_layers": 2, "embedding_dim": 8, "hidden_dim": 8, "mess_dropout": 0.0})
_HETERO = {"n_layers": 2, "embedding_dim": 8, "n_regions": 4}
# the heterograph's sampled path costs about 1 s per step here (many relations): slow
HETERO = pytest.param("hetero_gnn", {**_HETERO, "norm": "both"}, marks=pytest.mark.slow)
HETERO_RIGHT = pytest.param("hetero_gnn", _HETERO, marks=pytest.mark.slow)


def _fit(split, name, config, sampling, epochs=2, **options):
    seed_everything(0)
    model = models.get(name)(split, config)
    settings = {"epochs": epochs, "batch_size": 64, "progress": False, "sampling": sampling}
    trainer = Trainer(model, split, {**settings, **options}, seed=0)
    trainer.fit()
    return model, trainer


@pytest.mark.parametrize(("name", "config"), [LIGHTGCN, NGCF, HETERO, HETERO_RIGHT])
@pytest.mark.parametrize("loss", ["bpr", "ce"])
def test_sampled_epochs_with_full_fanout_equal_full_graph_training(name, config, loss):
    split = random_split(60, 30, 10)
    config = {**config, "loss": loss}
    full, full_trainer = _fit(split, name, config, None)
    sampled, sampled_trainer = _fit(split, name, config, {"fanouts": [-1, -1]})
    losses = [r.loss for r in full_trainer.history]
    assert [r.loss for r in sampled_trainer.history] == pytest.approx(losses, rel=1e-6)
    for key, value in full.state_dict().items():
        torch.testing.assert_close(sampled.state_dict()[key], value, rtol=1e-5, atol=1e-6)
    # validation ran layer-wise in chunks: the same metrics
    for a, b in zip(full_trainer.history, sampled_trainer.history):
        assert a.valid == pytest.approx(b.valid, abs=1e-9)


@pytest.mark.parametrize(("name", "config"), [LIGHTGCN, NGCF, HETERO])
@pytest.mark.parametrize("chunk", [2, 7, 100_000])
def test_layerwise_chunked_inference_equals_full_propagation(name, config, chunk):
    split = random_split(40, 25, 8)
    seed_everything(1)
    model = models.get(name)(split, config).eval()
    with torch.no_grad():
        full = model.propagate()
    if name != "hetero_gnn":
        torch.testing.assert_close(model.layerwise_propagate(chunk), full, rtol=1e-5, atol=1e-6)
    # with sampling attached, eval-mode propagation is the layer-wise one
    model.use_sampling(NeighborSampling([2, 2], inference_chunk=chunk))
    torch.testing.assert_close(model.propagate(), full, rtol=1e-5, atol=1e-6)


def test_chunk_blocks_cover_every_edge_once():
    graph = dgl.graph((torch.tensor([0, 1, 2, 3, 3, 4]), torch.tensor([1, 0, 0, 2, 4, 1])))
    seen = []
    for lo, hi, block in chunk_blocks(graph, 2):
        assert block.num_src_nodes() == graph.num_nodes() and block.num_dst_nodes() == hi - lo
        src, dst = block.edges()
        seen += [(int(s), int(d) + lo) for s, d in zip(src, dst)]
    assert sorted(seen) == sorted(zip(*(x.tolist() for x in graph.edges())))


def test_sampled_blocks_respect_fanouts_and_put_seeds_first():
    split = random_split(60, 30, 10)
    model = models.get("lightgcn")(split, LIGHTGCN[1])
    graph = model.graph
    sampling = NeighborSampling([3, 2])
    seed_everything(0)
    nodes = torch.tensor([5, 5, 61, 70, 3, 61])  # repeats: each seed once
    sample = sampling.sample(graph, nodes)
    assert torch.equal(sample.seeds[sample.inverse], nodes)
    assert len(sample.blocks) == 2
    assert torch.equal(sample.blocks[-1].dstdata[dgl.NID], sample.seeds)
    for block, fanout in zip(sample.blocks, [3, 2]):
        assert int(block.in_degrees().max()) <= fanout
        dst_ids = block.dstdata[dgl.NID]
        assert torch.equal(block.srcdata[dgl.NID][: len(dst_ids)], dst_ids)  # dst prefix
        src, dst = block.edges()
        parent_src, parent_dst = block.srcdata[dgl.NID][src], dst_ids[dst]
        assert graph.has_edges_between(parent_src, parent_dst).all()
    assert torch.equal(sample.blocks[0].srcdata[dgl.NID], sample.input_nodes)


def test_rescaled_sampled_sum_is_unbiased():
    """E[scale * sampled neighbour sum] = the full sum (uniform sampling without replacement)."""
    src = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 2, 3])
    dst = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    graph = dgl.graph((src, dst), num_nodes=9)
    feat = torch.arange(9, dtype=torch.float32).unsqueeze(1)
    full = dgl.ops.copy_u_sum(graph, feat)[:2]
    sampling = NeighborSampling([3])
    dgl.seed(0)
    total = torch.zeros(2, 1)
    draws = 600
    for _ in range(draws):
        sample = sampling.sample(graph, torch.tensor([0, 1]))
        (block,) = sample.blocks
        part = dgl.ops.copy_u_sum(block, feat[block.srcdata[dgl.NID]])
        total += part * neighbor_scale(block, graph.in_degrees())
    torch.testing.assert_close(total / draws, full, rtol=0.04, atol=0)  # about 4 sigma
    # node 1 has 2 < 3 neighbours: always exact
    assert float(neighbor_scale(block, graph.in_degrees())[1]) == 1.0


@pytest.mark.slow
@pytest.mark.parametrize(("name", "config"), [LIGHTGCN, NGCF])
def test_sampled_training_learns(name, config):
    split = random_split(60, 30, 10)
    _, trainer = _fit(split, name, config, {"fanouts": [4, 4]}, epochs=15, lr=0.01)
    _, unsampled = _fit(split, name, config, None, epochs=1, lr=0.01)
    recall = trainer.history[-1].valid["recall@20"]
    # planted groups of 10 items: a model that learned puts the group first
    assert recall > 0.9, recall
    assert trainer.history[-1].loss < unsampled.history[0].loss


def test_sampling_config_errors():
    split = random_split(30, 20, 6)
    seed_everything(0)
    model = models.get("lightgcn")(split, LIGHTGCN[1])
    with pytest.raises(ConfigError, match="train.sampling.fanouts"):
        Trainer(model, split, {"sampling": {"fanouts": [5]}, "progress": False})
    with pytest.raises(ConfigError, match="cannot train on sampled"):
        Trainer(models.get("bprmf")(split), split, {"sampling": {"fanouts": [5]}})
    tgat = models.get("tgat")(split, {"max_len": 3, "embedding_dim": 8, "time_dim": 8})
    with pytest.raises(ConfigError, match="already trains on sampled"):
        Trainer(tgat, split, {"sampling": {"fanouts": [5]}})
    for bad in ([0, 5], [-2], []):
        with pytest.raises(ValueError, match="fanout"):
            TrainConfig.model_validate({"sampling": {"fanouts": bad}})


def test_fingerprints_without_sampling_are_those_of_before(tmp_path):
    from tgraph.config import load_config
    from tgraph.data import protocols
    from tgraph.experiment import plan

    config = {
        "experiment": "s",
        "output_dir": str(tmp_path / "runs"),
        "seeds": [0],
        "dataset": {
            "name": "synthetic",
            "options": {"n_users": 50, "n_pois": 60, "n_events": 1500, "days": 20, "seed": 3},
            "protocol": "next_poi_chronological",
        },
        "models": [{"name": "lightgcn"}],
    }
    path = Path(tmp_path / "c.yaml")
    path.write_text(yaml.safe_dump(config))
    (spec,) = plan(load_config([str(path)], []))
    split = protocols.prepare_split(spec.experiment.dataset, None)
    assert "sampling" not in spec.fingerprint(split).values["train"]
    (spec,) = plan(load_config([str(path)], ["train.sampling={fanouts: [10, 10, 10]}"]))
    assert spec.fingerprint(split).values["train"]["sampling"]["fanouts"] == [10, 10, 10]


# ------------------------------------------------------------------ temporal blocks
def _timed_graph(seed=0, n=30, e=400):
    """A symmetric homogeneous graph with random edge times (both directions share one)."""
    rng = np.random.default_rng(seed)
    u, v = rng.integers(0, n, e), rng.integers(0, n, e)
    t = rng.integers(0, 50, e)  # many ties
    graph = dgl.graph((torch.from_numpy(np.r_[u, v]), torch.from_numpy(np.r_[v, u])), num_nodes=n)
    graph.edata["timestamp"] = torch.from_numpy(np.r_[t, t])
    return graph


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("fanouts", [[3, 2], [-1, -1], [5, 1, 2]])
def test_temporal_blocks_never_contain_a_future_edge(fanouts, keep):
    graph = _timed_graph()
    sampler = RecentNeighborSampler(graph, "_E")
    seeds = torch.arange(30).repeat(2)
    times = torch.from_numpy(np.random.default_rng(1).integers(0, 60, 60))
    out = temporal_blocks(sampler, seeds, times, fanouts, keep_destinations=keep)
    assert len(out.blocks) == len(fanouts)
    stamps = graph.edata["timestamp"]
    src_all, dst_all = graph.edges(order="eid")
    n_edges = 0
    for level, (block, fanout) in enumerate(zip(out.blocks, fanouts)):
        src, dst = block.edges()
        eid = block.edata[dgl.EID]
        dst_time = block.dstdata["t"][dst]
        # every edge strictly before the time of the node it feeds, and really that edge
        assert (block.edata["timestamp"] < dst_time).all()
        assert torch.equal(stamps[eid], block.edata["timestamp"])
        assert torch.equal(src_all[eid], block.srcdata[dgl.NID][src])
        assert torch.equal(dst_all[eid], block.dstdata[dgl.NID][dst])
        assert torch.equal(block.srcdata["t"], block.edata["timestamp"])
        assert (block.edata["dt"] > 0).all()
        if fanout != -1:
            assert int(block.in_degrees().max()) <= fanout
        # chaining: the next block's sources (after its destinations when they are kept) are
        # this block's destinations, looked at at the times of the edges that reached them
        if level + 1 < len(out.blocks):
            nxt = out.blocks[level + 1]
            rows, at = nxt.srcdata[dgl.NID], nxt.srcdata["t"]
            if keep:
                rows = torch.cat([nxt.dstdata[dgl.NID], rows])
                at = torch.cat([nxt.dstdata["t"], at])
            assert torch.equal(block.dstdata[dgl.NID], rows)
            assert torch.equal(block.dstdata["t"], at)
        n_edges += block.num_edges()
    # layer 0's rows: the first block's sources, after its destinations when they are kept
    first = out.blocks[0]
    rows, at = first.srcdata[dgl.NID], first.srcdata["t"]
    if keep:  # the seeds are the first rows of every layer
        assert torch.equal(first.dstdata[dgl.NID][: len(seeds)], seeds)
        rows, at = torch.cat([first.dstdata[dgl.NID], rows]), torch.cat([first.dstdata["t"], at])
    assert torch.equal(out.input_nodes, rows) and torch.equal(out.input_times, at)
    # every time looked at is at most the seed's time
    assert torch.equal(out.blocks[-1].dstdata["t"], times)
    assert (out.blocks[0].dstdata["t"].max() <= times.max()) and n_edges > 0
    # full fanout: each destination gets all of its earlier edges
    if fanouts[-1] == -1:
        last = out.blocks[-1]
        for q in range(0, 60, 7):
            expected = int(((dst_all == seeds[q]) & (stamps < times[q])).sum())
            assert int(last.in_degrees()[q]) == expected


def test_temporal_blocks_take_the_seeds_given_events():
    """``seed_events`` replace the hook for the seeds' rows (their most recent ``k``), at the
    top layer only, or at every layer when the destinations are kept; other rows ask the
    hook."""
    graph = _timed_graph()
    sampler = RecentNeighborSampler(graph, "_E")
    seeds, times = torch.tensor([0, 1]), torch.tensor([40, 45])
    # seed 0: events with 7, 8, 9 (oldest first); seed 1: one with 3
    given = TimedNeighbors(
        query=torch.tensor([0, 0, 0, 1]),
        src=torch.tensor([7, 8, 9, 3]),
        timestamp=torch.tensor([10, 20, 30, 5]),
        eid=None,
    )
    for keep in (False, True):
        out = temporal_blocks(
            sampler, seeds, times, [3, 2], seed_events=given, keep_destinations=keep
        )
        top, low = out.blocks[1], out.blocks[0]
        assert top.srcdata[dgl.NID].tolist() == [8, 9, 3]  # the 2 most recent of seed 0
        assert top.srcdata["t"].tolist() == [20, 30, 5]
        # edge ids only where every edge has one (the given events have none)
        assert dgl.EID not in top.edata and (dgl.EID in low.edata) == (not keep)
        src, dst = low.edges()
        if keep:  # the seeds' rows take 3 of their given events again
            assert low.srcdata[dgl.NID][src[dst < 2]].tolist() == [7, 8, 9, 3]
        n_seed_rows = 2 if keep else 0
        rest = low.dstdata[dgl.NID][n_seed_rows:], low.dstdata["t"][n_seed_rows:]
        expected = sampler.sample(*rest, 3)
        assert low.srcdata[dgl.NID][src[dst >= n_seed_rows]].tolist() == expected.src.tolist()
    with pytest.raises(ValueError, match="fanouts"):
        temporal_blocks(sampler, seeds, times, [0, 2])
    bipartite = dgl.heterograph({("a", "r", "b"): ([0], [0])})
    bipartite.edata["timestamp"] = torch.tensor([1])
    timed = RecentNeighborSampler(bipartite, "r")
    with pytest.raises(ValueError, match="one node type"):
        temporal_blocks(timed, seeds, times, [2])


def test_tgat_neighbourhood_block_has_no_future_edge():
    split = random_split(30, 30, 8)
    seed_everything(0)
    model = models.get("tgat")(split, {"max_len": 5, "embedding_dim": 8, "time_dim": 8})
    trainer = Trainer(model, split, {"epochs": 1, "progress": False})
    queries, _ = trainer._samples
    block, _, edge_time = model.neighbourhood(queries)
    _, dst = block.edges()
    assert (edge_time < queries.timestamp[dst]).all() and block.num_edges() > 0


# ------------------------------------------------------------------ real data (slow)
@pytest.mark.slow
def test_sampled_lightgcn_on_nyc_is_close_to_full_graph(root):
    """Two epochs of LightGCN on Foursquare NYC (GETNext protocol), fanouts [10, 10] against
    the whole graph: sampled Acc@10 within 0.02 of full-graph."""
    from tgraph.data.protocols import getnext_nyc

    split = getnext_nyc(root)
    config = {"n_layers": 2, "embedding_dim": 32}
    options = {"batch_size": 1024, "lr": 5e-3, "metrics": ["acc@10"], "valid_metric": "acc@10"}
    accs = []
    for sampling in (None, {"fanouts": [10, 10]}):
        _, trainer = _fit(split, "lightgcn", config, sampling, epochs=2, **options)
        accs.append(trainer.evaluate("test", ["acc@10"]).metrics["acc@10"])
    full, sampled = accs
    assert full > 0.05 and abs(sampled - full) < 0.02, accs


def test_state_dict_unchanged_by_sampling_layer():
    """LightGCN's parameter-free conv adds no state: checkpoints of before still load."""
    split = random_split(30, 30, 5)
    model = models.get("lightgcn")(split, LIGHTGCN[1])
    assert list(model.state_dict()) == ["embedding.weight"]
    copy.deepcopy(model)


@pytest.mark.slow
def test_refit_keeps_sampling():
    """The refit's rebuilt model trains on sampled blocks too (full fanout: as without)."""
    split = random_split(30, 30, 6)
    name, config = LIGHTGCN

    def build():
        seed_everything(0)
        return models.get(name)(split, config)

    results = []
    for sampling in (None, {"fanouts": [-1, -1]}):
        options = {"epochs": 2, "batch_size": 64, "progress": False, "refit": True}
        trainer = Trainer(build(), split, {**options, "sampling": sampling}, rebuild=build)
        trainer.fit()
        assert (trainer.model.sampling is None) == (sampling is None)
        results.append(trainer.model.state_dict()["embedding.weight"])
    torch.testing.assert_close(results[1], results[0], rtol=1e-5, atol=1e-6)
