"""The files an ended job leaves, over real HTTP on loopback: input, output and error files
whose lines add up to the job's counters, for every way a job ends, for uploaded and seeded
inputs (the per-request ledger a client builds from them: succeeded, failed, not run)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import requests

from batchwatch.models import API_ENDPOINTS, JobStatus
from batchwatch.simulator.lifecycle import JobPlan
from batchwatch.simulator.results import ResultSource, result_file
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from tests.helpers import SIM_API_KEY

AUTH = {"Authorization": f"Bearer {SIM_API_KEY}"}
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
NOW = {"sim_queue_seconds": "0", "sim_run_seconds": "0"}  # ends at create
LINE_KEYS = {"id", "custom_id", "response", "error"}


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    settings = SimulatorSettings(
        api_key=SIM_API_KEY, queue_seconds=0, run_seconds=0, cancel_seconds=0.2
    )
    running = start_in_thread(settings)
    yield running
    running.stop()


def call(sim: RunningSimulator, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, sim.url + path, headers=AUTH, timeout=10, **kwargs)


def upload(sim: RunningSimulator, content: bytes) -> str:
    files = {"file": ("in.jsonl", content)}
    response = call(sim, "POST", "/v1/files", files=files, data={"purpose": "batch"})
    response.raise_for_status()
    file_id: str = response.json()["id"]
    return file_id


def create(sim: RunningSimulator, file_id: str, **metadata: str) -> dict[str, Any]:
    body = {"endpoint": "/v1/chat/completions", "model": "mistral-small-latest",
            "input_files": [file_id], "metadata": metadata}  # fmt: skip
    response = call(sim, "POST", "/v1/batch/jobs", json=body)
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def get_job(sim: RunningSimulator, job_id: str) -> dict[str, Any]:
    response = call(sim, "GET", f"/v1/batch/jobs/{job_id}")
    response.raise_for_status()
    job: dict[str, Any] = response.json()
    return job


def wait_for(sim: RunningSimulator, job_id: str, done: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not done(job := get_job(sim, job_id)):
        assert time.monotonic() < deadline, f"job {job_id} is still {job['status']}"
        time.sleep(0.02)
    return job


def seed(sim: RunningSimulator, **fields: Any) -> list[dict[str, Any]]:
    response = requests.post(f"{sim.url}/_sim/jobs/bulk", json=fields, timeout=30)
    response.raise_for_status()
    return [get_job(sim, job_id) for job_id in response.json()["ids"]]


def download(sim: RunningSimulator, file_id: str) -> bytes:
    response = call(sim, "GET", f"/v1/files/{file_id}/content")
    assert response.status_code == 200, response.text
    return response.content


def jsonl(content: bytes) -> list[dict[str, Any]]:
    assert content == b"" or content.endswith(b"\n")
    return [json.loads(line) for line in content.split(b"\n")[:-1]]


@dataclass(frozen=True)
class Ledger:
    """What a client learns from a job's files, per custom id."""

    inputs: list[str]
    succeeded: list[str]
    rejected: list[str]  # non-2xx lines of the output file
    errored: list[str]  # lines of the error file

    @property
    def processed(self) -> list[str]:
        return self.succeeded + self.rejected + self.errored

    @property
    def not_run(self) -> list[str]:
        done = set(self.processed)
        return [custom_id for custom_id in self.inputs if custom_id not in done]


def ledger(sim: RunningSimulator, job: dict[str, Any]) -> Ledger:
    inputs = [line["custom_id"] for f in job["input_files"] for line in jsonl(download(sim, f))]
    output = jsonl(download(sim, job["output_file"])) if job["output_file"] else []
    errors = jsonl(download(sim, job["error_file"])) if job["error_file"] else []
    ok = [line["custom_id"] for line in output if 200 <= line["response"]["status_code"] < 300]
    rejected = [line["custom_id"] for line in output if line["response"]["status_code"] >= 300]
    return Ledger(inputs, ok, rejected, [line["custom_id"] for line in errors])


def chat_input(count: int) -> bytes:
    lines = (
        {"custom_id": f"q{i}", "body": {"messages": [{"role": "user", "content": f"hi {i}"}]}}
        for i in range(count)
    )
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


# --- Every ended job: its files add up to its counters ---------------------------------------


