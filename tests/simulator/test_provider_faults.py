"""The shared fault layer speaking OpenAI's and Anthropic's APIs, over real HTTP on loopback.

Each fault must come out in the provider's own shapes: ``drop_create`` on its create route,
``unknown_status`` in its status field, ``missing_field`` among its required fields, a 429 or
a 5xx with its error body. The expectations come from the providers' OpenAPI descriptions
(``tests/data``) and their SDKs, never from the profiles that produce the faults, so a
profile that said the wrong thing would fail here. Mistral's faults are
``test_simulator_faults``'s.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import requests
import yaml
from openapi_schema_validator import OAS31Validator

from batchwatch.simulator.faults import FaultRule
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from tests.helpers import fresh_simulator

DATA = Path(__file__).resolve().parents[1] / "data"
KEY = "sk-sim-fault-key-0123456789"


@dataclass(frozen=True)
class Api:
    """One provider's batch API as a plain client sees it, and where its description is."""

    provider: str
    headers: dict[str, str]
    batches: str  # the collection's path
    create_route: str  # its create route's key, as the request log names it
    cursor: str  # the list's "older than this id" parameter
    status_field: str
    spec: str  # file in tests/data
    batch_schema: str
    error_schema: str

    def schema(self, name: str) -> dict[str, Any]:
        schema: dict[str, Any] = _spec(self.spec)["components"]["schemas"][name]
        return schema

    def validator(self, name: str) -> OAS31Validator:
        components = _spec(self.spec)["components"]
        return OAS31Validator({"$ref": f"#/components/schemas/{name}", "components": components})

    def required_batch_fields(self) -> set[str]:
        return set(self.schema(self.batch_schema)["required"])

    def documented_statuses(self) -> set[str]:
        return set(self.schema(self.batch_schema)["properties"][self.status_field]["enum"])


@cache
def _spec(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DATA / name).read_text())
    return loaded


APIS = {
    "openai": Api(
        "openai", {"Authorization": f"Bearer {KEY}"}, "/v1/batches", "POST /v1/batches",
        "after", "status", "openai-openapi-batch.yaml", "Batch", "ErrorResponse",
    ),
    "anthropic": Api(
        "anthropic", {"x-api-key": KEY, "anthropic-version": "2023-06-01"},
        "/v1/messages/batches", "POST /v1/messages/batches", "after_id", "processing_status",
        "anthropic-openapi-batches.yaml", "BetaMessageBatch", "BetaErrorResponse",
    ),
}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(APIS))
def api(request: pytest.FixtureRequest) -> Api:
    return APIS[request.param]


@pytest.fixture(scope="module")
def running(api: Api) -> Iterator[RunningSimulator]:
    """One simulator per provider (each stop costs uvicorn ~0.2 s); batches stay running."""
    settings = SimulatorSettings(api_key=KEY, queue_seconds=30, run_seconds=30)
    simulator = start_in_thread(settings, provider=api.provider)
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(running: RunningSimulator) -> Iterator[RunningSimulator]:
    yield from fresh_simulator(running)


def inject(sim: RunningSimulator, *rules: FaultRule, seed: int = 0) -> None:
    sim.simulation.faults.set(rules, seed)


def get(sim: RunningSimulator, api: Api, path: str, **params: Any) -> requests.Response:
    return requests.get(sim.url + path, params=params, headers=api.headers, timeout=5)


def seed(sim: RunningSimulator, count: int) -> list[str]:
    answer = requests.post(sim.url + "/_sim/jobs/bulk", json={"count": count}, timeout=5)
    answer.raise_for_status()
    ids: list[str] = answer.json()["ids"]
    return ids


