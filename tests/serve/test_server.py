"""A real ``tgraph serve`` process on 127.0.0.1: every acknowledged event survives SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the 'serve' extra is not installed")
pytest.importorskip("uvicorn", reason="the 'serve' extra is not installed")

STARTUP_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(run_dir: Path, log: Path, port: int, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "tgraph.cli", "serve", str(run_dir), "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [*command, "--log", str(log), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code in (200, 401):
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError(f"server not up after {STARTUP_S} s")


def _stop(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    process.send_signal(sig)
    process.wait(timeout=30)
    process.stderr.close()


@pytest.fixture
def server(sequence_run, tmp_path):
    """(start, log): started servers are killed at the end."""
    started: list[subprocess.Popen] = []
    log = tmp_path / "events.jsonl"

    def start(*extra: str) -> tuple[str, subprocess.Popen]:
        port = _free_port()
        started.append(_start(sequence_run, log, port, *extra))
        return f"http://127.0.0.1:{port}", started[-1]

    yield start, log
    for process in started:
        if process.poll() is None:
            _stop(process)


@pytest.mark.slow
def test_a_killed_server_restarts_with_every_acknowledged_event(server):
    """Five acknowledged batches, SIGKILL, restart (with a token this time): the restarted
    server holds every event and answers as before; without the token it answers 401."""
    start, log = server
    url, process = start()
    health = httpx.get(f"{url}/health").json()
    clock, events = health["clock"], health["events"]
    acknowledged = 0
    for j in range(5):
        batch = [
            {"user": j, "item": j + 1, "timestamp": clock + 10 * j + 1},
            {"user": 9, "item": j, "timestamp": clock + 10 * j + 2},
        ]
        response = httpx.post(f"{url}/events", json=batch, timeout=30)
        assert response.status_code == 200
        acknowledged += response.json()["ingested"]
    answer = httpx.get(f"{url}/recommend", params={"user": 9, "k": 10}).json()
    _stop(process, signal.SIGKILL)
    url, process = start("--token", "abc")
    assert httpx.get(f"{url}/health").status_code == 401
    assert httpx.get(f"{url}/recommend", params={"user": 9}).status_code == 401
    auth = {"Authorization": "Bearer abc"}
    health = httpx.get(f"{url}/health", headers=auth).json()
    assert health["events"] == events + acknowledged == events + 10
    assert health["clock"] == clock + 42
    again = httpx.get(f"{url}/recommend", params={"user": 9, "k": 10}, headers=auth)
    assert again.json() == answer
    bad = httpx.get(f"{url}/recommend", params={"user": 9, "at": clock}, headers=auth)
    assert bad.status_code == 422 and bad.json()["field"] == "at"
    _stop(process, signal.SIGTERM)
