"""Team mode with real processes on the machine's PostgreSQL: three ``batchwatch serve`` on one
database while 100 jobs progress on the simulator and a receiver takes their webhooks. The
leader is SIGKILLed five times and SIGSTOPped once. Afterwards every job's history is the
simulator's truth (a status may only be missing if it came and went while no leader was
up), no transition is recorded twice, every event reached the receiver (duplicates, which
at-least-once allows, are counted), and the team asked the simulator no more per cycle than
one daemon does. Besides: the leader cut off from the database, and two daemons started
together on a new database.

Run with ``-s`` to see the figures: takeover times, duplicates, requests per cycle."""

from __future__ import annotations

import itertools
import json
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from tests.integration.test_webhooks import webhook_toml
from tests.processes import (
    API_KEY,
    Simulator,
    free_port,
    is_subsequence,
    spawn,
    stop,
    unobserved,
    wait_until,
)
from tests.proxy import TcpProxy
from tests.receiver import Answer, Receiver, make_secret
from tests.teams import (
    first_request_after,
    has_role,
    leader_of,
    log_events,
    member,
    per_cycle,
    query,
    role,
    team_toml,
)

pytestmark = [pytest.mark.acceptance, pytest.mark.postgres]

LEASE = 2.0
POLL = 0.5
JOBS = 100
KILLS = 5
KEY = {"MISTRAL_API_KEY": API_KEY}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    simulator = Simulator(tmp_path)
    yield simulator
    stop(simulator.proc)


