"""Team mode on the machine's PostgreSQL: the lease (taken once expired, renewed by its
holder only, each take a new epoch), the fence on a leader's writes, a ``Team``'s view of
its role, and a daemon's role in ``/healthz``, the metrics and the dashboard."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from sqlalchemy import Connection, select, text

from batchwatch.config import DatabaseSettings, TeamSettings
from batchwatch.daemon import Daemon
from batchwatch.errors import LeaseLost, StoreUnavailable
from batchwatch.simulator.server import RunningSimulator
from batchwatch.store import Store, lease
from batchwatch.store.schema import sync_state
from batchwatch.team import Team
from tests.helpers import daemon_settings, wait_for
from tests.integration.test_actions import BODY, post, upstream_creates
from tests.integration.test_ui import login

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg(pg_schema_url: str) -> Iterator[Store]:
    s = Store(pg_schema_url)
    s.migrate()
    yield s
    s.close()


def state(store: Store, name: str) -> str | None:
    with store.reading() as conn:
        return conn.execute(select(sync_state.c.value).where(sync_state.c.name == name)).scalar()


def test_the_lease_is_taken_once_expired_and_each_take_is_a_new_epoch(pg: Store) -> None:
    engine = pg.engine
    assert lease.acquire(engine, "a", ttl=0.5) == 1
    assert lease.acquire(engine, "b", ttl=0.5) is None  # held
    assert lease.renew(engine, "a", 1, ttl=0.5)
    holder = lease.current(engine)
    assert holder is not None
    assert (holder.name, holder.epoch, holder.live) == ("a", 1, True)
    time.sleep(0.7)
    assert lease.acquire(engine, "b", ttl=5) == 2
    assert not lease.renew(engine, "a", 1, ttl=5)  # a's term is over for good
    lease.release(engine, "a", 1)  # (a stale release changes nothing)
    assert lease.acquire(engine, "a", ttl=5) is None
    lease.release(engine, "b", 2)
    assert lease.acquire(engine, "a", ttl=5) == 3


def test_a_write_under_a_lost_lease_is_refused_and_leaves_nothing(pg: Store) -> None:
    engine = pg.engine
    assert lease.acquire(engine, "a", ttl=0.3) == 1
    fenced = pg.fenced(lease.fence(lambda: ("a", 1)))
    with fenced.write() as w:
        w.set_state("written-as-leader", "yes")
    assert state(pg, "written-as-leader") == "yes"
    time.sleep(0.5)
    assert lease.acquire(engine, "b", ttl=5) == 2
    with pytest.raises(LeaseLost), fenced.write() as w:
        w.set_state("written-after-takeover", "yes")
    assert state(pg, "written-after-takeover") is None
    # A daemon that knows it leads no more does not even try.
    with pytest.raises(LeaseLost), pg.fenced(lease.fence(lambda: None)).write() as w:
        w.set_state("written-by-a-follower", "yes")
    assert state(pg, "written-by-a-follower") is None
    # The unfenced store (the API's actions) writes whoever leads.
    with fenced.unfenced().write() as w:
        w.set_state("an-action", "yes")
    assert state(pg, "an-action") == "yes"


def test_a_takeover_waits_for_a_fenced_write_that_is_committing(pg: Store) -> None:
    """The fence reads the lease FOR SHARE: between the check and the commit nobody can take
    the lease over (a takeover then fails on its lock timeout, and is tried again)."""
    engine = pg.engine
    assert lease.acquire(engine, "a", ttl=0.5) == 1
    checked, release = threading.Event(), threading.Event()

    def slow_fence(conn: Connection) -> None:
        lease.check(conn, "a", 1)
        checked.set()
        release.wait(10)

    def write() -> None:
        with pg.fenced(slow_fence).write() as w:
            w.set_state("slow", "yes")

    writer = threading.Thread(target=write)
    writer.start()
    assert checked.wait(10)
    time.sleep(0.7)  # the lease has expired meanwhile, but the write holds its row
    with pytest.raises(StoreUnavailable):
        lease.acquire(engine, "b", ttl=5)
    release.set()
    writer.join(10)
    assert state(pg, "slow") == "yes"
    assert lease.acquire(engine, "b", ttl=5) == 2


def test_a_team_leads_alone_follows_a_live_leader_and_stops_leading_in_time(pg: Store) -> None:
    now = [0.0]
    a = Team(pg, "a", ttl=3.0, clock=lambda: now[0])
    b = Team(pg, "b", ttl=3.0, clock=lambda: now[0])
    gained: list[int] = []
    lost: list[str] = []
    b.on_gained.append(gained.append)
    a.on_lost.append(lost.append)
    a.join()
    b.join()
    assert (a.role.value, a.leader) == ("leader", "a")
    assert (b.role.value, b.leader) == ("follower", "a")
    assert a.token() == ("a", 1)
    assert b.token() is None
    # a's clock passes the part of the lease it uses (2.7 s of 3) without a renewal: it
    # stops leading by itself, before the database's expiry lets anyone else in.
    now[0] = 2.8
    assert not a.leading()
    assert a.token() is None
    b.step()
    assert gained == []  # not expired yet in the database
    time.sleep(3.1)
    b.step()
    assert gained == [2]
    assert (b.role.value, b.leader) == ("leader", "b")
    a.step()  # a finds its epoch gone
    assert lost == ["another daemon holds the lease"]
    assert a.role.value == "follower"
    assert a.leader == "b"
    b.leave()
    a.step()
    assert a.leader == "a"  # b let the lease go on leaving: a took it at once
    names = {m.name for m in lease.members(pg.engine)}
    assert names == {"a"}
    a.leave()


def test_a_daemon_on_postgres_leads_and_says_so(
    simulator: RunningSimulator, tmp_path: Path, pg_schema_url: str
) -> None:
    settings = daemon_settings(tmp_path, simulator.url)
    settings = replace(
        settings,
        database=DatabaseSettings(url=pg_schema_url),
        team=TeamSettings(instance_name="alpha", lease_seconds=3),
    )
    daemon = Daemon(settings)
    daemon.start()
    try:
        body = requests.get(daemon.api_url + "/healthz", timeout=10).json()
        assert (body["role"], body["leader"]) == ("leader", "alpha")
        metrics = requests.get(daemon.api_url + "/metrics", timeout=10).text
        assert "\nbatchwatch_leader 1.0\n" in metrics
        browser = login(daemon, settings.token_file.read_text().strip())
        overview = browser.get(daemon.api_url + "/ui/", timeout=10).text
        assert '<dd data-role="leader">leader (leader: alpha)</dd>' in overview
        assert '<tr data-member="alpha">' in overview
        assert "<strong>leader</strong>" in overview
        wait_for(lambda: requests.get(daemon.api_url + "/healthz", timeout=10).json()["cycles"])
        # Another daemon, under its own name, takes the lease: this one becomes a follower.
        other = Store(pg_schema_url)
        with other.engine.begin() as conn:
            conn.execute(text("UPDATE team_lease SET expires_at = clock_timestamp()"))
        assert lease.acquire(other.engine, "beta", ttl=30) is not None
        other.close()
        wait_for(
            lambda: (
                requests.get(daemon.api_url + "/healthz", timeout=10).json()["role"] == "follower"
            )
        )
        body = requests.get(daemon.api_url + "/healthz", timeout=10).json()
        assert (body["status"], body["leader"]) == ("ok", "beta")
        metrics = requests.get(daemon.api_url + "/metrics", timeout=10).text
        assert "\nbatchwatch_leader 0.0\n" in metrics
        overview = browser.get(daemon.api_url + "/ui/", timeout=10).text
        assert '<dd data-role="follower">follower (leader: beta)</dd>' in overview
        assert "<strong>leader</strong>" not in overview  # (beta is not up: only its lease)
    finally:
        daemon.close()


def test_any_daemon_of_a_team_creates_and_cancels_and_a_key_holds_across_them(
    simulator: RunningSimulator, tmp_path: Path, pg_schema_url: str
) -> None:
    daemons, tokens = [], []
    for name in ("a", "b"):
        directory = tmp_path / name
        directory.mkdir()
        settings = replace(
            daemon_settings(directory, simulator.url),
            database=DatabaseSettings(url=pg_schema_url),
            team=TeamSettings(instance_name=name, lease_seconds=3),
        )
        daemon = Daemon(settings)
        daemon.start()
        daemons.append(daemon)
        tokens.append(settings.token_file.read_text().strip())
    try:
        roles = [requests.get(d.api_url + "/healthz", timeout=10).json()["role"] for d in daemons]
        assert roles == ["leader", "follower"]
        # One key, sent to both daemons at once, several times: one job upstream.
        answers: list[requests.Response] = []

        def create(n: int) -> None:
            answers.append(
                post(
                    daemons[n % 2],
                    tokens[n % 2],
                    "/v1/batch/jobs",
                    BODY,
                    **{"Idempotency-Key": "k"},
                )
            )

        threads = [threading.Thread(target=create, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert {a.status_code for a in answers} == {200}
        assert len({a.json()["id"] for a in answers}) == 1
        assert upstream_creates(simulator) == 1
        # The follower cancels; the leader's polls then record what follows.
        job_id = answers[0].json()["id"]
        cancelled = post(daemons[1], tokens[1], f"/v1/batch/jobs/{job_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "CANCELLATION_REQUESTED"
    finally:
        for d in daemons:
            d.close()
