"""Figure 5: the daemon's resident memory with 100,000 jobs in its history and 10,000 active,
and whether it grows over an hour of polling, on a compressed clock.

``batchwatch serve`` runs as a subprocess on a generated history of 90,000 ended jobs; the
simulator holds 10,000 active ones (half QUEUED all along, half RUNNING with counters that
move), which the first cycle discovers: 100,000 jobs in all. While it runs, a churn cancels
10 active jobs a second upstream and creates 10 new ones (transitions, discovery, departed
jobs: every path of a cycle is taken), keeping about 10,000 active.

The clock: ``tracking.poll_interval_seconds`` is 0.05 s, so cycles run back to back. At
the default real-world interval of 60 s, one hour is 60 cycles; the full run polls for
``HOURS`` such hours. RSS is read from /proc/PID/status (VmRSS) every half second, with the
cycle count from /healthz; the slope is fitted over the second half of the cycles (the
first settle: caches fill, the allocator's arenas grow to their working size).
"""

from __future__ import annotations

import gc
import random
import subprocess
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, datetime

from batchwatch.models import ACTIVE_STATUSES, JobOrigin, ListFilter
from batchwatch.poller import PollOptions, poll_once
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.store import Store
from batchwatch.transitions import plan
from tests.benchmarks.common import (
    SIM_KEY,
    Context,
    DaemonProcess,
    Row,
    Simulator,
    rss_mb,
    say,
    slope,
)
from tests.benchmarks.dataset import ENDED_MIX, generate
from tests.benchmarks.profiling import sampled
from tests.processes import wait_until

REAL_INTERVAL_SECONDS = 60.0  # tracking.poll_interval_seconds's default
CYCLES_PER_HOUR = int(3600 / REAL_INTERVAL_SECONDS)
ACTIVE = 10_000
HISTORY = 90_000
PEAK_TARGET_MB = 100.0
SLOPE_TARGET = 10.0  # MB per 1,000 cycles; what a few minutes of samples can resolve
CHURN_PER_SECOND = 10

# What the daemon's process holds before it has any data: the modules it imports, in the
# way it imports them (structlog through batchwatch.logs, which keeps rich out; no alembic,
# which ``Store.migrate`` loads only when the database is behind).
IMPORTS = (
    "batchwatch.logs",
    "requests",
    "pydantic",
    "sqlalchemy",
    "apscheduler",
    "prometheus_client",
    "fastapi",
    "uvicorn",
    "batchwatch.store",
    "batchwatch.api.app",
    "batchwatch.daemon",
)
#: Lines shown from the snapshot taken at a cycle's peak (``--profile``).
PEAK_LINES = 15


@dataclass
class Samples:
    seconds: list[float] = field(default_factory=list)
    cycles: list[int] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    failures: int = 0
    at_start: float = 0.0  # MB, as soon as the API answers
    after_first: float = 0.0  # MB, once the first cycle (the discovery) is done
    first_cycle: float = 0.0  # seconds from start to the end of the first cycle
    stored: dict[str, int] = field(default_factory=dict)  # jobs by status at the end
    cancelled: int = 0


class Churn(threading.Thread):
    """Cancels and creates jobs upstream, ``CHURN_PER_SECOND`` of each, until stopped."""

    def __init__(self, sim: Simulator, active: list[str]) -> None:
        super().__init__(name="churn", daemon=True)
        self.sim = sim
        self.active = active
        self.stop = threading.Event()
        self.rng = random.Random(5)
        self.cancelled = 0

    def run(self) -> None:
        while not self.stop.wait(1.0):
            for _ in range(CHURN_PER_SECOND):
                job_id = self.active.pop(self.rng.randrange(len(self.active)))
                self.sim.cancel(job_id)
                self.cancelled += 1
            self.active += self.sim.seed(
                CHURN_PER_SECOND, queue_seconds=0, run_seconds=10_800, total_requests=1000
            )


def _sample(daemon: DaemonProcess, samples: Samples, started: float) -> int:
    health = daemon.health()
    samples.seconds.append(time.monotonic() - started)
    samples.cycles.append(int(health.get("cycles", 0)))
    samples.rss.append(rss_mb(daemon.pid))
    samples.failures = int(health.get("consecutive_failures", 0)) or samples.failures
    return samples.cycles[-1]


def import_costs() -> list[tuple[str, float]]:
    """RSS after importing each of the daemon's main dependencies in turn, in a fresh process."""
    code = (
        "import importlib, sys\n"
        "def rss():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmRSS:'): return int(line.split()[1]) * 1024 / 1e6\n"
        "print('python', rss())\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name); print(name, rss())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *IMPORTS], capture_output=True, text=True, check=True
    )
    return [(name, float(mb)) for name, mb in (line.split() for line in done.stdout.splitlines())]