def seed_jobs(sim: Simulator) -> list[str]:
    """100 jobs in five groups that queue, run and end at different times."""
    import requests

    ids: list[str] = []
    outcomes = ["SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "SUCCESS", "SUCCESS"]
    for n, outcome in enumerate(outcomes):
        metadata = {
            "sim_queue_seconds": str(0.5 + 2 * n),
            "sim_run_seconds": str(4 + 4 * n),
            "sim_outcome": outcome,
        }
        response = requests.post(
            f"{sim.url}/_sim/jobs/bulk",
            json={"count": JOBS // 5, "total_requests": 40, "metadata": metadata},
            timeout=30,
        )
        response.raise_for_status()
        ids += response.json()["ids"]
    return ids


def test_three_daemons_survive_their_leader_killed_and_frozen(
    tmp_path: Path, sim: Simulator, pg_schema_url: str
) -> None:
    rng = random.Random(20261203)
    url = pg_schema_url
    secret_file = tmp_path / "webhook.secret"
    receiver = Receiver(make_secret(secret_file), answer=Answer(200, delay=0.02))
    hooks = webhook_toml(receiver.url, secret_file)
    seeded = time.time()
    ids = seed_jobs(sim)
    first = member(tmp_path, "d0", sim, url, lease=LEASE, poll=POLL, extra=hooks)
    daemons = [first]
    takeovers: list[float] = []
    try:
        wait_until(lambda: log_events(first, "poll_finished"), 20, "the first cycle")
        # Nobody watched before the first cycle.
        blind = [(seeded, log_events(first, "poll_finished")[0])]
        # One daemon alone: what a cycle costs upstream.
        time.sleep(1.0)
        t = time.time()
        time.sleep(2.5)
        alone = per_cycle(sim, daemons, t, time.time())
        daemons += [
            member(tmp_path, f"d{n}", sim, url, lease=LEASE, poll=POLL, extra=hooks) for n in (1, 2)
        ]
        time.sleep(0.5)
        t = time.time()
        time.sleep(2.5)
        together = per_cycle(sim, daemons, t, time.time())
        assert [role(d) for d in daemons] == ["leader", "follower", "follower"]

        frozen_at = rng.randrange(KILLS + 1)
        for n in range(KILLS + 1):
            leader = leader_of(daemons)
            time.sleep(rng.uniform(0.5, 2.5))
            began = time.time()
            freeze = n == frozen_at
            leader.proc.send_signal(signal.SIGSTOP if freeze else signal.SIGKILL)
            if not freeze:
                leader.proc.wait(timeout=10)
            others = [d for d in daemons if d is not leader]
            wait_until(partial(has_role, others, "leader"), 30, "a new leader")
            first_request = first_request_after(sim, began)
            takeovers.append(first_request - began)
            # The old leader's last cycle may have read and not written: blind from there.
            blind.append((began - 2 * POLL, first_request + POLL))
            if freeze:
                time.sleep(LEASE)
                leader.proc.send_signal(signal.SIGCONT)
                wait_until(partial(has_role, [leader], "follower"), 30, "the thawed one to follow")
            else:
                leader.start()  # back, as a follower
        wait_until(lambda: daemons[0].all_ended(JOBS), 120, "every job to end")
        wait_until(lambda: settled(url, receiver), 120, "every event delivered")
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.proc.send_signal(signal.SIGCONT)
                d.terminate()
        receiver.close()

    # Histories: the simulator's truth, but what no leader could see.
    duplicates_recorded = 0
    checked = 0
    rows = query(
        url,
        "SELECT job_id, seq, to_status, to_provider_status FROM transitions ORDER BY job_id, seq",
    )
    history: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        history.setdefault(row["job_id"], []).append(row)
    assert set(history) == set(ids)
    for job_id in ids:
        its = history[job_id]
        assert [r["seq"] for r in its] == list(range(1, len(its) + 1))
        duplicates_recorded += sum(
            1 for a, b in itertools.pairwise(its) if a["to_status"] == b["to_status"]
        )
        recorded = [r["to_status"] for r in its]
        truth = sim.truth(job_id)
        assert is_subsequence(recorded, [s for s, _ in truth]), (job_id, recorded, truth)
        assert recorded[-1] == truth[-1][0]
        assert unobserved(truth, recorded, blind) == [], (job_id, recorded, truth, blind)
        checked += len(recorded)
    assert duplicates_recorded == 0

    # Events: every one recorded reached the receiver, verified; repeats counted.
    events = query(url, "SELECT id FROM events ORDER BY seq")
    received = list(receiver.received)
    arrived = {r.headers["webhook-id"] for r in received}
    assert {e["id"] for e in events} <= arrived
    assert arrived <= {e["id"] for e in events}
    assert all(r.verified for r in received)
    repeats = len(received) - len(arrived)

    # Requests per cycle: three daemons cost what one does.
    assert together <= alone * 1.2, (alone, together)
    for d in daemons:
        assert "Traceback" not in d.log.read_text()
    worst = max(takeovers)
    print(
        f"\nteam of 3, {JOBS} jobs, leader SIGKILLed {KILLS}x and SIGSTOPped once:"
        f" takeover median {statistics.median(takeovers):.2f} s, worst {worst:.2f} s"
        f" (lease {LEASE} s, poll {POLL} s; each: {', '.join(f'{x:.2f}' for x in takeovers)});"
        f" {checked} transitions checked, {duplicates_recorded} recorded twice;"
        f" {len(events)} events, {len(received)} deliveries received, {repeats} repeats;"
        f" requests per cycle alone {alone:.2f}, with three daemons {together:.2f}"
    )
    # Within the lease plus a poll interval, with room for a loaded machine.
    assert worst < 2 * (LEASE + POLL), takeovers


def settled(url: str, receiver: Receiver) -> bool:
    """Every recorded event delivered, and received."""
    rows = query(
        url, "SELECT e.id, d.state FROM events e LEFT JOIN deliveries d ON d.event_seq = e.seq"
    )
    arrived = {r.headers["webhook-id"] for r in receiver.delivered()}
    return bool(rows) and all(r["state"] == "delivered" and r["id"] in arrived for r in rows)


def test_a_leader_cut_off_from_the_database_stops_and_another_takes_over(
    tmp_path: Path, sim: Simulator, pg_schema_url: str
) -> None:
    base = make_url(pg_schema_url)
    proxy = TcpProxy(base.port or 5432)
    through_proxy = base.set(port=proxy.port).render_as_string(hide_password=False)
    ids = seed_jobs(sim)[:20]
    cut_off = member(tmp_path, "cut", sim, through_proxy, lease=LEASE, poll=POLL)
    wait_until(lambda: role(cut_off) == "leader", 20, "the first daemon to lead")
    other = member(tmp_path, "other", sim, pg_schema_url, lease=LEASE, poll=POLL)
    assert role(other) == "follower"
    time.sleep(1.0)
    began = time.time()
    proxy.cut()
    try:
        wait_until(lambda: role(other) == "leader", 4 * LEASE, "the other daemon to take over")
        took = time.time() - began
        lost = [at for at in log_events(cut_off, "leadership_lost") if at > began]
        assert lost, "the cut-off daemon never noticed"
        time.sleep(LEASE)
        # While cut off, after it stopped leading, it started no cycle.
        late = [at for at in log_events(cut_off, "poll_finished") if at > lost[0]]
        assert late == []
        proxy.restore()
        wait_until(lambda: role(cut_off) == "follower", 20, "the cut-off daemon to follow")
        assert role(other) == "leader"
        wait_until(lambda: other.all_ended(JOBS), 120, "every job to end")
    finally:
        proxy.cut()
        stop(cut_off.proc)
        stop(other.proc)
    rows = query(
        pg_schema_url, "SELECT job_id, seq, to_status FROM transitions ORDER BY job_id, seq"
    )
    for job_id in ids:
        recorded = [r["to_status"] for r in rows if r["job_id"] == job_id]
        truth = [s for s, _ in sim.truth(job_id)]
        assert is_subsequence(recorded, truth), (job_id, recorded, truth)
        assert len(recorded) == len(set(recorded))
    print(f"\ncut off from the database: the other daemon led after {took:.2f} s")


def test_two_daemons_started_together_on_a_new_database_migrate_once(
    tmp_path: Path, sim: Simulator, pg_schema_url: str
) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        config = directory / "batchwatch.toml"
        config.write_text(
            f'[mistral]\nserver_url = "{sim.url}"\n[database]\nurl = "{pg_schema_url}"\n'
            f'[api]\nport = {free_port()}\ntoken_file = "{directory / "token"}"\n'
            f'[log]\nformat = "json"\n[results]\ndir = "{directory / "results"}"\n'
            + team_toml(name, LEASE)
        )
        logs.append(directory / "daemon.log")
    # Both spawned before either could have migrated.
    for log in logs:
        config = log.parent / "batchwatch.toml"
        procs.append(spawn("--config", str(config), "serve", log=log, env=KEY))
    try:
        wait_until(lambda: all("daemon_started" in f.read_text() for f in logs), 30, "both")
        versions = query(pg_schema_url, "SELECT version_num FROM alembic_version")
        assert len(versions) == 1
        roles = sorted(
            json.loads(line)["role"]
            for log in logs
            for line in log.read_text().splitlines()
            if '"daemon_started"' in line
        )
        assert roles == ["follower", "leader"]
        for log in logs:
            assert "Traceback" not in log.read_text()
            assert '"level": "error"' not in log.read_text()
    finally:
        for proc in procs:
            stop(proc)
