"""Load on the local API from a separate process (so the client's own CPU is not the
daemon's): sequential latency samples, or a throughput run when ``wrk`` is not installed.

    python -m tests.benchmarks.loadgen latency --url URL --token-file F --paths FILE \\
        --samples N [--warmup N]
    python -m tests.benchmarks.loadgen throughput --url URL --token-file F --paths FILE \\
        --seconds S [--procs N] [--conns N]

``--paths`` is a file of request paths, one a line, used in turn. Prints one JSON object.
The client is ``http.client`` on one kept-alive connection (TCP_NODELAY): the lightest
Python client, so a sample is the daemon's time plus a loopback round trip.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def _connect(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)


def _get(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> int:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def latency(url: str, token: str, paths: list[str], samples: int, warmup: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    conn = _connect(url)
    statuses: Counter[int] = Counter()
    millis: list[float] = []
    for n in range(warmup + samples):
        path = paths[n % len(paths)]
        started = time.perf_counter()
        status = _get(conn, path, headers)
        elapsed = (time.perf_counter() - started) * 1000
        if n >= warmup:
            millis.append(elapsed)
            statuses[status] += 1
    conn.close()
    return {"latencies_ms": millis, "statuses": {str(k): v for k, v in statuses.items()}}


@dataclass(frozen=True, slots=True)
class Load:
    url: str
    token: str
    paths: list[str]
    seconds: float
    conns: int  # connections per process, one thread each


def _worker(load: Load, offset: int) -> Any:
    headers = {"Authorization": f"Bearer {load.token}"}
    deadline = time.monotonic() + load.seconds
    counts: list[Counter[int]] = [Counter() for _ in range(load.conns)]

    def loop(slot: int) -> None:
        conn = _connect(load.url)
        n = offset + slot * 7919
        while time.monotonic() < deadline:
            counts[slot][_get(conn, load.paths[n % len(load.paths)], headers)] += 1
            n += 1
        conn.close()

    threads = [threading.Thread(target=loop, args=(slot,)) for slot in range(load.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total: Counter[int] = Counter()
    for c in counts:
        total.update(c)
    return dict(total)


def throughput(load: Load, procs: int) -> dict[str, Any]:
    started = time.monotonic()
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        jobs = [pool.apply_async(_worker, (load, p * 104729)) for p in range(procs)]
        results = [job.get(timeout=load.seconds + 60) for job in jobs]
    elapsed = time.monotonic() - started
    statuses: Counter[int] = Counter()
    for result in results:
        statuses.update({int(k): v for k, v in result.items()})
    answered = sum(statuses.values())  # whatever the status: the caller checks them
    # Pool start-up is inside ``elapsed``; the requests ran for ``seconds``.
    return {
        "requests_per_second": answered / load.seconds,
        "seconds": load.seconds,
        "wall_seconds": elapsed,
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="load on the local API from another process")
    parser.add_argument("mode", choices=("latency", "throughput"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", required=True, type=Path)
    parser.add_argument("--paths", required=True, type=Path)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--conns", type=int, default=4)
    args = parser.parse_args(argv)
    token = args.token_file.read_text().strip()
    paths = [p for p in args.paths.read_text().splitlines() if p]
    if args.mode == "latency":
        result = latency(args.url, token, paths, args.samples, args.warmup)
    else:
        load = Load(args.url, token, paths, args.seconds, args.conns)
        result = throughput(load, args.procs)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
