"""The CLI with OpenAI and Anthropic beside Mistral: one in-process daemon tracking the three
simulators; `--provider` on create, submit and jobs; the checks of each provider's input
lines and options; `poll --once` of every provider; `simulate --provider` as a process.

The fixtures here (a daemon of the three providers and its CLI config) are shared with the
dashboard's tests (``test_ui``)."""

from __future__ import annotations

import io
import json
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from batchwatch.cli.batchfile import check_lines, line_format
from batchwatch.config_providers import AnthropicSettings, OpenAISettings
from batchwatch.daemon import Daemon
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from tests.helpers import SIM_API_KEY, daemon_settings, get, wait_for
from tests.integration.test_cli import run as run_main
from tests.processes import free_port, wait_until

CHAT = "/v1/chat/completions"
SIM = SimulatorSettings(api_key=SIM_API_KEY, queue_seconds=0.3, run_seconds=1.0, cancel_seconds=0.3)


def openai_lines(count: int = 3, endpoint: str = CHAT) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return b"".join(
        json.dumps({"custom_id": f"r{n}", "method": "POST", "url": endpoint, "body": body}).encode()
        + b"\n"
        for n in range(count)
    )


def anthropic_lines(count: int = 3, directives: str = "") -> bytes:
    """``directives``: the simulator's ``sim_*`` settings, in the first request's user id."""
    lines = []
    for n in range(count):
        params: dict[str, Any] = {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        }
        if n == 0 and directives:
            params["metadata"] = {"user_id": directives}
        lines.append(json.dumps({"custom_id": f"r{n}", "params": params}).encode() + b"\n")
    return b"".join(lines)


