"""The OpenAI simulator, checked against the official ``openai`` SDK, OpenAI's OpenAPI
description and its own clock.

Two tiers: the lifecycle on ``OpenAISimulation`` with an injected clock (no sleeping); the
official SDK over loopback for every route, raw HTTP only where the SDK cannot go (no key,
the ``/_sim`` routes). Every response a test receives is validated on the way: a JSON 2xx
against OpenAI's description (``tests/data/openai-openapi-batch.yaml``), an error against its
``ErrorResponse``, a download's lines (by the tests that read them) against
``BatchRequestInput``/``BatchRequestOutput``.

The description leaves optional properties non-nullable (``Batch.output_file_id`` is
``type: string``), yet the API sends ``null`` for what does not apply, as the description's
own examples show (``"errors": null``), and the SDK generated from it reads every optional
property as nullable. The checker reads it the same way (``_optional_may_be_null``): an
optional property may be ``null``, a required one may not unless the description says so.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, cast

import httpx2
import openai
import pytest
import yaml
from openai.types import Batch, FileObject
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData
from openapi_schema_validator import OAS31Validator

from batchwatch.simulator.openai.batches import BatchSpec, BatchView
from batchwatch.simulator.openai.errors import OpenAIApiError
from batchwatch.simulator.openai.lifecycle import BatchStatus, state_at
from batchwatch.simulator.openai.simulation import OpenAISimulation
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "openai-openapi-batch.yaml"
OPENAI_URL = "https://api.openai.com"  # the description's server: https://api.openai.com/v1
KEY = "sk-sim-test-key-0123456789"
CHAT: Final = "/v1/chat/completions"
CONTENT_PATH = re.compile(r"/v1/files/[^/]+/content")
NOW = {"sim_queue_seconds": "0", "sim_run_seconds": "0"}  # ends at once (plus finalizing)
V, IP, FZ = BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS, BatchStatus.FINALIZING


# --- Response checking ----------------------------------------------------------------------


def _optional_may_be_null(node: Any) -> Any:
    """The description with every optional property allowed to be ``null`` (see above)."""
    if isinstance(node, list):
        return [_optional_may_be_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _optional_may_be_null(value) for key, value in node.items()}
    properties = node.get("properties")
    if isinstance(properties, dict):
        required = set(node.get("required", ()))
        node["properties"] = {
            name: prop if name in required else {"anyOf": [prop, {"type": "null"}]}
            for name, prop in properties.items()
        }
    return node


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    # A missing description is a broken checkout, not a reason to validate nothing.
    if not SPEC_PATH.is_file():
        pytest.fail(f"OpenAI's OpenAPI description is missing at {SPEC_PATH}", pytrace=False)
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def openapi(spec: dict[str, Any]) -> OpenAPI:
    return OpenAPI.from_dict(_optional_may_be_null(spec))


def component(spec: dict[str, Any], name: str) -> OAS31Validator:
    return OAS31Validator(
        {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    )


class ResponseChecker:
    """Validates each response it is shown; counts the 2xx validated against the description
    so that a test can prove it was used."""

    def __init__(self, openapi: OpenAPI, spec: dict[str, Any]) -> None:
        self.openapi = openapi
        self.error_body = component(spec, "ErrorResponse")
        self.validated = 0

    def check(self, method: str, path: str, status: int, content_type: str, body: bytes) -> None:
        if path.startswith("/_sim/"):
            return
        if status >= 400:
            self.error_body.validate(json.loads(body))
        elif CONTENT_PATH.fullmatch(path):
            # What the live API sends; the description's application/json string is a known
            # error in it (openai/openai-openapi#261). The lines are checked by the tests.
            assert content_type == "application/octet-stream"
        else:
            request = MockRequest(OPENAI_URL, method.lower(), path)
            response = MockResponse(body, status, content_type=content_type)
            self.openapi.validate_response(request, response)
            self.validated += 1

    def http(self) -> httpx2.Client:
        """An HTTP client that checks every response it receives."""

        def check(response: httpx2.Response) -> None:
            response.read()
            request = response.request
            content_type = response.headers.get("content-type", "")
            self.check(request.method, request.url.path, response.status_code, content_type,
                       response.content)  # fmt: skip

        return httpx2.Client(event_hooks={"response": [check]})


@pytest.fixture
def checker(openapi: OpenAPI, spec: dict[str, Any]) -> ResponseChecker:
    return ResponseChecker(openapi, spec)


SETTINGS = SimulatorSettings(api_key=KEY, queue_seconds=0.2, run_seconds=0.4, cancel_seconds=0.3)


@pytest.fixture(scope="module")
def simulator() -> Iterator[RunningSimulator]:
    """One simulator for the many SDK cases: each stop costs uvicorn ~0.2 s."""
    running = start_in_thread(SETTINGS, provider="openai")
    yield running
    running.stop()


@pytest.fixture
def fresh_simulator() -> Iterator[RunningSimulator]:
    """A simulator of one's own, for the tests that count what it holds or serves."""
    running = start_in_thread(SETTINGS, provider="openai")
    yield running
    running.stop()


