"""One simulated machine of the DistDGL test: its graph servers and its trainer.

Run inside the machine's network namespace and its own mount namespace (with a fresh tmpfs on
/dev/shm, where the servers share their partition with the trainer)::

    python dist_dgl_machine.py SPEC.json MACHINE

``SPEC.json`` (written by the test): the command (``tgraph run ...``), the ip_config and
partition config, the machines' addresses, servers per machine, the torch master port and
an extra environment. Starts the servers, then the trainer, waits for the trainer and for the
servers (they exit when every trainer has left); if the trainer fails or this process is
stopped, the servers are killed. Exit code: the trainer's, or the first failed server's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tgraph.train.dist_dgl import server_env, trainer_env


def main(spec_path: str, machine: int) -> int:
    spec = json.loads(Path(spec_path).read_text())
    addresses, n_servers = spec["addresses"], spec["servers_per_machine"]
    base = {**os.environ, **spec["env"]}
    servers = []
    children: list[subprocess.Popen] = []

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.kill()
        sys.exit(1)

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
        children.append(servers[-1])
    env = trainer_env(
        rank=machine,
        world_size=len(addresses),
        ip_config=spec["ip_config"],
        part_config=spec["part_config"],
        n_servers=n_servers,
        master_addr=addresses[0],
        master_port=spec["master_port"],
    )
    trainer = subprocess.Popen(spec["command"], env={**base, **env})
    children.append(trainer)
    code = trainer.wait()
    if code:
        stop()
    for server in servers:
        server_code = server.wait(timeout=120)
        code = code or server_code
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