def write(tmp_path: Path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def upstream_openai_batch(sim: RunningSimulator, **metadata: str) -> str:
    """A batch created straight on the OpenAI simulator (as another tool would);
    ``metadata``: the simulator's ``sim_*`` directives."""
    body = {"input_file_id": upload_openai(sim), "endpoint": CHAT, "completion_window": "24h"}
    created = requests.post(
        f"{sim.url}/v1/batches",
        headers={"Authorization": f"Bearer {SIM_API_KEY}"},
        json={**body, "metadata": metadata or None},
        timeout=5,
    )
    created.raise_for_status()
    return str(created.json()["id"])


def upstream_anthropic_batch(sim: RunningSimulator, directives: str = "") -> str:
    """A batch created straight on the Anthropic simulator (as another tool would)."""
    lines = anthropic_lines(2, directives).splitlines()
    created = requests.post(
        f"{sim.url}/v1/messages/batches",
        headers={"x-api-key": SIM_API_KEY, "anthropic-version": "2023-06-01"},
        json={"requests": [json.loads(line) for line in lines]},
        timeout=5,
    )
    created.raise_for_status()
    return str(created.json()["id"])


def upload_openai(sim: RunningSimulator) -> str:
    answer = requests.post(
        f"{sim.url}/v1/files",
        headers={"Authorization": f"Bearer {SIM_API_KEY}"},
        files={"file": ("in.jsonl", openai_lines())},
        data={"purpose": "batch"},
        timeout=5,
    )
    answer.raise_for_status()
    return str(answer.json()["id"])


def sim_requests(sim: RunningSimulator) -> dict[str, int]:
    return dict(sim.simulation.stats()["requests"])


def posts(sim: RunningSimulator) -> dict[str, int]:
    """The simulator's counts of creates and uploads (a daemon's polls are GETs)."""
    return {k: n for k, n in sim_requests(sim).items() if k.startswith("POST")}


# Each fixture's function has a name of its own, so that ``test_ui`` can import it without
# the import shadowing the test parameters that name the fixture.
@pytest.fixture(name="openai_sim")
def openai_sim_fixture() -> Iterator[RunningSimulator]:
    running = start_in_thread(SIM, provider="openai")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(name="anthropic_sim")
def anthropic_sim_fixture() -> Iterator[RunningSimulator]:
    running = start_in_thread(SIM, provider="anthropic")
    try:
        yield running
    finally:
        running.stop()


@dataclass(frozen=True)
class Three:
    """A daemon tracking the three providers' simulators, and the CLI's config for it."""

    daemon: Daemon
    config: str
    token: str
    mistral: RunningSimulator
    openai: RunningSimulator
    anthropic: RunningSimulator

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(get(self.daemon, self.token, f"/v1/batch/jobs/{job_id}").json())


@pytest.fixture(name="three")
def three_fixture(
    tmp_path: Path,
    simulator: RunningSimulator,
    openai_sim: RunningSimulator,
    anthropic_sim: RunningSimulator,
) -> Iterator[Three]:
    settings = replace(
        daemon_settings(tmp_path, simulator.url),
        openai=OpenAISettings(server_url=openai_sim.url, api_key=SIM_API_KEY, max_retries=1),
        anthropic=AnthropicSettings(
            server_url=anthropic_sim.url, api_key=SIM_API_KEY, max_retries=1
        ),
    )
    daemon = Daemon(settings, threading.Event())
    daemon.start()
    try:
        port = daemon.api_url.rsplit(":", 1)[1]
        config = tmp_path / "cli3.toml"
        config.write_text(f'[api]\nport = {port}\ntoken_file = "{tmp_path / "token"}"\n')
        token = (tmp_path / "token").read_text().strip()
        yield Three(daemon, str(config), token, simulator, openai_sim, anthropic_sim)
    finally:
        daemon.close()


def run(capsys: pytest.CaptureFixture[str], config: str, *argv: str) -> tuple[int, str, str]:
    return run_main(capsys, "--config", config, *argv)


def submit_openai(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path, *extra: str
) -> str:
    path = write(tmp_path, "openai.jsonl", openai_lines())
    code, out, err = run(
        capsys, config, "submit", path, "--provider", "openai", "--endpoint", CHAT, *extra
    )
    assert code == 0, err
    return out.strip()


def submit_anthropic(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path, directives: str = ""
) -> str:
    path = write(tmp_path, "anthropic.jsonl", anthropic_lines(directives=directives))
    code, out, err = run(capsys, config, "submit", path, "--provider", "anthropic")
    assert code == 0, err
    return out.strip()


# ---- create and submit, through a real daemon to the simulators -------------------------


def test_submit_openai_uploads_to_openai_and_creates_there(
    capsys: pytest.CaptureFixture[str], three: Three, tmp_path: Path
) -> None:
    job_id = submit_openai(capsys, three.config, tmp_path, "--metadata", "team=search")
    assert job_id.startswith("batch_")
    batch = three.openai.simulation.get_batch(job_id).to_wire()
    assert batch["endpoint"] == CHAT and batch["metadata"]["team"] == "search"
    assert batch["completion_window"] == "24h"
    counts = sim_requests(three.openai)
    assert (counts.get("POST /v1/files"), counts.get("POST /v1/batches")) == (1, 1)
    assert not posts(three.mistral)  # nothing went to Mistral
    stored = three.job(job_id)
    assert (stored["provider"], stored["input_files"]) == ("openai", [batch["input_file_id"]])


def test_create_openai_from_an_uploaded_file_once_per_key(
    capsys: pytest.CaptureFixture[str], three: Three
) -> None:
    uploaded = upload_openai(three.openai)
    argv = ("create", "--provider", "openai", "--input-file", uploaded, "--endpoint", CHAT)
    keyed = (*argv, "--idempotency-key", "nightly-openai", "--json")
    code, first, err = run(capsys, three.config, *keyed)
    assert code == 0, err
    job = json.loads(first)
    assert job["id"].startswith("batch_") and job["input_files"] == [uploaded]
    assert (job["provider"], job["status"], job["provider_status"]) == (
        "openai",
        "QUEUED",
        "validating",
    )
    code, second, _ = run(capsys, three.config, *keyed)
    assert code == 0 and json.loads(second)["id"] == job["id"]
    assert sim_requests(three.openai)["POST /v1/batches"] == 1


def test_submit_anthropic_sends_the_lines_inline(
    capsys: pytest.CaptureFixture[str], three: Three, tmp_path: Path
) -> None:
    job_id = submit_anthropic(capsys, three.config, tmp_path)
    assert job_id.startswith("msgbatch_")
    batch = three.anthropic.simulation.get_batch(job_id)
    assert batch.batch.requests is not None
    assert [r.custom_id for r in batch.batch.requests] == ["r0", "r1", "r2"]
    assert three.job(job_id)["provider"] == "anthropic"


def test_create_anthropic_reads_the_requests_from_standard_input(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, three: Three
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(anthropic_lines(2))))
    code, out, err = run(
        capsys, three.config, "create", "--provider", "anthropic", "--requests", "-", "--json"
    )
    assert code == 0, err
    job = json.loads(out)
    assert (job["provider"], job["status"], job["provider_status"]) == (
        "anthropic",
        "RUNNING",
        "in_progress",
    )
    assert job["total_requests"] == 2
    assert sim_requests(three.anthropic)["POST /v1/messages/batches"] == 1


