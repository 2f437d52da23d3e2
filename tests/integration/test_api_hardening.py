"""The local API under bad input and faults: fuzzed from its own OpenAPI description, bodies
over the limits, malformed parameters, and a database that is gone.

Everything runs against a real daemon on loopback (or the real app over a real, broken
database); nothing is mocked.
"""

from __future__ import annotations

import json
import select
import shutil
import socket
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode
from schemathesis.core.result import Ok

from batchwatch.actions import Actions
from batchwatch.api.app import create_app
from batchwatch.api.guards import MAX_BODY_BYTES, MAX_MESSAGE_BATCH_BYTES, MAX_UPLOAD_BYTES
from batchwatch.api.schemas import LIST_KEYS
from batchwatch.daemon import Daemon
from batchwatch.health import Health
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.simulator.server import RunningSimulator
from batchwatch.store import Store
from tests.helpers import SIM_API_KEY, upstream_job

SOME_ID = "8a1c7c3e-0000-4000-8000-000000000000"

# ---- fuzzing ------------------------------------------------------------------------------

#: Examples per operation and generation mode: enough to reach the odd corners, small enough
#: that the whole fuzz stays around a minute and a half on two cores.
FUZZ_EXAMPLES = 25
#: The statuses that count as "refused" for a schema-violating request: schemathesis's own
#: list, plus 413 (a body over the limit is refused too, before it is parsed).
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]


def fuzz_config(token: str) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "auth": {"openapi": {"HTTPBearer": {"bearer": token}}},
            "request-timeout": 10,
            "checks": {"negative_data_rejection": {"expected-statuses": [*REFUSALS, "5xx"]}},
            "operations": [
                {
                    # A multipart part has no type: the "integer" 5 a fuzzer sends as the
                    # file is the one-byte file "5", which is rightly accepted. Every other
                    # check still runs on the upload; its refusals are tested below.
                    "include-path": "/v1/files",
                    "checks": {"negative_data_rejection": {"enabled": False}},
                },
                {
                    # Anthropic's list takes before_id or after_id, and refuses both at once
                    # (400), which OpenAPI cannot say of two query parameters.
                    "include-name": "GET /anthropic/v1/messages/batches",
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": ["2xx", "400", "401", "404", "409", "5xx"]
                        }
                    },
                },
            ],
        }
    )


#: Operations that answer with a stream that never ends: the fuzzer would wait for its end.
#: Their parameters and token are checked before the stream starts, and tested on their own
#: (tests/integration/test_events_api.py).
ENDLESS = frozenset({"GET /v1/events/stream"})


def _no_long_wait(case: Case[Any]) -> None:
    """A valid ``?wait=`` of the long poll holds the request up to a minute, past the fuzz's
    deadline: it is sent as 0 (the wait itself is tested in test_events_api.py). An invalid
    one is sent as it is, to be refused."""
    wait = (case.query or {}).get("wait")
    if case.operation.label != "GET /v1/events" or isinstance(wait, bool):
        return
    try:
        valid = 0 <= float(wait) <= 60  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    if valid:
        assert case.query is not None
        case.query["wait"] = 0


def _null_metadata(query: dict[str, Any]) -> bool:
    """A metadata filter (a query key that is not a list parameter) whose value is null:
    sent as the text "null", or not sent at all (None, or an empty list: the HTTP client
    leaves such a key out of the query string)."""
    return any(k not in LIST_KEYS and v in ("null", None, []) for k, v in query.items())