def sdk(
    simulator: RunningSimulator, checker: ResponseChecker | None, **kwargs: Any
) -> openai.OpenAI:
    """The official SDK on ``simulator``, checking every response unless ``checker`` is None
    (a connection fault has no response to check)."""
    http = httpx2.Client() if checker is None else checker.http()
    options: dict[str, Any] = {"api_key": KEY, "max_retries": 0} | kwargs
    return openai.OpenAI(base_url=simulator.url + "/v1", http_client=http, **options)


@pytest.fixture
def client(simulator: RunningSimulator, checker: ResponseChecker) -> Iterator[openai.OpenAI]:
    with sdk(simulator, checker) as sdk_client:
        yield sdk_client


@pytest.fixture
def control(simulator: RunningSimulator) -> Iterator[httpx2.Client]:
    """Raw HTTP on the ``/_sim`` control routes (no auth)."""
    with httpx2.Client(base_url=simulator.url, timeout=10) as http:
        yield http


def request_lines(n: int, url: str = CHAT, model: str = "gpt-4o-mini") -> bytes:
    lines = (
        {"custom_id": f"req-{i}", "method": "POST", "url": url,
         "body": {"model": model, "messages": [{"role": "user", "content": f"Hi {i}"}]}}
        for i in range(n)
    )  # fmt: skip
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def upload(client: openai.OpenAI, content: bytes, name: str = "input.jsonl") -> FileObject:
    return client.files.create(file=(name, content), purpose="batch")


def create(client: openai.OpenAI, content: bytes, **metadata: str) -> Batch:
    stored = upload(client, content)
    return client.batches.create(
        input_file_id=stored.id, endpoint=CHAT, completion_window="24h", metadata=metadata or None
    )


def wait_for(client: openai.OpenAI, batch_id: str, status: str, timeout: float = 5.0) -> Batch:
    deadline = time.monotonic() + timeout
    while (batch := client.batches.retrieve(batch_id)).status != status:
        assert time.monotonic() < deadline, f"{batch_id} still {batch.status}, not {status}"
        time.sleep(0.02)
    return batch


def result_lines(
    client: openai.OpenAI, file_id: str | None, spec: dict[str, Any]
) -> list[dict[str, Any]]:
    """A result file's lines, each validated against ``BatchRequestOutput``."""
    assert file_id is not None
    assert client.files.retrieve(file_id).purpose == "batch_output"
    lines = [json.loads(raw) for raw in client.files.content(file_id).text.splitlines()]
    validator = component(spec, "BatchRequestOutput")
    for line in lines:
        validator.validate(line)
        assert line["id"].startswith("batch_req_")
    return lines


# --- Lifecycle, unit level, injected clock -----------------------------------------------------


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


UNIT = SimulatorSettings(queue_seconds=2, run_seconds=10, cancel_seconds=1)


def new_simulation() -> tuple[OpenAISimulation, FakeClock]:
    clock = FakeClock()
    return OpenAISimulation(UNIT, clock=clock), clock


def create_in(sim: OpenAISimulation, content: bytes, **metadata: str) -> BatchView:
    stored = sim.upload_file("input.jsonl", content, "batch")
    return sim.create_batch(BatchSpec(stored.id, CHAT, metadata=metadata or None))


def counts(view: BatchView) -> tuple[BatchStatus, int, int, int]:
    wire = view.to_wire()["request_counts"]
    return view.status, wire["total"], wire["completed"], wire["failed"]


