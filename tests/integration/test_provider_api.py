"""The provider-native routes (``/openai/v1``, ``/anthropic``) and the provider-aware
Mistral-shape routes, driven by the official OpenAI, Anthropic and Mistral SDKs against a
real daemon on loopback that tracks all three simulators. Nothing is mocked.

The daemon discovers nothing (``discover = "none"``): every job it knows was created or
tracked through it, so each test knows exactly what the store holds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import requests
from mistralai.client import Mistral

from batchwatch.config import ResultsSettings
from batchwatch.config_providers import AnthropicSettings, OpenAISettings
from batchwatch.daemon import Daemon
from batchwatch.models import BatchError, Counters, JobOrigin, JobStatus, RemoteJob
from batchwatch.providers.anthropic import wire as anthropic_wire
from batchwatch.providers.openai import wire as openai_wire
from batchwatch.providers.openai.client import OpenAIClient
from batchwatch.providers.openai.schemas import CreateBatchIn
from batchwatch.providers.openai.statuses import STATUSES as OPENAI_STATUSES
from batchwatch.providers.openai.wire import batch_to_json
from batchwatch.simulator.faults import FaultRule
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.store import Store
from tests.helpers import SIM_API_KEY, daemon_settings, remote, wait_for

SIM = SimulatorSettings(api_key=SIM_API_KEY, queue_seconds=0.2, run_seconds=0.6, cancel_seconds=0.3)
#: How long a batch that must not end during a test runs for.
LONG = "60"
RESULTS_ROUTE = "GET /v1/messages/batches/{message_batch_id}/results"
#: The stamp OpenAI sets when a batch ends in each status.
END_STAMPS = {
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelled": "cancelled_at",
}


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, RunningSimulator]]:
    """One simulator per provider for the module (each test reads only its own batches)."""
    running = {
        name: start_in_thread(SIM, provider=name) for name in ("mistral", "openai", "anthropic")
    }
    try:
        yield running
    finally:
        for sim in running.values():
            sim.stop()


@pytest.fixture
def clean(sims: dict[str, RunningSimulator]) -> Iterator[dict[str, RunningSimulator]]:
    for sim in sims.values():
        sim.simulation.faults.clear()
        sim.simulation.reset_stats()
    yield sims
    for sim in sims.values():
        sim.simulation.faults.clear()


@pytest.fixture
def make_daemon(
    tmp_path: Path, clean: dict[str, RunningSimulator]
) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def make(download: bool = False) -> Daemon:
        settings = daemon_settings(tmp_path, clean["mistral"].url, discover="none")
        settings = replace(
            settings,
            openai=OpenAISettings(
                server_url=clean["openai"].url, api_key=SIM_API_KEY, max_retries=1
            ),
            anthropic=AnthropicSettings(
                server_url=clean["anthropic"].url, api_key=SIM_API_KEY, max_retries=1
            ),
            results=ResultsSettings(download=download),
        )
        daemon = Daemon(settings, threading.Event())
        daemon.start()
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        daemon.close()


@pytest.fixture
def daemon(make_daemon: Callable[..., Daemon]) -> Daemon:
    return make_daemon()


@pytest.fixture
def token(daemon: Daemon, tmp_path: Path) -> str:
    return (tmp_path / "token").read_text().strip()


@pytest.fixture
def store(daemon: Daemon, tmp_path: Path) -> Iterator[Store]:
    """The daemon's database, read beside it."""
    found = Store(f"sqlite:///{tmp_path / 'bw.db'}")
    yield found
    found.close()


@pytest.fixture
def oai(daemon: Daemon, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=daemon.api_url + "/openai/v1", api_key=token, max_retries=0)


@pytest.fixture
def claude(daemon: Daemon, token: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=daemon.api_url + "/anthropic", api_key=token, max_retries=0)