def create(sim: RunningSimulator, api: Api) -> requests.Response:
    """Create a one-request batch as a plain client does."""
    if api.provider == "openai":
        body: dict[str, Any] = {
            "input_file_id": upload_input(sim, api),
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
    else:
        params = {"model": "claude-test", "max_tokens": 8, "messages": [{"role": "user"}]}
        body = {"requests": [{"custom_id": "r0", "params": params}]}
    return requests.post(sim.url + api.batches, json=body, headers=api.headers, timeout=5)


def upload_input(sim: RunningSimulator, api: Api) -> str:
    """The id of a new one-line input file (OpenAI's batches read one)."""
    line = {"custom_id": "r0", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": []}}  # fmt: skip
    files = {"file": ("in.jsonl", json.dumps(line).encode() + b"\n")}
    upload = requests.post(sim.url + "/v1/files", headers=api.headers, data={"purpose": "batch"},
                           files=files, timeout=5)  # fmt: skip
    upload.raise_for_status()
    file_id: str = upload.json()["id"]
    return file_id


def batch_ids(sim: RunningSimulator, api: Api) -> list[str]:
    """Every batch's id, newest first (the module makes far fewer than a page's 100)."""
    listed = get(sim, api, api.batches, limit=100).json()
    assert listed["has_more"] is False
    return [batch["id"] for batch in listed["data"]]


# --- drop_create ------------------------------------------------------------------------------


def test_drop_create_creates_the_batch_but_loses_the_answer(
    sim: RunningSimulator, api: Api
) -> None:
    before = set(batch_ids(sim, api))
    inject(sim, FaultRule("drop_create", times=1))
    with pytest.raises(requests.exceptions.ConnectionError):
        create(sim, api)  # OpenAI's file upload first goes through: not the create route
    assert len(set(batch_ids(sim, api)) - before) == 1
    creates = [(r.status, r.fault) for r in sim.simulation.faults.requests()
               if r.route == api.create_route]  # fmt: skip
    assert creates == [(None, "drop_create")]
    assert create(sim, api).status_code == 200  # times=1: spent


def test_drop_create_is_refused_on_any_other_route(sim: RunningSimulator, api: Api) -> None:
    url = sim.url + "/_sim/faults"
    elsewhere = {"fault": "drop_create", "route": f"GET {api.batches}"}
    refused = requests.post(url, json={"rules": [elsewhere]}, timeout=5)
    assert refused.status_code == 422
    assert f"drop_create only applies to '{api.create_route}'" in refused.text
    there = {"fault": "drop_create", "route": api.create_route}
    assert requests.post(url, json={"rules": [there]}, timeout=5).status_code == 200


# --- unknown_status -------------------------------------------------------------------------


def test_unknown_status_rewrites_the_status_field_of_that_answer_only(
    sim: RunningSimulator, api: Api
) -> None:
    batch_id = seed(sim, 2)[0]
    documented = api.documented_statuses()
    inject(sim, FaultRule("unknown_status", times=2))
    faulted = get(sim, api, f"{api.batches}/{batch_id}").json()
    listed = get(sim, api, api.batches).json()["data"]
    honest = get(sim, api, f"{api.batches}/{batch_id}").json()
    assert faulted[api.status_field] not in documented
    assert set(faulted) == set(honest)  # that field rewritten, none added
    assert len(listed) >= 2
    assert all(batch[api.status_field] not in documented for batch in listed)
    assert honest[api.status_field] in documented


# --- missing_field --------------------------------------------------------------------------


def test_missing_field_drops_a_required_field_of_every_listed_batch(
    sim: RunningSimulator, api: Api
) -> None:
    seed(sim, 3)
    required = api.required_batch_fields()
    dropped: set[str] = set()
    for dice in range(8):  # each seed picks another field: all must be required ones
        inject(sim, FaultRule("missing_field", times=1), seed=dice)
        listed = get(sim, api, api.batches).json()["data"]
        assert len(listed) >= 3
        missing = [required - set(batch) for batch in listed]
        assert all(len(fields) == 1 for fields in missing), missing
        dropped.update(*missing)
    assert len(dropped) >= 3
    honest = get(sim, api, api.batches).json()["data"]
    assert all(required <= set(batch) for batch in honest)


def test_missing_field_on_an_empty_page_drops_has_more(sim: RunningSimulator, api: Api) -> None:
    seed(sim, 1)
    oldest = batch_ids(sim, api)[-1]
    honest = get(sim, api, api.batches, **{api.cursor: oldest}).json()
    assert honest["data"] == []
    inject(sim, FaultRule("missing_field", times=1))
    faulted = get(sim, api, api.batches, **{api.cursor: oldest}).json()
    assert faulted == {key: value for key, value in honest.items() if key != "has_more"}


# --- 429 and 5xx --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api", "fault", "status", "error_type"),
    [
        ("openai", "429", 429, "requests"),
        ("openai", "503", 503, "server_error"),
        ("anthropic", "429", 429, "rate_limit_error"),
        ("anthropic", "503", 503, "api_error"),
        ("anthropic", "529", 529, "overloaded_error"),
    ],
    indirect=["api"],
)
def test_an_unprocessed_error_carries_the_providers_error_body(
    sim: RunningSimulator, api: Api, fault: str, status: int, error_type: str
) -> None:
    before = set(batch_ids(sim, api))
    inject(sim, FaultRule(fault, times=1, retry_after=2, route=api.create_route))
    response = create(sim, api)
    assert response.status_code == status
    body = response.json()
    api.validator(api.error_schema).validate(body)
    assert body["error"]["type"] == error_type
    assert response.headers.get("Retry-After") == ("2" if status in (429, 503) else None)
    assert set(batch_ids(sim, api)) == before  # not processed


@pytest.mark.parametrize("api", ["openai"], indirect=True)
def test_openais_sdk_reads_the_429_as_its_rate_limit_error(sim: RunningSimulator, api: Api) -> None:
    inject(sim, FaultRule("429", times=1))
    client = openai.OpenAI(base_url=sim.url + "/v1", api_key=KEY, max_retries=0)
    with client, pytest.raises(openai.RateLimitError) as limited:
        client.batches.list()
    # Read from the body's "error" object: None had it been another provider's shape.
    assert (limited.value.code, limited.value.type) == ("rate_limit_exceeded", "requests")


@pytest.mark.parametrize("api", ["anthropic"], indirect=True)
def test_anthropics_sdk_reads_the_529_as_overloaded(sim: RunningSimulator, api: Api) -> None:
    inject(sim, FaultRule("529", times=1))
    client = anthropic.Anthropic(base_url=sim.url, api_key=KEY, max_retries=0)
    with client, pytest.raises(anthropic.OverloadedError) as overloaded:
        client.messages.batches.list()
    body = overloaded.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["error"]["type"]) == ("error", "overloaded_error")
