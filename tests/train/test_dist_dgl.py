"""Training on DGL's distributed engine (``train.distributed: dist_dgl``, ``tgraph partition``).

The fast tests check the pieces in this process: the config option, the partition files, and
that the loss on sampled blocks with full fanouts is exactly LightGCN's one-process loss. The
slow test runs the engine as on two machines: 2 partitions, 2 graph servers and 2 trainers,
each simulated machine in its own network namespace (a veth pair, one address each) and its
own mount namespace with a fresh /dev/shm (two servers on one /dev/shm collide on their
shared-memory names), all started and stopped by the test. It needs root (``ip netns``,
``unshare``), as on CI and here; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import dgl
import numpy as np
import pytest
import torch
import yaml

from tgraph import models
from tgraph.config import load_config
from tgraph.data import protocols
from tgraph.errors import ConfigError
from tgraph.graph.bipartite import bipartite_graph
from tgraph.graph.partition import partition, read_partition
from tgraph.models.base import Batch
from tgraph.train import dist_dgl
from tgraph.train.config import TrainConfig

from .dist_dgl_machine import Machines, run_machines

DATASET = {
    "name": "synthetic",
    "options": {"n_users": 60, "n_pois": 90, "n_events": 3000, "days": 30, "seed": 3},
    "protocol": "next_poi_chronological",
}


MODELS = [
    {"name": "lightgcn", "config": {"embedding_dim": 16, "n_layers": 2}},
    {"name": "ngcf", "config": {"embedding_dim": 16, "hidden_dim": 16, "n_layers": 2}},
]


def _config(tmp_path: Path, models: list[dict] = MODELS[:1], **train: object) -> Path:
    config = {
        "experiment": "distdgl",
        "output_dir": str(tmp_path / "runs"),
        "seeds": [0],
        "dataset": DATASET,
        "metrics": ["acc@10", "mrr"],
        "train": {
            "batch_size": 128,
            "lr": 0.01,
            "epochs": 4,
            "patience": 10,
            "valid_metric": "mrr",
            "metrics": ["mrr"],
            "progress": False,
            "distributed": "dist_dgl",
            **train,
        },
        "models": models,
    }
    path = tmp_path / "distdgl.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _split(tmp_path: Path):
    config = load_config([str(_config(tmp_path))])
    return protocols.prepare_split(config.dataset)


# ---------------------------------------------------------------------- fast
def test_config_option() -> None:
    assert TrainConfig(distributed="dist_dgl").distributed.engine == "dist_dgl"
    assert TrainConfig(distributed={"fanouts": [5, -1]}).distributed.fanouts == [5, -1]
    with pytest.raises(ValueError, match="fanout"):
        TrainConfig(distributed={"fanouts": [0]})
    with pytest.raises(ValueError):
        TrainConfig(distributed="horovod")
    # runs without the option keep the fingerprints of before it existed
    assert "distributed" not in TrainConfig().model_dump(mode="json")


def test_partition_files(tmp_path: Path) -> None:
    split = _split(tmp_path)
    part_config = partition(split, 2, tmp_path / "parts")
    meta, ids = read_partition(part_config)
    graph = bipartite_graph(split.train)
    assert (meta["n_users"], meta["n_items"], meta["parts"]) == (split.n_users, split.n_items, 2)
    assert meta["n_edges"] == graph.num_edges()
    assert sorted(ids) == list(range(graph.num_nodes()))  # a renumbering
    # every partition's edges, mapped back through ids, are the training graph's
    inverse = np.empty_like(ids)
    inverse[ids] = np.arange(len(ids))
    edges = set()
    for part in range(2):
        g, nfeat, _, _, _, _, _ = dgl.distributed.load_partition(str(part_config), part)
        inner = g.edata["inner_edge"].bool()
        src, dst = g.edges()
        gsrc, gdst = g.ndata[dgl.NID][src[inner]], g.ndata[dgl.NID][dst[inner]]
        edges |= set(zip(inverse[gsrc.numpy()].tolist(), inverse[gdst.numpy()].tolist()))
        inner_nodes = g.ndata["inner_node"].bool()
        deg = nfeat["_N/deg"]
        assert torch.equal(deg, graph.in_degrees()[inverse[g.ndata[dgl.NID][inner_nodes]]].float())
    src, dst = graph.edges()
    assert edges == set(zip(src.tolist(), dst.tolist()))


@pytest.mark.parametrize(
    ("name", "n_layers"), [("lightgcn", 0), ("lightgcn", 2), ("ngcf", 0), ("ngcf", 2)]
)
def test_block_loss_equals_one_process(tmp_path: Path, name: str, n_layers: int) -> None:
    """Full fanouts over a renumbered graph: the loss and its gradients (embedding rows and
    dense layers) are the one-process model's."""
    split = _split(tmp_path)
    options = {"embedding_dim": 8, "n_layers": n_layers}
    if name == "ngcf":
        options.update(hidden_dim=6, mess_dropout=0.0)
    torch.manual_seed(0)
    model = models.get(name)(split, options)
    model.train()
    graph = bipartite_graph(split.train)
    perm = torch.randperm(graph.num_nodes(), generator=torch.Generator().manual_seed(0))
    ids = torch.empty_like(perm)
    ids[perm] = torch.arange(len(perm))  # ids[tgraph node] = renumbered node
    src, dst = graph.edges()
    renumbered = dgl.graph((ids[src], ids[dst]), num_nodes=graph.num_nodes())
    degrees = renumbered.in_degrees().float()
    table = torch.nn.Parameter(model.embedding.weight.detach()[perm].clone())
    events = split.train.events.iloc[:50]
    from tgraph.data.queries import build_queries

    queries = build_queries(
        events["user"].to_numpy(), events["timestamp"].to_numpy(), None, 0, split.n_items
    )
    pos = torch.from_numpy(events["item"].to_numpy(np.int64).copy())
    neg = torch.randint(0, split.n_items, (50, 3), generator=torch.Generator().manual_seed(1))
    batch = Batch(queries, pos, neg)
    expected = model.calculate_loss(batch)
    expected.backward()
    expected_table_grad = model.embedding.weight.grad.clone()
    sampler = dgl.dataloading.NeighborSampler([-1] * n_layers) if n_layers else None
    got = dist_dgl.block_loss(
        renumbered,
        sampler,
        lambda nodes: table[nodes],
        lambda nodes: degrees[nodes],
        ids,
        batch,
        split.n_users,
        "bpr",
        model.config.reg_weight,
        dist_dgl.BlockEncoder(model),
    )
    dense = {n: p.grad.clone() for n, p in model.named_parameters() if n != "embedding.weight"}
    for param in model.parameters():
        param.grad = None
    got.backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(table.grad[ids], expected_table_grad)
    assert model.embedding.weight.grad is None  # the block loss reads the table only
    assert len(dense) == (2 * n_layers + n_layers if name == "ngcf" else 0)  # W1, b, W2
    for key, grad in dense.items():
        torch.testing.assert_close(dict(model.named_parameters())[key].grad, grad)