def v1(daemon: Daemon, token: str, path: str, method: str = "GET", **params: Any) -> Any:
    response = requests.request(
        method, daemon.api_url + path, params=params, timeout=10,
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    return response


# ---- OpenAI -------------------------------------------------------------------------------

LINE = (
    '{"custom_id": "r%d", "method": "POST", "url": "/v1/chat/completions", "body": '
    '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}}\n'
)


def input_file(oai: openai.OpenAI, n: int = 3) -> str:
    content = "".join(LINE % i for i in range(n)).encode()
    return oai.files.create(file=("input.jsonl", content), purpose="batch").id


def openai_batch(oai: openai.OpenAI, run: str = "0.6", **kwargs: Any) -> Any:
    return oai.batches.create(
        input_file_id=input_file(oai),
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"team": "search", "sim_run_seconds": run},
        **kwargs,
    )


def test_openai_sdk_uploads_a_file_and_reads_it_back(
    oai: openai.OpenAI, clean: dict[str, RunningSimulator]
) -> None:
    content = "".join(LINE % i for i in range(40)).encode()
    uploaded = oai.files.create(file=("input.jsonl", content), purpose="batch")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(content)
    assert uploaded.purpose == "batch" and uploaded.filename == "input.jsonl"
    assert oai.files.content(uploaded.id).read() == content  # streamed through the daemon
    requests_seen = clean["openai"].simulation.stats()["requests"]
    assert requests_seen["POST /v1/files"] == 1
    assert requests_seen["GET /v1/files/{file_id}/content"] == 1
    with pytest.raises(openai.NotFoundError):
        oai.files.content("file-nosuchfile")


def test_openai_batch_is_recorded_before_the_answer_and_runs_to_its_output(
    oai: openai.OpenAI, store: Store
) -> None:
    batch = openai_batch(oai)
    stored = store.get_job(batch.id)  # recorded before the SDK got its answer
    assert stored is not None and stored.origin is JobOrigin.CREATED
    assert stored.remote.provider == "openai" and stored.remote.raw_status == batch.status
    assert batch.object == "batch" and batch.endpoint == "/v1/chat/completions"
    assert batch.metadata is not None and batch.metadata["team"] == "search"
    wait_for(lambda: oai.batches.retrieve(batch.id).status == "completed")
    done = oai.batches.retrieve(batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (3, 3)
    assert done.completed_at is not None and done.failed_at is None and done.cancelled_at is None
    assert done.in_progress_at is not None and done.expires_at == done.created_at + 86400
    assert done.output_file_id is not None
    output = oai.files.content(done.output_file_id).read().splitlines()
    assert sorted(json.loads(line)["custom_id"] for line in output) == ["r0", "r1", "r2"]


def test_openai_same_idempotency_key_creates_one_batch(
    oai: openai.OpenAI, clean: dict[str, RunningSimulator]
) -> None:
    file_id = input_file(oai)
    key = {"Idempotency-Key": "nightly-2026-11-26"}
    first, second = (
        oai.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h",
            extra_headers=key,
        )
        for _ in range(2)
    )  # fmt: skip
    assert first.id == second.id
    assert clean["openai"].simulation.stats()["requests"]["POST /v1/batches"] == 1
    with pytest.raises(openai.ConflictError):  # the same key with another body
        oai.batches.create(
            input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h",
            extra_headers=key,
        )  # fmt: skip


def test_openai_list_pages_newest_first_and_only_openai_batches(
    oai: openai.OpenAI, claude: anthropic.Anthropic, store: Store
) -> None:
    created = [openai_batch(oai, run=LONG).id for _ in range(5)]
    anthropic_batch(claude)  # another provider's: never in OpenAI's list
    first = oai.batches.with_raw_response.list(limit=2).http_response.json()
    assert len(first["data"]) == 2 and first["has_more"] is True and first["object"] == "list"
    assert (first["first_id"], first["last_id"]) == tuple(b["id"] for b in first["data"])
    # The SDK follows ``after`` (bounded: a cursor that went nowhere would loop forever).
    walked = [b.id for b in islice(oai.batches.list(limit=2), 20)]
    assert sorted(walked) == sorted(created) and len(walked) == 5
    # Newest first: by creation time, ties by id, as the store orders them.
    stamps = {b: store.get_job(b).remote.created_at for b in walked}  # type: ignore[union-attr]
    assert walked == sorted(walked, key=lambda b: (stamps[b], b), reverse=True)
    rest = oai.batches.list(after=walked[2], limit=100)
    assert [b.id for b in rest.data] == walked[3:] and rest.has_more is False
    with pytest.raises(openai.NotFoundError):
        oai.batches.list(after="batch_nosuchbatch")


