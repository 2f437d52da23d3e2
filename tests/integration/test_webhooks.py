"""Webhooks end to end: a real daemon process, the simulator and a real receiver on loopback
that verifies every request with the ``standardwebhooks`` verifier.

The helpers here (reading the outbox and the deliveries back from the database file, seeding
jobs, waiting until everything recorded has arrived) are shared with ``test_hooks.py`` and
the crash test.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.processes import DaemonProcess, Simulator, free_port, stop, wait_until
from tests.receiver import Answer, Receiver, make_secret

# ---- helpers shared by the event tests ------------------------------------------------------


def seed(sim: Simulator, count: int, run_seconds: float = 2.0, queue_seconds: float = 0.5) -> None:
    """``count`` jobs in the simulator that queue, run and succeed on their own."""
    response = requests.post(
        f"{sim.url}/_sim/jobs/bulk",
        json={
            "count": count,
            "total_requests": 50,
            "metadata": {
                "sim_queue_seconds": str(queue_seconds),
                "sim_run_seconds": str(run_seconds),
            },
        },
        timeout=30,
    )
    response.raise_for_status()


def _query(db: Path, sql: str) -> list[dict[str, Any]]:
    # Read-only, beside the daemon that writes (SQLite in WAL mode lets both go on).
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql)]


def recorded_events(tmp_path: Path) -> list[dict[str, Any]]:
    """The daemon's outbox, in ``seq`` order."""
    return _query(tmp_path / "bw.db", "SELECT seq, id, type, job_id FROM events ORDER BY seq")


def delivery_rows(tmp_path: Path) -> list[dict[str, Any]]:
    return _query(
        tmp_path / "bw.db",
        "SELECT d.endpoint, d.event_seq, d.state, d.attempts, d.last_status, d.last_error,"
        " e.id AS event_id, e.type FROM deliveries d JOIN events e ON e.seq = d.event_seq"
        " ORDER BY d.event_seq",
    )


def webhook_toml(url: str, secret_file: Path, events: tuple[str, ...] = ()) -> str:
    chosen = "events = [" + ", ".join(f'"{e}"' for e in events) + "]\n" if events else ""
    return f'[[webhooks]]\nurl = "{url}"\nsecret_file = "{secret_file}"\n{chosen}'


def quiet_and_all_delivered(tmp_path: Path, ids_delivered: set[str]) -> bool:
    """Every recorded event has a delivered delivery and has reached the receiver."""
    events = recorded_events(tmp_path)
    rows = delivery_rows(tmp_path)
    return (
        bool(events)
        and len(rows) == len(events)
        and all(r["state"] == "delivered" for r in rows)
        and {e["id"] for e in events} <= ids_delivered
    )


def wait_settled(
    tmp_path: Path, receiver: Receiver, daemon: DaemonProcess, jobs: int, seconds: float
) -> None:
    """Until every job has ended and everything recorded has been delivered, twice in a row
    one second apart (results of an ended job come a little later, with their own event)."""
    wait_until(lambda: daemon.all_ended(jobs), seconds, "every job to end")
    deadline = time.monotonic() + seconds

    def settled() -> bool:
        return quiet_and_all_delivered(
            tmp_path, {r.headers["webhook-id"] for r in receiver.delivered()}
        )

    while time.monotonic() < deadline:
        before = len(recorded_events(tmp_path))
        if settled():
            time.sleep(1.0)
            if settled() and len(recorded_events(tmp_path)) == before:
                return
        time.sleep(0.2)
    raise AssertionError("timed out waiting for every recorded event to be delivered")


@contextmanager
def daemon_running(tmp_path: Path, sim: Simulator, extra: str) -> Iterator[DaemonProcess]:
    daemon = DaemonProcess(tmp_path, sim.url, extra=extra)
    try:
        yield daemon
    finally:
        stop(daemon.proc)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    simulator = Simulator(tmp_path)
    yield simulator
    stop(simulator.proc)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook.secret"
    make_secret(path)
    return path


@pytest.fixture
def receiver(secret_file: Path) -> Iterator[Receiver]:
    r = Receiver(secret_file.read_text().strip())
    yield r
    r.close()


# ---- the tests ------------------------------------------------------------------------------