@pytest.mark.parametrize(
    ("outcome", "completed", "errored", "rejected"),
    [
        # 40 requests, a quarter failing: floor(completed / 4) failures, ceil(half) of
        # them in the error file, the rest as non-2xx output lines.
        ("SUCCESS", 40, 5, 5),
        ("FAILED", 20, 3, 2),  # stops half-way
        ("TIMEOUT_EXCEEDED", 32, 4, 4),  # stops at 80%
    ],
)
def test_an_ended_jobs_files_match_its_counters(
    sim: RunningSimulator, outcome: str, completed: int, errored: int, rejected: int
) -> None:
    content = chat_input(40)
    file_id = upload(sim, content)
    job = create(sim, file_id, sim_outcome=outcome, sim_failure_rate="0.25", **NOW)
    assert job["status"] == outcome
    assert download(sim, file_id) == content
    book = ledger(sim, job)
    assert (len(book.succeeded), len(book.rejected), len(book.errored)) == (
        completed - errored - rejected, rejected, errored,
    )  # fmt: skip
    assert_counters_match(job, book)
    # Only the requests processed before the end, in input order; the rest never ran.
    assert sorted(book.processed, key=book.inputs.index) == book.inputs[:completed]
    assert book.not_run == book.inputs[completed:]


def test_a_cancelled_job_has_the_output_of_what_ran_before_the_cancel(
    sim: RunningSimulator,
) -> None:
    file_id = upload(sim, chat_input(40))
    job = create(sim, file_id, sim_failure_rate="0.25", sim_queue_seconds="0",
                 sim_run_seconds="4")  # fmt: skip
    wait_for(sim, job["id"], lambda j: j["completed_requests"] >= 6)
    call(sim, "POST", f"/v1/batch/jobs/{job['id']}/cancel").raise_for_status()
    job = wait_for(sim, job["id"], lambda j: j["status"] == "CANCELLED")
    completed = job["completed_requests"]
    assert 6 <= completed < 40
    book = ledger(sim, job)
    assert_counters_match(job, book)
    assert len(book.errored) + len(book.rejected) == completed // 4
    assert sorted(book.processed, key=book.inputs.index) == book.inputs[:completed]
    assert len(book.not_run) == 40 - completed > 0


def test_a_job_cancelled_while_queued_has_no_result_files(sim: RunningSimulator) -> None:
    job = create(sim, upload(sim, chat_input(3)), sim_queue_seconds="60")
    call(sim, "POST", f"/v1/batch/jobs/{job['id']}/cancel").raise_for_status()
    job = wait_for(sim, job["id"], lambda j: j["status"] == "CANCELLED")
    assert (job["output_file"], job["error_file"], job["completed_requests"]) == (None, None, 0)
    assert ledger(sim, job).not_run == ["q0", "q1", "q2"]


def assert_counters_match(job: dict[str, Any], book: Ledger) -> None:
    assert job["succeeded_requests"] == len(book.succeeded)
    assert job["failed_requests"] == len(book.rejected) + len(book.errored)
    assert job["completed_requests"] == len(book.processed) == len(set(book.processed))
    assert job["total_requests"] == len(book.inputs) == len(book.processed) + len(book.not_run)
    assert set(book.processed) <= set(book.inputs)
    assert (job["error_file"] is None) == (not book.errored)


@pytest.mark.parametrize(("share", "errored", "rejected"), [("0", 0, 4), ("1", 4, 0)])
def test_the_error_file_share_directive_chooses_the_failures_form(
    sim: RunningSimulator, share: str, errored: int, rejected: int
) -> None:
    job = create(sim, upload(sim, chat_input(8)), sim_failure_rate="0.5",
                 sim_error_file_share=share, **NOW)  # fmt: skip
    book = ledger(sim, job)
    assert (len(book.errored), len(book.rejected), len(book.succeeded)) == (errored, rejected, 4)
    assert (job["error_file"] is None) == (errored == 0)


# --- Line formats --------------------------------------------------------------------------------


def test_output_and_error_lines_have_their_documented_shape(sim: RunningSimulator) -> None:
    job = create(sim, upload(sim, chat_input(12)), sim_failure_rate="0.5", **NOW)
    output = jsonl(download(sim, job["output_file"]))
    errors = jsonl(download(sim, job["error_file"]))
    assert (len(output), len(errors)) == (9, 3)  # 6 failures: 3 in each form
    for line in output + errors:
        assert set(line) == LINE_KEYS
        n = int(re.fullmatch(rf"batch-{job['id'][:8]}-(\d+)-{UUID}", line["id"])[1])  # type: ignore[index]
        assert line["custom_id"] == f"q{n - 1}"
        assert set(line["response"]) == {"status_code", "body"}
    statuses = [line["response"]["status_code"] for line in output]
    assert statuses.count(200) == 6
    for line in output:
        body = line["response"]["body"]
        assert line["error"] is None
        if line["response"]["status_code"] == 200:
            assert_chat_completion(body)
            continue
        status, n = line["response"]["status_code"], line["id"].split("-")[2]
        message = {400: f"Simulated rejection of request {n}",
                   422: f"Simulated validation error in request {n}"}[status]  # fmt: skip
        assert body == {"object": "error", "message": message,
                        "type": "invalid_request_error", "param": None, "code": None}  # fmt: skip
    for line in errors:
        message = f"Simulated failure of request {line['id'].split('-')[2]}"
        assert line["response"] == {"status_code": 500, "body": {
            "object": "error", "message": message, "type": "server_error", "param": None,
            "code": None}}  # fmt: skip
        assert line["error"] == {"message": message, "code": "simulated_failure"}
    files = {
        f: call(sim, "GET", f"/v1/files/{f}").json()
        for f in (job["output_file"], job["error_file"])
    }
    assert [(m["num_lines"], m["sample_type"]) for m in files.values()] == [
        (9, "batch_result"), (3, "batch_error"),
    ]  # fmt: skip