def test_openai_cancel_is_recorded(oai: openai.OpenAI, store: Store, daemon: Daemon) -> None:
    batch = openai_batch(oai, run=LONG)
    cancelled = oai.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    stored = store.get_job(batch.id)
    assert stored is not None
    assert stored.status in (JobStatus.CANCELLATION_REQUESTED, JobStatus.CANCELLED)
    wait_for(lambda: oai.batches.retrieve(batch.id).status == "cancelled")
    ended = oai.batches.retrieve(batch.id)
    assert ended.cancelled_at is not None and ended.completed_at is None


def test_openai_retrieve_tracks_a_batch_created_elsewhere(
    oai: openai.OpenAI, clean: dict[str, RunningSimulator], store: Store
) -> None:
    with OpenAIClient(clean["openai"].url, SIM_API_KEY) as upstream:
        file_id = upstream.upload_content("in.jsonl", (LINE % 0).encode(), "batch")["id"]
        body = CreateBatchIn.model_validate(
            {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
        )
        elsewhere = upstream.create_job(body).id
    assert store.get_job(elsewhere) is None
    found = oai.batches.retrieve(elsewhere)
    assert found.id == elsewhere and found.input_file_id == file_id
    tracked = store.get_job(elsewhere)
    assert tracked is not None and tracked.origin is JobOrigin.TRACKED


def test_openai_errors_are_the_sdk_s_exceptions(daemon: Daemon, oai: openai.OpenAI) -> None:
    wrong = openai.OpenAI(base_url=daemon.api_url + "/openai/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.batches.list()
    assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        oai.batches.retrieve("batch_nosuchbatch")  # asked upstream, which has none
    with pytest.raises(openai.NotFoundError):
        oai.batches.cancel("not-a-batch-id")
    nowhere: Any = "/v1/nope"
    with pytest.raises(openai.BadRequestError) as bad:
        oai.batches.create(input_file_id="file-x", endpoint=nowhere, completion_window="24h")
    assert bad.value.param == "endpoint"


# ---- Anthropic ----------------------------------------------------------------------------


def anthropic_batch(claude: anthropic.Anthropic, run: str = "0.6", n: int = 3, **kw: Any) -> Any:
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": f"sim_run_seconds={run};sim_failure_rate=0.34"},
    }
    requests_ = [{"custom_id": f"r{i}", "params": params} for i in range(n)]
    return claude.messages.batches.create(requests=requests_, **kw)  # type: ignore[arg-type]


def test_anthropic_batch_is_recorded_before_the_answer_and_its_results_stream_through(
    daemon: Daemon, claude: anthropic.Anthropic, store: Store, clean: dict[str, RunningSimulator]
) -> None:
    batch = anthropic_batch(claude)
    stored = store.get_job(batch.id)
    assert stored is not None and stored.origin is JobOrigin.CREATED
    assert stored.remote.provider == "anthropic"
    assert batch.processing_status == "in_progress" and batch.results_url is None
    assert batch.request_counts.processing == 3
    assert (batch.expires_at - batch.created_at).total_seconds() == 86400
    wait_for(lambda: claude.messages.batches.retrieve(batch.id).processing_status == "ended")
    ended = claude.messages.batches.retrieve(batch.id)
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 2, 1)
    assert ended.ended_at is not None
    assert ended.results_url == f"{daemon.api_url}/anthropic/v1/messages/batches/{batch.id}/results"
    results = list(claude.messages.batches.results(batch.id))  # no download: from upstream
    assert sorted(r.custom_id for r in results) == ["r0", "r1", "r2"]
    assert sorted(r.result.type for r in results) == ["errored", "succeeded", "succeeded"]
    assert clean["anthropic"].simulation.stats()["requests"][RESULTS_ROUTE] == 1


