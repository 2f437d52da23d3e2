"""The event routes against real daemons: the feed and its long poll, the Server-Sent
Events stream, and webhook deliveries with a real receiver. Nothing is mocked."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from batchwatch.api.app import create_app
from batchwatch.daemon import Daemon
from batchwatch.health import Health
from batchwatch.simulator.server import RunningSimulator
from batchwatch.store import Store
from tests.helpers import get, upstream_job, wait_for
from tests.processes import DaemonProcess, Simulator, free_port
from tests.receiver import Receiver, make_secret

FAST = {"sim_queue_seconds": "0.3", "sim_run_seconds": "0.5"}


def feed(daemon: Daemon, token: str, **params: Any) -> dict[str, Any]:
    response = get(daemon, token, "/v1/events", **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def finished(daemon: Daemon, token: str, job_id: str) -> bool:
    found = feed(daemon, token, type="job.finished", limit=1000)["data"]
    return any(e["job_id"] == job_id for e in found)


def test_long_poll_returns_an_event_recorded_during_the_wait(
    daemon: Daemon, token: str, simulator: RunningSimulator
) -> None:
    newest = feed(daemon, token)["newest_seq"]
    answer: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        answer["body"] = feed(daemon, token, after=newest, wait=20)
        answer["seconds"] = time.monotonic() - started

    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(0.5)  # the request is held by now
    job_id = upstream_job(simulator.url, **FAST)
    waiting.join(timeout=25)
    body = answer["body"]
    assert 0.4 < answer["seconds"] < 10
    assert body["data"], body
    first = body["data"][0]
    assert first["seq"] > newest
    assert (first["type"], first["job_id"]) == ("job.transitioned", job_id)
    assert body["next_after"] == body["data"][-1]["seq"]


def test_long_poll_returns_nothing_when_the_wait_is_up(daemon: Daemon, token: str) -> None:
    newest = feed(daemon, token)["newest_seq"]
    started = time.monotonic()
    # A type that nothing here raises: the wait runs to its end.
    body = feed(daemon, token, after=newest, wait=1, type="job.deadline_near")
    assert 0.9 < time.monotonic() - started < 5
    assert body == {"object": "list", "data": [], "next_after": newest, "newest_seq": newest}


def test_the_type_filter_keeps_only_those_types_in_order(
    daemon: Daemon, token: str, simulator: RunningSimulator
) -> None:
    jobs = [upstream_job(simulator.url, **FAST) for _ in range(2)]
    wait_for(lambda: all(finished(daemon, token, j) for j in jobs), 20)
    everything = feed(daemon, token, limit=1000)["data"]
    wanted = ("job.finished", "job.transitioned")
    only = feed(daemon, token, type=wanted, limit=1000)["data"]
    assert only == [e for e in everything if e["type"] in wanted]
    finishes = feed(daemon, token, type="job.finished", limit=1000)["data"]
    assert {e["job_id"] for e in finishes} >= set(jobs)
    assert [e["seq"] for e in finishes] == sorted(e["seq"] for e in finishes)
    # Pages: after= the last seq of one page reads the next, nothing skipped or repeated.
    first = feed(daemon, token, limit=2)
    rest = feed(daemon, token, after=first["next_after"], limit=1000)
    # (``rest`` may end with events recorded since: results being ready.)
    assert (first["data"] + rest["data"])[: len(everything)] == everything


@pytest.mark.parametrize(
    "query",
    [
        {"wait": 61},
        {"wait": -1},
        {"after": -1},
        {"limit": 0},
        {"limit": 1001},
        {"type": "job.exploded"},
    ],
)
def test_bad_feed_parameters_are_422_naming_them(
    daemon: Daemon, token: str, query: dict[str, Any]
) -> None:
    response = get(daemon, token, "/v1/events", **query)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"][:2] == ["query", next(iter(query))]


# ---- the stream ---------------------------------------------------------------------------


def read_events(response: requests.Response, count: int) -> list[dict[str, str]]:
    """The first ``count`` events of an SSE response, each as its fields."""
    found: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith(":"):
            continue  # a heartbeat
        if not line:
            if fields:
                found.append(fields)
                fields = {}
            if len(found) == count:
                return found
            continue
        name, _, value = line.partition(": ")
        fields[name] = value
    return found


def stream(daemon: Daemon, token: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return requests.get(
        daemon.api_url + "/v1/events/stream",
        params=params,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        stream=True,
        timeout=10,
    )


def test_stream_sends_each_event_and_resumes_from_last_event_id(
    daemon: Daemon, token: str, simulator: RunningSimulator
) -> None:
    job_id = upstream_job(simulator.url, **FAST)
    wait_for(lambda: finished(daemon, token, job_id), 20)
    recorded = feed(daemon, token, limit=1000)["data"]
    assert len(recorded) >= 4
    with stream(daemon, token, after=0) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = read_events(response, 2)
    assert [int(e["id"]) for e in first] == [e["seq"] for e in recorded[:2]]
    assert [e["event"] for e in first] == [e["type"] for e in recorded[:2]]
    assert [json.loads(e["data"]) for e in first] == recorded[:2]
    # A reconnecting client sends its last id: it wins over the URL's after=0.
    resumed_from = first[-1]["id"]
    with stream(daemon, token, {"Last-Event-ID": resumed_from}, after=0) as response:
        rest = read_events(response, len(recorded) - 2)
    assert [int(e["id"]) for e in rest] == [e["seq"] for e in recorded[2:]]


def test_stream_without_a_start_sends_only_new_events(
    daemon: Daemon, token: str, simulator: RunningSimulator
) -> None:
    newest = feed(daemon, token)["newest_seq"]
    with stream(daemon, token) as response:
        job_id = upstream_job(simulator.url, **FAST)
        [event] = read_events(response, 1)
    assert int(event["id"]) > newest
    assert event["event"] == "job.transitioned"
    assert job_id in event["data"]


def test_stream_without_the_token_is_401_before_it_starts(daemon: Daemon) -> None:
    response = requests.get(daemon.api_url + "/v1/events/stream", timeout=5)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"


def test_stream_with_a_bad_last_event_id_is_422(daemon: Daemon, token: str) -> None:
    with stream(daemon, token, {"Last-Event-ID": "yesterday"}) as response:
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, threading.Event, uvicorn.Server]]:
    """The app with a shutdown event, served by uvicorn as the daemon serves it."""
    store = Store(f"sqlite:///{tmp_path / 'bw.db'}")
    store.migrate()
    stop = threading.Event()
    app = create_app(store, Health(1.0, datetime.now(UTC)), "token", stop=stop)
    port = free_port()
    config = uvicorn.Config(
        app, port=port, log_config=None, lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 10)
    try:
        yield f"http://127.0.0.1:{port}", stop, server
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        store.close()


def test_streams_and_long_polls_end_at_once_when_the_daemon_stops(
    served: tuple[str, threading.Event, uvicorn.Server],
) -> None:
    url, stop, server = served
    auth = {"Authorization": "Bearer token"}
    answers: dict[str, Any] = {}

    def long_poll() -> None:
        answers["poll"] = requests.get(f"{url}/v1/events?wait=30", headers=auth, timeout=40)

    def listen() -> None:
        with requests.get(f"{url}/v1/events/stream", headers=auth, stream=True, timeout=40) as r:
            answers["stream"] = r.status_code, list(r.iter_lines())

    clients = [threading.Thread(target=long_poll), threading.Thread(target=listen)]
    for c in clients:
        c.start()
    time.sleep(0.5)  # both are held by now
    started = time.monotonic()
    stop.set()
    server.should_exit = True  # what Daemon.close does next
    for c in clients:
        c.join(timeout=10)
    # Without the stop event uvicorn would wait its 2 s of grace, then cancel them.
    assert time.monotonic() - started < 1.5
    assert answers["poll"].status_code == 200
    assert answers["poll"].json()["data"] == []
    assert answers["stream"] == (200, [])


# ---- webhooks -----------------------------------------------------------------------------


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(make_secret(tmp_path / "whsec"))
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def webhook_daemon(tmp_path: Path, receiver: Receiver) -> Iterator[DaemonProcess]:
    sim = Simulator(tmp_path)
    extra = f'[[webhooks]]\nurl = "{receiver.url}"\nsecret_file = "{tmp_path / "whsec"}"\n'
    daemon = DaemonProcess(tmp_path, sim.url, extra=extra)
    try:
        requests.post(
            f"{sim.url}/_sim/jobs/bulk",
            json={"count": 3, "total_requests": 5, "metadata": FAST},
            timeout=10,
        ).raise_for_status()
        yield daemon
    finally:
        daemon.kill()
        sim.proc.kill()
        sim.proc.wait(timeout=10)


def test_deliveries_are_listed_and_a_redelivered_event_arrives_again(
    webhook_daemon: DaemonProcess, receiver: Receiver
) -> None:
    d = webhook_daemon

    def all_finished_delivered() -> bool:
        types = [r.body["type"] for r in receiver.delivered()]
        return types.count("job.finished") == 3

    wait_for(all_finished_delivered, 30)
    delivered = d.get("/v1/webhooks/deliveries?state=delivered&limit=1000")["data"]
    assert {r["event_id"] for r in delivered} >= {r.body["id"] for r in receiver.delivered()}
    assert all(r["endpoint"] == receiver.url and r["state"] == "delivered" for r in delivered)
    assert [r["event_seq"] for r in delivered] == sorted(
        (r["event_seq"] for r in delivered), reverse=True
    )
    [endpoint] = d.get("/v1/webhooks")["data"]
    assert endpoint["name"] == receiver.url and endpoint["kind"] == "webhook"
    assert endpoint["delivered"] >= len(delivered) and endpoint["dead"] == 0
    assert endpoint["disabled_at"] is None

    event_id = next(r["event_id"] for r in delivered if r["event_type"] == "job.finished")
    answer = requests.post(
        f"{d.url}/v1/webhooks/deliveries/{event_id}/redeliver", headers=d.headers, timeout=5
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"event_id": event_id, "deliveries": 1}

    def twice() -> list[Any]:
        copies = [r for r in receiver.delivered() if r.body["id"] == event_id]
        return copies if len(copies) == 2 else []

    wait_for(twice, 15)
    first, again = twice()
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == event_id
    assert again.verified and again.body == first.body


def test_redelivering_an_unknown_or_undelivered_event_is_one_clear_404(
    daemon: Daemon, token: str, simulator: RunningSimulator
) -> None:
    """No such event, or an event no endpoint took (this daemon has none): the same 404."""
    upstream_job(simulator.url, **FAST)
    wait_for(lambda: feed(daemon, token)["data"], 10)
    undelivered = feed(daemon, token)["data"][0]["id"]
    for event_id in ("evt_nothing", undelivered):
        answer = requests.post(
            f"{daemon.api_url}/v1/webhooks/deliveries/{event_id}/redeliver",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert answer.status_code == 404
        assert answer.json() == {
            "detail": f"no delivery of event {event_id}: no such event, or no endpoint took it"
        }