@pytest.mark.parametrize(
    ("outcome", "ends_at", "checkpoints"),
    [
        ("completed", 13, [(0, V, 0, 0), (1.9, V, 0, 0), (2, IP, 10, 0), (7, IP, 10, 5),
                           (11.9, IP, 10, 9), (12, FZ, 10, 10), (12.9, FZ, 10, 10),
                           (13, BatchStatus.COMPLETED, 10, 10)]),
        ("expired", 10, [(2, IP, 10, 0), (9.9, IP, 10, 7), (10, BatchStatus.EXPIRED, 10, 8),
                         (99, BatchStatus.EXPIRED, 10, 8)]),
        ("failed", 2, [(1.9, V, 0, 0), (2, BatchStatus.FAILED, 0, 0),
                       (99, BatchStatus.FAILED, 0, 0)]),
    ],
)  # fmt: skip
def test_lifecycle_follows_the_clock(
    outcome: str, ends_at: float, checkpoints: list[tuple[float, BatchStatus, int, int]]
) -> None:
    sim, clock = new_simulation()
    t0 = clock.now
    batch = create_in(sim, request_lines(10), sim_outcome=outcome)
    for offset, status, total, completed in checkpoints:
        clock.now = t0 + offset
        assert counts(sim.get_batch(batch.id)) == (status, total, completed, 0), offset
    wire = sim.get_batch(batch.id).to_wire()
    assert wire[f"{outcome}_at"] == int(t0 + ends_at)
    assert wire["in_progress_at"] == (None if outcome == "failed" else int(t0 + 2))
    assert wire["expires_at"] == int(t0) + 24 * 3600
    assert (wire["output_file_id"] is None) == (outcome == "failed")
    assert (wire["error_file_id"] is not None) == (outcome == "expired")  # batch_expired lines
    history = [(e.status.value, e.at - t0) for e in sim.history(batch.id)]
    assert history[0] == ("validating", 0)
    assert history[-1][0] == outcome
    assert history[-1][1] == pytest.approx(ends_at)


def test_a_failed_batch_shows_why_and_nothing_else() -> None:
    sim, clock = new_simulation()
    batch = create_in(sim, request_lines(3), sim_outcome="failed")
    assert batch.to_wire()["errors"] is None  # not before validation ends
    clock.now += 2
    wire = sim.get_batch(batch.id).to_wire()
    assert wire["errors"]["object"] == "list"
    assert [e["code"] for e in wire["errors"]["data"]] == ["token_limit_exceeded"]
    assert wire["output_file_id"] is wire["error_file_id"] is None


def test_an_invalid_input_file_fails_validation_with_every_problem() -> None:
    sim, clock = new_simulation()
    good = json.loads(request_lines(1))
    lines = [good, "not json", {**good, "url": "/v1/embeddings"}, good,
             {**good, "custom_id": "other", "body": {"model": "gpt-4o"}}]  # fmt: skip
    content = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()
    batch = create_in(sim, content)
    assert batch.status is V  # accepted at create, as upstream
    clock.now += 2
    errors = sim.get_batch(batch.id).to_wire()["errors"]["data"]
    found = [(e["code"], e["line"], e["param"]) for e in errors]
    assert found == [("invalid_json_line", 2, None), ("url_mismatch", 3, "url"),
                     ("duplicate_custom_id", 3, "custom_id"),
                     ("duplicate_custom_id", 4, "custom_id"),
                     ("model_mismatch", 5, "body.model")]  # fmt: skip


@pytest.mark.parametrize(("cancel_after", "before"), [(1, V), (5, IP)])
def test_cancel_freezes_the_counters_then_cancels(cancel_after: float, before: BatchStatus) -> None:
    sim, clock = new_simulation()
    t0 = clock.now
    batch = create_in(sim, request_lines(10))
    clock.now += cancel_after
    assert sim.get_batch(batch.id).status is before
    requested = sim.cancel_batch(batch.id)
    assert requested.status is BatchStatus.CANCELLING
    assert requested.to_wire()["cancelling_at"] == int(t0 + cancel_after)
    clock.now += 0.5
    assert counts(sim.cancel_batch(batch.id)) == counts(requested)  # unchanged, frozen
    clock.now += 0.5
    done = sim.get_batch(batch.id)
    assert counts(done)[1:] == counts(requested)[1:]
    assert (done.status, done.to_wire()["cancelled_at"]) == (
        BatchStatus.CANCELLED, int(t0 + cancel_after + 1))  # fmt: skip
    assert (done.output_file_id is None) == (before is V)  # partial results, if any ran


