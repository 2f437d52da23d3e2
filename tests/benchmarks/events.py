"""Figure 10: events delivered to a webhook, live and from a backlog.

    python -m tests.benchmarks.events [--quick] [--profile]
    (or: python -m tests.benchmarks.run --only events)

The receiver is ``tests/receiver.py`` (a ``ThreadingHTTPServer`` on loopback, in this
process, checking every signature); the simulator and ``batchwatch serve`` (SQLite, one
``[[webhooks]]`` endpoint) are subprocesses.

First the receiver alone: signed POSTs from a client process on 8 kept-alive connections,
its most deliveries a second, so that a throughput miss can be told from the receiver's.

Latency: 1,000 jobs run upstream while the daemon polls every 0.5 s; 400 more are created
in 20 waves half a second apart, each wave queued 0.5-3 s and run 2-10 s, and the
receiver collects their events (about 5 a job: its first sighting, RUNNING, SUCCESS,
job.finished, and job.results_ready once the daemon has fetched its files). Each event's
latency is its arrival at the receiver minus its ``occurred_at``: the instant the poll
observed the change, a little before the transition's commit, so the figure is an upper
bound of commit-to-2xx (the poll's own lag behind the upstream change is not in it).

Backlog: a database filled before the daemon starts, through the store's own write path:
the endpoint registered first (cursor 0: it takes every event), 1,000 jobs running
upstream recorded, then events up to 100,000 in the outbox, round robin over the jobs.
The daemon starts on it, polling those jobs every second, and drains the backlog; measured:
deliveries a second from the daemon's spawn to the last event's first arrival, its RSS
(VmRSS every 50 ms, from the moment its API answers) at its peak, and at the receiver
duplicates, events of a job out of order and unverified signatures.

Targets (issue 12): latency p99 <= 1 s, >= 500 deliveries/s, RSS <= 100 MB while draining.
``--quick``: 200 running and 150 moving jobs, a 10,000-event backlog.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson
from standardwebhooks.webhooks import Webhook

from batchwatch.events import Event, EventType, event_body, new_event, transition_data
from batchwatch.models import JobOrigin, JobStatus, Transition
from batchwatch.store import Store
from batchwatch.store import events as stored_events
from batchwatch.transitions import plan
from tests.benchmarks.common import (
    Context,
    DaemonProcess,
    Row,
    Simulator,
    percentile,
    rss_mb,
    run_alone,
    run_json,
    say,
)
from tests.benchmarks.profiling import sampled
from tests.benchmarks.results import RssSampler
from tests.helpers import remote
from tests.processes import wait_until
from tests.receiver import Received, Receiver, make_secret

POLL_SECONDS = 0.5
ACTIVE = 1_000
WAVES = 20
WAVE_JOBS = 20
WAVE_GAP = 0.5
BACKLOG = 100_000
BACKLOG_JOBS = 1_000
BACKLOG_POLL_SECONDS = 1.0
#: Events written a transaction while the backlog is filled.
FILL_CHUNK = 10_000
#: The receiver alone: requests and kept-alive connections of the client.
BLAST = 20_000
BLAST_CONNECTIONS = 8


def _webhook(url: str, secret_file: Path) -> str:
    return f'[[webhooks]]\nurl = "{url}"\nsecret_file = "{secret_file}"\n'


def _first_arrivals(receiver: Receiver) -> dict[str, Received]:
    """Each event's first 2xx arrival, by ``webhook-id`` (a redelivery is a duplicate)."""
    found: dict[str, Received] = {}
    for r in receiver.delivered():
        found.setdefault(r.headers["webhook-id"], r)
    return found


