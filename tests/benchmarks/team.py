"""Figure 13: team mode's takeover time, and what a team costs upstream.

    python -m tests.benchmarks.team [--quick]
    (or: python -m tests.benchmarks.run --only team)

Three ``batchwatch serve`` processes on one PostgreSQL schema (``BATCHWATCH_TEST_DATABASE_URL``;
without it the figure is not measured) and the simulator, 200 jobs running for the whole
run. The leader is SIGKILLed (6 times; 2 with ``--quick``), SIGSTOPped (2; 1) and stopped
with SIGTERM (2; 1), one at a time, the others left to take over. A takeover is the time
from the signal to the next request the simulator receives (only a leader sends any): the
target is the lease plus one poll interval (5 s + 1 s here; the defaults are 15 s and
60 s). A SIGTERM releases the lease, so its takeover is one tick (at most a second).
Requests per cycle: list requests per poll cycle, one daemon alone and then three.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
import uuid
from functools import partial
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from tests.benchmarks.common import Context, Row, run_alone, say
from tests.conftest import postgres_url
from tests.processes import DaemonProcess, Simulator, stop, wait_until
from tests.teams import first_request_after, has_role, leader_of, member, per_cycle

LEASE = 5.0
POLL = 1.0
JOBS = 200


def figure(ctx: Context) -> list[Row]:
    base = postgres_url()
    if base is None:
        return [Row("team: takeover", "not measured: BATCHWATCH_TEST_DATABASE_URL unset")]
    schema = f"bw_team_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}options=-csearch_path%3D{schema}"
    work = ctx.workdir / "team"
    work.mkdir(exist_ok=True)
    sim = Simulator(work)
    daemons: list[DaemonProcess] = []
    try:
        return _measure(ctx, work, sim, url, daemons)
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGCONT)
                stop(d.proc)
        stop(sim.proc)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _measure(
    ctx: Context, work: Path, sim: Simulator, url: str, daemons: list[DaemonProcess]
) -> list[Row]:
    seed = {"sim_queue_seconds": "1", "sim_run_seconds": "3600"}
    requests.post(
        f"{sim.url}/_sim/jobs/bulk", json={"count": JOBS, "metadata": seed}, timeout=60
    ).raise_for_status()
    daemons.append(member(work, "t0", sim, url, lease=LEASE, poll=POLL))
    time.sleep(2 * POLL)
    started = time.time()
    time.sleep(8 * POLL)
    alone = per_cycle(sim, daemons, started, time.time())
    for name in ("t1", "t2"):
        daemons.append(member(work, name, sim, url, lease=LEASE, poll=POLL))
    started = time.time()
    time.sleep(8 * POLL)
    together = per_cycle(sim, daemons, started, time.time())
    say(f"  list requests per cycle: one daemon {alone:.2f}, three {together:.2f}")

    plan = ["kill"] * ctx.pick(6, 2) + ["stop"] * ctx.pick(2, 1) + ["term"] * ctx.pick(2, 1)
    taken: dict[str, list[float]] = {"kill": [], "stop": [], "term": []}
    for n, how in enumerate(plan):
        leader = leader_of(daemons)
        time.sleep(1.0 + (n % 3) * LEASE / 3)  # at different points of the renewal rhythm
        began = time.time()
        signum = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP, "term": signal.SIGTERM}[how]
        leader.proc.send_signal(signum)
        others = [d for d in daemons if d is not leader]
        wait_until(partial(has_role, others, "leader"), 60, "a takeover")
        first = first_request_after(sim, began)
        taken[how].append(first - began)
        say(f"  {how}: takeover {first - began:.2f} s")
        if how == "stop":
            time.sleep(1.0)
            leader.proc.send_signal(signal.SIGCONT)
            wait_until(partial(has_role, [leader], "follower"), 60, "the thawed one to follow")
        else:
            leader.proc.wait(timeout=20)
            leader.start()
    bound = LEASE + POLL
    rows = [
        Row(
            f"team: takeover after {how} (n={len(times)})",
            f"median {statistics.median(times):.2f} s, worst {max(times):.2f} s",
            f"<= {bound:.0f} s" if how != "term" else "<= 1 s",
            max(times) <= (bound if how != "term" else 1.0),
        )
        for how, times in taken.items()
        if times
    ]
    rows.append(
        Row(
            "team: list requests per cycle, 3 daemons vs 1",
            f"{together:.2f} vs {alone:.2f}",
            "the same",
            together <= alone * 1.1,
        )
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.team")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    return run_alone(figure, quick=args.quick)


if __name__ == "__main__":
    sys.exit(main())
