"""Figure 1: upstream requests per poll cycle, batchwatch's poller against a naive loop.

    python -m tests.benchmarks.requests_per_cycle [--active 100 1000 10000] [--quick]
    (or: python -m tests.benchmarks.run --only requests)

For each A: the simulator (a subprocess, over HTTP on loopback) is seeded with A jobs that
stay QUEUED; one warm-up cycle back-fills them into a fresh SQLite store; then 1% of them
(at least one) are cancelled upstream, so D > 0 jobs leave the active set, and the next
cycle's requests are counted by the simulator itself (``/_sim/stats``). The naive loop,
one ``get`` per job, is then counted on the same simulator. Target: batchwatch needs at
most ceil(A / page_size) + 1 + D requests.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from batchwatch.poller import PollOptions, poll_once
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.store import Store
from tests.benchmarks.common import SIM_KEY, Context, Row, Simulator, run_alone, say

PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Count:
    active: int
    ours: int
    bound: int
    departed: int
    naive: int | None  # None: not run (quick mode, A = 10,000)
    cycle_seconds: float
    naive_seconds: float | None


def measure(workdir: Path, active: int, *, naive: bool = True) -> Count:
    # cancel_seconds=0: a cancelled job is CANCELLED at once, so it has left by the cycle.
    with Simulator(workdir, cancel_seconds=0.0) as sim:
        ids = sim.seed(active, total_requests=100)
        store = Store(f"sqlite:///{workdir / f'requests-{active}.db'}")
        store.migrate()
        try:
            with MistralClient(sim.url, SIM_KEY, pool_size=6) as client:
                options = PollOptions(page_size=PAGE_SIZE)
                poll_once(client, store, options)  # warm-up: the first cycle back-fills
                leaving = max(1, active // 100)
                for job_id in ids[:: active // leaving][:leaving]:
                    sim.cancel(job_id)
                stored_active = store.active_job_ids()
                before = sim.requests_total()
                started = time.perf_counter()
                poll_once(client, store, options)
                seconds = time.perf_counter() - started
                ours = sim.requests_total() - before
                departed = len(stored_active - store.active_job_ids())
                naive_count, naive_seconds = None, None
                if naive:
                    before = sim.requests_total()
                    started = time.perf_counter()
                    for job_id in ids:  # what users write by hand: one get per job per cycle
                        client.get_job(job_id)
                    naive_seconds = time.perf_counter() - started
                    naive_count = sim.requests_total() - before
        finally:
            store.close()
    bound = math.ceil(active / PAGE_SIZE) + 1 + departed
    return Count(active, ours, bound, departed, naive_count, seconds, naive_seconds)


def figure(ctx: Context) -> list[Row]:
    sizes = ctx.shared.get("requests_sizes") or [100, 1_000, 10_000]
    say("Figure 1 - upstream requests per poll cycle (page_size 100; 1% of jobs leave)")
    say(
        f"{'A':>7} {'batchwatch':>10} {'bound':>6} {'D':>4} {'naive':>7} {'ratio':>6}"
        f" {'cycle s':>8} {'naive s':>8}"
    )
    rows = []
    for active in sizes:
        # The naive count is A by construction; in --quick its 10,000 gets are skipped.
        c = measure(ctx.workdir, active, naive=not (ctx.quick and active > 1_000))
        naive = str(c.naive) if c.naive is not None else "-"
        ratio = f"{c.naive / c.ours:.0f}x" if c.naive is not None else "-"
        naive_s = f"{c.naive_seconds:.2f}" if c.naive_seconds is not None else "-"
        say(
            f"{c.active:>7} {c.ours:>10} {c.bound:>6} {c.departed:>4} {naive:>7} {ratio:>6}"
            f" {c.cycle_seconds:>8.3f} {naive_s:>8}"
        )
        against = f" vs naive {c.naive} ({ratio} fewer)" if c.naive is not None else ""
        rows.append(
            Row(
                f"1. requests per cycle, A={c.active:,}",
                f"{c.ours}{against}",
                f"<= {c.bound} = ceil(A/100)+1+D (D={c.departed})",
                c.ours <= c.bound,
            )
        )
    say()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--active", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--quick", action="store_true", help="skip the 10,000-get naive loop")
    args = parser.parse_args(argv)
    return run_alone(figure, args.quick, requests_sizes=args.active)


if __name__ == "__main__":
    sys.exit(main())