def test_requests_carry_standard_webhooks_headers_and_the_event(
    tmp_path: Path, sim: Simulator, receiver: Receiver, secret_file: Path
) -> None:
    with daemon_running(tmp_path, sim, webhook_toml(receiver.url, secret_file)) as daemon:
        seed(sim, 3)
        wait_settled(tmp_path, receiver, daemon, 3, 40)
        metrics = requests.get(f"{daemon.url}/metrics", timeout=5).text
    events = {e["id"]: e for e in recorded_events(tmp_path)}
    # Named by place and origin in the metrics, never by the URL's path.
    label = f'endpoint="webhooks[0] (http://127.0.0.1:{receiver.port})"'
    delivered = f'batchwatch_deliveries_total{{{label},result="delivered"}} {len(events)}.0'
    assert delivered in metrics
    assert f"batchwatch_outbox_backlog{{{label}}} 0.0" in metrics
    assert "/hook" not in metrics
    types = {e["type"] for e in events.values()}
    assert {"job.transitioned", "job.finished"} <= types
    assert receiver.received
    for r in receiver.received:
        assert r.verified, r.headers
        assert r.headers["webhook-id"] == r.body["id"]
        assert r.headers["content-type"] == "application/json"
        # Signed at the moment of sending: the receiver's clock agrees within a few seconds.
        assert abs(int(r.headers["webhook-timestamp"]) - r.at) < 5
        assert r.headers["webhook-signature"].startswith("v1,")
        stored = events[r.body["id"]]
        assert set(r.body) == {"id", "seq", "type", "job_id", "occurred_at", "data"}
        assert (r.body["seq"], r.body["type"], r.body["job_id"]) == (
            stored["seq"],
            stored["type"],
            stored["job_id"],
        )
        assert r.body["occurred_at"].endswith("Z")
    finished = [r.body for r in receiver.received if r.body["type"] == "job.finished"]
    assert len(finished) == 3
    assert all(f["data"]["status"] == "SUCCESS" for f in finished)
    assert all(f["data"]["requests"]["total"] == 50 for f in finished)


def test_receiver_down_then_failing_then_throttling_gets_everything_when_back(
    tmp_path: Path, sim: Simulator, receiver: Receiver, secret_file: Path
) -> None:
    receiver.down()
    with daemon_running(tmp_path, sim, webhook_toml(receiver.url, secret_file)) as daemon:
        seed(sim, 4, run_seconds=1.5)
        # Down: connections refused, recorded as such.
        wait_until(
            lambda: any(r["last_error"] == "connection failed" for r in delivery_rows(tmp_path)),
            20,
            "a refused delivery",
        )
        assert receiver.received == []
        # Up, but failing.
        receiver.answer = Answer(500)
        receiver.up()
        wait_until(lambda: any(r.status == 500 for r in receiver.received), 20, "a 500")
        # Throttling: 429 with Retry-After: 2, for a while.
        receiver.answer = Answer(429, retry_after="2")
        wait_until(lambda: any(r.status == 429 for r in receiver.received), 20, "a 429")
        time.sleep(3)
        receiver.answer = Answer(200)
        wait_settled(tmp_path, receiver, daemon, 4, 45)
        failed = [r for r in delivery_rows(tmp_path) if r["attempts"] > 1]
    assert failed, "some delivery was retried"
    assert all(r.verified for r in receiver.received)
    recorded = {e["id"] for e in recorded_events(tmp_path)}
    assert {r.headers["webhook-id"] for r in receiver.delivered()} == recorded
    # Retry-After holds every send to the endpoint: after a 429 (give or take requests that
    # were already on their way when it was answered), nothing arrives for 2 s.
    throttled = [r.at for r in receiver.received if r.status == 429]
    early = [
        (r.at - t, r.status)
        for t in throttled
        for r in receiver.received
        if t + 0.25 < r.at < t + 2.0
    ]
    assert early == [], f"requests inside a Retry-After window: {early}"
    print(
        f"\nrecorded {len(recorded)}, requests {len(receiver.received)},"
        f" 429s {len(throttled)}, 500s {sum(r.status == 500 for r in receiver.received)}"
    )


def disabled_reason(health: dict[str, Any], receiver: Receiver) -> str:
    """The /healthz reason about the disabled webhook (which must not show its path: a
    webhook URL's path often holds a credential, and /healthz needs no token)."""
    found = [r for r in health["reasons"] if "webhooks[0]" in r]
    assert len(found) == 1, health
    assert "/hook" not in found[0]
    return str(found[0])


