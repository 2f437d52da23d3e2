"""The simulator, checked against the official SDK, Mistral's OpenAPI spec and its own clock.

Three tiers: the lifecycle on ``Simulation`` with an injected clock (no sleeping); raw HTTP
for the error cases and the query encodings; the official SDK over loopback. Every HTTP
response a test receives is validated on the way: a 2xx against Mistral's spec, an error
against the documented error body (docs/mistral-api.md §3) or FastAPI's 422 shape.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx2
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from mistralai.client import Mistral
from mistralai.client.errors import SDKError
from mistralai.client.models import BatchRequest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from pydantic import BaseModel, ConfigDict, Field

from batchwatch.models import MISTRAL_STATUSES, JobStatus
from batchwatch.simulator.api_errors import SimApiError
from batchwatch.simulator.files import RequestLine
from batchwatch.simulator.jobs import JobSpec, SimJobQuery
from batchwatch.simulator.lifecycle import OUTCOMES, JobPlan, state_at, timeline
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.simulation import Simulation

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "mistral-openapi-batch.yaml"
MISTRAL_URL = "https://api.mistral.ai"  # the spec's server: requests are matched against it
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
Q, R = JobStatus.QUEUED, JobStatus.RUNNING
CR, CANCELLED = JobStatus.CANCELLATION_REQUESTED, JobStatus.CANCELLED


class ErrorBody(BaseModel):
    """docs/mistral-api.md §3: the documented error body; every field present."""

    model_config = ConfigDict(extra="forbid")
    object: Literal["error"]
    message: str
    type: Literal["invalid_request_error", "authentication_error", "server_error"]
    param: Any
    code: Any


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class HTTPValidationError(BaseModel):
    """FastAPI's 422 body, as Mistral's spec declares it for its other operations."""

    detail: list[ValidationErrorItem] = Field(min_length=1)


# --- Response checking ------------------------------------------------------------------


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    # A missing spec is a broken checkout, not a reason to validate nothing.
    if not SPEC_PATH.is_file():
        pytest.fail(f"Mistral's OpenAPI spec is missing at {SPEC_PATH}", pytrace=False)
    # openapi-core deserialises application/octet-stream to bytes and then fails its own
    # `type: string, format: binary` check; decoding it as latin-1 keeps every byte.
    config = Config(extra_media_type_deserializers={"application/octet-stream": _latin1})
    return OpenAPI.from_file_path(str(SPEC_PATH), config=config)


def _latin1(data: bytes) -> str:
    return data.decode("latin-1")


class ResponseChecker:
    """Validates each response it is shown; counts those validated against Mistral's spec
    (a 2xx of a Mistral route) so a test can prove the spec was used."""

    def __init__(self, openapi: OpenAPI) -> None:
        self.openapi = openapi
        self.validated_against_spec = 0

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        if status == 422:
            HTTPValidationError.model_validate_json(body)
        elif status >= 400:
            ErrorBody.model_validate_json(body)
        elif not path.startswith("/_sim/"):
            request = MockRequest(MISTRAL_URL, method.lower(), path.partition("?")[0])
            self.openapi.validate_response(
                request, MockResponse(body, status, content_type=content_type)
            )
            self.validated_against_spec += 1


@pytest.fixture
def checker(openapi: OpenAPI) -> ResponseChecker:
    return ResponseChecker(openapi)


Call = Callable[..., requests.Response]


@pytest.fixture(scope="module")
def shared_simulator() -> Iterator[RunningSimulator]:
    """One simulator for the many raw-HTTP cases: each stop costs uvicorn ~0.2 s."""
    settings = SimulatorSettings(api_key="sim-test-key", queue_seconds=0.3, run_seconds=1.0)
    running = start_in_thread(settings)
    yield running
    running.stop()


@pytest.fixture
def api(shared_simulator: RunningSimulator, checker: ResponseChecker) -> Iterator[Call]:
    """``api(method, path, key=..., **requests_kwargs)``: a raw call whose response is checked."""
    simulator = shared_simulator
    default_key = simulator.simulation.settings.api_key
    with requests.Session() as session:

        def call(
            method: str, path: str, key: str | None = default_key, **kwargs: Any
        ) -> requests.Response:
            headers = {} if key is None else {"Authorization": f"Bearer {key}"}
            response = session.request(
                method, simulator.url + path, headers=headers, timeout=10, **kwargs
            )
            content_type = response.headers.get("content-type", "")
            checker.check(method, path, response.status_code, content_type, response.content)
            return response

        yield call


@pytest.fixture
def sdk(simulator: RunningSimulator, checker: ResponseChecker) -> Iterator[Mistral]:
    """The official SDK, on an HTTP client that checks every response it receives."""

    def check(response: httpx2.Response) -> None:
        response.read()
        request = response.request
        content_type = response.headers.get("content-type", "")
        checker.check(
            request.method, request.url.path, response.status_code, content_type, response.content
        )

    with httpx2.Client(event_hooks={"response": [check]}) as http:
        yield Mistral(
            api_key=simulator.simulation.settings.api_key, server_url=simulator.url, client=http
        )


def test_responses_are_checked_against_mistrals_spec(openapi: OpenAPI) -> None:
    sim, clock = new_simulation()
    views = []
    for outcome in OUTCOMES:
        job = sim.create_job(inline_spec(4, sim_outcome=outcome, sim_failure_rate="0.5"))
        cancelled = sim.create_job(inline_spec(4))
        for _ in range(14):
            clock.advance(1)
            views.append(sim.get_job(job.id, inline=True))
            if clock.now - sim.get_job(cancelled.id).plan.created_at == 3:
                sim.cancel_job(cancelled.id)
            views.append(sim.get_job(cancelled.id))
    assert {v.state.status for v in views} == set(MISTRAL_STATUSES)
    request = MockRequest(MISTRAL_URL, "get", f"/v1/batch/jobs/{views[0].id}")
    for view in views:
        openapi.validate_response(request, MockResponse(json.dumps(view.to_wire()).encode()))


# --- Lifecycle, unit level, injected clock -------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


SETTINGS = SimulatorSettings(queue_seconds=2, run_seconds=10, cancel_seconds=1)


def new_simulation() -> tuple[Simulation, FakeClock]:
    clock = FakeClock()
    return Simulation(SETTINGS, clock=clock), clock


def inline_spec(n: int = 10, **metadata: str) -> JobSpec:
    requests_ = tuple(RequestLine(f"req-{i}", {"messages": []}) for i in range(n))
    return JobSpec("/v1/chat/completions", model="m", metadata=metadata or None, requests=requests_)


@pytest.mark.parametrize(
    ("outcome", "ends_after", "checkpoints"),
    [
        ("SUCCESS", 12, [(0, Q, 0), (1.9, Q, 0), (2, R, 0), (7, R, 5), (11.9, R, 9),
                         (12, JobStatus.SUCCESS, 10)]),
        ("FAILED", 7, [(2, R, 0), (6, R, 4), (7, JobStatus.FAILED, 5),
                       (99, JobStatus.FAILED, 5)]),
        ("TIMEOUT_EXCEEDED", 10, [(9.9, R, 7), (10, JobStatus.TIMEOUT_EXCEEDED, 8),
                                  (99, JobStatus.TIMEOUT_EXCEEDED, 8)]),
    ],
)  # fmt: skip
def test_lifecycle_follows_the_clock(
    outcome: str, ends_after: float, checkpoints: list[tuple[float, JobStatus, int]]
) -> None:
    sim, clock = new_simulation()
    t0 = clock.now
    job = sim.create_job(inline_spec(10, sim_outcome=outcome))
    for offset, status, completed in checkpoints:
        clock.now = t0 + offset
        state = sim.get_job(job.id).state
        assert (state.status, state.completed, state.failed) == (status, completed, 0), offset
    wire = sim.get_job(job.id).to_wire()
    assert wire["started_at"] == int(t0 + 2)
    assert wire["completed_at"] == int(t0 + ends_after)
    assert wire["output_file"] is not None
    assert wire["error_file"] is None
    assert len(wire["errors"]) == (1 if outcome == "FAILED" else 0)
    history = [(e.status, e.at - t0) for e in sim.history(job.id)]
    assert history == [(Q, 0), (R, 2), (JobStatus(outcome), pytest.approx(ends_after))]


def test_a_queued_job_shows_no_start_and_no_results() -> None:
    sim, _ = new_simulation()
    wire = sim.create_job(inline_spec(3)).to_wire()
    assert wire["status"] == "QUEUED"
    assert wire["started_at"] is wire["completed_at"] is wire["output_file"] is None
    assert (wire["object"], wire["errors"], wire["input_files"]) == ("batch", [], [])


@given(
    total=st.integers(1, 300),
    rate=st.floats(0, 1),
    outcome=st.sampled_from(OUTCOMES),
    moments=st.lists(st.floats(0, 20), min_size=2, max_size=8),
)
def test_counters_add_up_and_never_go_back(
    total: int, rate: float, outcome: JobStatus, moments: list[float]
) -> None:
    plan = JobPlan(0.0, 2.0, 10.0, outcome, total, rate)
    line = timeline(plan, None, 1.0)
    previous = state_at(plan, line, 0.0)
    for moment in sorted(moments):
        state = state_at(plan, line, moment)
        assert state.succeeded + state.failed == state.completed <= total
        assert state.failed == sum(plan.request_failed(i) for i in range(state.completed))
        assert state.completed >= previous.completed
        assert state.failed >= previous.failed
        previous = state


@pytest.mark.parametrize(("cancel_after", "before"), [(1, Q), (5, R)])
def test_cancel_of_an_active_job_freezes_it_then_cancels(
    cancel_after: float, before: JobStatus
) -> None:
    sim, clock = new_simulation()
    t0 = clock.now
    job = sim.create_job(inline_spec(10))
    clock.advance(cancel_after)
    assert sim.get_job(job.id).state.status is before
    requested = sim.cancel_job(job.id).state
    assert requested.status is CR
    clock.advance(0.5)
    assert sim.get_job(job.id).state == requested  # counters frozen, still requested
    clock.advance(0.5)
    done = sim.get_job(job.id).state
    assert (done.status, done.completed, done.completed_at) == (
        CANCELLED,
        requested.completed,
        t0 + cancel_after + 1,
    )
    assert sim.cancel_job(job.id).state == done  # a second cancel changes nothing
    statuses = [e.status for e in sim.history(job.id)]
    assert statuses == [Q, R, CR, CANCELLED] if before is R else [Q, CR, CANCELLED]


def test_cancel_while_cancellation_is_requested_returns_the_job_unchanged() -> None:
    sim, clock = new_simulation()
    job = sim.create_job(inline_spec(10))
    first = sim.cancel_job(job.id)
    clock.advance(0.5)
    assert sim.cancel_job(job.id).state == first.state
    clock.advance(0.5)
    assert sim.get_job(job.id).state.status is CANCELLED  # not pushed back by the 2nd cancel


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_cancel_of_a_finished_job_is_refused(outcome: JobStatus) -> None:
    sim, clock = new_simulation()
    job = sim.create_job(inline_spec(10, sim_outcome=outcome))
    clock.advance(60)
    with pytest.raises(SimApiError) as refused:
        sim.cancel_job(job.id)
    assert refused.value.status_code == 400
    assert sim.get_job(job.id).state.status is outcome


def test_result_files_hold_one_line_per_request() -> None:
    sim, _ = new_simulation()
    metadata = {"sim_queue_seconds": "0", "sim_run_seconds": "0", "sim_failure_rate": "0.3"}
    view = sim.get_job(sim.create_job(inline_spec(10, **metadata)).id)
    assert (view.state.status, view.state.succeeded, view.state.failed) == (JobStatus.SUCCESS, 7, 3)
    assert view.output_file is not None
    assert view.error_file is not None
    output, errors = sim.get_file(view.output_file), sim.get_file(view.error_file)
    # 3 failures: the 1st and 3rd in the error file, the 2nd as a non-2xx output line.
    assert (output.purpose, output.sample_type, output.source, output.num_lines) == (
        "batch",
        "batch_result",
        "mistral",
        8,
    )
    assert (errors.sample_type, errors.num_lines) == ("batch_error", 2)
    numbers, rejected = [], []
    for line in map(json.loads, output.content.splitlines()):
        n = int(re.fullmatch(rf"batch-{view.id[:8]}-(\d+)-{UUID}", line["id"])[1])  # type: ignore[index]
        assert line["custom_id"] == f"req-{n - 1}"
        assert line["error"] is None
        numbers.append(n)
        if line["response"]["status_code"] != 200:
            assert line["response"]["status_code"] in (400, 422)
            assert line["response"]["body"]["object"] == "error"
            rejected.append(n)
            continue
        assert line["response"]["body"]["object"] == "chat.completion"
    assert len(rejected) == 1
    for line in map(json.loads, errors.content.splitlines()):
        n = int(re.fullmatch(rf"batch-{view.id[:8]}-(\d+)-{UUID}", line["id"])[1])  # type: ignore[index]
        assert line["custom_id"] == f"req-{n - 1}"
        assert line["response"]["status_code"] == 500
        assert line["error"] == {
            "message": f"Simulated failure of request {n}",
            "code": "simulated_failure",
        }
        numbers.append(n)
    assert sorted(numbers) == list(range(1, 11))
    assert sim.get_job(view.id, inline=True).outputs == list(
        map(json.loads, output.content.splitlines())
    )


def test_bad_directives_are_refused() -> None:
    sim, _ = new_simulation()
    for bad in ({"sim_outcome": "CANCELLED"}, {"sim_run_seconds": "-1"}, {"sim_failure_rate": "2"}):
        with pytest.raises(SimApiError, match="sim_"):
            sim.create_job(inline_spec(1, **bad))


def test_deleted_job_is_gone_but_keeps_its_history() -> None:
    sim, clock = new_simulation()
    job = sim.create_job(inline_spec(1))
    clock.advance(3)
    sim.delete_job(job.id)
    clock.advance(60)
    with pytest.raises(SimApiError):
        sim.get_job(job.id)
    assert sim.list_jobs(SimJobQuery()).total == 0
    assert [e.status for e in sim.history(job.id)] == [Q, R]


# --- Listing, unit level -------------------------------------------------------------------


def test_listing_follows_status_changes() -> None:
    """The cached listing must never serve a status the clock has moved past."""
    sim, clock = new_simulation()
    ids = sim.seed_jobs(5, JobSpec("/v1/chat/completions"), total_requests=3)

    def by_status(*statuses: JobStatus) -> int:
        return sim.list_jobs(SimJobQuery(statuses=frozenset(statuses))).total

    assert (by_status(Q), by_status(R)) == (5, 0)
    clock.advance(3)
    assert (by_status(Q), by_status(R)) == (0, 5)
    sim.cancel_job(ids[0])
    assert (by_status(R), by_status(CR), by_status(R, CR)) == (4, 1, 5)
    sim.delete_job(ids[1])
    clock.advance(60)
    assert (by_status(JobStatus.SUCCESS), by_status(CANCELLED)) == (3, 1)


def test_listing_filters_pages_and_orders() -> None:
    sim, clock = new_simulation()
    created = []
    for i in range(6):
        clock.advance(1)
        metadata = {"team": "a" if i % 2 else "b"}
        spec = replace(inline_spec(1, **metadata), model=f"m{i % 3}")
        created.append(sim.create_job(spec).id)
    clock.advance(1)
    others = sim.seed_jobs(3, JobSpec("/v1/ocr", model="m0"), 1, owner="other")

    def ids(**filters: Any) -> tuple[list[str], int]:
        listing = sim.list_jobs(SimJobQuery(**filters))
        return [job.id for job in listing.jobs], listing.total

    newest_first = ids()[0]
    assert newest_first[3:] == created[::-1]
    assert newest_first[:3] == sorted(others, reverse=True)  # same instant: ties by id
    assert ids(order_by="created")[0] == created + sorted(others)
    assert ids(created_by_me=True) == (created[::-1], 6)
    assert ids(metadata=(("team", frozenset({"a"})),)) == (created[1::2][::-1], 3)
    assert ids(metadata=(("team", frozenset({"a", "b"})),))[1] == 6
    assert ids(model="m0")[1] == 5
    assert ids(created_after=sim.get_job(created[4]).plan.created_at)[1] == 5  # 2 + 3 others
    assert ids(page=1, page_size=4, order_by="created") == ((created + sorted(others))[4:8], 9)
    assert ids(page=3, page_size=4) == ([], 9)


def test_listing_10000_jobs_pages_through_each_once() -> None:
    """10,000 jobs that all changed status at once, listed a page at a time: each job on
    exactly one page. (How long that takes is not asserted here: shared machines make timed
    assertions flaky. Run with -s to see it; it measured about 0.15 s.)"""
    sim, clock = new_simulation()
    sim.seed_jobs(10_000, JobSpec("/v1/chat/completions", model="m"), total_requests=100)
    clock.advance(3)  # all 10,000 change status together: the first page pays for that
    active = SimJobQuery(statuses=frozenset({Q, R, CR}))
    started = time.perf_counter()
    seen: set[str] = set()
    for page in range(100):
        listing = sim.list_jobs(replace(active, page=page))
        assert len(listing.jobs) == 100
        assert listing.total == 10_000
        seen.update(job.to_wire()["id"] for job in listing.jobs)
    assert len(seen) == 10_000
    print(f"\n100 pages of 10,000 jobs listed in {time.perf_counter() - started:.2f} s")


# --- Raw HTTP: auth, errors, query encodings ----------------------------------------------

V1_ROUTES = [
    ("GET", "/v1/batch/jobs"),
    ("POST", "/v1/batch/jobs"),
    ("GET", "/v1/batch/jobs/00000000-0000-4000-8000-000000000000"),
    ("POST", "/v1/batch/jobs/not-a-uuid/cancel"),
    ("DELETE", "/v1/batch/jobs/00000000-0000-4000-8000-000000000000"),
    ("GET", "/v1/files"),
    ("POST", "/v1/files"),
    ("GET", "/v1/files/00000000-0000-4000-8000-000000000000/content"),
]


@pytest.mark.parametrize(("method", "path"), V1_ROUTES)
@pytest.mark.parametrize("key", [None, "wrong-key", ""])
def test_every_v1_route_needs_the_key(api: Call, method: str, path: str, key: str | None) -> None:
    response = api(method, path, key=key)
    assert response.status_code == 401
    assert response.json()["type"] == "authentication_error"


def test_any_key_is_accepted_when_none_is_configured() -> None:
    running = start_in_thread(SimulatorSettings(api_key=None))
    try:
        with requests.Session() as session:
            url = running.url + "/v1/batch/jobs"
            assert session.get(url, headers={"Authorization": "Bearer anything"}).status_code == 200
            assert session.get(url, headers={"Authorization": "Basic anything"}).status_code == 401
    finally:
        running.stop()
        running.stop()  # idempotent
    with pytest.raises(requests.ConnectionError):
        requests.get(running.url + "/v1/batch/jobs", timeout=2)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/batch/jobs/{}"), ("POST", "/v1/batch/jobs/{}/cancel"),
     ("DELETE", "/v1/batch/jobs/{}"), ("GET", "/v1/files/{}"), ("GET", "/v1/files/{}/content"),
     ("DELETE", "/v1/files/{}")],
)  # fmt: skip
def test_unknown_ids_are_404_and_malformed_ids_422(api: Call, method: str, path: str) -> None:
    unknown = api(method, path.format("00000000-0000-4000-8000-000000000000"))
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "invalid_request_error"
    malformed = api(method, path.format("job-1"))
    assert malformed.status_code == 422
    assert malformed.json()["detail"][0]["loc"][0] == "path"


FILE_ID = "00000000-0000-4000-8000-000000000000"
INLINE = {"endpoint": "/v1/embeddings", "requests": [{"body": {}}]}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"input_files": [FILE_ID]}, 422),  # endpoint is required
        ({"endpoint": "/v1/nope", "input_files": [FILE_ID]}, 422),
        ({"endpoint": "/v1/embeddings"}, 422),  # neither input_files nor requests
        ({"endpoint": "/v1/embeddings", "input_files": [], "requests": []}, 422),
        ({**INLINE, "input_files": [FILE_ID]}, 422),  # both
        ({"endpoint": "/v1/embeddings", "input_files": ["f1"]}, 422),  # not a UUID
        ({"endpoint": "/v1/embeddings", "requests": [{"custom_id": "x"}]}, 422),  # no body
        ({**INLINE, "requests": [{"body": {}}] * 10_001}, 422),
        ({**INLINE, "timeout_hours": 0}, 422),
        ({**INLINE, "timeout_hours": 169}, 422),
        ({**INLINE, "metadata": {"k" * 33: "v"}}, 422),
        ({**INLINE, "metadata": {"": "v"}}, 422),
        ({**INLINE, "metadata": {"k": ""}}, 422),
        ({**INLINE, "metadata": {"k": "v" * 513}}, 422),
        ({**INLINE, "metadata": {"k": 1}}, 422),
        ({"endpoint": "/v1/embeddings", "input_files": [FILE_ID]}, 404),  # unknown file
        ({**INLINE, "metadata": {"sim_outcome": "X"}}, 400),
        ({**INLINE, "timeout_hours": 168, "metadata": {"k" * 32: "v" * 512}}, 200),
    ],
)
def test_create_validates_its_body(api: Call, body: dict[str, Any], status: int) -> None:
    assert api("POST", "/v1/batch/jobs", json=body).status_code == status


def test_cancel_of_a_finished_job_is_a_400_over_http(api: Call) -> None:
    fast = {"sim_queue_seconds": "0", "sim_run_seconds": "0"}
    body = {"endpoint": "/v1/ocr", "requests": [{"body": {}}], "metadata": fast}
    job = api("POST", "/v1/batch/jobs", json=body).json()
    assert job["status"] == "SUCCESS"
    refused = api("POST", f"/v1/batch/jobs/{job['id']}/cancel")
    assert refused.status_code == 400
    assert "SUCCESS" in refused.json()["message"]


def seed(simulator: RunningSimulator, count: int, **fields: Any) -> list[str]:
    response = requests.post(
        f"{simulator.url}/_sim/jobs/bulk", json={"count": count, **fields}, timeout=10
    )
    response.raise_for_status()
    ids: list[str] = response.json()["ids"]
    return ids


def test_list_query_as_the_sdk_encodes_it(api: Call, shared_simulator: RunningSimulator) -> None:
    # Every query also filters on this test's own tag, as the simulator is shared.
    tag = {"test": "list-query"}
    queued = seed(shared_simulator, 3, metadata={**tag, "sim_queue_seconds": "60", "team": "a"})
    slow = {**tag, "sim_queue_seconds": "0", "sim_run_seconds": "60"}
    running = seed(shared_simulator, 2, metadata=slow)
    fast = {**tag, "sim_queue_seconds": "0", "sim_run_seconds": "0"}
    done = seed(shared_simulator, 4, created_by="other", metadata=fast)

    def listed(query: str) -> tuple[set[str], int]:
        response = api("GET", "/v1/batch/jobs?test=list-query&" + query)
        assert response.status_code == 200
        return {job["id"] for job in response.json()["data"]}, response.json()["total"]

    assert listed("status=RUNNING&status=QUEUED") == (set(queued + running), 5)
    assert listed("status=SUCCESS") == (set(done), 4)
    assert listed("team=a&page=0&page_size=100&created_by_me=false&order_by=-created") == (
        set(queued),
        3,
    )
    assert listed("team=b") == (set(), 0)
    assert listed("created_by_me=true")[1] == 5
    assert listed("page=1&page_size=4")[1] == 9
    assert len(listed("page=2&page_size=4")[0]) == 1
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert listed(f"created_after={tomorrow}") == (set(), 0)
    for bad in (
        "status=DONE",
        "status=RUNNING&status=nope",
        "order_by=newest",
        "page=-1",
        "created_by_me=maybe",
    ):
        assert api("GET", "/v1/batch/jobs?" + bad).status_code == 422, bad


def test_stats_count_v1_requests_by_route_template(
    api: Call, shared_simulator: RunningSimulator
) -> None:
    simulator = shared_simulator
    requests.post(f"{simulator.url}/_sim/stats/reset", timeout=10).raise_for_status()
    api("GET", "/v1/batch/jobs")
    api("GET", "/v1/batch/jobs?status=QUEUED")
    api("GET", f"/v1/batch/jobs/{FILE_ID}")
    api("POST", f"/v1/batch/jobs/{FILE_ID}/cancel", key=None)  # refused, still counted
    stats = requests.get(f"{simulator.url}/_sim/stats", timeout=10).json()
    assert stats == {
        "total": 4,
        "requests": {
            "GET /v1/batch/jobs": 2,
            "GET /v1/batch/jobs/{job_id}": 1,
            "POST /v1/batch/jobs/{job_id}/cancel": 1,
        },
    }


def test_latency_is_added_to_v1_responses_only() -> None:
    # A latency well above what a loaded machine adds to a loopback request.
    running = start_in_thread(SimulatorSettings(latency_seconds=1.5))
    try:
        started = time.perf_counter()
        requests.get(running.url + "/_sim/stats", timeout=10).raise_for_status()
        assert time.perf_counter() - started < 1.5
        started = time.perf_counter()
        requests.get(running.url + "/v1/files", headers={"Authorization": "Bearer k"}, timeout=10)
        assert time.perf_counter() - started >= 1.5
    finally:
        running.stop()


# --- The official SDK, every route ---------------------------------------------------------

FAST = {"sim_queue_seconds": "0.05", "sim_run_seconds": "0.3"}


def wait_until_done(sdk: Mistral, job_id: str, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = sdk.batch.jobs.get(job_id=job_id)
        if JobStatus(job.status).is_terminal or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_sdk_from_upload_to_results(sdk: Mistral, checker: ResponseChecker) -> None:
    lines = [
        {"custom_id": f"q{i}", "body": {"messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(3)
    ]
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    uploaded = sdk.files.upload(file={"file_name": "in.jsonl", "content": content}, purpose="batch")
    assert (uploaded.sample_type, uploaded.source, uploaded.num_lines) == (
        "batch_request",
        "upload",
        3,
    )
    assert uploaded.id in {f.id for f in sdk.files.list(purpose="batch").data}
    assert sdk.files.retrieve(file_id=uploaded.id).deleted is False
    assert sdk.files.download(file_id=uploaded.id).content == content

    metadata = {**FAST, "sim_failure_rate": "0.34", "team": "sdk"}
    since = datetime.now(UTC) - timedelta(seconds=5)
    job = sdk.batch.jobs.create(
        input_files=[uploaded.id],
        endpoint="/v1/chat/completions",
        model="mistral-small-latest",
        metadata=metadata,
    )
    assert (job.status, job.total_requests, job.metadata) == ("QUEUED", 3, metadata)
    active = sdk.batch.jobs.list(
        status=["QUEUED", "RUNNING"], created_by_me=True, created_after=since
    )
    assert job.id in {j.id for j in active.data or []}

    job = wait_until_done(sdk, job.id)
    assert (job.status, job.succeeded_requests, job.failed_requests) == ("SUCCESS", 2, 1)
    assert job.started_at is not None
    assert job.completed_at is not None
    output = sdk.files.download(file_id=job.output_file).content.splitlines()
    assert [json.loads(line)["custom_id"] for line in output] == ["q0", "q1"]
    first = json.loads(output[0])
    assert re.fullmatch(rf"batch-{job.id[:8]}-1-{UUID}", first["id"])
    assert first["response"]["status_code"] == 200
    assert first["response"]["body"]["choices"][0]["message"]["role"] == "assistant"
    assert first["error"] is None
    error = json.loads(sdk.files.download(file_id=job.error_file).content)
    assert (error["custom_id"], error["error"]["code"]) == ("q2", "simulated_failure")
    results = sdk.files.list(sample_type=["batch_result", "batch_error"], source=["mistral"])
    assert {f.id for f in results.data} == {job.output_file, job.error_file}
    assert sdk.files.get_signed_url(file_id=job.output_file).url.startswith("http")
    assert sdk.files.delete(file_id=uploaded.id).deleted is True
    assert checker.validated_against_spec >= 15


def test_sdk_cancel_then_cancelled(sdk: Mistral, simulator: RunningSimulator) -> None:
    job = sdk.batch.jobs.create(
        requests=[BatchRequest(custom_id="a", body={"input": "x"})],
        endpoint="/v1/embeddings",
        model="mistral-embed",
    )
    cancelled = sdk.batch.jobs.cancel(job_id=job.id)
    assert cancelled.status == "CANCELLATION_REQUESTED"
    assert wait_until_done(sdk, job.id).status == "CANCELLED"  # cancel_seconds=0.3 in conftest
    history = requests.get(f"{simulator.url}/_sim/jobs/{job.id}/history", timeout=10).json()
    assert [s["status"] for s in history["statuses"]] == [
        "QUEUED",
        "CANCELLATION_REQUESTED",
        "CANCELLED",
    ]
    assert history["statuses"][2]["at"] - history["statuses"][1]["at"] == pytest.approx(0.3)


def test_sdk_inline_outputs_metadata_filter_and_delete(sdk: Mistral) -> None:
    body = {"messages": [{"role": "user", "content": "hello"}]}
    requests_ = [BatchRequest(custom_id=f"r{i}", body=body) for i in range(3)]
    metadata = {"sim_queue_seconds": "0", "sim_run_seconds": "0", "team": "inline"}
    job = sdk.batch.jobs.create(
        requests=requests_, endpoint="/v1/chat/completions", model="m", metadata=metadata
    )
    assert job.status == "SUCCESS"
    assert job.input_files == []
    assert sdk.batch.jobs.get(job_id=job.id).outputs is None
    outputs = sdk.batch.jobs.get(job_id=job.id, inline=True).outputs
    assert isinstance(outputs, list)
    assert [o["custom_id"] for o in outputs] == ["r0", "r1", "r2"]
    assert all(o["response"]["body"]["object"] == "chat.completion" for o in outputs)

    listed = sdk.batch.jobs.list(
        metadata={"team": "inline"}, status=["SUCCESS"], order_by="created"
    )
    assert (listed.total, [j.id for j in listed.data or []]) == (1, [job.id])
    assert sdk.batch.jobs.delete(job_id=job.id).deleted is True
    with pytest.raises(SDKError) as gone:
        sdk.batch.jobs.get(job_id=job.id)
    assert gone.value.status_code == 404
    assert sdk.batch.jobs.list(metadata={"team": "inline"}).total == 0
