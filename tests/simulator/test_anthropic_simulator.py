"""The Anthropic simulator, checked against Anthropic's OpenAPI description, the official
``anthropic`` SDK and its own clock.

Two tiers: the lifecycle, listing and directives on ``AnthropicSimulation`` with an injected
clock (no sleeping); then every route over loopback, through the SDK (on an HTTP client whose
hook validates each response against the spec) or, for what the SDK does not send (the
``x-api-key`` header: this SDK sends ``Authorization: Bearer``; no ``anthropic-version``;
malformed bodies), plain ``requests``. The SDK also checks each body against its own models
(``_strict_response_validation``), which are generated from Anthropic's current spec.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
import requests
import yaml
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from anthropic.types.messages import MessageBatch
from anthropic.types.messages.batch_create_params import Request as BatchRequestParam
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS31Validator

from batchwatch.simulator.anthropic import simulation as simulation_module
from batchwatch.simulator.anthropic.batches import BatchRequest
from batchwatch.simulator.anthropic.errors import AnthropicApiError
from batchwatch.simulator.anthropic.lifecycle import state_at
from batchwatch.simulator.anthropic.results import result_order
from batchwatch.simulator.anthropic.simulation import AnthropicSimulation
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "anthropic-openapi-batches.yaml"
ANTHROPIC_URL = "https://api.anthropic.com"  # the spec's server: requests are matched to it
KEY = "sim-anthropic-key"
ONE = "/v1/messages/batches/{message_batch_id}"

# --- Checking responses against the spec ---------------------------------------------------


class SpecValidators:
    """Anthropic's OpenAPI description, loaded once: the operations' 2xx responses, and the
    error body and the results-file line as schemas of their own."""

    def __init__(self, spec: dict[str, Any]) -> None:
        config = Config(extra_media_type_deserializers={"application/x-jsonl": bytes.decode})
        self.openapi = OpenAPI.from_dict(spec, config=config)
        self.error = self._schema(spec, "BetaErrorResponse")
        self.line = self._schema(spec, "BetaMessageBatchIndividualResponse")

    @staticmethod
    def _schema(spec: dict[str, Any], name: str) -> OAS31Validator:
        ref = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
        return OAS31Validator(ref)


class ResponseChecker:
    """Validates each ``/v1`` response against the spec: a 2xx against its operation (a
    results file line by line too), an error against the error body. It keeps what failed, so
    a test fails even when the SDK let a bad body through. Not checked: a DELETE's 200
    (absent from this spec version; the SDK's strict models check it). The 429s and 5xx,
    which only the shared fault layer sends, are checked like any error."""

    def __init__(self, validators: SpecValidators) -> None:
        self.spec = validators
        self.validated = 0
        self.failures: list[str] = []

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        if not path.startswith("/v1/"):
            return
        if method == "DELETE" and status < 400:
            return
        try:
            if status >= 400:
                self.spec.error.validate(json.loads(body))
            else:
                request = MockRequest(ANTHROPIC_URL, method.lower(), path)
                response = MockResponse(body, status, content_type=content_type.partition(";")[0])
                self.spec.openapi.validate_response(request, response)
            if path.endswith("/results") and status == 200:
                for line in body.splitlines():
                    self.spec.line.validate(json.loads(line))
            self.validated += 1
        except Exception as exc:  # kept, and reported by the fixture
            self.failures.append(f"{method} {path} -> {status}: {exc}")


@pytest.fixture(scope="module")
def validators() -> SpecValidators:
    if not SPEC_PATH.is_file():  # a broken checkout, not a reason to validate nothing
        pytest.fail(f"Anthropic's OpenAPI description is missing at {SPEC_PATH}", pytrace=False)
    return SpecValidators(yaml.safe_load(SPEC_PATH.read_text()))


@pytest.fixture
def checker(validators: SpecValidators) -> Iterator[ResponseChecker]:
    checker = ResponseChecker(validators)
    yield checker
    assert checker.failures == []


# --- Tier 1: the simulation and its clock ----------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


SETTINGS = SimulatorSettings(queue_seconds=2, run_seconds=10, cancel_seconds=1)


def new_simulation() -> tuple[AnthropicSimulation, FakeClock]:
    clock = FakeClock()
    return AnthropicSimulation(SETTINGS, clock=clock), clock


def sim_requests(n: int) -> list[BatchRequest]:
    return [BatchRequest(f"req-{i}", "claude-test") for i in range(n)]


def result_types(sim: AnthropicSimulation, batch_id: str) -> dict[str, str]:
    lines = b"".join(sim.results(batch_id)).splitlines()
    parsed = [json.loads(line) for line in lines]
    types = {line["custom_id"]: line["result"]["type"] for line in parsed}
    assert len(types) == len(parsed)  # one line per request, never two
    return types


@pytest.mark.parametrize(
    ("directives", "succeeded", "errored", "expired"),
    [
        (None, 10, 0, 0),
        ("user-42;sim_failure_rate=0.3", 7, 3, 0),
        ("sim_outcome=expired", 5, 0, 5),
        ("sim_outcome=expired;sim_failure_rate=0.5", 3, 2, 5),
    ],
)
def test_counts_stay_in_processing_until_the_batch_ends(
    directives: str | None, succeeded: int, errored: int, expired: int
) -> None:
    sim, clock = new_simulation()
    t0 = clock.now
    batch = sim.create_batch(sim_requests(10), directives)
    for offset in (0, 1.9, 7, 11.99):  # queued, then half-way: nothing shows
        clock.now = t0 + offset
        view = sim.get_batch(batch.id)
        assert (view.status, view.state.counts()["processing"]) == ("in_progress", 10), offset
        assert view.to_wire("http://sim")["results_url"] is None
    clock.now = t0 + 12
    wire = sim.get_batch(batch.id).to_wire("http://sim")
    assert wire["processing_status"] == "ended"
    assert wire["request_counts"] == {
        "processing": 0,
        "succeeded": succeeded,
        "errored": errored,
        "canceled": 0,
        "expired": expired,
    }
    assert wire["results_url"] == f"http://sim/v1/messages/batches/{batch.id}/results"
    assert wire["ended_at"] is not None and wire["cancel_initiated_at"] is None
    types = result_types(sim, batch.id)
    assert sorted(types) == [f"req-{i}" for i in range(10)]
    assert sum(kind == "errored" for kind in types.values()) == errored
    assert sum(kind == "expired" for kind in types.values()) == expired


def test_cancel_keeps_what_was_processed_and_cancels_the_rest() -> None:
    sim, clock = new_simulation()
    t0 = clock.now
    batch = sim.create_batch(sim_requests(10))
    clock.now = t0 + 7  # 5 of 10 processed
    canceling = sim.cancel_batch(batch.id).to_wire("http://sim")
    assert canceling["processing_status"] == "canceling"
    assert canceling["cancel_initiated_at"] is not None
    assert canceling["request_counts"]["processing"] == 10
    assert sim.cancel_batch(batch.id).status == "canceling"  # again: unchanged
    clock.now = t0 + 8
    ended = sim.get_batch(batch.id).state
    assert (ended.status, ended.succeeded, ended.canceled, ended.expired) == ("ended", 5, 5, 0)
    assert list(result_types(sim, batch.id).values()).count("canceled") == 5
    history = [(entry.status.value, entry.at - t0) for entry in sim.history(batch.id)]
    assert history == [("in_progress", 0), ("canceling", 7), ("ended", 8)]
    with pytest.raises(AnthropicApiError) as ended_cancel:
        sim.cancel_batch(batch.id)
    assert ended_cancel.value.status_code == 400


def test_results_are_complete_in_a_stable_order_that_is_not_the_input_order() -> None:
    sim, _ = new_simulation()
    batch = sim.create_batch(sim_requests(50), "sim_run_seconds=0;sim_queue_seconds=0")
    first = b"".join(sim.results(batch.id))
    ids = [json.loads(line)["custom_id"] for line in first.splitlines()]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(50))
    assert ids != [f"req-{i}" for i in range(50)]
    assert b"".join(sim.results(batch.id)) == first
    # Even two requests never come back in input order (an identity draw is rotated).
    assert all(result_order(f"msgbatch_{n}", 2) == [1, 0] for n in range(40))


def test_results_of_a_batch_still_in_progress_are_a_400() -> None:
    sim, _ = new_simulation()
    batch = sim.create_batch(sim_requests(2))
    with pytest.raises(AnthropicApiError) as caught:
        sim.results(batch.id)
    assert (caught.value.status_code, caught.value.error_type) == (400, "invalid_request_error")


@pytest.mark.parametrize(
    "user_id",
    ["sim_outcome=failed", "sim_failure_rate=2", "sim_run_seconds=-1", "sim_queue_seconds=x",
     "sim_bogus=1", "sim_outcome", "sim_hidden_gets=1.5", "sim_failure_rate=nan"],
)  # fmt: skip
def test_a_bad_directive_is_a_400(user_id: str) -> None:
    sim, _ = new_simulation()
    with pytest.raises(AnthropicApiError) as caught:
        sim.create_batch(sim_requests(1), user_id)
    assert caught.value.status_code == 400


def test_the_first_retrieves_of_a_new_batch_can_be_404() -> None:
    sim, _ = new_simulation()
    batch = sim.create_batch(sim_requests(1), "sim_hidden_gets=2")
    for _ in range(2):
        with pytest.raises(AnthropicApiError) as caught:
            sim.get_batch(batch.id)
        assert caught.value.error_type == "not_found_error"
    assert sim.get_batch(batch.id).id == batch.id
    assert sim.get_batch(sim.create_batch(sim_requests(1)).id)  # off by default
    sim.set_hidden_gets(1)
    quiet = sim.create_batch(sim_requests(1))
    with pytest.raises(AnthropicApiError):
        sim.get_batch(quiet.id)
    assert sim.get_batch(quiet.id).id == quiet.id


def test_listing_pages_newest_first_from_either_cursor() -> None:
    sim, _ = new_simulation()
    ids = sim.seed_jobs(25, 3)
    newest_first = ids[::-1]
    sim.delete_batch(sim.create_batch(sim_requests(1), "sim_queue_seconds=0;sim_run_seconds=0").id)
    pages, after = [], None
    while True:
        page = sim.list_batches(10, after_id=after)
        pages.append([view.id for view in page.batches])
        if not page.has_more:
            break
        after = pages[-1][-1]
    assert pages == [newest_first[:10], newest_first[10:20], newest_first[20:]]
    newer = sim.list_batches(4, before_id=newest_first[10])
    assert ([v.id for v in newer.batches], newer.has_more) == (newest_first[6:10], True)
    for cursors in ({"after_id": "msgbatch_nope"}, {"after_id": ids[0], "before_id": ids[1]}):
        with pytest.raises(AnthropicApiError):
            sim.list_batches(5, **cursors)


def test_a_page_computes_only_its_own_batches_states(monkeypatch: pytest.MonkeyPatch) -> None:
    sim, _ = new_simulation()
    sim.seed_jobs(10_000, 5, queue_seconds=0, run_seconds=0)
    sim.seed_jobs(1_000, 5)
    calls = []

    def counted(*args: Any) -> Any:
        calls.append(1)
        return state_at(*args)

    monkeypatch.setattr(simulation_module, "state_at", counted)
    page = sim.list_batches(20, after_id=sim.list_batches(1000).batches[-1].id)
    assert len(page.batches) == 20 and len(calls) == 1020
    assert [view.status for view in page.batches] == ["ended"] * 20


def test_seeded_batches_follow_their_outcome_and_timings() -> None:
    sim, _ = new_simulation()
    ended = sim.seed_jobs(2, 4, "expired", queue_seconds=0, run_seconds=0, failure_rate=0.5)
    active = sim.seed_jobs(1, 4)
    assert sim.get_batch(ended[0]).state.counts() == {
        "processing": 0,
        "succeeded": 1,
        "errored": 1,
        "canceled": 0,
        "expired": 2,
    }
    assert sim.get_batch(active[0]).status == "in_progress"
    assert sorted(result_types(sim, ended[1])) == [f"request-{n}" for n in range(1, 5)]
    with pytest.raises(AnthropicApiError):
        sim.seed_jobs(1, 4, "failed")
    with pytest.raises(ValueError, match="timings"):
        sim.seed_jobs(1, 4, queue_seconds=math.nan)


def test_only_ended_batches_can_be_deleted_and_then_are_gone() -> None:
    sim, clock = new_simulation()
    batch = sim.create_batch(sim_requests(2))
    with pytest.raises(AnthropicApiError) as caught:
        sim.delete_batch(batch.id)
    assert caught.value.status_code == 400
    clock.now += 12
    sim.delete_batch(batch.id)
    for operation in (sim.get_batch, sim.cancel_batch, sim.delete_batch, sim.results):
        with pytest.raises(AnthropicApiError) as gone:
            operation(batch.id)
        assert gone.value.status_code == 404
    assert [entry.status for entry in sim.history(batch.id)] == ["in_progress", "ended"]


def test_every_state_validates_against_the_spec(checker: ResponseChecker) -> None:
    sim, clock = new_simulation()
    plain = sim.create_batch(sim_requests(6), "sim_failure_rate=0.5")
    expired = sim.create_batch(sim_requests(6), "sim_outcome=expired")
    canceled = sim.create_batch(sim_requests(6))
    for step in range(14):
        clock.now += 1
        if step == 5:
            sim.cancel_batch(canceled.id)
        for batch_id in (plain.id, expired.id, canceled.id):
            body = json.dumps(sim.get_batch(batch_id).to_wire("http://sim")).encode()
            checker.check("GET", f"/v1/messages/batches/{batch_id}", 200, "application/json", body)
    page = sim.list_batches(20)
    listing = {
        "data": [v.to_wire("http://sim") for v in page.batches],
        "has_more": False,
        "first_id": plain.id,
        "last_id": canceled.id,
    }
    checker.check(
        "GET", "/v1/messages/batches", 200, "application/json", json.dumps(listing).encode()
    )
    for batch_id in (plain.id, expired.id, canceled.id):
        results = b"".join(sim.results(batch_id))
        checker.check(
            "GET", f"/v1/messages/batches/{batch_id}/results", 200, "application/x-jsonl", results
        )
    assert checker.validated == 3 * 14 + 1 + 3
    checker.check("GET", f"/v1/messages/batches/{plain.id}", 200, "application/json", b'{"id":1}')
    assert len(checker.failures) == 1  # the checker does catch a bad body
    checker.failures.clear()


# --- Tier 2: every route over loopback, through the official SDK --------------------------


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSimulator]:
    """One simulator for the module (each stop costs uvicorn ~0.2 s). Batches run 30 s
    unless a directive says otherwise, so they stay in progress while a test looks."""
    settings = SimulatorSettings(api_key=KEY, queue_seconds=0, run_seconds=30, cancel_seconds=0.2)
    simulator = start_in_thread(settings, provider="anthropic")
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(running: RunningSimulator) -> Iterator[RunningSimulator]:
    yield running
    running.simulation.faults.clear()
    running.simulation.set_hidden_gets(0)


@pytest.fixture
def client(sim: RunningSimulator, checker: ResponseChecker) -> Iterator[anthropic.Anthropic]:
    """The official SDK, on an HTTP client that hands every response to the checker."""

    def check(response: httpx2.Response) -> None:
        response.read()
        request = response.request
        checker.check(
            request.method,
            request.url.path,
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
        )

    with httpx2.Client(event_hooks={"response": [check]}) as http:
        yield anthropic.Anthropic(
            base_url=sim.url, api_key=KEY, max_retries=0, http_client=http,
            _strict_response_validation=True,
        )  # fmt: skip


Call = Callable[..., requests.Response]


@pytest.fixture
def call(sim: RunningSimulator, checker: ResponseChecker) -> Iterator[Call]:
    """``call(method, path, headers=..., **kwargs)``: plain HTTP, checked like the SDK's."""
    defaults = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    with requests.Session() as session:

        def send(
            method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
        ) -> requests.Response:
            response = session.request(
                method,
                sim.url + path,
                timeout=10,
                headers=defaults if headers is None else headers,
                **kwargs,
            )
            checker.check(
                method,
                path.partition("?")[0],
                response.status_code,
                response.headers.get("content-type", ""),
                response.content,
            )
            return response

        yield send


def batch_requests(n: int, directives: str | None = None) -> list[BatchRequestParam]:
    made: list[BatchRequestParam] = []
    for i in range(n):
        params: MessageCreateParamsNonStreaming = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 64,
            "messages": [{"role": "user", "content": f"Question {i}"}],
        }
        if i == 0 and directives is not None:
            params["metadata"] = {"user_id": directives}
        made.append({"custom_id": f"req-{i}", "params": params})
    return made


