"""Figure 12: upstream requests per poll cycle for each provider, against a loop of one
``get`` per job; and one cycle of all three providers at 1,000 active jobs each.

    python -m tests.benchmarks.providers [--quick]
    (or: python -m tests.benchmarks.run --only providers)

Each provider's simulator runs in this process, over HTTP on loopback, and counts the
requests it answers (``/_sim/stats``). For A active jobs: seeded to stay active, one warm-up
cycle back-fills them into a fresh SQLite store, 1% (at least one) are cancelled upstream,
and the next cycle is counted. For 10,000 ended jobs: seeded ended, one warm-up cycle, then
a quiet cycle is counted. Bounds, with P the largest page each list serves (Mistral 100 by
``page_size``, OpenAI 100, Anthropic 1,000):

* Mistral (status-filtered list): ceil(A / P) + 1 + D, D the jobs that left the active set.
* OpenAI, Anthropic (newest first, no status filter): ceil(A / P) + 1, the pages down to
  the first one stored as ended (the active jobs are the newest, as they usually are).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from batchwatch.poller import PollOptions, poll_all, poll_once
from batchwatch.providers.base import ProviderClient
from batchwatch.providers.clients import client_class
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.store import Store
from tests.benchmarks.common import SIM_KEY, Context, Row, run_alone, say

PROVIDERS = ("mistral", "openai", "anthropic")
PAGE = {"mistral": 100, "openai": 100, "anthropic": 1000}
_SEED_CHUNK = 5_000


@dataclass
class Upstream:
    name: str
    sim: RunningSimulator
    client: ProviderClient

    def requests(self) -> int:
        total: int = self.sim.simulation.stats()["total"]
        return total

    def seed(self, count: int, *, ended: bool) -> list[str]:
        """``count`` jobs that end at once (``ended``) or stay active for an hour."""
        seconds = 0.0 if ended else 3600.0
        ids: list[str] = []
        while len(ids) < count:
            n = min(_SEED_CHUNK, count - len(ids))
            body: dict[str, Any] = {"count": n, "total_requests": 10}
            if self.name == "mistral":
                body["metadata"] = {"sim_queue_seconds": "0", "sim_run_seconds": str(seconds)}
            else:
                body |= {"queue_seconds": 0.0, "run_seconds": seconds}
            reply = requests.post(f"{self.sim.url}/_sim/jobs/bulk", json=body, timeout=300)
            reply.raise_for_status()
            ids += reply.json()["ids"]
        return ids


@contextmanager
def upstream(name: str) -> Iterator[Upstream]:
    sim = start_in_thread(SimulatorSettings(api_key=SIM_KEY, cancel_seconds=0.0), provider=name)
    client: ProviderClient = client_class(name)(sim.url, SIM_KEY, pool_size=6)
    try:
        yield Upstream(name, sim, client)
    finally:
        client.close()
        sim.stop()


@dataclass(frozen=True, slots=True)
class Count:
    provider: str
    jobs: str
    ours: int
    bound: int
    naive: int


def _store(workdir: Path, label: str) -> Store:
    store = Store(f"sqlite:///{workdir / f'providers-{label}.db'}")
    store.migrate()
    return store


def active_cycle(workdir: Path, name: str, active: int) -> Count:
    with upstream(name) as up:
        ids = up.seed(active, ended=False)
        store = _store(workdir, f"{name}-{active}")
        try:
            poll_once(up.client, store, PollOptions())  # warm-up: the first cycle back-fills
            leaving = ids[:: max(1, active // max(1, active // 100))][: max(1, active // 100)]
            for job_id in leaving:
                up.client.cancel_job(job_id)  # as another tool would
            before = up.requests()
            poll_once(up.client, store, PollOptions())
            ours = up.requests() - before
            before = up.requests()
            for job_id in ids:  # what users write by hand: one get per job per cycle
                up.client.get_job(job_id)
            naive = up.requests() - before
        finally:
            store.close()
    extra = len(leaving) if name == "mistral" else 0
    return Count(
        name, f"{active:,} active", ours, math.ceil(active / PAGE[name]) + 1 + extra, naive
    )


def ended_cycle(workdir: Path, name: str, ended: int) -> Count:
    with upstream(name) as up:
        ids = up.seed(ended, ended=True)
        time.sleep(0.1)
        store = _store(workdir, f"{name}-ended")
        try:
            poll_once(up.client, store, PollOptions())  # warm-up: discovers them all
            poll_once(up.client, store, PollOptions())  # (Mistral: the watermark settles)
            before = up.requests()
            poll_once(up.client, store, PollOptions())
            ours = up.requests() - before
        finally:
            store.close()
    # A naive loop reads every job it was given, ended or not: one get each.
    return Count(name, f"{ended:,} ended", ours, 2 if name == "mistral" else 1, len(ids))


def all_three(workdir: Path, active: int) -> tuple[int, int, int, float]:
    """One cycle of the three providers at ``active`` jobs each: (requests, bound, naive,
    seconds)."""
    with ExitStack() as stack:
        ups = [stack.enter_context(upstream(name)) for name in PROVIDERS]
        for up in ups:
            up.seed(active, ended=False)
        store = _store(workdir, "all-three")
        stack.callback(store.close)
        clients = [up.client for up in ups]
        poll_all(clients, store, PollOptions())  # warm-up
        before = sum(up.requests() for up in ups)
        started = time.perf_counter()
        poll_all(clients, store, PollOptions())
        seconds = time.perf_counter() - started
        ours = sum(up.requests() for up in ups) - before
    bound = sum(math.ceil(active / PAGE[name]) + 1 for name in PROVIDERS)
    return ours, bound, len(PROVIDERS) * active, seconds


def figure(ctx: Context) -> list[Row]:
    sizes = [100, 1_000]
    ended = ctx.pick(10_000, 2_000)
    say("Figure 12 - requests per cycle per provider (1% of active jobs cancelled)")
    say(f"{'provider':>10} {'jobs':>14} {'batchwatch':>10} {'bound':>6} {'naive':>7} {'ratio':>7}")
    rows: list[Row] = []
    counts = [active_cycle(ctx.workdir, name, a) for name in PROVIDERS for a in sizes]
    counts += [ended_cycle(ctx.workdir, name, ended) for name in PROVIDERS]
    for c in counts:
        ratio = f"{c.naive / max(1, c.ours):.0f}x"
        say(f"{c.provider:>10} {c.jobs:>14} {c.ours:>10} {c.bound:>6} {c.naive:>7} {ratio:>7}")
        rows.append(
            Row(
                f"12. requests per cycle, {c.provider}, {c.jobs}",
                f"{c.ours} vs naive {c.naive} ({ratio} fewer)",
                f"<= {c.bound}",
                c.ours <= c.bound,
            )
        )
    each = ctx.pick(1_000, 300)
    ours, bound, naive, seconds = all_three(ctx.workdir, each)
    say(f"all three providers, {each:,} active each: {ours} requests (bound {bound}, naive "
        f"{naive}), cycle {seconds:.2f} s")  # fmt: skip
    rows.append(
        Row(
            f"12. one cycle, three providers x {each:,} active",
            f"{ours} requests in {seconds:.2f} s vs naive {naive}",
            f"<= {bound}",
            ours <= bound,
        )
    )
    say()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 ended jobs, 300 active")
    args = parser.parse_args(argv)
    return run_alone(figure, args.quick)


if __name__ == "__main__":
    sys.exit(main())