def test_anthropic_results_are_served_from_the_downloaded_file(
    make_daemon: Callable[..., Daemon], tmp_path: Path, clean: dict[str, RunningSimulator]
) -> None:
    daemon = make_daemon(download=True)
    token = (tmp_path / "token").read_text().strip()
    claude = anthropic.Anthropic(
        base_url=daemon.api_url + "/anthropic", api_key=token, max_retries=0
    )
    batch = anthropic_batch(claude, run="0.3")
    wait_for(
        lambda: v1(daemon, token, f"/v1/batch/jobs/{batch.id}/results").json()["state"] == "ready",
        seconds=30,
    )
    upstream_lines = sorted(r.custom_id for r in claude.messages.batches.results(batch.id))
    # Upstream now fails every results request: the daemon answers from its file.
    clean["anthropic"].simulation.faults.set([FaultRule("500", route=RESULTS_ROUTE)])
    before = clean["anthropic"].simulation.stats()["requests"].get(RESULTS_ROUTE, 0)
    served = list(claude.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in served) == upstream_lines == ["r0", "r1", "r2"]
    assert clean["anthropic"].simulation.stats()["requests"].get(RESULTS_ROUTE, 0) == before
    # The file gone from disk: streamed from upstream again, whose failure is a 502.
    for path in (tmp_path / "results" / batch.id).glob("output*"):
        path.unlink()
    with pytest.raises(anthropic.APIStatusError) as failed:
        list(claude.messages.batches.results(batch.id))
    assert failed.value.status_code == 502


def test_anthropic_same_idempotency_key_creates_one_batch(
    claude: anthropic.Anthropic, clean: dict[str, RunningSimulator]
) -> None:
    key = {"Idempotency-Key": "retry-me"}
    first = anthropic_batch(claude, run=LONG, extra_headers=key)
    second = anthropic_batch(claude, run=LONG, extra_headers=key)
    assert first.id == second.id
    assert clean["anthropic"].simulation.stats()["requests"]["POST /v1/messages/batches"] == 1


def test_anthropic_list_pages_both_ways(claude: anthropic.Anthropic, oai: openai.OpenAI) -> None:
    created = [anthropic_batch(claude, run=LONG).id for _ in range(5)]
    openai_batch(oai, run=LONG)
    walked = [b.id for b in islice(claude.messages.batches.list(limit=2), 20)]  # by after_id
    assert sorted(walked) == sorted(created)
    older = claude.messages.batches.list(after_id=walked[1], limit=2)
    assert [b.id for b in older.data] == walked[2:4] and older.has_more is True
    newer = claude.messages.batches.list(before_id=walked[3], limit=2)
    assert [b.id for b in newer.data] == walked[1:3] and newer.has_more is True
    assert newer.first_id == walked[1] and newer.last_id == walked[2]
    newest = claude.messages.batches.list(before_id=walked[1], limit=2)
    assert [b.id for b in newest.data] == walked[:1] and newest.has_more is False
    with pytest.raises(anthropic.BadRequestError):
        claude.messages.batches.list(before_id=walked[1], after_id=walked[3])


def test_anthropic_cancel_ends_with_the_unrun_requests_canceled(
    claude: anthropic.Anthropic, store: Store
) -> None:
    batch = anthropic_batch(claude, run=LONG)
    canceling = claude.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert store.get_job(batch.id).status is JobStatus.CANCELLATION_REQUESTED  # type: ignore[union-attr]
    wait_for(lambda: claude.messages.batches.retrieve(batch.id).processing_status == "ended")
    counts = claude.messages.batches.retrieve(batch.id).request_counts
    assert counts.canceled + counts.succeeded + counts.errored == 3 and counts.canceled > 0
    assert counts.expired == 0 and counts.processing == 0