def test_create_mistral_sends_the_requests_inline(
    capsys: pytest.CaptureFixture[str], simulator: RunningSimulator, config: str, tmp_path: Path
) -> None:
    path = write(tmp_path, "m.jsonl", b'{"custom_id": "a", "body": {"messages": []}}\n')
    argv = ("--model", "mistral-small-latest", "--endpoint", CHAT, "--json")
    code, out, err = run(capsys, config, "create", "--requests", path, *argv)
    assert code == 0, err
    job = json.loads(out)
    assert (job["provider"], job["total_requests"], job["input_files"]) == ("mistral", 1, [])
    assert posts(simulator) == {"POST /v1/batch/jobs": 1}  # no file uploaded


def test_wait_of_an_openai_batch_exits_zero_when_it_completes(
    capsys: pytest.CaptureFixture[str], three: Three, tmp_path: Path
) -> None:
    job_id = submit_openai(capsys, three.config, tmp_path, "--metadata", "sim_run_seconds=0.3")
    code, out, err = run(capsys, three.config, "wait", job_id, "--interval", "0.1", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert (job["status"], job["provider_status"]) == ("SUCCESS", "completed")


def test_wait_on_an_anthropic_batch_says_its_progress_is_unknown_until_it_ends(
    capsys: pytest.CaptureFixture[str], three: Three, tmp_path: Path
) -> None:
    job_id = submit_anthropic(capsys, three.config, tmp_path, "sim_run_seconds=1")
    code, _, err = run(capsys, three.config, "wait", job_id, "--interval", "0.1")
    assert code == 0, err
    assert f"{job_id} RUNNING (in_progress) (progress unknown until the batch ends)" in err
    assert f"{job_id} SUCCESS (ended) 3/3" in err


def test_cancel_of_an_anthropic_batch_shows_both_statuses(
    capsys: pytest.CaptureFixture[str], three: Three, tmp_path: Path
) -> None:
    job_id = submit_anthropic(capsys, three.config, tmp_path, "sim_run_seconds=60")
    code, out, _ = run(capsys, three.config, "cancel", job_id)
    assert (code, out) == (0, f"{job_id}: CANCELLATION_REQUESTED (canceling)\n")
    code, out, _ = run(capsys, three.config, "wait", job_id, "--interval", "0.1", "--json")
    assert code == 3  # ended, and not in SUCCESS
    job = json.loads(out)
    assert (job["status"], job["provider_status"]) == ("CANCELLED", "ended")


# ---- jobs and show: the provider column, filter and statuses ---------------------------


def test_jobs_shows_each_provider_and_filters_by_one(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    three: Three,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    openai_id = submit_openai(capsys, three.config, tmp_path, "--metadata", "sim_run_seconds=60")
    anthropic_id = submit_anthropic(capsys, three.config, tmp_path, "sim_run_seconds=60")
    wait_for(lambda: three.job(openai_id)["provider_status"] == "in_progress")
    code, out, _ = run(capsys, three.config, "jobs")
    assert code == 0
    header, *rows = out.splitlines()
    assert "PROVIDER" in header.split()
    row = {line.split()[0]: line for line in rows}
    assert "OpenAI" in row[openai_id] and "RUNNING (in_progress)" in row[openai_id]
    assert "Anthropic" in row[anthropic_id]
    # Anthropic's counts say nothing until the batch ends: not 0/3.
    assert "?/3 (not known yet)" in row[anthropic_id]
    code, out, _ = run(capsys, three.config, "jobs", "--provider", "openai", "--json")
    listed = json.loads(out)
    assert [job["id"] for job in listed] == [openai_id]
    assert (listed[0]["provider"], listed[0]["provider_status"]) == ("openai", "in_progress")
    code, out, _ = run(capsys, three.config, "jobs", "--provider", "mistral", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_show_names_the_provider_and_its_own_statuses(
    capsys: pytest.CaptureFixture[str], three: Three, tmp_path: Path
) -> None:
    # Five seconds of running: half a second of finalizing, which a poll every 0.2 s sees.
    job_id = submit_openai(capsys, three.config, tmp_path, "--metadata", "sim_run_seconds=5")
    assert run(capsys, three.config, "wait", job_id, "--interval", "0.2")[0] == 0
    code, out, _ = run(capsys, three.config, "show", job_id)
    assert code == 0
    assert "OpenAI" in out and "SUCCESS (completed)" in out
    assert "RUNNING (finalizing)" in out  # a transition whose common status stays RUNNING


def test_an_unknown_provider_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["jobs", "--provider", "cohere"], ["submit", "f.jsonl", "--provider", "x"]):
        with pytest.raises(SystemExit) as info:
            run_main(capsys, *argv)
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert "invalid choice" in err
        assert all(name in err for name in ("mistral", "openai", "anthropic"))


def test_a_provider_the_daemon_has_no_key_for_is_the_daemon_s_one_line(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path
) -> None:
    """``config`` is a daemon of Mistral alone."""
    cases = (
        ("Anthropic", anthropic_lines(), ("--provider", "anthropic")),
        ("OpenAI", openai_lines(), ("--provider", "openai", "--endpoint", CHAT)),
    )
    for label, lines, options in cases:
        path = write(tmp_path, f"{label}.jsonl", lines)
        code, out, err = run(capsys, config, "submit", path, *options)
        assert (code, out) == (1, "")
        assert err.startswith(f"batchwatch: error: {label} is not configured on this daemon")
        assert err.count("\n") == 1


# ---- what is refused before anything is sent --------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["create", "--provider", "openai", "--input-file", "a", "b", "--endpoint", CHAT],
            "--input-file: an OpenAI batch reads exactly one input file",
        ),
        (
            [
                "create",
                "--provider",
                "openai",
                "--input-file",
                "a",
                "--endpoint",
                CHAT,
                "--model",
                "gpt-4o",
            ],
            "--model: OpenAI batches take the model from each request line's body",
        ),
        (
            ["create", "--provider", "openai", "--requests", "r.jsonl", "--endpoint", CHAT],
            "--requests: OpenAI batches read their requests from an uploaded file",
        ),
        (
            [
                "create",
                "--provider",
                "openai",
                "--input-file",
                "a",
                "--endpoint",
                CHAT,
                "--timeout-hours",
                "48",
            ],
            "--timeout-hours: OpenAI batches have a 24-hour completion window",
        ),
        (
            ["create", "--provider", "openai", "--input-file", "a"],
            "--endpoint is required",
        ),
        (
            ["create", "--provider", "anthropic", "--input-file", "a"],
            "--input-file: Anthropic batches carry their requests inline",
        ),
        (
            ["create", "--provider", "anthropic", "--requests", "r.jsonl", "--metadata", "a=b"],
            "--metadata: Anthropic batches have no metadata",
        ),
        (
            ["create", "--provider", "anthropic", "--requests", "r.jsonl", "--endpoint", CHAT],
            "--endpoint: Anthropic batches always go to /v1/messages",
        ),
        (
            ["create", "--input-file", "a", "--endpoint", CHAT],
            "--model is required for a Mistral job",
        ),
        (
            ["create", "--input-file", "a", "--model", "m", "--endpoint", "/v1/nope"],
            "--endpoint '/v1/nope': one of /v1/chat/completions",
        ),
    ],
)
def test_options_a_provider_has_no_place_for_are_refused(
    capsys: pytest.CaptureFixture[str],
    simulator: RunningSimulator,
    config: str,
    argv: list[str],
    message: str,
) -> None:
    code, out, err = run(capsys, config, *argv)
    assert (code, out) == (1, "")
    assert err.startswith(f"batchwatch: error: {message}"), err
    assert not posts(simulator)