def assert_chat_completion(body: dict[str, Any]) -> None:
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert min(usage.values()) > 0


def test_usage_varies_per_request_and_is_the_same_for_the_same_request() -> None:
    plan = JobPlan(0.0, 0.0, 0.0, JobStatus.SUCCESS, 50)
    source = ResultSource("0f1e2d3c-0000-4000-8000-000000000000", "/v1/chat/completions", "m",
                          None, plan, 50, 1_700_000_000.0)  # fmt: skip

    def usages(source: ResultSource) -> list[dict[str, int]]:
        lines = jsonl(result_file(source, errors=False, file_id="f").content)
        return [line["response"]["body"]["usage"] for line in lines]

    first = usages(source)
    assert usages(source) == first
    assert len({u["prompt_tokens"] for u in first}) > 10
    assert len({u["completion_tokens"] for u in first}) > 10
    assert all(u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] for u in first)
    assert usages(replace(source, job_id="9f1e2d3c-0000-4000-8000-000000000000")) != first
    padded = usages(replace(source, plan=replace(plan, pad_bytes=4000)))
    extra = [
        p["completion_tokens"] - u["completion_tokens"] for p, u in zip(padded, first, strict=True)
    ]
    assert extra == [1000] * 50  # a token per 4 characters of padding


# --- Seeded jobs: a synthetic input file -----------------------------------------------------

# The field each endpoint's request body is recognised by.
REQUEST_FIELD = {
    "/v1/chat/completions": "messages", "/v1/fim/completions": "prompt",
    "/v1/embeddings": "input", "/v1/moderations": "input", "/v1/chat/moderations": "input",
    "/v1/ocr": "document", "/v1/classifications": "input", "/v1/chat/classifications": "input",
    "/v1/conversations": "inputs", "/v1/audio/transcriptions": "file_url",
}  # fmt: skip
WITH_USAGE = {"/v1/chat/completions", "/v1/fim/completions", "/v1/embeddings",
              "/v1/conversations", "/v1/audio/transcriptions"}  # fmt: skip


@pytest.mark.parametrize("endpoint", API_ENDPOINTS)
def test_seeded_jobs_read_a_downloadable_synthetic_input(
    sim: RunningSimulator, endpoint: str
) -> None:
    jobs = seed(sim, count=2, endpoint=endpoint, total_requests=12, metadata={
        **NOW, "sim_outcome": "TIMEOUT_EXCEEDED", "sim_failure_rate": "0.25"})  # fmt: skip
    (file_id,) = jobs[0]["input_files"]
    assert jobs[1]["input_files"] == [file_id]  # one file per seeding
    info = call(sim, "GET", f"/v1/files/{file_id}").json()
    assert (info["purpose"], info["sample_type"], info["source"], info["num_lines"]) == (
        "batch", "batch_request", "upload", 12,
    )  # fmt: skip
    lines = jsonl(download(sim, file_id))
    assert [line["custom_id"] for line in lines] == [str(i) for i in range(12)]
    assert all(set(line) == {"custom_id", "body"} for line in lines)
    assert all(REQUEST_FIELD[endpoint] in line["body"] for line in lines)
    assert not any("model" in line["body"] for line in lines)  # the job names it
    for job in jobs:
        book = ledger(sim, job)
        assert_counters_match(job, book)
        assert (len(book.processed), len(book.errored), len(book.rejected)) == (9, 1, 1)
        assert book.not_run == ["9", "10", "11"]
    output = jsonl(download(sim, jobs[0]["output_file"]))
    bodies = [line["response"]["body"] for line in output if line["response"]["status_code"] == 200]
    assert all(b.get("model", "mistral-small-latest") == "mistral-small-latest" for b in bodies)
    assert all(("usage" in b) == (endpoint in WITH_USAGE) for b in bodies)


def test_a_seeded_job_without_a_model_names_one_in_each_request(sim: RunningSimulator) -> None:
    (job,) = seed(sim, count=1, model=None, total_requests=3, metadata=NOW)
    lines = jsonl(download(sim, job["input_files"][0]))
    assert [line["body"]["model"] for line in lines] == ["mistral-small-latest"] * 3
    output = jsonl(download(sim, job["output_file"]))
    assert [line["response"]["body"]["model"] for line in output] == ["mistral-small-latest"] * 3