@pytest.mark.parametrize("outcome", ["completed", "failed", "expired"])
def test_cancel_of_an_ended_batch_is_a_conflict(outcome: str) -> None:
    sim, clock = new_simulation()
    batch = create_in(sim, request_lines(4), sim_outcome=outcome)
    clock.now += 60
    with pytest.raises(OpenAIApiError) as refused:
        sim.cancel_batch(batch.id)
    assert refused.value.status_code == 409
    assert refused.value.message == f"Cannot cancel a batch with status '{outcome}'."


def test_an_expired_batch_keeps_partial_results_and_does_not_count_the_rest() -> None:
    sim, clock = new_simulation()
    batch = create_in(sim, request_lines(10), sim_outcome="expired", sim_failure_rate="0.25")
    clock.now += 60
    view = sim.get_batch(batch.id)
    assert counts(view) == (BatchStatus.EXPIRED, 10, 6, 2)  # 8 ran, 2 of them failed
    assert view.output_file_id is not None
    assert view.error_file_id is not None
    output = sim.get_file(view.output_file_id).content.decode().splitlines()
    errors = [json.loads(line) for line in sim.get_file(view.error_file_id).content.splitlines()]
    assert len(output) == 6
    expired = [e["custom_id"] for e in errors if (e["error"] or {}).get("code") == "batch_expired"]
    assert expired == ["req-8", "req-9"]
    assert len(errors) == 4


def test_a_completed_batch_whose_every_request_failed_has_no_output_file() -> None:
    sim, clock = new_simulation()
    batch = create_in(sim, request_lines(4), sim_failure_rate="1")
    clock.now += 60
    view = sim.get_batch(batch.id)
    assert counts(view) == (BatchStatus.COMPLETED, 4, 0, 4)
    assert view.output_file_id is None
    assert view.error_file_id is not None
    errors = [json.loads(line) for line in sim.get_file(view.error_file_id).content.splitlines()]
    # Both forms OpenAI documents, alternating: an HTTP error, then a non-HTTP one.
    assert [e["response"] is None for e in errors] == [False, True, False, True]
    assert all(e["response"] is None or e["response"]["status_code"] >= 400 for e in errors)


def test_usage_is_the_sum_of_the_output_files_usage() -> None:
    sim, clock = new_simulation()
    batch = create_in(sim, request_lines(20), sim_failure_rate="0.3")
    clock.now += 60
    view = sim.get_batch(batch.id)
    assert view.output_file_id is not None
    lines = [json.loads(x) for x in sim.get_file(view.output_file_id).content.splitlines()]
    usage = view.to_wire()["usage"]
    assert usage["input_tokens"] == sum(
        x["response"]["body"]["usage"]["prompt_tokens"] for x in lines
    )
    assert usage["output_tokens"] == sum(
        x["response"]["body"]["usage"]["completion_tokens"] for x in lines
    )
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0


@pytest.mark.parametrize(
    "metadata",
    [{"sim_outcome": "SUCCESS"}, {"sim_queue_seconds": "-1"}, {"sim_failure_rate": "2"},
     {"sim_run_seconds": "soon"}],
)  # fmt: skip
def test_a_bad_directive_is_a_400(metadata: dict[str, str]) -> None:
    sim, _ = new_simulation()
    with pytest.raises(OpenAIApiError) as refused:
        create_in(sim, request_lines(1), **metadata)
    assert (refused.value.status_code, refused.value.param) == (400, "metadata")


def test_a_page_costs_only_its_own_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    sim, clock = new_simulation()
    ended = sim.seed_jobs(10_000, 5, queue_seconds=0, run_seconds=0)
    active = sim.seed_jobs(1_000, 5, queue_seconds=3600)
    clock.now += 1
    first = sim.list_batches(limit=100)
    assert [b.id for b in first.batches] == active[::-1][:100]
    computed = 0

    def counting(*args: Any) -> Any:
        nonlocal computed
        computed += 1
        return state_at(*args)

    monkeypatch.setattr("batchwatch.simulator.openai.simulation.state_at", counting)
    second = sim.list_batches(after=first.batches[-1].id, limit=100)
    assert computed == 100
    seen, page = [b.id for b in first.batches + second.batches], second
    while page.has_more:
        page = sim.list_batches(after=page.batches[-1].id, limit=100)
        seen += [b.id for b in page.batches]
    assert seen == (ended + active)[::-1]
    assert {sim.get_batch(ended[0]).status, sim.get_batch(active[0]).status} == {
        BatchStatus.COMPLETED, V}  # fmt: skip