class Fuzzer:
    """Sends cases with the token and keeps what went wrong, and every status seen."""

    def __init__(self, token: str) -> None:
        self.auth = {"Authorization": f"Bearer {token}"}
        self.failures: list[str] = []
        self.statuses: Counter[tuple[str, int]] = Counter()  # (generation mode, status)

    def send(self, case: Case[Any]) -> None:
        _no_long_wait(case)
        mode = case.meta.generation.mode.value if case.meta else "unknown"
        if mode == "negative" and _null_metadata(case.query or {}):
            # A query string has no null: schemathesis sends a null it generated for a
            # metadata value as the text "null" (a valid value) or leaves the key out (a
            # valid request), then counts it as an invalid request accepted.
            return
        # The token is passed explicitly: schemathesis applies its configured auth to
        # generated cases but not to the boundary cases it builds directly.
        response = case.call_and_validate(headers=self.auth)
        self.statuses[mode, response.status_code] += 1

    def boundaries(self, schema: BaseSchema, operation: APIOperation[Any, Any, Any, Any]) -> None:
        cases = schema.iter_coverage_cases(
            operation,
            generation_modes=list(GenerationMode),
            generation_config=schema.config.generation_for(operation=operation),
        )
        for case in cases:
            try:
                self.send(case)
            except BaseException as exc:  # FailureGroup is a BaseExceptionGroup
                self.failures.append(f"{operation.label} (boundary): {exc}")

    def fuzz(self, operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode) -> None:
        @settings(
            max_examples=FUZZ_EXAMPLES,
            derandomize=True,  # the same cases on every run: a failure is reproducible
            database=None,
            deadline=timedelta(seconds=10),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(case=operation.as_strategy(mode))
        def run(case: Case[Any]) -> None:
            self.send(case)

        try:
            run()
        except Unsatisfiable:
            # An operation with nothing to get wrong (no parameter, no body) has no
            # negative case; its positive cases ran.
            assert mode is GenerationMode.NEGATIVE
        except BaseException as exc:
            self.failures.append(f"{operation.label} ({mode.value}): {exc}")


# 32 operations since the provider-native routes (11 of them) came: about 90 s here.
@pytest.mark.timeout(180)
def test_fuzzed_requests_get_no_server_error_and_match_the_schema(
    daemon: Daemon, token: str
) -> None:
    """Every operation of /openapi.json, with its boundary cases (schemathesis's coverage
    phase) and then fuzzed, valid and invalid: no 5xx, no undeclared status, no body that
    breaks the declared schema, no invalid input accepted, no valid one refused."""
    schema = schemathesis.openapi.from_url(
        daemon.api_url + "/openapi.json", config=fuzz_config(token)
    )
    fuzzer = Fuzzer(token)
    tested: list[str] = []
    for result in schema.get_all_operations():
        if not isinstance(result, Ok):  # an operation schemathesis cannot read
            fuzzer.failures.append(f"unusable operation in /openapi.json: {result.err()}")
            continue
        operation = result.ok()
        if operation.label in ENDLESS:
            continue
        tested.append(operation.label)
        fuzzer.boundaries(schema, operation)
        for mode in GenerationMode:
            fuzzer.fuzz(operation, mode)
    assert not fuzzer.failures, "\n\n".join(fuzzer.failures)
    assert "POST /v1/batch/jobs" in tested and "GET /healthz" in tested
    # The token reached every valid request (a fuzz that only met 401s would prove nothing);
    # the 401s of negative cases are schemathesis checking that a missing token is refused.
    assert fuzzer.statuses["positive", 401] == 0, fuzzer.statuses
    assert fuzzer.statuses["positive", 200] > 100, fuzzer.statuses
    assert fuzzer.statuses["negative", 422] > 100, fuzzer.statuses


# ---- body limits --------------------------------------------------------------------------


def raw_exchange(url: str, head: str, body: bytes = b"") -> tuple[int, dict[str, str], Any]:
    """Send exactly these bytes and read the answer until the server closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + body)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head_bytes, _, payload = received.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, json.loads(payload)


#: A sample of each path parameter of /openapi.json.
SAMPLE_IDS = {"{job_id}": SOME_ID, "{batch_id}": "batch_abc123", "{file_id}": "file-abc123"}
#: The routes whose bodies may be bigger than ``MAX_BODY_BYTES``.
LIMITS = {
    ("POST", "/v1/files"): MAX_UPLOAD_BYTES,
    ("POST", "/openai/v1/files"): MAX_UPLOAD_BYTES,
    ("POST", "/anthropic/v1/messages/batches"): MAX_MESSAGE_BATCH_BYTES,
}


def every_operation(daemon: Daemon) -> list[tuple[str, str]]:
    spec = requests.get(daemon.api_url + "/openapi.json", timeout=5).json()
    found = []
    for template, operations in spec["paths"].items():
        path = template
        for name, sample in SAMPLE_IDS.items():
            path = path.replace(name, sample)
        found += [(method.upper(), path) for method in operations]
    return found


def test_declared_body_over_the_limit_is_refused_on_every_route_before_it_is_read(
    daemon: Daemon,
) -> None:
    """Only the headers are sent: the 413 comes without waiting for one byte of body, and
    before the token is even looked at; a provider-native route says it in its provider's
    error shape."""
    native = 0
    for method, path in every_operation(daemon):
        limit = LIMITS.get((method, path), MAX_BODY_BYTES)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: batchwatch\r\n"
            f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n\r\n"
        )
        status, headers, body = raw_exchange(daemon.api_url, head)
        assert status == 413, (method, path)
        said = f"request body too large: the limit is {limit} bytes ({limit // 1024 // 1024} MiB)"
        if path.startswith("/openai/"):
            assert body["error"]["message"] == said and body["error"]["type"], body
            native += 1
        elif path.startswith("/anthropic/"):
            assert body == {
                "type": "error",
                "error": {"type": "request_too_large", "message": said},
            }
            native += 1
        else:
            assert body == {"detail": said}
        assert headers["connection"] == "close"
    assert native >= 10  # the provider-native routes were among them


def test_body_at_the_limit_is_not_refused_for_its_size(daemon: Daemon, token: str) -> None:
    body = b'{"endpoint": "/v1/ocr", "input_files": []}'.ljust(MAX_BODY_BYTES)
    response = requests.post(
        daemon.api_url + "/v1/batch/jobs",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422  # read and judged, not refused for its size
    assert "give input_files or requests: exactly one" in response.text


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    while total > 0:
        yield b" " * min(size, total)
        total -= size


def test_chunked_body_is_counted_and_refused_past_the_limit(daemon: Daemon, token: str) -> None:
    response = requests.post(
        daemon.api_url + "/v1/batch/jobs",
        data=chunks(MAX_BODY_BYTES + 1),  # no Content-Length: Transfer-Encoding: chunked
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 413
    assert "1048576 bytes" in response.json()["detail"]


def test_endless_chunked_body_is_cut_off_without_being_read(daemon: Daemon, token: str) -> None:
    """A client streaming 256 MiB gets its 413 while it is still sending: the daemon stopped
    reading just past the limit instead of buffering the stream."""
    parts = urlsplit(daemon.api_url)
    offered = 256 * 1024 * 1024
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /v1/batch/jobs HTTP/1.1\r\nHost: batchwatch\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        chunk = b"10000\r\n" + b" " * 0x10000 + b"\r\n"
        sock.setblocking(False)
        deadline = time.monotonic() + 30
        answer = b""
        try:
            while sent < offered and time.monotonic() < deadline:
                readable, writable, _ = select.select([sock], [sock], [], 1)
                if readable:
                    break
                if writable:
                    sent += sock.send(chunk)
            sock.setblocking(True)
            answer = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            # The daemon answered and closed with our unread chunks in its buffer: its TCP
            # stack resets the connection, which can reach us before we read the answer.
            answer = b"(reset)"
    assert answer.startswith(b"HTTP/1.1 413 ") or answer == b"(reset)", answer[:100]
    assert sent < offered // 4  # cut off long before the stream ended


def test_upload_route_takes_more_than_1_mib(daemon: Daemon, token: str) -> None:
    content = b'{"custom_id": "0", "body": {"messages": []}}\n' * 30_000  # ~1.3 MiB
    assert len(content) > MAX_BODY_BYTES
    response = requests.post(
        daemon.api_url + "/v1/files",
        files={"file": ("big.jsonl", content)},
        data={"purpose": "batch"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json()["bytes"] == len(content)


# ---- malformed input: 4xx, and the detail names the field --------------------------------


CREATE = "POST /v1/batch/jobs"
ONE_FILE = f'"endpoint": "/v1/ocr", "input_files": ["{SOME_ID}"]'


@pytest.mark.parametrize(
    ("request_line", "body", "loc"),
    [
        (CREATE, '{"endpoint": "/v1/ocr", ', ["body", 24]),
        (CREATE, '{"endpoint": 7, "input_files": []}', ["body", "endpoint"]),
        (CREATE, '{"endpoint": "/v1/ocr", "input_files": "file"}', ["body", "input_files"]),
        (CREATE, '{"endpoint": "/v1/ocr", "input_files": ["x"]}', ["body", "input_files", 0]),
        (CREATE, f'{{{ONE_FILE}, "timeout_hours": 0}}', ["body", "timeout_hours"]),
        (
            CREATE,
            f'{{{ONE_FILE}, "metadata": {{"a\\"b": "x"}}}}',
            ["body", "metadata", 'a"b', "[key]"],
        ),
        ("GET /v1/batch/jobs?page=-1", "", ["query", "page"]),
        ("GET /v1/batch/jobs?page=2147483648", "", ["query", "page"]),
        ("GET /v1/batch/jobs?page_size=1001", "", ["query", "page_size"]),
        ("GET /v1/batch/jobs?status=SLEEPING", "", ["query", "status", 0]),
        ("GET /v1/batch/jobs?created_after=yesterday", "", ["query", "created_after"]),
        ("GET /v1/batch/jobs?model=a%00b", "", ["query", "model"]),
        ('GET /v1/batch/jobs?team"x=1', "", ["query", 'team"x']),
        ("GET /v1/batch/jobs?team=a%01", "", ["query", "team"]),
        ("GET /v1/transitions?after=9223372036854775808", "", ["query", "after"]),
        ("GET /v1/transitions?limit=0", "", ["query", "limit"]),
        ("GET /v1/batch/jobs/not-a-uuid/actions", "", ["path", "job_id"]),
        ("GET /v1/events?wait=60.5", "", ["query", "wait"]),
        ("GET /v1/events?type=job.exploded", "", ["query", "type", 0]),
        ("GET /v1/events?wiat=30", "", ["query", "wiat"]),
        ("GET /v1/events/stream?after=-1", "", ["query", "after"]),
        ("GET /v1/webhooks/deliveries?state=lost", "", ["query", "state"]),
        ("POST /v1/webhooks/deliveries/a%20b/redeliver", "", ["path", "event_id"]),
    ],
)
def test_malformed_input_is_422_naming_the_field(
    daemon: Daemon, token: str, request_line: str, body: str, loc: list[Any]
) -> None:
    method, path = request_line.split(" ", 1)
    response = requests.request(
        method,
        daemon.api_url + path,
        data=body.encode() or None,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


def test_body_that_is_not_even_text_is_400(daemon: Daemon, token: str) -> None:
    response = requests.post(
        daemon.api_url + "/v1/batch/jobs",
        data=b"\xff\xfe{",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "body" in response.json()["detail"]


def test_upload_with_an_unknown_purpose_is_refused_naming_it(daemon: Daemon, token: str) -> None:
    response = requests.post(
        daemon.api_url + "/v1/files",
        files={"file": ("a.jsonl", b"{}\n")},
        data={"purpose": "training"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "purpose"]


def test_405_lists_every_method_of_the_path(daemon: Daemon) -> None:
    response = requests.delete(daemon.api_url + "/v1/batch/jobs", timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert response.json() == {"detail": "Method Not Allowed"}


# ---- the database being down --------------------------------------------------------------


@pytest.fixture
def broken_store(tmp_path: Path) -> Iterator[Store]:
    """A store whose database was real and then vanished: its directory is removed after
    the migration and the pool is emptied, so every new connection fails to open."""
    directory = tmp_path / "db"
    store = Store(f"sqlite:///{directory / 'bw.db'}")
    store.migrate()
    store.close()  # drop pooled connections: the next use opens the file again
    shutil.rmtree(directory)
    try:
        yield store
    finally:
        store.close()


def test_database_down_is_503_naming_it_on_every_route_that_uses_it(
    broken_store: Store, simulator: RunningSimulator
) -> None:
    token = "local-token-for-this-test"
    health = Health(1.0, datetime.now(UTC))
    with MistralClient(simulator.url, SIM_API_KEY) as client:
        app = create_app(broken_store, health, token, Actions([client], broken_store))
        http = TestClient(app, raise_server_exceptions=False)
        auth = {"Authorization": f"Bearer {token}"}
        on_simulator = upstream_job(simulator.url)  # track reads upstream, then must record
        create = {"endpoint": "/v1/ocr", "input_files": [SOME_ID]}
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", "/v1/batch/jobs", None),
            ("GET", f"/v1/batch/jobs/{SOME_ID}", None),
            ("GET", f"/v1/batch/jobs/{SOME_ID}/transitions", None),
            ("GET", f"/v1/batch/jobs/{SOME_ID}/progress", None),
            ("GET", f"/v1/batch/jobs/{SOME_ID}/actions", None),
            ("GET", "/v1/transitions", None),
            ("POST", "/v1/batch/jobs", create),
            ("POST", f"/v1/batch/jobs/{SOME_ID}/cancel", None),
            ("POST", f"/v1/batch/jobs/{on_simulator}/track", None),
            ("GET", f"/v1/batch/jobs/{SOME_ID}/results", None),
            ("GET", f"/v1/batch/jobs/{SOME_ID}/requests", None),
            ("POST", f"/v1/batch/jobs/{SOME_ID}/retry", {}),
            ("DELETE", f"/v1/batch/jobs/{SOME_ID}", None),
            ("GET", "/v1/usage", None),
            ("GET", "/v1/events", None),
            ("GET", "/v1/events?wait=5", None),
            ("GET", "/v1/events/stream", None),
            ("GET", "/v1/webhooks", None),
            ("GET", "/v1/webhooks/deliveries", None),
            ("POST", "/v1/webhooks/deliveries/evt_0/redeliver", None),
        ]
        seen = set()
        for method, path, body in calls:
            response = http.request(method, path, json=body, headers=auth)
            assert response.status_code == 503, (method, path, response.text)
            detail = response.json()["detail"]
            assert detail.startswith("database unavailable: "), detail
            assert "Traceback" not in detail and "SELECT" not in detail
            route = path.split("?")[0].replace("evt_0", "{event_id}")
            seen.add(route.replace(SOME_ID, "{job_id}").replace(on_simulator, "{job_id}"))
        health_answer = http.get("/healthz")
    # Every route of the spec that reads or writes the store was called above.
    store_routes = {p for p in app.openapi()["paths"] if p.startswith("/v1") and p != "/v1/files"}
    assert store_routes <= seen
    assert health_answer.status_code == 503
    assert any(r.startswith("database unavailable: ") for r in health_answer.json()["reasons"])


def test_database_back_after_an_outage_serves_again(tmp_path: Path) -> None:
    """The 503 is not sticky: the same app answers 200 once the database is reachable."""
    directory = tmp_path / "db"
    store = Store(f"sqlite:///{directory / 'bw.db'}")
    store.migrate()
    store.close()
    moved = tmp_path / "elsewhere"
    directory.rename(moved)
    app = create_app(store, Health(1.0, datetime.now(UTC)), "local-token-for-this-test")
    http = TestClient(app, raise_server_exceptions=False)
    auth = {"Authorization": "Bearer local-token-for-this-test"}
    try:
        assert http.get("/v1/batch/jobs", headers=auth).status_code == 503
        moved.rename(directory)
        assert http.get("/v1/batch/jobs", headers=auth).status_code == 200
    finally:
        store.close()