def test_anthropic_auth_takes_the_key_or_a_bearer_token_and_errors_are_anthropic_s(
    daemon: Daemon, token: str, claude: anthropic.Anthropic
) -> None:
    base = daemon.api_url + "/anthropic"
    bearer = anthropic.Anthropic(base_url=base, auth_token=token, api_key=None, max_retries=0)
    assert bearer.messages.batches.list().data == []  # current SDKs' Authorization: Bearer
    for wrong in (
        anthropic.Anthropic(base_url=base, api_key="wrong", max_retries=0),
        anthropic.Anthropic(base_url=base, auth_token="wrong", api_key=None, max_retries=0),
    ):
        with pytest.raises(anthropic.AuthenticationError) as refused:
            wrong.messages.batches.list()
        body: Any = refused.value.body
        assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
        assert "token" in body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.batches.retrieve("msgbatch_nosuchbatch")
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.batches.create(requests=[{"custom_id": "no spaces", "params": {}}])  # type: ignore[typeddict-item]
    assert "requests.0.custom_id" in bad.value.message
    in_progress = anthropic_batch(claude, run=LONG)
    response = requests.get(
        f"{base}/v1/messages/batches/{in_progress.id}/results",
        headers={"x-api-key": token},
        timeout=5,
    )
    assert (
        response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    )


# ---- the Mistral-shape routes, provider-aware ---------------------------------------------


def test_v1_jobs_list_by_provider_with_the_provider_s_status(
    daemon: Daemon, token: str, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    mistral = Mistral(api_key=token, server_url=daemon.api_url)
    one: Any = [{"custom_id": "0", "body": {"messages": []}}]
    made = mistral.batch.jobs.create(
        endpoint="/v1/chat/completions", model="mistral-small-latest", requests=one
    )
    batch, message_batch = openai_batch(oai, run=LONG), anthropic_batch(claude, run=LONG)
    only = v1(daemon, token, "/v1/batch/jobs", provider="openai").json()
    assert [j["id"] for j in only["data"]] == [batch.id] and only["total"] == 1
    job = only["data"][0]
    assert job["provider"] == "openai" and job["provider_status"] == batch.status
    assert job["status"] == {"validating": "QUEUED", "in_progress": "RUNNING"}[batch.status]
    every = mistral.batch.jobs.list()  # the Mistral SDK parses every provider's jobs
    assert {j.id for j in every.data or []} == {made.id, batch.id, message_batch.id}
    shown = v1(daemon, token, f"/v1/batch/jobs/{message_batch.id}").json()
    assert (shown["provider"], shown["provider_status"], shown["status"]) == (
        "anthropic", "in_progress", "RUNNING"
    )  # fmt: skip
    mine = v1(daemon, token, f"/v1/batch/jobs/{made.id}").json()
    assert mine["provider"] == "mistral" and mine["provider_status"] == mine["status"]
    bad = v1(daemon, token, "/v1/batch/jobs", provider="cohere")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "provider"]


def test_v1_job_routes_take_any_provider_s_id(
    daemon: Daemon, token: str, oai: openai.OpenAI, clean: dict[str, RunningSimulator]
) -> None:
    batch = openai_batch(oai)
    wait_for(lambda: oai.batches.retrieve(batch.id).status == "completed")
    steps = v1(daemon, token, f"/v1/batch/jobs/{batch.id}/transitions").json()["data"]
    assert [(t["from_provider_status"], t["to_provider_status"]) for t in steps][-1] == (
        steps[-2]["to_provider_status"], "completed"
    )  # fmt: skip
    assert steps[0]["from_provider_status"] is None and steps[-1]["to_status"] == "SUCCESS"
    feed = v1(daemon, token, "/v1/transitions").json()["data"]
    assert [t for t in feed if t["job_id"] == batch.id] == steps
    events = v1(daemon, token, "/v1/events", type="job.transitioned").json()["data"]
    data = [e["data"] for e in events if e["job_id"] == batch.id]
    assert data[-1]["to_provider_status"] == "completed"
    assert data[-1]["from_provider_status"] == steps[-1]["from_provider_status"]
    with OpenAIClient(clean["openai"].url, SIM_API_KEY) as upstream:
        body = CreateBatchIn.model_validate(
            {"input_file_id": batch.input_file_id, "endpoint": "/v1/chat/completions"}
        )
        elsewhere = upstream.create_job(body).id
    tracked = v1(daemon, token, f"/v1/batch/jobs/{elsewhere}/track", method="POST")
    assert tracked.status_code == 200 and tracked.json()["provider"] == "openai"
    assert v1(daemon, token, "/v1/batch/jobs/batch_nosuchbatch").status_code == 404
    assert v1(daemon, token, "/v1/batch/jobs/msgbatch_nosuchbatch/progress").status_code == 404
    assert v1(daemon, token, "/v1/batch/jobs/batch-with-a-dash").status_code == 422
    assert v1(daemon, token, "/v1/batch/jobs/none;of(this)/transitions").status_code == 422


