"""results / retry / delete / usage from the command line, in-process against a real daemon
that downloads the simulator's result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchwatch.daemon import Daemon
from tests.helpers import wait_for
from tests.integration.test_cli import run as run_main

ENDPOINT = ("--model", "mistral-small-latest", "--endpoint", "/v1/chat/completions")


def run(capsys: pytest.CaptureFixture[str], config: str, *argv: str) -> tuple[int, str, str]:
    return run_main(capsys, "--config", config, *argv)


def _job(capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path, n: int = 12) -> str:
    """A job of ``n`` requests, a third of which the simulator fails; its results ready."""
    path = tmp_path / "requests.jsonl"
    path.write_text(
        "".join(json.dumps({"custom_id": f"r{k}", "body": {}}) + "\n" for k in range(n))
    )
    code, out, err = run(
        capsys,
        config,
        "submit",
        str(path),
        *ENDPOINT,
        "--metadata",
        "sim_failure_rate=0.34",
        "--json",
    )
    assert code == 0, err
    job_id = str(json.loads(out)["id"])

    def ready() -> bool:
        code, out, _ = run(capsys, config, "results", job_id, "--json")
        return code == 0 and json.loads(out)["results"]["state"] == "ready"

    wait_for(ready, 20)
    return job_id


def test_results_show_the_counts_and_the_failed_requests(
    daemon: Daemon, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = _job(capsys, config, tmp_path)
    code, out, _ = run(capsys, config, "results", job_id, "--json")
    body = json.loads(out)
    counts = body["results"]["counts"]
    assert counts["total"] == 12
    assert counts["failed"] > 0
    code, text, _ = run(capsys, config, "results", job_id)
    assert code == 0
    assert f"12 total, {counts['succeeded']} succeeded, {counts['failed']} failed" in text
    failed = [r["custom_id"] for r in body["requests"] if r["outcome"] == "failed"]
    assert all(custom_id in text for custom_id in failed)
    code, shown, _ = run(capsys, config, "show", job_id)
    assert f"ready: {counts['succeeded']} succeeded, {counts['failed']} failed" in shown


def test_retry_then_merged_gives_one_final_result_per_request(
    daemon: Daemon, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = _job(capsys, config, tmp_path)
    code, child, err = run(capsys, config, "retry", job_id)
    assert code == 0, err
    child_id = child.strip()
    wait_for(
        lambda: (
            json.loads(run(capsys, config, "results", child_id, "--json")[1])["results"]["state"]
            == "ready"
        ),
        20,
    )
    code, out, _ = run(capsys, config, "results", job_id, "--merged", "--json")
    rows = json.loads(out)["requests"]
    assert sorted(r["custom_id"] for r in rows) == sorted(f"r{k}" for k in range(12))
    retried = {r["custom_id"] for r in rows if r["job_id"] == child_id}
    assert retried, "no request's final result came from the retry"
    output = tmp_path / "final.jsonl"
    code, _, _ = run(capsys, config, "results", job_id, "--merged", "--output", str(output))
    assert code == 0
    written = [json.loads(line)["custom_id"] for line in output.read_text().splitlines()]
    assert sorted(written) == sorted(r["custom_id"] for r in rows if r["outcome"] != "not_run")


def test_usage_and_a_bad_since_are_one_line(
    daemon: Daemon, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _job(capsys, config, tmp_path)
    code, out, _ = run(capsys, config, "usage", "--json")
    assert code == 0
    assert [row["key"] for row in json.loads(out)] == ["mistral-small-latest"]
    code, _, err = run(capsys, config, "usage", "--since", "last tuesday")
    assert code == 1
    assert err.strip() == (
        "batchwatch: error: --since: 'last tuesday' is neither like 7d, 24h, 30m nor a time"
    )


def test_delete_refuses_a_running_job_in_one_line(
    daemon: Daemon, config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "slow.jsonl"
    path.write_text(json.dumps({"custom_id": "a", "body": {}}) + "\n")
    code, out, _ = run(
        capsys, config, "submit", str(path), *ENDPOINT, "--metadata", "sim_run_seconds=60", "--json"
    )
    job_id = json.loads(out)["id"]
    code, _, err = run(capsys, config, "delete", job_id)
    assert code == 1
    assert "has not ended" in err and err.count("\n") == 1
