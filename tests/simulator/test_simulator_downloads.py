"""Downloading result files over real HTTP on loopback: a 100 MB+ file streamed with its
``Content-Length``, rendered holding one copy, each fault a download may meet (reset,
truncate, stall, slow) and a deleted ("expired") file's 404."""

from __future__ import annotations

import json
import socket
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx2
import pytest
import requests

from batchwatch.models import JobStatus
from batchwatch.simulator.faults import FaultRule, FaultSpecError, parse_fault_spec
from batchwatch.simulator.lifecycle import JobPlan
from batchwatch.simulator.results import ResultSource, result_file
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from tests.helpers import SIM_API_KEY, fresh_simulator

AUTH = {"Authorization": f"Bearer {SIM_API_KEY}"}
NOW = {"sim_queue_seconds": "0", "sim_run_seconds": "0"}


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSimulator]:
    simulator = start_in_thread(SimulatorSettings(api_key=SIM_API_KEY))
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(running: RunningSimulator) -> Iterator[RunningSimulator]:
    yield from fresh_simulator(running)


def seeded_output(sim: RunningSimulator, total: int, pad_bytes: int) -> tuple[str, bytes]:
    """The output file of a new seeded SUCCESS job: its id and (in-process) its bytes."""
    body = {"count": 1, "total_requests": total, "pad_bytes": pad_bytes, "metadata": NOW}
    response = requests.post(f"{sim.url}/_sim/jobs/bulk", json=body, timeout=30)
    response.raise_for_status()
    (job_id,) = response.json()["ids"]
    job = requests.get(f"{sim.url}/v1/batch/jobs/{job_id}", headers=AUTH, timeout=30).json()
    assert job["status"] == "SUCCESS"
    file_id: str = job["output_file"]
    return file_id, sim.simulation.get_file(file_id).content


@pytest.fixture(scope="module")
def medium(running: RunningSimulator) -> tuple[str, bytes]:
    """A 3 MB output file: a dozen of the download's 256 KB slices."""
    return seeded_output(running, 2_000, 1_500)


def content_path(file_id: str) -> str:
    return f"/v1/files/{file_id}/content"


def get(
    sim: RunningSimulator, path: str, timeout: float = 10, **kwargs: object
) -> requests.Response:
    return requests.get(sim.url + path, headers=AUTH, timeout=timeout, **kwargs)  # type: ignore[arg-type]


def last_logged(sim: RunningSimulator) -> tuple[str, int | None, str | None]:
    entry = sim.simulation.faults.requests()[-1]
    return entry.route, entry.status, entry.fault


# --- Size, streaming, memory ---------------------------------------------------------------------


def test_a_padded_100000_request_output_streams_over_100_mb(sim: RunningSimulator) -> None:
    file_id, content = seeded_output(sim, 100_000, 1_000)
    info = get(sim, f"/v1/files/{file_id}").json()
    assert info["bytes"] == len(content) >= 100_000_000
    assert info["num_lines"] == 100_000
    received = newlines = 0
    tracemalloc.start()  # traces every thread: the server's too
    try:
        with get(sim, content_path(file_id), stream=True) as response:
            assert response.status_code == 200
            assert int(response.headers["content-length"]) == len(content)
            assert "transfer-encoding" not in response.headers
            for chunk in response.iter_content(1 << 20):
                received += len(chunk)
                newlines += chunk.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (received, newlines) == (len(content), 100_000)
    # Served in slices: no second copy of the file in the server's write buffer.
    assert peak < 20_000_000, peak
    first = json.loads(content[: content.index(b"\n")])
    answer = first["response"]["body"]["choices"][0]["message"]["content"]
    assert answer.startswith("Simulated answer 1.lorem ipsum dolor")
    assert len(answer) == len("Simulated answer 1.") + 1_000


def test_rendering_a_result_file_holds_about_one_copy_of_it() -> None:
    plan = JobPlan(0.0, 0.0, 0.0, JobStatus.SUCCESS, 4_000, pad_bytes=2_000)
    source = ResultSource(str(uuid.uuid4()), "/v1/chat/completions", "m", None, plan, 4_000, 1.0)
    tracemalloc.start()
    try:
        stored = result_file(source, errors=False, file_id="f")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = len(stored.content)
    assert size > 8_000_000
    # A list of lines joined at the end would peak at twice the size, at least.
    assert peak < 1.3 * size, (peak, size)


def test_a_download_is_the_stored_bytes(sim: RunningSimulator, medium: tuple[str, bytes]) -> None:
    file_id, content = medium
    response = get(sim, content_path(file_id))
    assert response.content == content
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith("attachment; filename=")


# --- Faults on the download route -----------------------------------------------------------------