def test_410_gone_disables_the_endpoint_even_after_a_restart(
    tmp_path: Path, sim: Simulator, receiver: Receiver, secret_file: Path
) -> None:
    receiver.answer = Answer(410)
    with daemon_running(tmp_path, sim, webhook_toml(receiver.url, secret_file)) as daemon:
        seed(sim, 3, run_seconds=2)
        wait_until(lambda: "endpoint_disabled" in daemon.log.read_text(), 20, "endpoint_disabled")
        seen = len(receiver.received)
        assert seen >= 1
        assert all(r.status == 410 for r in receiver.received)
        code, body = daemon.health()
        assert code == 503
        assert body["status"] == "degraded"
        assert disabled_reason(body, receiver) == (
            f"webhooks[0] (http://127.0.0.1:{receiver.port}) disabled:"
            " HTTP 410 (410 Gone: the endpoint asked to stop)"
        )
        # The jobs go on (more events are recorded) but nothing more is sent.
        receiver.answer = Answer(200)
        wait_until(lambda: daemon.all_ended(3), 30, "every job to end")
        time.sleep(1.5)
        assert len(receiver.received) == seen
        recorded_before_restart = len(recorded_events(tmp_path))
        daemon.terminate()
        daemon.start()
        seed(sim, 1, run_seconds=0.5, queue_seconds=0.2)
        wait_until(lambda: daemon.all_ended(4), 30, "the new job to end")
        wait_until(
            lambda: len(recorded_events(tmp_path)) > recorded_before_restart, 10, "new events"
        )
        time.sleep(1.5)
        assert len(receiver.received) == seen
        code, body = daemon.health()
        assert code == 503
        assert "410 Gone" in disabled_reason(body, receiver)
        assert daemon.log.read_text().count('"endpoint_disabled"') == 2


class _Redirector:
    """An endpoint that answers every POST with a 307 to ``target``, counting them."""

    def __init__(self, target: str) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.hits += 1
                self.send_response(307)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/moved"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def test_a_redirect_is_not_followed_and_the_delivery_stays_pending(
    tmp_path: Path, sim: Simulator, receiver: Receiver, secret_file: Path
) -> None:
    redirector = _Redirector(receiver.url)
    try:
        with daemon_running(tmp_path, sim, webhook_toml(redirector.url, secret_file)):
            seed(sim, 1, run_seconds=0.5, queue_seconds=0.2)
            wait_until(lambda: redirector.hits >= 2, 20, "requests to the redirecting endpoint")
            rows = delivery_rows(tmp_path)
    finally:
        redirector.close()
    assert receiver.received == [], "the redirect target was hit"
    tried = [r for r in rows if r["attempts"] > 0]
    assert tried
    assert all(r["state"] == "pending" for r in rows)
    for r in tried:
        assert r["last_status"] == 307
        assert r["last_error"] == f"HTTP 307 (redirect to {receiver.url} not followed)"


def test_events_filter_delivers_only_those_types_and_the_secret_stays_out_of_the_log(
    tmp_path: Path, sim: Simulator, receiver: Receiver, secret_file: Path
) -> None:
    extra = webhook_toml(receiver.url, secret_file, events=("job.finished",))
    receiver.answer = Answer(500)  # failures first: their log lines must not hold it either
    with daemon_running(tmp_path, sim, extra) as daemon:
        seed(sim, 3, run_seconds=1)
        wait_until(lambda: len(receiver.received) >= 2, 20, "failed deliveries")
        receiver.answer = Answer(200)
        wait_until(lambda: daemon.all_ended(3), 30, "every job to end")

        def finished() -> set[str]:
            return {e["id"] for e in recorded_events(tmp_path) if e["type"] == "job.finished"}

        wait_until(
            lambda: {r.headers["webhook-id"] for r in receiver.delivered()} == finished(),
            30,
            "the finished events",
        )
        time.sleep(1)
        types = {e["type"] for e in recorded_events(tmp_path)}
    assert len(finished()) == 3
    assert "job.transitioned" in types  # recorded, just not wanted by this endpoint
    assert {r.body["type"] for r in receiver.received} == {"job.finished"}
    assert {r.headers["webhook-id"] for r in receiver.delivered()} == finished()
    log = daemon.log.read_text()
    assert "delivery_failed" in log
    secret = secret_file.read_text().strip()
    assert secret not in log
    assert secret.removeprefix("whsec_") not in log


def test_a_secret_file_readable_by_others_stops_the_start_with_one_line(
    tmp_path: Path, secret_file: Path
) -> None:
    secret_file.chmod(0o644)
    config = tmp_path / "batchwatch.toml"
    config.write_text(
        '[mistral]\nserver_url = "http://127.0.0.1:9"\napi_key = "k"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "bw.db"}"\n'
        f'[api]\nport = {free_port()}\ntoken_file = "{tmp_path / "token"}"\n'
        + webhook_toml("http://127.0.0.1:9/hook", secret_file)
    )
    done = subprocess.run(
        [sys.executable, "-m", "batchwatch", "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "webhooks[0].secret_file" in lines[0]
    assert "chmod 600" in lines[0]
    assert secret_file.read_text().strip() not in done.stderr + done.stdout
