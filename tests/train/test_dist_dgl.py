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
import signal
import subprocess
import sys
import time
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

MACHINE = Path(__file__).with_name("dist_dgl_machine.py")
REPO = Path(__file__).resolve().parents[2]
DATASET = {
    "name": "synthetic",
    "options": {"n_users": 60, "n_pois": 90, "n_events": 3000, "days": 30, "seed": 3},
    "protocol": "next_poi_chronological",
}


def _config(tmp_path: Path, **train: object) -> Path:
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
        "models": [{"name": "lightgcn", "config": {"embedding_dim": 16, "n_layers": 2}}],
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


@pytest.mark.parametrize("n_layers", [0, 2])
def test_block_loss_equals_lightgcn(tmp_path: Path, n_layers: int) -> None:
    """Full fanouts over a renumbered graph: the loss and its gradient are LightGCN's."""
    split = _split(tmp_path)
    model = models.get("lightgcn")(split, {"embedding_dim": 8, "n_layers": n_layers})
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
    )
    got.backward()
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(table.grad[ids], model.embedding.weight.grad)


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


# ---------------------------------------------------------------------- two machines
def _sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


class Machines:
    """Two network namespaces joined by a veth pair (``tg0`` in each, addresses
    ``10.A.B.1`` and ``.2``), removed by :meth:`close` with every process started in them."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.names = [f"tgd{pid}m{k}" for k in range(2)]
        net = f"10.{200 + pid % 50}.{pid // 50 % 250}"
        self.addresses = [f"{net}.1", f"{net}.2"]
        self.processes: list[subprocess.Popen] = []
        self.created: list[str] = []
        veth = [f"tgd{pid}v{k}" for k in range(2)]
        try:
            for name in self.names:
                _sh("ip", "netns", "add", name)
                self.created.append(name)
            _sh("ip", "link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
            for name, end, address in zip(self.names, veth, self.addresses):
                _sh("ip", "link", "set", end, "netns", name)
                inside = ["ip", "netns", "exec", name, "ip"]
                _sh(*inside, "link", "set", end, "name", "tg0")
                _sh(*inside, "addr", "add", f"{address}/24", "dev", "tg0")
                _sh(*inside, "link", "set", "tg0", "up")
                _sh(*inside, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise

    def start(self, machine: int, command: list[str], log: Path) -> subprocess.Popen:
        """``command`` in machine ``machine``: its network namespace and a new mount
        namespace with its own tmpfs on /dev/shm."""
        script = 'mount -t tmpfs -o size=512m tgshm /dev/shm && exec "$@"'
        full = ["ip", "netns", "exec", self.names[machine], "unshare", "--mount"]
        full += ["--propagation", "private", "sh", "-c", script, "sh", *command]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for name in self.created:  # anything left inside is killed before the namespace goes
            pids = subprocess.run(
                ["ip", "netns", "pids", name], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.created = []


@pytest.fixture
def machines():
    if shutil.which("ip") is None or shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.fail("the DistDGL test needs root, iproute2 (ip netns) and util-linux (unshare)")
    pair = Machines()
    try:
        yield pair
    finally:
        pair.close()
    assert not set(pair.names) & set(
        subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    )


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {
        "PYTHONPATH": path,
        "OMP_NUM_THREADS": "1",
        "DGLBACKEND": "pytorch",
        "GLOO_SOCKET_IFNAME": "tg0",  # the machine's own address, not the host name's
    }


def run_two_machines(
    machines: Machines, tmp_path: Path, config: Path, timeout: float = 300
) -> list[Path]:
    """``tgraph partition`` then ``tgraph run`` on the two machines; their logs."""
    parts = tmp_path / "parts"
    env = {**os.environ, **_env()}
    cli = [sys.executable, "-m", "tgraph"]
    subprocess.run(
        [*cli, "partition", "--config", str(config), "--parts", "2", "--out", str(parts)],
        check=True,
        env=env,
        capture_output=True,
    )
    ip_config = dist_dgl.write_ip_config(tmp_path / "ip_config.txt", machines.addresses, 30050)
    spec = {
        "command": [*cli, "run", "--threads", "1", "--config", str(config)],
        "addresses": machines.addresses,
        "servers_per_machine": 1,
        "ip_config": str(ip_config),
        "part_config": str(parts / "tgraph.json"),
        "master_port": 29777,
        "env": _env(),
    }
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    logs = [tmp_path / f"machine{k}.log" for k in range(2)]
    started = [
        machines.start(k, [sys.executable, str(MACHINE), str(spec_path), str(k)], logs[k])
        for k in range(2)
    ]
    deadline = time.monotonic() + timeout
    for k, process in enumerate(started):
        try:
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pytest.fail(f"machine {k} still running after {timeout} s:\n{logs[k].read_text()}")
        assert code == 0, f"machine {k} failed ({code}):\n{logs[k].read_text()[-5000:]}"
    return logs


@pytest.mark.slow
def test_two_machines(machines: Machines, tmp_path: Path) -> None:
    config = _config(tmp_path)
    logs = run_two_machines(machines, tmp_path, config)
    text = [log.read_text() for log in logs]
    # both trainers trained; rank 0 compared the replicas (raises if they differ)
    assert "parameters identical on 2 ranks" in text[0]
    runs = list((tmp_path / "runs").rglob("metrics.json"))
    assert len(runs) == 1  # one run directory, written once (by rank 0)
    run_dir = runs[0].parent
    curve = [json.loads(line) for line in (run_dir / "curve.jsonl").read_text().splitlines()]
    losses = [record["loss"] for record in curve]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert [record["epoch"] for record in curve] == [1, 2, 3, 4]  # each epoch recorded once
