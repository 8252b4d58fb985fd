"""Serving speed: in-process recommend latency, ingest throughput and the HTTP endpoint under load.

    TGRAPH_DATA=/work/shared/data python experiments/benchmarks/serving.py \
        [--nyc-run RUN_DIR] [--gowalla-run RUN_DIR] [--http-seconds 30] [--clients 32]

Two sessions (:func:`tgraph.serve.load`): the flagship ``sthrec`` on Foursquare NYC
(GETNext protocol, 5,135 items) and LightGCN on Gowalla (40,981 items). Without a run
directory, a short model is trained for the benchmark (one epoch; the output says so): speed
does not depend on how well the weights are trained.

* recommend: ``session.recommend(user, k=10)`` for ``--queries`` random users, one torch
  thread, one call at a time, after one warm-up call (which fills the model's propagation
  cache); p50/p99 of the per-call wall time. Target p99: 20 ms (flagship/NYC), 10 ms
  (LightGCN/Gowalla).
* ingest: ``session.ingest`` of batches of 100 new events (random known users and items,
  times after every event seen) with the durable event log (fsync per batch) and
  ``model.update``; events per second over ``--ingest-batches`` batches. Target: 5,000/s.
  Graph models apply queued edges at their next query, so the benchmark also alternates one
  ingest and one recommend (30 rounds) and reports both times and the events/s left when a
  query follows every batch.
* HTTP: ``tgraph serve`` in a child process on 127.0.0.1; this process runs ``--clients``
  concurrent clients (asyncio + httpx) for ``--http-seconds`` seconds, each sending
  ``GET /recommend`` for random users back to back: requests served, errors (must be 0),
  latency percentiles. Client and server share the machine's cores.

The machine's load average is printed first: on a shared machine, quote it with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# tgraph before torch: importing it sets OMP_WAIT_POLICY=PASSIVE (docs/scale.md)
import tgraph  # noqa: F401  # isort: skip
import torch

from tgraph.config import load_config
from tgraph.experiment import run_experiment
from tgraph.runs import RunDir, run_path
from tgraph.serve import Session, load

SHORT = {
    "nyc": [
        "experiment=serving_benchmark",
        "seeds=[0]",
        "dataset={name: foursquare_nyc, protocol: getnext_nyc}",
        "metrics=[acc@10, mrr]",
        "models=[{name: sthrec}]",
        "train={epochs: 1, batch_size: 1024, lr: 0.003, valid_metric: mrr, metrics: [mrr],"
        " progress: false}",
    ],
    "gowalla": [
        "experiment=serving_benchmark",
        "seeds=[0]",
        "dataset={name: gowalla_lightgcn, protocol: lightgcn}",
        "metrics=[recall@20, ndcg@20]",
        "models=[{name: lightgcn, config: {embedding_dim: 64, n_layers: 3}}]",
        "train={epochs: 1, batch_size: 8192, lr: 0.003, valid_metric: ndcg@20,"
        " metrics: [ndcg@20], progress: false, eval_batch_size: 1024}",
    ],
}


def short_run(name: str, output_dir: Path) -> Path:
    """The run directory of a one-epoch model for ``name`` (trained unless already there)."""
    config = load_config([], [*SHORT[name], f"output_dir={output_dir}"])
    entry = config.models[0]
    path = run_path(output_dir, config.experiment, config.dataset.name, entry.run_name, 0)
    if RunDir(path).finished:
        print(f"[{name}] no run directory given: using the one-epoch {entry.name} in {path}")
        return path
    print(f"[{name}] no run directory given: training a one-epoch {entry.name} into {path}")
    start = time.perf_counter()
    run_experiment(config, resume=True)  # a killed run is continued
    print(f"[{name}] trained in {time.perf_counter() - start:.0f} s")
    return path


def percentiles(seconds: list[float]) -> str:
    ms = 1000 * np.asarray(seconds)
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"p50 {p50:.2f} ms, p90 {p90:.2f} ms, p99 {p99:.2f} ms, max {ms.max():.2f} ms"


def bench_recommend(session: Session, queries: int, rng: np.random.Generator) -> list[float]:
    users = rng.integers(0, session.n_users, queries)
    session.recommend(int(users[0]), k=10)  # warm-up: fills the eval cache
    times = []
    for user in users:
        start = time.perf_counter()
        session.recommend(int(user), k=10)
        times.append(time.perf_counter() - start)
    return times


def new_events(session: Session, rng: np.random.Generator) -> list[dict]:
    """100 events of random known users and items, after every event seen."""
    t = session.clock + 1
    users = rng.integers(0, session.n_users, 100)
    items = rng.integers(0, session.n_items, 100)
    batch = [
        {"user": int(u), "item": int(i), "timestamp": t + j}
        for j, (u, i) in enumerate(zip(users, items, strict=True))
    ]
    if "trajectory" in session.event_columns:  # the flagship's transitions need it
        batch = [{**e, "trajectory": f"bench:{e['user']}"} for e in batch]
    if "tz_offset" in session.event_columns:
        batch = [{**e, "tz_offset": 0} for e in batch]
    return batch


def bench_ingest(session: Session, batches: int, rng: np.random.Generator) -> float:
    """Events per second of ``batches`` batches of 100 (validation, log, index, update)."""
    total, start = 0, time.perf_counter()
    for _ in range(batches):
        total += session.ingest(new_events(session, rng))
    return total / (time.perf_counter() - start)


def bench_interleaved(
    session: Session, rounds: int, rng: np.random.Generator
) -> tuple[list[float], list[float]]:
    """Seconds of each ingest of 100 events and of the first recommend after it: models
    apply queued graph changes at their next query, so that query pays for the ingest."""
    ingest, first = [], []
    for _ in range(rounds):
        batch = new_events(session, rng)
        start = time.perf_counter()
        session.ingest(batch)
        ingest.append(time.perf_counter() - start)
        start = time.perf_counter()
        session.recommend(int(rng.integers(0, session.n_users)), k=10)
        first.append(time.perf_counter() - start)
    return ingest, first


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _load(url: str, n_users: int, clients: int, seconds: float) -> dict:
    import httpx

    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client(seed: int, http: httpx.AsyncClient) -> None:
        rng = np.random.default_rng(seed)
        while time.monotonic() < deadline:
            params = {"user": int(rng.integers(0, n_users)), "k": 10}
            start = time.perf_counter()
            try:
                response = await http.get(f"{url}/recommend", params=params)
                ok = response.status_code == 200
                key = str(response.status_code)
            except httpx.HTTPError as error:
                ok, key = False, type(error).__name__
            if ok:
                latencies.append(time.perf_counter() - start)
            else:
                errors[key] = errors.get(key, 0) + 1

    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        start = time.monotonic()
        await asyncio.gather(*(client(seed, http) for seed in range(clients)))
        elapsed = time.monotonic() - start
    return {"served": len(latencies), "errors": errors, "latencies": latencies, "s": elapsed}


def bench_http(run_dir: Path, n_users: int, clients: int, seconds: float) -> dict:
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "tgraph.cli", "serve", str(run_dir), "--port", str(port)]
        command += ["--threads", "1", "--log", str(Path(tmp) / "events.jsonl")]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 600
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {server.stderr.read().decode()}")
                try:
                    httpx.get(f"{url}/health", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.5)
            httpx.get(f"{url}/recommend", params={"user": 0}, timeout=60)  # warm-up
            return asyncio.run(_load(url, n_users, clients, seconds))
        finally:
            server.terminate()
            server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nyc-run", type=Path, default=None, help="a finished sthrec NYC run")
    parser.add_argument("--gowalla-run", type=Path, default=None, help="a LightGCN Gowalla run")
    parser.add_argument("--output-dir", type=Path, default=Path("runs"), help="for short runs")
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--ingest-batches", type=int, default=100)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--http-seconds", type=float, default=30.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores, torch threads 1")
    results = {}
    for name, given, label in (
        ("nyc", args.nyc_run, "flagship sthrec / Foursquare NYC"),
        ("gowalla", args.gowalla_run, "LightGCN / Gowalla"),
    ):
        run_dir = given if given is not None else short_run(name, args.output_dir)
        rng = np.random.default_rng(0)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            session = load(run_dir, log=Path(tmp) / "events.jsonl")
            loaded = time.perf_counter() - start
            n_users = session.n_users
            print(
                f"\n== {label}: {session.n_items:,} items, {n_users:,} users, "
                f"{session.n_events:,} events (loaded in {loaded:.1f} s) from {run_dir}"
            )
            latency = bench_recommend(session, args.queries, rng)
            print(f"recommend k=10, {args.queries} calls: {percentiles(latency)}")
            rate = bench_ingest(session, args.ingest_batches, rng)
            print(
                f"ingest: {rate:,.0f} events/s ({args.ingest_batches} batches of 100, fsync'd log)"
            )
            after = bench_recommend(session, 200, rng)
            print(f"recommend after ingest (200 calls): {percentiles(after)}")
            ingest_s, first_s = bench_interleaved(session, 30, rng)
            both = np.add(ingest_s, first_s)
            print(
                f"ingest 100 then recommend, 30 rounds: ingest {percentiles(ingest_s)}; "
                f"first recommend {percentiles(first_s)}; "
                f"{100 / float(np.median(both)):,.0f} events/s with a query after every batch"
            )
            session.close()
        http = bench_http(run_dir, n_users, args.clients, args.http_seconds)
        print(
            f"HTTP GET /recommend, {args.clients} clients x {http['s']:.0f} s: "
            f"{http['served']:,} served ({http['served'] / http['s']:.0f}/s), errors "
            f"{sum(http['errors'].values())} {http['errors'] or ''}; "
            f"{percentiles(http['latencies'])}"
        )
        results[name] = {
            "recommend_p50_ms": 1000 * float(np.percentile(latency, 50)),
            "recommend_p99_ms": 1000 * float(np.percentile(latency, 99)),
            "ingest_events_per_s": rate,
            "http_served": http["served"],
            "http_errors": sum(http["errors"].values()),
            "http_p50_ms": 1000 * float(np.percentile(http["latencies"], 50)),
            "http_p99_ms": 1000 * float(np.percentile(http["latencies"], 99)),
        }
    print("\n" + json.dumps(results, indent=1))
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