def test_unsupported_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tgraph.cli import main

    monkeypatch.delenv(dist_dgl.IP_CONFIG, raising=False)
    # without the engine's environment: a one-line error, not a hang
    assert main(["run", "--config", str(_config(tmp_path))]) == 2
    assert main(["run", "--config", str(_config(tmp_path)), "--nproc", "2"]) == 2
    split = _split(tmp_path)
    model = models.get("bprmf")(split, {"embedding_dim": 8})
    trainer = object.__new__(dist_dgl.DistDGLTrainer)
    trainer.config, trainer.model = TrainConfig(distributed="dist_dgl", refit=True), model
    with pytest.raises(ConfigError, match="BPRMF.*train.refit"):
        trainer._check_supported()
    trainer.config = TrainConfig(distributed="dist_dgl", fold_valid=True)
    with pytest.raises(ConfigError, match="train.fold_valid"):
        trainer._check_supported()


# ---------------------------------------------------------------------- two machines
@pytest.fixture
def machines():
    if shutil.which("ip") is None or shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("the DistDGL test needs root, iproute2 (ip netns) and util-linux (unshare)")
    pair = Machines(2)
    try:
        yield pair
    finally:
        pair.close()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not set(pair.names) & set(listed.split())  # no namespace left behind


@pytest.mark.slow
def test_two_machines(machines: Machines, tmp_path: Path) -> None:
    """LightGCN (embeddings only) then NGCF (dense layers in DDP) in one engine run."""
    config = _config(tmp_path, MODELS)
    logs = run_machines(machines, tmp_path, config)
    text = logs[0].read_text()
    # both trainers trained each model; rank 0 compared the replicas (raises if they differ)
    assert text.count("parameters identical on 2 ranks") == 2
    runs = sorted((tmp_path / "runs").rglob("metrics.json"))
    assert [run.parent.parent.name for run in runs] == ["lightgcn", "ngcf"]  # written once each
    for run in runs:
        lines = (run.parent / "curve.jsonl").read_text().splitlines()
        curve = [json.loads(line) for line in lines]
        assert [record["epoch"] for record in curve] == [1, 2, 3, 4]  # each epoch once
        losses = [record["loss"] for record in curve]
        assert losses[-1] < losses[0]
        assert json.loads(run.read_text())["test"]["mrr"] > 0


@pytest.mark.slow
def test_failure_stops_everything(machines: Machines, tmp_path: Path) -> None:
    """A trainer that fails (a model the engine does not support) stops its machine's
    servers: the run fails with the trainer's error, and nothing is left running."""
    config = _config(tmp_path)
    with pytest.raises(RuntimeError, match="does not support model BPRMF"):
        run_machines(machines, tmp_path, config, "models=[{name: bprmf}]", timeout=200)
    machines.close()
    left = subprocess.run(["pgrep", "-f", str(tmp_path / "spec.json")], capture_output=True)
    assert left.stdout == b""
