"""create / submit / cancel / track / wait, in-process against a real daemon, and once as a
real subprocess; plus the local checks of a batch file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from batchwatch.cli.batchfile import check_lines
from batchwatch.simulator.server import RunningSimulator
from tests.integration.test_cli import run as run_main

ENDPOINT = ("--model", "mistral-small-latest", "--endpoint", "/v1/chat/completions")
GOOD = b'{"custom_id": "a", "body": {"messages": []}}\n{"custom_id": "b", "body": {}}\n'


def run(capsys: pytest.CaptureFixture[str], config: str, *argv: str) -> tuple[int, str, str]:
    return run_main(capsys, "--config", config, *argv)


def upstream_count(simulator: RunningSimulator, route: str) -> int:
    stats = requests.get(f"{simulator.url}/_sim/stats", timeout=5).json()
    return int(stats["requests"].get(route, 0))


def jsonl(tmp_path: Path, content: bytes, name: str = "requests.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"not json\n", "line 1: not valid JSON"),
        (b"[1, 2]\n", "line 1: a JSON list, not an object"),
        (b'{"custom_id": "a"}\n', 'line 1: no "body"'),
        (b'{"body": "text"}\n', 'line 1: "body" must be a JSON object'),
        (b'{"custom_id": 7, "body": {}}\n', 'line 1: "custom_id" must be a string'),
        (
            b'{"custom_id": "a", "body": {}}\n{"custom_id": "a", "body": {}}\n',
            'line 2: custom_id "a" repeats line 1',
        ),
        (b'{"body": {}}\n\n{"body": {}}\n', "line 2: empty line"),
        (b"", "the file holds no requests"),
        (b'{"body": {}}\n\xff\xfe\n', "line 2: not UTF-8 text"),
    ],
)
def test_file_check_finds_each_mistake(content: bytes, problem: str) -> None:
    check = check_lines(content.splitlines(keepends=True))
    assert not check.ok
    assert any(p.startswith(problem) for p in check.problems), check.problems


def test_file_check_accepts_good_lines_and_trailing_blank_lines() -> None:
    check = check_lines((GOOD + b"\n\n").splitlines(keepends=True))
    assert check.ok and check.requests == 2


def test_submit_uploads_creates_and_prints_the_id(
    capsys: pytest.CaptureFixture[str], simulator: RunningSimulator, config: str, tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, config, "submit", jsonl(tmp_path, GOOD), *ENDPOINT, "--metadata", "team=search"
    )
    assert code == 0, err
    job_id = out.strip()
    job = simulator.simulation.get_job(job_id)
    assert job.plan.total_requests == 2
    assert (job.spec.metadata or {})["team"] == "search"
    assert "2 requests" in err and "batchwatch wait" in err
    assert upstream_count(simulator, "POST /v1/files") == 1


def test_submit_of_a_bad_file_lists_problems_and_uploads_nothing(
    capsys: pytest.CaptureFixture[str], simulator: RunningSimulator, config: str, tmp_path: Path
) -> None:
    path = jsonl(tmp_path, b'{"body": {}}\nnope\n{"custom_id": "x"}\n')
    code, out, err = run(capsys, config, "submit", path, *ENDPOINT)
    assert code == 1 and out == ""
    assert f"{path}: line 2: not valid JSON" in err
    assert f'{path}: line 3: no "body"' in err
    assert "2 problem(s); nothing was uploaded" in err
    assert upstream_count(simulator, "POST /v1/files") == 0
    code, _, err = run(capsys, config, "submit", str(tmp_path / "absent.jsonl"), *ENDPOINT)
    assert code == 1 and "cannot read" in err


def test_create_with_the_same_key_twice_is_one_job(
    capsys: pytest.CaptureFixture[str], simulator: RunningSimulator, config: str, tmp_path: Path
) -> None:
    from batchwatch.providers.mistral.client import MistralClient
    from tests.helpers import SIM_API_KEY

    with MistralClient(simulator.url, SIM_API_KEY) as upstream:
        file_id = upstream.upload_file(Path(jsonl(tmp_path, GOOD))).id
    argv = ("create", "--input-file", file_id, *ENDPOINT, "--idempotency-key", "nightly-1")
    code, out, err = run(
        capsys, config, "create", "--input-file", file_id, file_id, *ENDPOINT, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["input_files"] == [file_id, file_id]
    code, first, _ = run(capsys, config, *argv, "--json")
    assert code == 0
    code, second, _ = run(capsys, config, *argv, "--json")
    assert code == 0
    assert json.loads(first)["id"] == json.loads(second)["id"]
    assert upstream_count(simulator, "POST /v1/batch/jobs") == 2  # the two-file job + this one
    code, _, err = run(
        capsys,
        config,
        "create",
        "--input-file",
        file_id,
        *ENDPOINT,
        "--idempotency-key",
        "nightly-1",
        "--timeout-hours",
        "48",
    )
    assert code == 1 and "different request body" in err


def test_cancel_then_wait_then_cancel_again(
    capsys: pytest.CaptureFixture[str], simulator: RunningSimulator, config: str, tmp_path: Path
) -> None:
    code, out, _ = run(
        capsys,
        config,
        "submit",
        jsonl(tmp_path, GOOD),
        *ENDPOINT,
        "--metadata",
        "sim_run_seconds=30",
    )
    job_id = out.strip()
    code, out, _ = run(capsys, config, "cancel", job_id)
    assert code == 0 and out.strip() == f"{job_id}: CANCELLATION_REQUESTED"
    code, out, err = run(capsys, config, "wait", job_id, "--interval", "0.1")
    assert code == 3  # ended, but not in SUCCESS
    assert "CANCELLED" in err
    code, out, _ = run(capsys, config, "cancel", job_id, "--json")
    assert code == 0 and json.loads(out)["status"] == "CANCELLED"


def test_wait_exits_zero_on_success_and_one_on_timeout(
    capsys: pytest.CaptureFixture[str], simulator: RunningSimulator, config: str, tmp_path: Path
) -> None:
    _, out, _ = run(capsys, config, "submit", jsonl(tmp_path, GOOD), *ENDPOINT)
    code, out, err = run(capsys, config, "wait", out.strip(), "--interval", "0.1", "--json")
    assert code == 0 and json.loads(out)["status"] == "SUCCESS"
    _, out, _ = run(
        capsys,
        config,
        "submit",
        jsonl(tmp_path, GOOD, "b.jsonl"),
        *ENDPOINT,
        "--metadata",
        "sim_run_seconds=30",
    )
    code, _, err = run(capsys, config, "wait", out.strip(), "--interval", "0.1", "--timeout", "0.3")
    assert code == 1 and "--timeout" in err


def test_cancel_of_a_finished_job_and_track_of_an_unknown_one_are_one_line(
    capsys: pytest.CaptureFixture[str], simulator: RunningSimulator, config: str, tmp_path: Path
) -> None:
    _, out, _ = run(
        capsys,
        config,
        "submit",
        jsonl(tmp_path, GOOD),
        *ENDPOINT,
        "--metadata",
        "sim_run_seconds=0.1",
    )
    job_id = out.strip()
    assert run(capsys, config, "wait", job_id, "--interval", "0.1")[0] == 0
    code, _, err = run(capsys, config, "cancel", job_id)
    assert code == 1
    assert err == f"batchwatch: error: job {job_id} already ended: it is SUCCESS\n"
    unknown = "8a1c7c3e-0000-4000-8000-000000000000"
    code, _, err = run(capsys, config, "track", unknown)
    assert code == 1 and err == f"batchwatch: error: Mistral has no job {unknown}\n"


def test_track_adds_a_job_created_elsewhere(
    capsys: pytest.CaptureFixture[str], simulator: RunningSimulator, config: str
) -> None:
    from tests.helpers import upstream_job

    job_id = upstream_job(simulator.url, sim_run_seconds="30")
    code, out, _ = run(capsys, config, "track", job_id)
    assert code == 0 and out.startswith(f"{job_id}: tracked")


def test_bad_metadata_option_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, config, "submit", jsonl(tmp_path, GOOD), *ENDPOINT, "--metadata", "novalue"
    )
    assert code == 1 and "expected KEY=VALUE" in err


def test_submit_as_a_real_subprocess(
    simulator: RunningSimulator, config: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchwatch",
            "--config",
            config,
            "submit",
            jsonl(tmp_path, GOOD),
            *ENDPOINT,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["object"] == "batch" and job["total_requests"] == 2