def test_every_status_validates_and_the_check_rejects_what_openai_would_not_send(
    openapi: OpenAPI,
) -> None:
    sim, clock = new_simulation()
    views = []
    for outcome in ("completed", "failed", "expired"):
        batch = create_in(sim, request_lines(4), sim_outcome=outcome, sim_failure_rate="0.5")
        cancelled = create_in(sim, request_lines(4))
        for step in range(15):
            clock.now += 1
            if step == 3:
                sim.cancel_batch(cancelled.id)
            views += [sim.get_batch(batch.id), sim.get_batch(cancelled.id)]
    assert {view.status for view in views} == set(BatchStatus)
    request = MockRequest(OPENAI_URL, "get", f"/v1/batches/{views[0].id}")

    def validate(body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        openapi.validate_response(request, MockResponse(payload, content_type="application/json"))

    for view in views:  # nulls where optional fields do not apply are fine
        validate(view.to_wire())
    wire = views[-1].to_wire()
    for broken in ({"status": "PAUSED"}, {"id": None}, {"request_counts": {"total": 2}},
                   {"created_at": "yesterday"}):  # fmt: skip
        with pytest.raises(InvalidData):
            validate(wire | broken)
    with pytest.raises(InvalidData):
        validate({key: value for key, value in wire.items() if key != "input_file_id"})


# --- Through the official SDK, over loopback ---------------------------------------------------


def test_files_round_trip_through_the_sdk(
    client: openai.OpenAI, checker: ResponseChecker, spec: dict[str, Any]
) -> None:
    content = request_lines(3)
    stored = upload(client, content)
    assert stored.id.startswith("file-")
    assert (stored.bytes, stored.purpose, stored.filename) == (len(content), "batch", "input.jsonl")
    assert stored.expires_at == stored.created_at + 30 * 24 * 3600  # batch files: 30 days
    assert client.files.retrieve(stored.id) == stored
    assert client.files.content(stored.id).content == content
    for line in content.splitlines():
        component(spec, "BatchRequestInput").validate(json.loads(line))
    assert stored.id in [f.id for f in client.files.list(purpose="batch")]
    deleted = client.files.delete(stored.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (stored.id, "file", True)
    for call in (client.files.retrieve, client.files.content, client.files.delete):
        with pytest.raises(openai.NotFoundError, match="No such File object"):
            call(stored.id)
    assert checker.validated == 4  # create, retrieve, list, delete: the JSON answers


def test_a_batch_runs_to_completion_through_the_sdk(
    client: openai.OpenAI, control: httpx2.Client, spec: dict[str, Any]
) -> None:
    batch = create(client, request_lines(6), sim_failure_rate="0.5", team="a")
    assert batch.id.startswith("batch_")
    assert (batch.status, batch.endpoint, batch.completion_window, batch.model) == (
        "validating", CHAT, "24h", "gpt-4o-mini")  # fmt: skip
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.errors, batch.metadata) == (
        0, None, {"sim_failure_rate": "0.5", "team": "a"})  # fmt: skip
    done = wait_for(client, batch.id, "completed")
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (6, 3)
    assert done.request_counts.failed == 3
    stamps = [done.created_at, done.in_progress_at, done.finalizing_at, done.completed_at]
    assert stamps == sorted(cast(list[int], stamps))
    output = result_lines(client, done.output_file_id, spec)
    errors = result_lines(client, done.error_file_id, spec)
    assert [line["response"]["status_code"] for line in output] == [200] * 3
    assert sorted(x["custom_id"] for x in output + errors) == [f"req-{i}" for i in range(6)]
    assert done.usage is not None
    assert done.usage.input_tokens == sum(
        line["response"]["body"]["usage"]["prompt_tokens"] for line in output
    )
    history = control.get(f"/_sim/jobs/{batch.id}/history").json()
    assert [entry["status"] for entry in history["statuses"]] == [
        "validating", "in_progress", "finalizing", "completed"]  # fmt: skip


def test_listing_auto_paginates_newest_first(
    fresh_simulator: RunningSimulator, checker: ResponseChecker
) -> None:
    with httpx2.Client(base_url=fresh_simulator.url) as http:
        seeded = http.post("/_sim/jobs/bulk", json={"count": 45}).json()["ids"]
        with sdk(fresh_simulator, checker) as client:
            first = client.batches.list(limit=10)
            assert (first.has_more, [b.id for b in first.data]) == (True, seeded[::-1][:10])
            http.post("/_sim/stats/reset")
            assert [b.id for b in client.batches.list(limit=10)] == seeded[::-1]
        assert http.get("/_sim/stats").json()["requests"] == {"GET /v1/batches": 5}


def test_cancelling_then_cancelled_through_the_sdk(
    client: openai.OpenAI, control: httpx2.Client
) -> None:
    batch = create(client, request_lines(4), sim_queue_seconds="60")
    cancelling = client.batches.cancel(batch.id)
    assert (cancelling.status, cancelling.cancelled_at) == ("cancelling", None)
    assert cancelling.cancelling_at is not None
    assert client.batches.cancel(batch.id).status == "cancelling"  # again: unchanged
    cancelled = wait_for(client, batch.id, "cancelled")
    assert cancelled.cancelled_at is not None
    assert cancelled.output_file_id is cancelled.error_file_id is None  # nothing ran
    history = control.get(f"/_sim/jobs/{batch.id}/history").json()["statuses"]
    assert [entry["status"] for entry in history] == ["validating", "cancelling", "cancelled"]
    with pytest.raises(openai.ConflictError, match="status 'cancelled'"):
        client.batches.cancel(batch.id)


def test_a_cancelled_batch_keeps_its_partial_results(
    client: openai.OpenAI, spec: dict[str, Any]
) -> None:
    batch = create(client, request_lines(10), sim_queue_seconds="0", sim_run_seconds="2")
    time.sleep(0.5)
    client.batches.cancel(batch.id)
    cancelled = wait_for(client, batch.id, "cancelled")
    assert cancelled.request_counts is not None
    ran = cancelled.request_counts.completed
    assert 0 < ran < 10
    assert len(result_lines(client, cancelled.output_file_id, spec)) == ran


def test_an_expired_batch_has_partial_results_through_the_sdk(
    client: openai.OpenAI, spec: dict[str, Any]
) -> None:
    batch = create(client, request_lines(10), sim_outcome="expired", sim_failure_rate="0.25", **NOW)
    expired = client.batches.retrieve(batch.id)
    assert expired.status == "expired"
    assert expired.expired_at is not None
    assert expired.request_counts is not None
    counted = expired.request_counts
    assert (counted.total, counted.completed, counted.failed) == (10, 6, 2)  # 2 never ran
    assert len(result_lines(client, expired.output_file_id, spec)) == 6
    errors = result_lines(client, expired.error_file_id, spec)
    expired_lines = [e for e in errors if e["error"] and e["error"]["code"] == "batch_expired"]
    assert [e["custom_id"] for e in expired_lines] == ["req-8", "req-9"]


def test_a_batch_whose_every_request_failed_has_no_output_file(
    client: openai.OpenAI, spec: dict[str, Any]
) -> None:
    batch = create(client, request_lines(4), sim_failure_rate="1", **NOW)
    done = wait_for(client, batch.id, "completed")
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (0, 4)
    assert done.output_file_id is None
    assert len(result_lines(client, done.error_file_id, spec)) == 4


def test_an_invalid_input_fails_validation_through_the_sdk(client: openai.OpenAI) -> None:
    batch = create(client, request_lines(2, url="/v1/embeddings"))
    assert batch.status == "validating"
    failed = wait_for(client, batch.id, "failed")
    assert failed.errors is not None
    assert failed.errors.data is not None
    assert [(e.code, e.line, e.param) for e in failed.errors.data] == [
        ("url_mismatch", 1, "url"), ("url_mismatch", 2, "url")]  # fmt: skip
    assert failed.failed_at is not None
    assert failed.in_progress_at is None
    assert failed.output_file_id is failed.error_file_id is None


def test_a_wrong_or_missing_key_is_a_401(
    simulator: RunningSimulator, checker: ResponseChecker
) -> None:
    wrong = sdk(simulator, checker, api_key="sk-wrong-key-123456")
    with wrong, pytest.raises(openai.AuthenticationError) as refused:
        wrong.batches.list()
    assert refused.value.code == "invalid_api_key"
    assert "sk-wrong-key-123456" not in str(refused.value)  # never echoed whole
    with checker.http() as http:
        assert http.get(simulator.url + "/v1/files").status_code == 401
    anyone = start_in_thread(SimulatorSettings(api_key=None), provider="openai")
    try:
        with sdk(anyone, checker, api_key="any-key-at-all") as any_key:
            assert any_key.batches.list().data == []
    finally:
        anyone.stop()


UNKNOWN_IDS: dict[str, Any] = {
    "batches.retrieve": lambda c: c.batches.retrieve("batch_nope"),
    "batches.cancel": lambda c: c.batches.cancel("batch_nope"),
    "batches.create": lambda c: c.batches.create(
        input_file_id="file-nope", endpoint=CHAT, completion_window="24h"
    ),
    "files.retrieve": lambda c: c.files.retrieve("file-nope"),
    "files.content": lambda c: c.files.content("file-nope"),
    "files.delete": lambda c: c.files.delete("file-nope"),
}


@pytest.mark.parametrize("call", UNKNOWN_IDS)
def test_unknown_ids_are_404s(client: openai.OpenAI, call: str) -> None:
    with pytest.raises(openai.NotFoundError):
        UNKNOWN_IDS[call](client)


def _create_with(client: openai.OpenAI, **changes: Any) -> Any:
    stored = upload(client, request_lines(1))
    options = {"input_file_id": stored.id, "endpoint": CHAT, "completion_window": "24h"}
    return client.batches.create(**(options | changes))


BAD_REQUESTS: dict[str, tuple[str | None, Any]] = {
    "window": ("completion_window", lambda c: _create_with(c, completion_window="1h")),
    "endpoint": ("endpoint", lambda c: _create_with(c, endpoint="/v1/videos")),
    "unknown field": ("colour", lambda c: _create_with(c, extra_body={"colour": "blue"})),
    "17 pairs": ("metadata", lambda c: _create_with(c, metadata={str(i): "v" for i in range(17)})),
    "long key": ("metadata.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk.[key]",
                 lambda c: _create_with(c, metadata={"k" * 65: "v"})),
    "directive": ("metadata", lambda c: _create_with(c, metadata={"sim_outcome": "bogus"})),
    "limit": ("limit", lambda c: c.batches.list(limit=101)),
    "cursor": ("after", lambda c: c.batches.list(after="batch_never_issued")),
    "file purpose": ("input_file_id", lambda c: c.batches.create(
        input_file_id=c.files.create(file=("a.jsonl", b"{}"), purpose="user_data").id,
        endpoint=CHAT, completion_window="24h")),
    "not jsonl": ("file", lambda c: upload(c, request_lines(1), name="input.txt")),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_requests_are_openais_400s(client: openai.OpenAI, case: str) -> None:
    param, call = BAD_REQUESTS[case]
    with pytest.raises(openai.BadRequestError) as refused:
        call(client)
    assert (refused.value.status_code, refused.value.param) == (400, param)


def test_cancel_of_a_completed_batch_is_a_409(client: openai.OpenAI) -> None:
    batch = create(client, request_lines(1), **NOW)
    wait_for(client, batch.id, "completed")
    with pytest.raises(openai.ConflictError, match="Cannot cancel a batch with status 'completed'"):
        client.batches.cancel(batch.id)


def test_an_unknown_v1_url_is_openais_404(
    simulator: RunningSimulator, checker: ResponseChecker
) -> None:
    with checker.http() as http:
        answer = http.get(simulator.url + "/v1/nope", headers={"Authorization": f"Bearer {KEY}"})
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == "Invalid URL (GET /v1/nope)"


# --- Faults, stats and seeding ----------------------------------------------------------------


def test_a_429_and_its_retry_after_reach_the_sdk(
    fresh_simulator: RunningSimulator, checker: ResponseChecker
) -> None:
    rule = {"fault": "429", "route": "GET /v1/batches", "times": 1, "retry_after": 1}
    with httpx2.Client(base_url=fresh_simulator.url) as http:
        http.post("/_sim/faults", json={"rules": [rule]}).raise_for_status()
        with (
            sdk(fresh_simulator, checker) as client,  # the 429's body is OpenAI's ErrorResponse
            pytest.raises(openai.RateLimitError) as limited,
        ):
            client.batches.list()
        assert limited.value.response.headers["retry-after"] == "1"
        http.post("/_sim/faults", json={"rules": [rule]}).raise_for_status()
        http.post("/_sim/stats/reset")
        with sdk(fresh_simulator, None, max_retries=1) as client:
            assert client.batches.list().data == []  # retried, once Retry-After had passed
        log = http.get("/_sim/requests").json()["requests"]
    assert [(entry["status"], entry["fault"]) for entry in log] == [(429, "429"), (200, None)]
    assert log[1]["at"] - log[0]["at"] >= 0.95


def test_a_reset_reaches_the_sdk_as_a_connection_error(fresh_simulator: RunningSimulator) -> None:
    rule = {"fault": "reset", "route": "GET /v1/files/{file_id}", "times": 1}
    with httpx2.Client(base_url=fresh_simulator.url) as http:
        http.post("/_sim/faults", json={"rules": [rule]}).raise_for_status()
        with sdk(fresh_simulator, None) as client:
            stored = upload(client, request_lines(1))
            with pytest.raises(openai.APIConnectionError):
                client.files.retrieve(stored.id)
            assert client.files.retrieve(stored.id).id == stored.id
        assert http.get("/_sim/faults").json()["rules"][0]["fired"] == 1


def test_stats_count_every_route_by_template(
    fresh_simulator: RunningSimulator, checker: ResponseChecker
) -> None:
    with sdk(fresh_simulator, checker) as client:
        batch = create(client, request_lines(1), **NOW)
        client.batches.retrieve(batch.id)
        client.batches.list()
        with pytest.raises(openai.ConflictError):
            client.batches.cancel(batch.id)
        client.files.retrieve(batch.input_file_id)
        client.files.content(batch.input_file_id)
        client.files.list()
        client.files.delete(batch.input_file_id)
    with httpx2.Client(base_url=fresh_simulator.url) as http:
        stats = http.get("/_sim/stats").json()
        assert stats["requests"] == {
            "POST /v1/files": 1, "POST /v1/batches": 1, "GET /v1/batches/{batch_id}": 1,
            "GET /v1/batches": 1, "POST /v1/batches/{batch_id}/cancel": 1,
            "GET /v1/files/{file_id}": 1, "GET /v1/files/{file_id}/content": 1,
            "GET /v1/files": 1, "DELETE /v1/files/{file_id}": 1,
        }  # fmt: skip
        assert stats["total"] == 9
        assert http.post("/_sim/stats/reset").json() == {"total": 0, "requests": {}}
    assert fresh_simulator.simulation.stats() == {"total": 0, "requests": {}}


def test_bulk_seeding_makes_batches_the_sdk_can_read(
    fresh_simulator: RunningSimulator, checker: ResponseChecker, spec: dict[str, Any]
) -> None:
    body = {"count": 3, "total_requests": 4, "outcome": "expired", "queue_seconds": 0,
            "run_seconds": 0, "endpoint": "/v1/embeddings"}  # fmt: skip
    with httpx2.Client(base_url=fresh_simulator.url) as http:
        ids = http.post("/_sim/jobs/bulk", json=body).json()["ids"]
        assert http.post("/_sim/jobs/bulk", json={"count": 0}).status_code == 422
        assert http.get("/_sim/jobs/batch_nope/history").status_code == 404
    with sdk(fresh_simulator, checker) as client:
        batches = [client.batches.retrieve(batch_id) for batch_id in ids]
        assert {(b.status, b.endpoint, b.input_file_id) for b in batches} == {
            ("expired", "/v1/embeddings", batches[0].input_file_id)}  # fmt: skip
        seeded_input = client.files.content(batches[0].input_file_id).text.splitlines()
        for line in seeded_input:
            component(spec, "BatchRequestInput").validate(json.loads(line))
        output = result_lines(client, batches[0].output_file_id, spec)
        assert [line["response"]["body"]["object"] for line in output] == ["list"] * 3
    assert len(seeded_input) == 4