# ---- the stored job written back in each provider's shape (pure) -------------------------


def openai_job(raw_status: str, succeeded: int = 2, failed: int = 1) -> RemoteJob:
    return replace(
        remote("RUNNING", job_id="batch_abc"),
        status=OPENAI_STATUSES[raw_status],
        raw_status=raw_status,
        model="gpt-4o-mini",
        metadata={"team": "search"},
        output_file="file-out",
        errors=(BatchError("invalid_json_line: not JSON (line 2)"),),
        started_at=1_795_000_010,
        completed_at=None if raw_status in ("in_progress", "finalizing") else 1_795_000_090,
        counters=Counters(
            total=4, completed=succeeded + failed, succeeded=succeeded, failed=failed
        ),
        provider="openai",
    )


@pytest.mark.parametrize("raw_status", ["in_progress", "finalizing", *END_STAMPS])
def test_openai_batch_json_reads_back_as_the_job_with_the_end_stamp_of_its_status(
    raw_status: str,
) -> None:
    job = openai_job(raw_status)
    body = batch_to_json(job)
    assert openai_wire.parse_job(body) == job
    assert body["request_counts"] == {"total": 4, "completed": 2, "failed": 1}
    stamps = {k: v for k in END_STAMPS.values() if (v := body[k]) is not None}
    assert stamps == ({END_STAMPS[raw_status]: 1_795_000_090} if raw_status in END_STAMPS else {})
    batch = openai.types.Batch.model_validate(body)  # the SDK's own model takes it as is
    assert batch.status == raw_status and batch.errors is not None


def anthropic_job(raw_status: str, status: JobStatus, succeeded: int, errored: int) -> RemoteJob:
    return replace(
        remote("RUNNING", job_id="msgbatch_abc"),
        status=status,
        raw_status=raw_status,
        created_at=1_795_000_000,
        completed_at=1_795_000_600 if raw_status == "ended" else None,
        counters=Counters(10, succeeded + errored, succeeded, errored),
        provider="anthropic",
    )


@pytest.mark.parametrize(
    ("raw_status", "status", "succeeded", "errored", "counts"),
    [
        ("in_progress", JobStatus.RUNNING, 0, 0, (10, 0, 0, 0, 0)),
        ("canceling", JobStatus.CANCELLATION_REQUESTED, 3, 1, (6, 3, 1, 0, 0)),
        ("ended", JobStatus.SUCCESS, 9, 1, (0, 9, 1, 0, 0)),
        ("ended", JobStatus.CANCELLED, 3, 1, (0, 3, 1, 6, 0)),
        ("ended", JobStatus.TIMEOUT_EXCEEDED, 5, 0, (0, 5, 0, 0, 5)),
    ],
)
def test_anthropic_batch_json_derives_the_five_counts(
    raw_status: str, status: JobStatus, succeeded: int, errored: int, counts: tuple[int, ...]
) -> None:
    job = anthropic_job(raw_status, status, succeeded, errored)
    body = anthropic_wire.batch_to_json(job, "http://daemon/results")
    keys = ("processing", "succeeded", "errored", "canceled", "expired")
    assert tuple(body["request_counts"][k] for k in keys) == counts
    ended = raw_status == "ended"
    assert body["results_url"] == ("http://daemon/results" if ended else None)
    assert (
        body["created_at"] == "2026-11-18T11:06:40Z"
        and body["expires_at"] == "2026-11-19T11:06:40Z"
    )
    assert body["ended_at"] == ("2026-11-18T11:16:40Z" if ended else None)
    batch = anthropic.types.messages.MessageBatch.model_validate(body)
    assert batch.processing_status == raw_status
    read = anthropic_wire.parse_job(body)
    assert read.counters == job.counters and read.raw_status == raw_status