def _seed_active(sim: Simulator) -> list[str]:
    """Half QUEUED all along, half RUNNING for three hours with moving counters."""
    active = sim.seed(ACTIVE // 2, queue_seconds=10_800)
    return active + sim.seed(ACTIVE // 2, queue_seconds=0, run_seconds=10_800, total_requests=1000)


def python_memory_by_step(ctx: Context) -> None:
    """``--profile``: the Python memory (tracemalloc) that each step of one steady cycle
    over 10,000 active jobs holds, run in this process against its own simulator; then what
    is alive at the peak of one whole ``poll_once``, line by line."""
    store = Store(f"sqlite:///{ctx.workdir / 'memory-steps.db'}")
    store.migrate()
    held: dict[str, float] = {}
    with Simulator(ctx.workdir) as sim, MistralClient(sim.url, SIM_KEY, pool_size=6) as client:
        _seed_active(sim)
        gc.collect()
        tracemalloc.start()
        empty = tracemalloc.get_traced_memory()[0]
        poll_once(client, store, PollOptions())
        poll_once(client, store, PollOptions())
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        held["kept between cycles (caches), after two"] = (base - empty) / 1e6

        def mark(name: str) -> None:
            held[name] = (tracemalloc.get_traced_memory()[0] - base) / 1e6

        stored_active = store.active_job_ids()
        mark("store.active_job_ids() (kept all cycle)")
        flt = ListFilter(statuses=tuple(sorted(ACTIVE_STATUSES)))
        listed = client.list_all(flt, 100, 4)
        mark("+ client.list_all() result")
        now = datetime.now(UTC)
        with store.write() as writer:
            before = writer.load({job.id for job in listed.jobs})
            mark("+ Writer.load() of the listed jobs")
            changes = plan(before, listed.jobs, now)
            mark("+ plan()")
            writer.apply(changes, now, JobOrigin.DISCOVERED)
        held["peak of all the above"] = (tracemalloc.get_traced_memory()[1] - base) / 1e6
        del stored_active, listed, before, changes
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        baseline = tracemalloc.take_snapshot()
        with PeakSnapshot() as at_peak:
            poll_once(client, store, PollOptions())
        held["peak of one whole poll_once, above those caches"] = (
            tracemalloc.get_traced_memory()[1] - base
        ) / 1e6
        gc.collect()
        held["kept after it, above those caches"] = (
            tracemalloc.get_traced_memory()[0] - base
        ) / 1e6
        tracemalloc.stop()
    store.close()
    say("  Python memory held by a steady cycle's steps (tracemalloc, MB; steps cumulative):")
    for name, mb in held.items():
        say(f"    {mb:6.1f}  {name}")
    if at_peak.snapshot is not None:
        say(
            f"  alive at the peak of one poll_once ({at_peak.size / 1e6:.1f} MB traced in all),"
            " by the line that allocated it (MB, blocks):"
        )
        for stat in at_peak.snapshot.compare_to(baseline, "lineno")[:PEAK_LINES]:
            frame = stat.traceback[0]
            where = frame.filename.split("site-packages/")[-1].split("/batchwatch/")[-1]
            say(f"    {stat.size_diff / 1e6:6.2f} {stat.count_diff:8d}  {where}:{frame.lineno}")


class PeakSnapshot(threading.Thread):
    """While the block runs, a tracemalloc snapshot each time the traced memory reaches a
    new high (by 0.5 MB): the last one is what was alive at the peak. Taking a snapshot
    holds the GIL, so the measured code is paused, not changed, while it is taken."""

    def __init__(self, step: int = 500_000) -> None:
        super().__init__(name="peak-snapshot", daemon=True)
        self.step = step
        self.size = 0
        self.snapshot: tracemalloc.Snapshot | None = None
        self._done = threading.Event()

    def __enter__(self) -> PeakSnapshot:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(0.002):
            current = tracemalloc.get_traced_memory()[0]
            if current > self.size + self.step:
                self.size, self.snapshot = current, tracemalloc.take_snapshot()


def figure(ctx: Context) -> list[Row]:
    hours = 0.25 if ctx.quick else 10.0
    target_cycles = int(hours * CYCLES_PER_HOUR)
    cap = ctx.pick(420, 50)  # seconds: stop there even if the cycles are slower than planned
    say(
        f"Figure 5 - daemon memory: {HISTORY:,} ended jobs stored + {ACTIVE:,} active upstream,"
        f" {target_cycles} cycles (= {hours:g} h at a {REAL_INTERVAL_SECONDS:.0f} s interval)"
    )
    if ctx.profile:
        python_memory_by_step(ctx)
    history = generate(ctx.workdir / "memory.db", HISTORY, 3 * HISTORY, mix=ENDED_MIX)
    samples = Samples()
    with Simulator(ctx.workdir) as sim:
        active = _seed_active(sim)
        with DaemonProcess(
            ctx.workdir,
            upstream=sim.url,
            database_url=history.url,
            poll_seconds=0.05,
            log_level="info",
            name="memory-daemon",
        ) as daemon:
            started = time.monotonic()
            samples.at_start = rss_mb(daemon.pid)
            wait_until(lambda: daemon.health().get("cycles", 0) >= 1, 120, "the first cycle")
            samples.first_cycle = time.monotonic() - started
            samples.after_first = rss_mb(daemon.pid)
            churn = Churn(sim, active)
            churn.start()
            try:
                while _sample(daemon, samples, started) < target_cycles + 1:
                    if time.monotonic() - started > cap:
                        break
                    if ctx.profile and len(samples.rss) == 20:
                        with sampled(
                            daemon.pid,
                            "the daemon polling 10,000 active jobs",
                            ctx.workdir / "profile-memory.txt",
                        ):
                            time.sleep(5)
                    time.sleep(0.5)
            finally:
                churn.stop.set()
                churn.join(timeout=10)
            samples.stored = daemon.health().get("jobs_by_status", {})
            samples.cancelled = churn.cancelled
    return _report(ctx, samples)


def _report(ctx: Context, s: Samples) -> list[Row]:
    at_start, after_first, stored = s.at_start, s.after_first, s.stored
    cycles = s.cycles[-1] if s.cycles else 0
    warm = cycles // 2  # the first half settles (caches, allocator arenas); then flat?
    kept = [(c, r) for c, r in zip(s.cycles, s.rss, strict=True) if c >= warm]
    per_thousand = 1000 * slope([c for c, _ in kept], [r for _, r in kept])
    peak = max([at_start, after_first, *s.rss])
    end = s.rss[-1] if s.rss else after_first
    wall = s.seconds[-1] if s.seconds else 0.0
    say(
        f"  stored at the end: {sum(stored.values()):,} jobs {stored};"
        f" churn cancelled {s.cancelled}"
    )
    say(
        f"  first cycle (discovers {ACTIVE:,} active): {s.first_cycle:.1f} s; then {cycles} cycles"
        f" in {wall:.0f} s ({wall / max(cycles, 1):.2f} s each), {s.failures} failed"
    )
    say(
        f"  RSS MB: at start {at_start:.1f}, after the first cycle {after_first:.1f}, "
        f"peak {peak:.1f}, end {end:.1f}; slope from cycle {warm} on: {per_thousand:+.2f} MB"
        f" per 1,000 cycles"
    )
    step = max(1, len(s.rss) // 12)
    say(
        "  cycles/RSS: "
        + ", ".join(f"{c}:{r:.1f}" for c, r in zip(s.cycles[::step], s.rss[::step], strict=True))
    )
    base = import_costs()
    say(
        "  RSS after importing (fresh process, cumulative): "
        + ", ".join(f"{name} {mb:.0f}" for name, mb in base)
    )
    hours = cycles / CYCLES_PER_HOUR
    judged = cycles >= CYCLES_PER_HOUR  # an hour at least; --quick polls a quarter of one
    return [
        Row(
            "5. daemon RSS, 100k jobs / 10k active, peak",
            f"{peak:.1f} MB (start {at_start:.1f}, end {end:.1f})",
            f"<= {PEAK_TARGET_MB:.0f} MB",
            peak <= PEAK_TARGET_MB,
        ),
        Row(
            f"5. RSS growth over {cycles} cycles (= {hours:.2g} h at 60 s)",
            f"{per_thousand:+.2f} MB / 1,000 cycles"
            + ("" if judged else " (too few cycles to judge: see a full run)"),
            f"<= {SLOPE_TARGET:.0f} MB / 1,000 cycles over >= 1 h",
            per_thousand <= SLOPE_TARGET and s.failures == 0 if judged else None,
        ),
        Row(
            "5. ref: RSS of the bare imports",
            f"{base[-1][1]:.1f} MB (python alone {base[0][1]:.1f})",
        ),
    ]
