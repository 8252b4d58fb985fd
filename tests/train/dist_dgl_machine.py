"""Simulated machines for DistDGL on one host: the test's and the benchmark's.

:class:`Machines` makes one or two network namespaces joined by a veth pair (each
namespace's end is ``tg0``, with its own address) and removes
them, with every process started in them, on :meth:`Machines.close`.
:func:`run_machines` partitions a config's graph (``tgraph partition``) and runs ``tgraph run``
on every machine, each in its own mount namespace with a fresh tmpfs on /dev/shm (two graph
servers sharing one /dev/shm collide on their shared-memory names: a Bus error).

Run as a script, it is one machine: ``python dist_dgl_machine.py SPEC.json MACHINE`` starts the
machine's graph servers, then its trainer, waits for the trainer and then for the servers
(they exit when every trainer has left); if the trainer fails or the script is stopped
(SIGTERM), the servers are killed. Exit code: the trainer's, else the first failed server's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tgraph.train.dist_dgl import server_env, trainer_env, write_ip_config

MACHINE = Path(__file__).resolve()
REPO = MACHINE.parents[2]
SERVER_PORT, MASTER_PORT = 30050, 29777


def _sh(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


class Machines:
    """``n`` (1 or 2) network namespaces, ``tg0`` in each with address ``10.A.B.k+1``
    (for one machine, the end of the pair left in this namespace gets no address)."""

    def __init__(self, n: int = 2) -> None:
        if n not in (1, 2):
            raise ValueError("one veth pair joins at most 2 machines")
        pid = os.getpid()
        self.names = [f"tgd{pid}m{k}" for k in range(n)]
        net = f"10.{200 + pid % 50}.{pid // 50 % 250}"
        self.addresses = [f"{net}.{k + 1}" for k in range(n)]
        self.processes: list[subprocess.Popen] = []
        self.created: list[str] = []
        veth = self.veth = [f"tgd{pid}v{k}" for k in range(2)]
        try:
            for name in self.names:
                _sh("ip", "netns", "add", name)
                self.created.append(name)
            for name in self.names:
                _sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
            # a veth pair: one end in each machine (one machine: the other end stays
            # here, unused); it goes when a namespace holding one end is deleted
            _sh("ip", "link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
            for name, end, address in zip(self.names, veth, self.addresses):
                _sh("ip", "link", "set", end, "netns", name)
                inside = ["ip", "netns", "exec", name, "ip"]
                _sh(*inside, "link", "set", end, "name", "tg0")
                _sh(*inside, "addr", "add", f"{address}/24", "dev", "tg0")
                _sh(*inside, "link", "set", "tg0", "up")
            if n == 1:
                _sh("ip", "link", "set", veth[1], "up")
        except BaseException:
            self.close()
            raise

    def start(self, machine: int, command: list[str], log: Path) -> subprocess.Popen:
        """``command`` in machine ``machine``: its network namespace and a new mount
        namespace with its own tmpfs on /dev/shm; output to ``log``."""
        script = 'mount -t tmpfs -o size=1g tgshm /dev/shm && exec "$@"'
        full = ["ip", "netns", "exec", self.names[machine], "unshare", "--mount"]
        full += ["--propagation", "private", "sh", "-c", script, "sh", *command]
        with open(log, "wb") as out:
            process = subprocess.Popen(
                full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(process)
        return process

    def close(self) -> None:
        """Kill what was started (each machine's process group, then anything still in a
        namespace) and delete the namespaces (the veth pair goes with them)."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for name in self.created:
            listed = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
            for pid in listed.stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.created = []
        for end in self.veth:  # gone with its namespace, unless setting up failed midway
            subprocess.run(["ip", "link", "del", end], capture_output=True)


def machine_env() -> dict[str, str]:
    """What every process of a simulated machine adds to the environment."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {
        "PYTHONPATH": path,
        "OMP_NUM_THREADS": "1",
        "DGLBACKEND": "pytorch",
        "GLOO_SOCKET_IFNAME": "tg0",  # the machine's own address, not the host name's
    }


def run_machines(
    machines: Machines, folder: Path, config: Path, *overrides: str, timeout: float = 300
) -> list[Path]:
    """``tgraph partition`` (one part per machine) then ``tgraph run --config config
    overrides`` on every machine; returns their logs. ``RuntimeError`` if a machine fails or
    is still running after ``timeout`` seconds (the caller's :meth:`Machines.close` stops
    it)."""
    parts = folder / "parts"
    n = len(machines.names)
    cli = [sys.executable, "-m", "tgraph"]
    partition = [*cli, "partition", "--config", str(config), "--parts", str(n)]
    subprocess.run(
        [*partition, "--out", str(parts), *overrides],
        check=True,
        env={**os.environ, **machine_env()},
        capture_output=True,
    )
    ip_config = write_ip_config(folder / "ip_config.txt", machines.addresses, SERVER_PORT)
    spec = {
        "command": [*cli, "run", "--threads", "1", "--config", str(config), *overrides],
        "addresses": machines.addresses,
        "servers_per_machine": 1,
        "ip_config": str(ip_config),
        "part_config": str(parts / "tgraph.json"),
        "master_port": MASTER_PORT,
        "env": machine_env(),
    }
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec))
    logs = [folder / f"machine{k}.log" for k in range(n)]
    started = [
        machines.start(k, [sys.executable, str(MACHINE), str(spec_path), str(k)], logs[k])
        for k in range(n)
    ]
    deadline = time.monotonic() + timeout
    for k, process in enumerate(started):
        try:
            code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            tail = logs[k].read_text()[-5000:]
            raise RuntimeError(f"machine {k} still running after {timeout} s:\n{tail}") from None
        if code:
            raise RuntimeError(f"machine {k} failed ({code}):\n{logs[k].read_text()[-5000:]}")
    return logs


def main(spec_path: str, machine: int) -> int:
    """One machine: its servers and its trainer (see the module docstring)."""
    spec = json.loads(Path(spec_path).read_text())
    addresses, n_servers = spec["addresses"], spec["servers_per_machine"]
    base = {**os.environ, **spec["env"]}
    servers: list[subprocess.Popen] = []

    def stop(*_: object) -> None:
        for child in [*servers, *trainer]:
            if child.poll() is None:
                child.kill()
        sys.exit(1)

    trainer: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, stop)
    for local in range(n_servers):
        env = server_env(
            server_id=machine * n_servers + local,
            ip_config=spec["ip_config"],
            part_config=spec["part_config"],
            n_servers=n_servers,
            n_trainers=len(addresses),
        )
        servers.append(subprocess.Popen(spec["command"], env={**base, **env}))
    env = trainer_env(
        rank=machine,
        world_size=len(addresses),
        ip_config=spec["ip_config"],
        part_config=spec["part_config"],
        n_servers=n_servers,
        master_addr=addresses[0],
        master_port=spec["master_port"],
    )
    trainer.append(subprocess.Popen(spec["command"], env={**base, **env}))
    code = trainer[0].wait()
    if code:
        stop()
    for server in servers:
        code = code or server.wait(timeout=120)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