@pytest.mark.parametrize(
    ("provider", "line", "problem"),
    [
        ("openai", {"custom_id": "a", "url": CHAT, "body": {}}, '"method" must be "POST"'),
        (
            "openai",
            {"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}},
            "\"url\" '/v1/embeddings' is not the batch's endpoint",
        ),
        ("openai", {"method": "POST", "url": CHAT, "body": {}}, 'no "custom_id" (OpenAI needs'),
        ("anthropic", {"custom_id": "a", "body": {}}, 'no "params"'),
        ("anthropic", {"params": {}}, 'no "custom_id" (Anthropic needs'),
        ("anthropic", {"custom_id": "a b", "params": {}}, 'custom_id "a b": 1 to 64 letters'),
        ("anthropic", {"custom_id": "x" * 65, "params": {}}, f'custom_id "{"x" * 65}": 1 to'),
        ("mistral", {"custom_id": "a", "params": {}}, 'no "body"'),
    ],
)
def test_each_provider_s_lines_are_checked_in_its_format(
    provider: str, line: dict[str, Any], problem: str
) -> None:
    content = json.dumps(line).encode() + b"\n"
    kept: list[dict[str, Any]] = []
    check = check_lines([content], line_format(provider, CHAT), kept)
    assert not check.ok and kept == []
    assert check.problems[0].startswith(f"line 1: {problem}"), check.problems


def test_good_lines_of_each_provider_pass_and_are_kept() -> None:
    for provider, content in (("openai", openai_lines()), ("anthropic", anthropic_lines())):
        kept: list[dict[str, Any]] = []
        check = check_lines(content.splitlines(keepends=True), line_format(provider, CHAT), kept)
        assert check.ok and check.requests == 3
        assert [item["custom_id"] for item in kept] == ["r0", "r1", "r2"]


def test_a_bad_anthropic_file_sends_nothing(
    capsys: pytest.CaptureFixture[str], three: Three, tmp_path: Path
) -> None:
    path = write(tmp_path, "bad.jsonl", anthropic_lines(1) + b'{"custom_id": "r0", "params": {}}\n')
    code, out, err = run(capsys, three.config, "submit", path, "--provider", "anthropic")
    assert (code, out) == (1, "")
    assert f'{path}: line 2: custom_id "r0" repeats line 1' in err
    assert sim_requests(three.anthropic).get("POST /v1/messages/batches") is None


# ---- the service commands ----------------------------------------------------------------


def test_poll_once_polls_every_configured_provider(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    openai_sim: RunningSimulator,
    anthropic_sim: RunningSimulator,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SIM_API_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SIM_API_KEY)
    upstream_openai_batch(openai_sim)
    upstream_anthropic_batch(anthropic_sim)
    db = tmp_path / "poll.db"
    path = tmp_path / "poll.toml"
    path.write_text(
        f'[openai]\nserver_url = "{openai_sim.url}"\n'
        f'[anthropic]\nserver_url = "{anthropic_sim.url}"\n'
        f'[database]\nurl = "sqlite:///{db}"\n[log]\nlevel = "warning"\n'
    )
    code, out, err = run(capsys, str(path), "poll", "--once", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["discovered"] >= 1
    with sqlite3.connect(db) as conn:
        providers = {row[0] for row in conn.execute("SELECT provider FROM jobs")}
    assert providers == {"openai", "anthropic"}


@pytest.mark.parametrize(
    ("provider", "probe", "label"),
    [
        ("anthropic", "/v1/messages/batches", "Anthropic"),
        ("openai", "/v1/batches", "OpenAI"),
    ],
)
def test_simulate_serves_the_provider_asked_for(
    tmp_path: Path, provider: str, probe: str, label: str
) -> None:
    port = free_port()
    log = tmp_path / "sim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batchwatch",
                "simulate",
                "--provider",
                provider,
                "--port",
                str(port),
                "--api-key",
                SIM_API_KEY,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}{probe}"
        headers = {
            "Authorization": f"Bearer {SIM_API_KEY}",
            "x-api-key": SIM_API_KEY,
            "anthropic-version": "2023-06-01",
        }
        wait_until(lambda: requests.get(url, headers=headers, timeout=1).ok, 30, "the simulator")
        listed = requests.get(url, headers=headers, timeout=5).json()
        assert listed["data"] == [] and "has_more" in listed
        # Mistral's route is not there: this is the other provider's API.
        mistral = requests.get(f"http://127.0.0.1:{port}/v1/batch/jobs", headers=headers, timeout=5)
        assert mistral.status_code == 404
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)
    assert code == 0
    assert f"{label} simulator on http://127.0.0.1:{port}" in log.read_text()