def test_reset_on_a_download_answers_nothing(
    sim: RunningSimulator, medium: tuple[str, bytes]
) -> None:
    file_id, _ = medium
    sim.simulation.faults.set([FaultRule("reset", route="GET /v1/files/{file_id}/content")])
    with pytest.raises(requests.exceptions.ConnectionError):
        get(sim, content_path(file_id))
    assert last_logged(sim) == ("GET /v1/files/{file_id}/content", None, "reset")
    assert get(sim, f"/v1/files/{file_id}").status_code == 200  # other routes untouched


def raw_get(sim: RunningSimulator, path: str) -> tuple[list[str], bytes]:
    """One request on a bare socket, read until the server closes: (head lines, body)."""
    url = urlsplit(sim.url)
    assert url.hostname is not None
    assert url.port is not None
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {url.hostname}\r\n"
        sock.sendall(f"{request}Authorization: {AUTH['Authorization']}\r\n\r\n".encode())
        data = bytearray()
        while chunk := sock.recv(1 << 16):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return head.decode("latin-1").split("\r\n"), body


def test_truncate_on_a_download_sends_the_full_length_then_half(
    sim: RunningSimulator, medium: tuple[str, bytes]
) -> None:
    file_id, content = medium
    sim.simulation.faults.set([FaultRule("truncate")])
    head, body = raw_get(sim, content_path(file_id))
    assert head[0] == "HTTP/1.1 200 OK"
    headers = dict(line.lower().split(": ", 1) for line in head[1:])
    assert int(headers["content-length"]) == len(content)
    assert headers["content-type"] == "application/octet-stream"
    assert body == content[: len(content) // 2]
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(sim, content_path(file_id))
    with pytest.raises(httpx2.RemoteProtocolError):
        httpx2.get(sim.url + content_path(file_id), headers=AUTH, timeout=10)
    assert last_logged(sim) == ("GET /v1/files/{file_id}/content", 200, "truncate")


def test_stall_on_a_download_outlasts_a_shorter_timeout(
    sim: RunningSimulator, medium: tuple[str, bytes]
) -> None:
    file_id, content = medium
    sim.simulation.faults.set([FaultRule("stall", stall_seconds=0.5)])
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(sim, content_path(file_id), timeout=0.1)
    started = time.monotonic()
    assert get(sim, content_path(file_id)).content == content
    assert time.monotonic() - started >= 0.5


def test_slow_trickles_a_download_over_stall_seconds(
    sim: RunningSimulator, medium: tuple[str, bytes]
) -> None:
    file_id, content = medium
    sim.simulation.faults.set([FaultRule("slow", stall_seconds=1.0)])
    started = time.monotonic()
    arrivals, received = [], bytearray()
    # A read timeout of 0.4 s: the pauses (1 s / 20) are short, only the whole is slow.
    with get(sim, content_path(file_id), timeout=0.4, stream=True) as response:
        assert time.monotonic() - started < 1.0  # the headers come before the stall's end
        assert int(response.headers["content-length"]) == len(content)
        for chunk in response.iter_content(16 * 1024):
            arrivals.append(time.monotonic() - started)
            received += chunk
    assert received == content
    assert arrivals[0] < 0.4
    assert arrivals[-1] >= 1.0
    assert len(arrivals) >= 10
    assert last_logged(sim) == ("GET /v1/files/{file_id}/content", 200, "slow")


def test_slow_applies_to_json_routes_too(sim: RunningSimulator) -> None:
    sim.simulation.faults.set([FaultRule("slow", stall_seconds=0.3, times=1)])
    started = time.monotonic()
    response = get(sim, "/v1/batch/jobs")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200
    assert "total" in response.json()


def test_slow_is_a_known_fault_with_checked_timing() -> None:
    assert parse_fault_spec("slow:0.5") == (FaultRule("slow", 0.5),)
    with pytest.raises(FaultSpecError, match="stall_seconds"):
        FaultRule("slow", stall_seconds=-1.0)


# --- A deleted (expired) result file ------------------------------------------------------------


@pytest.mark.parametrize("read_first", [False, True])
def test_a_deleted_result_file_answers_mistrals_404(
    sim: RunningSimulator, read_first: bool
) -> None:
    file_id, _ = seeded_output(sim, 3, 0)
    if not read_first:  # still unrendered: deleted before anyone read it
        sim.simulation.delete_file(file_id)
    else:
        assert get(sim, content_path(file_id)).status_code == 200
        deleted = requests.delete(f"{sim.url}/v1/files/{file_id}", headers=AUTH, timeout=10)
        assert deleted.json() == {"id": file_id, "object": "file", "deleted": True}
    for path in (content_path(file_id), f"/v1/files/{file_id}", f"/_sim/files/{file_id}/content"):
        response = get(sim, path)
        assert response.status_code == 404, path
        assert response.json() == {
            "object": "error",
            "message": f"File {file_id} not found",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