def wait_until_ended(client: anthropic.Anthropic, batch_id: str) -> MessageBatch:
    deadline = time.monotonic() + 5
    while (batch := client.messages.batches.retrieve(batch_id)).processing_status != "ended":
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
    return batch


def test_sdk_creates_polls_reads_results_and_deletes(
    client: anthropic.Anthropic, checker: ResponseChecker
) -> None:
    created = client.messages.batches.create(
        requests=batch_requests(5, "sim_run_seconds=0.5;sim_failure_rate=0.4")
    )
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress" and created.results_url is None
    assert created.request_counts.processing == 5
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        client.messages.batches.results(created.id)
    ended = wait_until_ended(client, created.id)
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 3, 2)
    assert ended.ended_at is not None and ended.created_at < ended.ended_at
    results = list(client.messages.batches.results(created.id))
    assert sorted(r.custom_id for r in results) == [f"req-{i}" for i in range(5)]
    assert [r.custom_id for r in results] != [f"req-{i}" for i in range(5)]
    succeeded = [r.result for r in results if r.result.type == "succeeded"]
    errored = [r.result for r in results if r.result.type == "errored"]
    assert len(succeeded) == 3 and len(errored) == 2
    assert all(r.message.content[0].type == "text" for r in succeeded)
    assert {r.error.error.type for r in errored} == {"invalid_request_error", "api_error"}
    deleted = client.messages.batches.delete(created.id)
    assert (deleted.id, deleted.type) == (created.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(created.id)
    assert checker.validated >= 6  # the spec was used, not skipped


def test_sdk_list_auto_paginates_newest_first_both_ways(
    client: anthropic.Anthropic, call: Call, sim: RunningSimulator
) -> None:
    seeded = call("POST", "/_sim/jobs/bulk", json={"count": 7, "total_requests": 2}).json()["ids"]
    sim.simulation.reset_stats()
    listed = [batch.id for batch in client.messages.batches.list(limit=3)]
    assert len(set(listed)) == len(listed) and listed[:7] == seeded[::-1]
    pages = sim.simulation.stats()["requests"]["GET /v1/messages/batches"]
    assert pages == math.ceil(len(listed) / 3)
    newer = list(client.messages.batches.list(limit=2, before_id=listed[-1]))
    assert {batch.id for batch in newer} == set(listed[:-1])
    first = client.messages.batches.list(limit=2, before_id=listed[-1])
    assert [b.id for b in first.data] == listed[-3:-1] and first.has_more is (len(listed) > 3)


def test_sdk_cancel_goes_through_canceling_to_ended_with_canceled_requests(
    client: anthropic.Anthropic, call: Call
) -> None:
    batch = client.messages.batches.create(requests=batch_requests(4))
    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None and canceling.request_counts.processing == 4
    ended = wait_until_ended(client, batch.id)
    assert (ended.request_counts.canceled, ended.request_counts.succeeded) == (4, 0)
    assert {r.result.type for r in client.messages.batches.results(batch.id)} == {"canceled"}
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.cancel(batch.id)
    history = call("GET", f"/_sim/jobs/{batch.id}/history").json()
    assert [entry["status"] for entry in history["statuses"]] == [
        "in_progress",
        "canceling",
        "ended",
    ]


def test_sdk_sees_an_expired_batch(client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(
        requests=batch_requests(4, "sim_outcome=expired;sim_run_seconds=0")
    )
    counts = wait_until_ended(client, batch.id).request_counts
    assert (counts.succeeded, counts.expired) == (2, 2)
    kinds = sorted(r.result.type for r in client.messages.batches.results(batch.id))
    assert kinds == ["expired", "expired", "succeeded", "succeeded"]


def test_a_new_batch_answers_404_for_its_first_retrieves(
    client: anthropic.Anthropic, call: Call
) -> None:
    batch = client.messages.batches.create(requests=batch_requests(1, "sim_hidden_gets=2"))
    for _ in range(2):
        with pytest.raises(anthropic.NotFoundError) as caught:
            client.messages.batches.retrieve(batch.id)
        assert caught.value.type == "not_found_error"
    assert client.messages.batches.retrieve(batch.id).id == batch.id
    assert call("POST", "/_sim/quirks", json={"hidden_gets": 1}).json() == {"hidden_gets": 1}
    quirky = client.messages.batches.create(requests=batch_requests(1))
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(quirky.id)
    assert client.messages.batches.retrieve(quirky.id).id == quirky.id


def test_either_key_header_passes_and_a_bad_key_is_a_401(sim: RunningSimulator, call: Call) -> None:
    version = {"anthropic-version": "2023-06-01"}
    assert call("GET", "/v1/messages/batches", {**version, "x-api-key": KEY}).status_code == 200
    bearer = {**version, "Authorization": f"Bearer {KEY}"}
    assert call("GET", "/v1/messages/batches", bearer).status_code == 200
    for headers in (version, {**version, "x-api-key": "wrong"}):
        refused = call("GET", "/v1/messages/batches", headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "authentication_error"
        assert refused.json()["request_id"] == refused.headers["request-id"]
    bad = anthropic.Anthropic(base_url=sim.url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.batches.list()


def test_the_sdk_sends_its_key_as_a_bearer_token(sim: RunningSimulator) -> None:
    """Which is why ``x-api-key`` is tested with plain HTTP above: if an SDK upgrade moves
    the key, this fails and says that the other form lost its coverage."""
    sent: list[httpx2.Headers] = []
    with httpx2.Client(event_hooks={"request": [lambda r: sent.append(r.headers)]}) as http:
        sdk = anthropic.Anthropic(base_url=sim.url, api_key=KEY, max_retries=0, http_client=http)
        sdk.messages.batches.list()
    assert sent[0]["authorization"] == f"Bearer {KEY}" and "x-api-key" not in sent[0]
    assert sent[0]["anthropic-version"]


def test_a_request_without_anthropic_version_is_a_400(call: Call) -> None:
    response = call("GET", "/v1/messages/batches", {"x-api-key": KEY})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "anthropic-version" in response.json()["error"]["message"]


def test_unknown_ids_and_routes_are_404(client: anthropic.Anthropic, call: Call) -> None:
    operations = (
        client.messages.batches.retrieve,
        client.messages.batches.cancel,
        client.messages.batches.delete,
    )
    for operation in operations:
        with pytest.raises(anthropic.NotFoundError):
            operation("msgbatch_nope")
    for path in ("/v1/messages/batches/msgbatch_nope/results", "/v1/nothing/here"):
        response = call("GET", path)
        assert (response.status_code, response.json()["error"]["type"]) == (404, "not_found_error")


@pytest.mark.parametrize(
    ("requests_body", "complaint"),
    [
        ([], "requests"),
        ([{"custom_id": "a", "params": {"model": "m", "max_tokens": 1}}], "messages"),
        ([{"custom_id": "has space", "params": {"model": "m", "max_tokens": 1,
                                                "messages": [{"role": "user"}]}}], "custom_id"),
        ([{"custom_id": "x" * 65, "params": {"model": "m", "max_tokens": 1,
                                             "messages": [{"role": "user"}]}}], "custom_id"),
        (2 * [{"custom_id": "same", "params": {"model": "m", "max_tokens": 1,
                                               "messages": [{"role": "user"}]}}], "unique"),
        ([{"custom_id": "a", "params": {"model": "m", "max_tokens": 1, "messages": [{}],
                                        "metadata": {"user_id": "sim_outcome=x"}}}], "sim_outcome"),
    ],
)  # fmt: skip
def test_a_bad_create_body_is_a_400_that_says_why(
    call: Call, requests_body: list[dict[str, Any]], complaint: str
) -> None:
    response = call("POST", "/v1/messages/batches", json={"requests": requests_body})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert complaint in response.json()["error"]["message"]


def test_the_sdk_sees_400s_for_early_deletes_and_results(
    client: anthropic.Anthropic, call: Call
) -> None:
    batch = client.messages.batches.create(requests=batch_requests(2))
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)
    early = call("GET", f"/v1/messages/batches/{batch.id}/results")
    assert (early.status_code, early.json()["error"]["type"]) == (400, "invalid_request_error")
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[])


def test_faults_reach_the_sdk(client: anthropic.Anthropic, call: Call) -> None:
    rule = {"fault": "429", "times": 1, "retry_after": 3, "route": f"GET {ONE}"}
    assert call("POST", "/_sim/faults", json={"rules": [rule]}).status_code == 200
    batch = client.messages.batches.create(requests=batch_requests(1))
    with pytest.raises(anthropic.RateLimitError) as limited:
        client.messages.batches.retrieve(batch.id)
    assert limited.value.response.headers["retry-after"] == "3"
    assert client.messages.batches.retrieve(batch.id).id == batch.id  # times=1: spent
    call("POST", "/_sim/faults", json={"rules": [{"fault": "reset"}]})
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.batches.list()
    assert call("GET", "/_sim/faults").json()["rules"][0]["fired"] == 1  # /_sim: unfaulted
    assert call("DELETE", "/_sim/faults").json()["rules"] == []
    assert client.messages.batches.retrieve(batch.id).id == batch.id


def test_stats_count_route_templates_and_reset(
    client: anthropic.Anthropic, call: Call, sim: RunningSimulator
) -> None:
    call("POST", "/_sim/stats/reset")
    batch = client.messages.batches.create(requests=batch_requests(1))
    client.messages.batches.retrieve(batch.id)
    client.messages.batches.cancel(batch.id)
    assert call("GET", "/_sim/stats").json() == {
        "total": 3,
        "requests": {"POST /v1/messages/batches": 1, f"GET {ONE}": 1, f"POST {ONE}/cancel": 1},
    }
    assert call("POST", "/_sim/stats/reset").json() == {"total": 0, "requests": {}}
    assert sim.simulation.faults.requests() == []


def test_bulk_seeding_and_quirks_are_validated(call: Call) -> None:
    seeded = call(
        "POST",
        "/_sim/jobs/bulk",
        json={
            "count": 3,
            "total_requests": 2,
            "outcome": "expired",
            "queue_seconds": 0,
            "run_seconds": 0,
        },
    )
    history = call("GET", f"/_sim/jobs/{seeded.json()['ids'][0]}/history").json()
    assert [entry["status"] for entry in history["statuses"]] == ["in_progress", "ended"]
    for body in ({"count": 0}, {"count": 1, "outcome": "failed"}, {"count": 100_001}):
        assert call("POST", "/_sim/jobs/bulk", json=body).status_code == 422
    assert call("POST", "/_sim/quirks", json={"hidden_gets": -1}).status_code == 422
    assert call("GET", "/_sim/quirks").json() == {"hidden_gets": 0}


def test_missing_field_drops_one_required_field_of_a_batch(
    call: Call, checker: ResponseChecker
) -> None:
    batch_id = call("POST", "/_sim/jobs/bulk", json={"count": 1}).json()["ids"][0]
    rule = {"fault": "missing_field", "times": 1, "route": f"GET {ONE}"}
    call("POST", "/_sim/faults", json={"rules": [rule]})
    faulted = set(call("GET", f"/v1/messages/batches/{batch_id}").json())
    assert len(set(call("GET", f"/v1/messages/batches/{batch_id}").json()) - faulted) == 1
    assert len(checker.failures) == 1 and "is a required property" in checker.failures[0]
    checker.failures.clear()  # the spec check caught the fault, as it should


@pytest.mark.parametrize("limit", [0, 1001, "many"])
def test_a_list_limit_outside_1_to_1000_is_a_400(call: Call, limit: object) -> None:
    response = call("GET", f"/v1/messages/batches?limit={limit}")
    assert (response.status_code, response.json()["error"]["type"]) == (
        400,
        "invalid_request_error",
    )
    assert "limit" in response.json()["error"]["message"]