def figure(ctx: Context) -> list[Row]:
    say(
        "Figure 10 - events to a webhook on loopback: latency while polling, and the drain"
        " of a backlog"
    )
    secret_file = ctx.workdir / "webhook-secret"
    secret = make_secret(secret_file)
    alone = _receiver_alone(secret, secret_file, ctx.pick(BLAST, BLAST // 4))
    latencies = _latency(ctx, secret, secret_file)
    drain = _drain(ctx, secret, secret_file, ctx.pick(BACKLOG, BACKLOG // 10))
    return _report(alone, latencies, drain)


# ---- the receiver alone ----------------------------------------------------------------


def _receiver_alone(secret: str, secret_file: Path, count: int) -> float:
    """The receiver's most deliveries a second, from a client process."""
    receiver = Receiver(secret)
    try:
        args = ["-m", "tests.benchmarks.events", "--blast", receiver.url]
        args += ["--secret-file", str(secret_file), "--count", str(count)]
        done = run_json(args, timeout=300)
        answered = len(receiver.delivered())
    finally:
        receiver.close()
    rate = float(done["sent"]) / float(done["seconds"])
    say(
        f"  receiver alone: {done['sent']:,} signed POSTs on {BLAST_CONNECTIONS} connections in"
        f" {done['seconds']:.1f} s ({rate:,.0f}/s; {answered:,} answered 2xx)"
    )
    return rate


def _blast(url: str, secret_file: Path, count: int) -> dict[str, Any]:
    """Send ``count`` signed events to ``url`` on ``BLAST_CONNECTIONS`` kept-alive
    connections, ``http.client`` (the lightest Python client); signed beforehand, so the
    client's own CPU stays small beside the receiver's."""
    signer = Webhook(secret_file.read_text().strip())
    now = datetime.now(UTC)
    prepared = []
    for n in range(min(count, 2_000)):
        event = _backlog_event(f"job-{n % 100}", n, now)
        body = orjson.dumps(event_body(event), option=orjson.OPT_UTC_Z)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(event.id, now, body.decode()),
        }
        prepared.append((body, headers))
    parts = urlsplit(url)
    failed: list[int] = []

    def client(lane: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        for n in range(lane, count, BLAST_CONNECTIONS):
            body, headers = prepared[n % len(prepared)]
            conn.request("POST", parts.path, body=body, headers=headers)
            answer = conn.getresponse()
            answer.read()
            if answer.status >= 300:
                failed.append(answer.status)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(BLAST_CONNECTIONS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"sent": count, "seconds": time.perf_counter() - started, "failed": len(failed)}


# ---- latency while polling -------------------------------------------------------------


def _latency(ctx: Context, secret: str, secret_file: Path) -> list[float]:
    """Seconds from each event's ``occurred_at`` to its first arrival at the receiver."""
    active, waves, per_wave = ctx.pick(ACTIVE, 200), ctx.pick(WAVES, 10), ctx.pick(WAVE_JOBS, 15)
    rng = random.Random(10)
    receiver = Receiver(secret)
    try:
        with Simulator(ctx.workdir) as sim:
            sim.seed(active, queue_seconds=0, run_seconds=3600, total_requests=1000)
            with DaemonProcess(
                ctx.workdir,
                upstream=sim.url,
                database_url=f"sqlite:///{ctx.workdir / 'events-live.db'}",
                poll_seconds=POLL_SECONDS,
                name="events-live",
                extra=_webhook(receiver.url, secret_file),
            ) as daemon:
                wait_until(lambda: daemon.health().get("cycles", 0) >= 3, 120, "three cycles")
                _settle(receiver)  # the running jobs' first sightings, if delivered
                moving: set[str] = set()
                for _ in range(waves):
                    queue, run = rng.uniform(0.5, 3.0), rng.uniform(2.0, 10.0)
                    moving |= set(sim.seed(per_wave, queue_seconds=queue, run_seconds=run))
                    time.sleep(WAVE_GAP)
                wait_until(
                    lambda: _finished(receiver) >= moving, 180, "every moving job's job.finished"
                )
                time.sleep(2 * POLL_SECONDS)
    finally:
        receiver.close()
    arrivals = [r for r in _first_arrivals(receiver).values() if r.body["job_id"] in moving]
    seconds = [r.at - datetime.fromisoformat(r.body["occurred_at"]).timestamp() for r in arrivals]
    say(
        f"  latency: {len(seconds):,} events of {len(moving)} jobs moving beside {active:,}"
        f" running, polled every {POLL_SECONDS} s: occurred_at to arrival p50"
        f" {percentile(seconds, 50) * 1000:.0f} ms, p99 {percentile(seconds, 99) * 1000:.0f} ms,"
        f" max {max(seconds) * 1000:.0f} ms"
    )
    return seconds


def _settle(receiver: Receiver, quiet: float = 2.0) -> None:
    """Wait until nothing has arrived for ``quiet`` seconds."""
    seen, since = -1, time.monotonic()
    while time.monotonic() - since < quiet:
        if len(receiver.received) != seen:
            seen, since = len(receiver.received), time.monotonic()
        time.sleep(0.1)


def _finished(receiver: Receiver) -> set[str]:
    return {r.body["job_id"] for r in receiver.delivered() if r.body["type"] == "job.finished"}


# ---- a backlog drained -----------------------------------------------------------------


class Drain(NamedTuple):
    events: int
    seconds: float  # from the daemon's spawn to the last event's first arrival
    first_to_last: float  # from the first arrival to the last
    rss_start: float
    rss_peak: float
    cpu: float  # the daemon's CPU seconds (all threads) from its API's answer to the end
    cpu_wall: float  # the seconds that CPU time was counted over
    duplicates: int
    out_of_order: int  # jobs whose events arrived out of outbox order
    unverified: int


def _backlog_event(job_id: str, n: int, at: datetime) -> Event:
    """A ``job.transitioned`` event of the size and shape the poller records."""
    t = Transition(job_id, n + 2, JobStatus.QUEUED, JobStatus.RUNNING, at, at)
    return new_event(EventType.TRANSITIONED, job_id, at, transition_data(t))


def _fill(database_url: str, endpoint: str, job_ids: Sequence[str], total: int) -> None:
    """The endpoint, the jobs (running), and events up to ``total`` in the outbox."""
    store = Store(database_url)
    try:
        store.migrate()
        stored_events.register(store, endpoint)  # at cursor 0: it takes every event below
        at = datetime.now(UTC)
        with store.write() as w:
            observed = [remote("RUNNING", job_id=i) for i in job_ids]
            w.apply(plan(w.load(job_ids), observed, at), at, JobOrigin.DISCOVERED)
        left = total - stored_events.newest_seq(store)  # the first sightings' events
        for start in range(0, left, FILL_CHUNK):
            found = [
                _backlog_event(job_ids[n % len(job_ids)], n, at)
                for n in range(start, min(left, start + FILL_CHUNK))
            ]
            with store.write() as w:
                w.record_events(found)
        assert stored_events.newest_seq(store) == total
    finally:
        store.close()


def _drain(ctx: Context, secret: str, secret_file: Path, total: int) -> Drain:
    receiver = Receiver(secret)
    database = f"sqlite:///{ctx.workdir / 'events-backlog.db'}"
    try:
        with Simulator(ctx.workdir) as sim:
            job_ids = sim.seed(BACKLOG_JOBS, queue_seconds=0, run_seconds=3600, total_requests=10)
            filling = time.perf_counter()
            _fill(database, receiver.url, job_ids, total)
            fill_seconds = time.perf_counter() - filling
            written = f"{total:,} events of {len(job_ids):,} jobs written"
            say(f"  backlog: {written} in {fill_seconds:.1f} s")
            spawned = time.time()
            with DaemonProcess(
                ctx.workdir,
                upstream=sim.url,
                database_url=database,
                poll_seconds=BACKLOG_POLL_SECONDS,
                name="events-backlog",
                extra=_webhook(receiver.url, secret_file),
            ) as daemon:
                sampler = RssSampler(daemon.pid)
                rss_start = rss_mb(daemon.pid)
                cpu_start, cpu_since = _cpu_seconds(daemon.pid), time.monotonic()
                sampler.start()
                if ctx.profile:
                    out = ctx.workdir / "profile-events.txt"
                    with sampled(daemon.pid, "the daemon draining the backlog", out):
                        _wait_all(receiver, total)
                else:
                    _wait_all(receiver, total)
                cpu = _cpu_seconds(daemon.pid) - cpu_start
                cpu_wall = time.monotonic() - cpu_since
                sampler.done.set()
                sampler.join()
    finally:
        receiver.close()
    first = _first_arrivals(receiver)
    arrivals = sorted(r.at for r in first.values())
    return Drain(
        events=len(first),
        seconds=arrivals[-1] - spawned,
        first_to_last=arrivals[-1] - arrivals[0],
        rss_start=rss_start,
        rss_peak=max(rss_start, sampler.peak),
        cpu=cpu,
        cpu_wall=cpu_wall,
        duplicates=len(receiver.delivered()) - len(first),
        out_of_order=_out_of_order(receiver.delivered()),
        unverified=sum(not r.verified for r in receiver.received),
    )


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, every thread, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_all(receiver: Receiver, total: int) -> None:
    def done() -> bool:
        # The cheap length first: the set of ids is built only once it can be complete.
        return len(receiver.received) >= total and len(_first_arrivals(receiver)) >= total

    wait_until(done, 120 + total / 50, f"{total:,} events at the receiver")


def _out_of_order(arrived: Sequence[Received]) -> int:
    """Jobs whose events' first arrivals are not in ``seq`` order."""
    last: dict[str, int] = {}
    seen: set[str] = set()
    bad: set[str] = set()
    for r in arrived:
        event_id, job_id, seq = r.headers["webhook-id"], r.body["job_id"], int(r.body["seq"])
        if event_id in seen:
            continue
        seen.add(event_id)
        if seq < last.get(job_id, 0):
            bad.add(job_id)
        last[job_id] = seq
    return len(bad)


# ---- the table -------------------------------------------------------------------------


def _report(alone: float, latencies: list[float], drain: Drain) -> list[Row]:
    rate = drain.events / drain.seconds
    say(
        f"  drain: {drain.events:,} events delivered {drain.seconds:.1f} s after the daemon's"
        f" spawn ({rate:,.0f}/s; {drain.events / drain.first_to_last:,.0f}/s from the first"
        f" arrival to the last)"
    )
    say(
        f"  daemon RSS: {drain.rss_start:.1f} MB when it answered, peak {drain.rss_peak:.1f} MB"
        f" while draining"
    )
    say(
        f"  daemon CPU while draining: {drain.cpu:.1f} s in {drain.cpu_wall:.1f} s"
        f" ({drain.cpu / drain.cpu_wall:.0%} of one core; one Python process, one GIL)"
    )
    say(
        f"  at the receiver: {drain.duplicates} duplicates, {drain.out_of_order} jobs out of"
        f" order, {drain.unverified} signatures not verified"
    )
    say()
    p99 = percentile(latencies, 99)
    correct = drain.out_of_order == 0 and drain.unverified == 0
    return [
        Row(
            "10. webhook latency, occurred_at to 2xx, p99 (upper bound)",
            f"{p99 * 1000:.0f} ms ({len(latencies):,} events)",
            "<= 1 s",
            p99 <= 1.0,
        ),
        Row(
            f"10. backlog of {drain.events:,} events, deliveries/s from spawn",
            f"{rate:,.0f}/s ({drain.seconds:.1f} s)",
            ">= 500/s",
            rate >= 500,
        ),
        Row(
            "10. daemon RSS peak while draining the backlog",
            f"{drain.rss_peak:.1f} MB",
            "<= 100 MB",
            drain.rss_peak <= 100,
        ),
        Row(
            "10. drained events out of order per job / unverified",
            f"{drain.out_of_order} / {drain.unverified} ({drain.duplicates} duplicates)",
            "0 / 0",
            correct,
        ),
        Row("10. the receiver alone, signed POSTs/s", f"{alone:,.0f}/s"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 10,000-event backlog")
    parser.add_argument("--profile", action="store_true", help="where the drain's time goes")
    # The client of the receiver-alone measurement, run as a process of its own.
    parser.add_argument("--blast", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--secret-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=BLAST, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.blast:
        print(json.dumps(_blast(args.blast, args.secret_file, args.count)))
        return 0
    return run_alone(figure, args.quick, args.profile)


if __name__ == "__main__":
    sys.exit(main())
