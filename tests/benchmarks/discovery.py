"""Figure 7: discovery after a burst of ended jobs, and the local API's reads meanwhile.

    python -m tests.benchmarks.discovery [--quick]
    (or: python -m tests.benchmarks.run --only discovery)

The simulator (a subprocess) holds 50 jobs that stay queued; ``batchwatch serve`` (a
subprocess, SQLite) polls it every 0.3 s. Then 5,000 jobs are created that run for a few
seconds and all end at the same instant: the daemon sees them running, then ended. Once
the burst is recorded, 4 client processes read the local API back to back (2 a job's
transitions, 2 a page of the ``status=SUCCESS`` list) while the daemon keeps polling.

Requests per cycle come from the simulator's own request log (``/_sim/requests``), cut
into cycles by the daemon's ``poll_finished`` log lines; a cycle's discovery requests are
its list requests less its active-list pages. The 5,000 jobs stay inside discovery's
2-minute overlap for the whole run, so before discovery stopped at the first page of
known jobs every cycle re-read all 50 of their pages. Targets (issue 10): 1 discovery
request per cycle once the burst is recorded, transitions p99 <= 10 ms, list page p99 <=
20 ms. For scale, in the same run: the same reads of the same database from a daemon that
is not polling, and the same clients on a path no route serves.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tests.benchmarks.common import (
    Context,
    DaemonProcess,
    Row,
    Simulator,
    median,
    percentile,
    run_alone,
    say,
)
from tests.benchmarks.profiling import sampled
from tests.processes import wait_until

BURST = 5_000
QUEUED = 50
PAGE_SIZE = 100  # the daemon's
RUN_SECONDS = 6.0  # long enough for the daemon to record the burst's jobs running
POLL_SECONDS = 0.3
CLIENTS = 4


@dataclass(frozen=True, slots=True)
class Cycle:
    """One poll cycle of the daemon, as the simulator saw it."""

    finished: float  # epoch seconds
    listed: int
    discovered: int
    lists: int  # GET /v1/batch/jobs requests
    gets: int  # GET /v1/batch/jobs/{job_id} requests

    @property
    def discovery_requests(self) -> int:
        return self.lists - max(1, math.ceil(self.listed / PAGE_SIZE))


def _cycles(sim: Simulator, daemon: DaemonProcess) -> list[Cycle]:
    """Every finished cycle with the upstream requests that arrived since the one before."""
    finished = []
    # Flat JSON objects; found in the text rather than line by line, because a line still
    # being written (or two writers' lines run together) must not stop the count.
    for found in re.finditer(r'\{[^{}]*"event": "poll_finished"[^{}]*\}', daemon.log.read_text()):
        event = json.loads(found.group(0))
        at = datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        finished.append((at, int(event["listed"]), int(event["discovered"])))
    log = sim.session.get(f"{sim.url}/_sim/requests", timeout=30).json()
    arrivals = [(float(r["at"]), r["route"]) for r in log["requests"]]
    cycles, start = [], 0.0
    for at, listed, discovered in finished:
        routes = [route for when, route in arrivals if start < when <= at]
        lists = routes.count("GET /v1/batch/jobs")
        gets = routes.count("GET /v1/batch/jobs/{job_id}")
        cycles.append(Cycle(at, listed, discovered, lists, gets))
        start = at
    return cycles


def _read_clients(
    daemon: DaemonProcess, workdir: Path, kinds: dict[str, list[str]], samples: int, expect: str
) -> dict[str, list[float]]:
    """``CLIENTS`` processes reading back to back, in turn on each kind of path; their
    latencies (ms) by kind."""
    procs = []
    for n in range(CLIENTS):
        kind = list(kinds)[n % len(kinds)]
        paths = workdir / f"discovery-paths-{n}.txt"
        paths.write_text("\n".join(kinds[kind]) + "\n")
        args = [
            *("-m", "tests.benchmarks.loadgen", "latency", "--url", daemon.url),
            *("--token-file", str(daemon.token_file), "--paths", str(paths)),
            *("--samples", str(samples), "--warmup", "20"),
        ]
        procs.append((kind, subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE)))
    found: dict[str, list[float]] = {kind: [] for kind in kinds}
    for kind, proc in procs:
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"a read client failed with {proc.returncode}")
        result = json.loads(out)
        if set(result["statuses"]) != {expect}:
            raise RuntimeError(f"{kind} reads answered {result['statuses']}")
        found[kind] += result["latencies_ms"]
    return found


def _reads(ids: list[str]) -> dict[str, list[str]]:
    rng = random.Random(7)
    return {
        "transitions": [f"/v1/batch/jobs/{job_id}/transitions" for job_id in rng.sample(ids, 500)],
        "list page": [
            f"/v1/batch/jobs?status=SUCCESS&page_size={PAGE_SIZE}&page={page}"
            for page in range(BURST // PAGE_SIZE)
        ],
    }


def _recorded(daemon: DaemonProcess) -> int:
    return int(daemon.get("/v1/batch/jobs?status=SUCCESS&page_size=1")["total"])


def figure(ctx: Context) -> list[Row]:
    say(
        f"Figure 7 - discovery after {BURST:,} jobs ended at once ({QUEUED} queued; poll every"
        f" {POLL_SECONDS} s; {CLIENTS} read clients)"
    )
    database = f"sqlite:///{ctx.workdir / 'discovery.db'}"
    samples = ctx.pick(1000, 500)
    with Simulator(ctx.workdir) as sim:
        sim.seed(QUEUED, total_requests=10)
        with DaemonProcess(
            ctx.workdir,
            upstream=sim.url,
            database_url=database,
            poll_seconds=POLL_SECONDS,
            log_level="info",
            name="discovery-daemon",
        ) as daemon:
            wait_until(lambda: daemon.health().get("cycles", 0) >= 1, 60, "the first cycle")
            ids = sim.seed(BURST, total_requests=10, queue_seconds=0, run_seconds=RUN_SECONDS)
            wait_until(lambda: _recorded(daemon) == BURST, 60, "the burst to be recorded")
            ended_at = sim.history(ids[0])[-1][1]  # every one of them ends at this instant
            time.sleep(1.0)  # a few cycles after it
            reading = time.time()
            latencies = _read_clients(daemon, ctx.workdir, _reads(ids), samples, "200")
            reading_until = time.time()
            cycles = _cycles(sim, daemon)
            if ctx.profile:  # a run of its own: sampling slows the daemon down
                out = ctx.workdir / "profile-discovery.txt"
                with sampled(daemon.pid, "the polling daemon under the 4 read clients", out):
                    _read_clients(daemon, ctx.workdir, _reads(ids), samples // 2, "200")
        # For scale: the same reads of the same database from a daemon that is not polling
        # (its one cycle at start-up done), and the same clients on a path no route serves.
        with DaemonProcess(
            ctx.workdir, upstream=sim.url, database_url=database, name="discovery-idle"
        ) as idle:
            wait_until(lambda: idle.health().get("cycles", 0) >= 1, 60, "the first cycle")
            quiet = _read_clients(idle, ctx.workdir, _reads(ids), samples // 2, "200")
            floor = {"no route": ["/v1/no-such-route"]}
            quiet |= _read_clients(idle, ctx.workdir, floor, samples // 2, "404")
    return _report(cycles, latencies, quiet, ended_at, (reading, reading_until))


def _report(
    cycles: list[Cycle],
    latencies: dict[str, list[float]],
    quiet: dict[str, list[float]],
    ended_at: float,
    reading: tuple[float, float],
) -> list[Row]:
    catch_up = [c for c in cycles if ended_at < c.finished <= reading[0]]
    steady = [c for c in cycles if reading[0] < c.finished <= reading[1]]
    first = max(catch_up, key=lambda c: c.discovery_requests)
    per_cycle = [c.discovery_requests for c in steady]
    say(
        f"  catch-up after the burst: {len(catch_up)} cycle(s), discovery requests (a cycle"
        f" whose active pages shifted under the burst counts its empty ones here)"
        f" {[c.discovery_requests for c in catch_up]}, gets {sum(c.gets for c in catch_up)};"
        f" the busiest read {first.discovered:,} ended jobs in {first.discovery_requests} pages"
    )
    say(
        f"  while reading ({reading[1] - reading[0]:.0f} s): {len(steady)} cycles, discovery"
        f" requests per cycle min {min(per_cycle)} / median {median(per_cycle):.0f} / max"
        f" {max(per_cycle)}; jobs parsed per cycle (median)"
        f" {median([c.discovered for c in steady]):.0f} (every cycle read"
        f" {first.discovery_requests} pages before: the burst is in the overlap)"
    )
    p99 = {kind: percentile(millis, 99) for kind, millis in latencies.items()}
    for label, found in (("polling every 0.3 s", latencies), ("not polling", quiet)):
        for kind, millis in found.items():
            say(
                f"  {kind}, {label}: {len(millis)} reads, p50 {percentile(millis, 50):.1f} ms,"
                f" p99 {percentile(millis, 99):.1f} ms, max {max(millis):.1f} ms"
            )
    say()

    def scale(kind: str) -> str:
        return (
            f" (not polling: {percentile(quiet[kind], 99):.1f} ms; no route:"
            f" {percentile(quiet['no route'], 99):.1f} ms)"
        )

    return [
        Row(
            "7. discovery requests per cycle after a 5,000-job burst",
            f"{max(per_cycle)} (max of {len(steady)} cycles; catch-up {first.discovery_requests})",
            "1",
            max(per_cycle) == 1,
        ),
        Row(
            "7. transitions p99 while polling every 0.3 s",
            f"{p99['transitions']:.1f} ms{scale('transitions')}",
            "<= 10 ms",
            p99["transitions"] <= 10,
        ),
        Row(
            "7. list page p99 while polling every 0.3 s",
            f"{p99['list page']:.1f} ms{scale('list page')}",
            "<= 20 ms",
            p99["list page"] <= 20,
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer read samples")
    parser.add_argument("--profile", action="store_true", help="show where the daemon's time goes")
    args = parser.parse_args(argv)
    return run_alone(figure, args.quick, args.profile)


if __name__ == "__main__":
    sys.exit(main())
