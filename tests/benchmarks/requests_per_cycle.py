"""Upstream requests per poll cycle: batchwatch's poller against a naive get-per-job loop.

    python -m tests.benchmarks.requests_per_cycle [--active 100 1000 10000]

Runs the simulator in-process on loopback, seeds the active jobs, runs one warm-up cycle (the
first cycle back-fills history), then counts the requests of the next cycle from the
simulator's own request counters. Prints a table; exits non-zero if batchwatch exceeds its
bound of ceil(A / page_size) + 1 + D requests.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import requests

from batchwatch import logs
from batchwatch.client import MistralClient
from batchwatch.poller import PollOptions, poll_once
from batchwatch.simulator import JobSpec, SimulatorSettings, start_in_thread
from batchwatch.store import Store

KEY = "benchmark-key"


def _count(url: str) -> int:
    return int(requests.get(f"{url}/_sim/stats", timeout=10).json()["total"])


def measure(active: int, page_size: int) -> tuple[int, int, int, float]:
    """(batchwatch requests, its bound, naive requests, batchwatch cycle seconds)."""
    sim = start_in_thread(SimulatorSettings(api_key=KEY, queue_seconds=3600))
    try:
        spec = JobSpec(endpoint="/v1/chat/completions", model="mistral-small-latest")
        ids = sim.simulation.seed_jobs(active, spec, total_requests=100)
        with tempfile.TemporaryDirectory() as tmp, MistralClient(sim.url, KEY) as client:
            store = Store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            store.migrate()
            options = PollOptions(page_size=page_size)
            poll_once(client, store, options)  # warm-up: the first cycle back-fills
            before = _count(sim.url)
            started = time.perf_counter()
            report = poll_once(client, store, options)
            seconds = time.perf_counter() - started
            ours = _count(sim.url) - before
            bound = math.ceil(active / page_size) + 1 + report.departed
            before = _count(sim.url)
            for job_id in ids:  # what users write by hand: one get per job per cycle
                client.get_job(job_id)
            naive = _count(sim.url) - before
            store.close()
        return ours, bound, naive, seconds
    finally:
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--active", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args(argv)
    logs.configure("warning", "console")
    print(f"{'active':>8} {'batchwatch':>11} {'bound':>6} {'naive':>7} {'ratio':>7} {'cycle s':>8}")
    ok = True
    for active in args.active:
        ours, bound, naive, seconds = measure(active, args.page_size)
        ok &= ours <= bound
        print(f"{active:>8} {ours:>11} {bound:>6} {naive:>7} {naive / ours:>6.0f}x {seconds:>8.3f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
