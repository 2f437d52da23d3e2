"""The CLI in-process (``main(argv)``) against a real daemon, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from batchwatch import __version__
from batchwatch.cli.main import main
from batchwatch.daemon import Daemon
from batchwatch.simulator.server import RunningSimulator
from tests.helpers import SIM_API_KEY, get, upstream_job, wait_for

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def finished_job(
    simulator: RunningSimulator, daemon: Daemon, token: str, run_seconds: str = "0.3"
) -> str:
    job_id = upstream_job(simulator.url, sim_queue_seconds="0", sim_run_seconds=run_seconds)
    wait_for(
        lambda: get(daemon, token, f"/v1/batch/jobs/{job_id}").json().get("status") == "SUCCESS"
    )
    return job_id


def test_jobs_lists_in_a_table_and_as_json(
    capsys: pytest.CaptureFixture[str],
    simulator: RunningSimulator,
    daemon: Daemon,
    token: str,
    config: str,
) -> None:
    job_id = finished_job(simulator, daemon, token)
    code, out, _ = run(capsys, "--config", config, "jobs")
    assert code == 0
    assert job_id in out and "SUCCESS" in out
    code, out, _ = run(capsys, "--config", config, "jobs", "--json", "--status", "SUCCESS")
    listed = json.loads(out)
    assert [job["id"] for job in listed] == [job_id]
    assert listed[0]["completed_requests"] == 3
    code, out, _ = run(capsys, "--config", config, "jobs", "--json", "--status", "RUNNING")
    assert json.loads(out) == []


def test_show_prints_fields_transitions_and_progress(
    capsys: pytest.CaptureFixture[str],
    simulator: RunningSimulator,
    daemon: Daemon,
    token: str,
    config: str,
) -> None:
    # Long enough in RUNNING for a poll every 0.2 s to see it there, even on a loaded machine.
    job_id = finished_job(simulator, daemon, token, run_seconds="1.5")
    code, out, _ = run(capsys, "--config", config, "show", job_id)
    assert code == 0
    for expected in ("Transitions", "Progress", "RUNNING", "SUCCESS", "3/3"):
        assert expected in out
    code, out, _ = run(capsys, "--config", config, "show", job_id, "--json")
    body = json.loads(out)
    assert body["job"]["id"] == job_id
    assert [t["to_status"] for t in body["transitions"]][-1] == "SUCCESS"
    assert body["progress"][-1]["completed_requests"] == 3


@pytest.mark.parametrize(
    ("job_id", "message"),
    [
        ("8a1c7c3e-0000-4000-8000-000000000000", "is not a tracked job"),
        ("not-a-job", "is not a valid job id"),
    ],
)
def test_show_unknown_or_malformed_id_is_one_line(
    capsys: pytest.CaptureFixture[str], config: str, job_id: str, message: str
) -> None:
    code, out, err = run(capsys, "--config", config, "show", job_id)
    assert code == 1 and out == ""
    assert message in err and job_id in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_wrong_token_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, daemon: Daemon
) -> None:
    bad = tmp_path / "bad-token"
    bad.write_text("not-the-token\n")
    bad.chmod(0o600)
    path = tmp_path / "bad.toml"
    port = daemon.api_url.rsplit(":", 1)[1]
    path.write_text(f'[api]\nport = {port}\ntoken_file = "{bad}"\n')
    code, _, err = run(capsys, "--config", str(path), "jobs")
    assert code == 1
    assert "refused the token" in err and err.count("\n") == 1


def test_daemon_not_running_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("whatever\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[api]\nport = 9\ntoken_file = "{token}"\n')
    code, _, err = run(capsys, "--config", str(path), "jobs")
    assert code == 1
    assert "cannot reach the batchwatch daemon" in err and "batchwatch serve" in err
    assert err.count("\n") == 1


def test_missing_token_file_says_how_to_get_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[api]\ntoken_file = "{tmp_path / "none"}"\n')
    code, _, err = run(capsys, "--config", str(path), "jobs")
    assert code == 1 and "no API token" in err


def test_migrate_creates_the_database(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    db = tmp_path / "new" / "bw.db"
    path = tmp_path / "c.toml"
    path.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    code, out, _ = run(capsys, "--config", str(path), "migrate")
    assert code == 0 and "latest schema" in out
    assert db.exists()


def test_config_check_reports_each_problem(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[tracking]\ndiscover = "x"\n[api]\nport = -1\n')
    code, _, err = run(capsys, "config", "check", str(path))
    assert code == 1
    assert "tracking.discover" in err and "api.port" in err
    repo = Path(__file__).resolve().parents[2]
    code, out, _ = run(capsys, "config", "check", str(repo / "config.example.toml"))
    assert code == 0 and out.endswith("ok\n")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["jobs", "--status", "SLEEPING"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_real_subprocess_version_and_unreachable_daemon(tmp_path: Path) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "batchwatch", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0 and version.stdout.strip() == f"batchwatch {__version__}"
    token = tmp_path / "token"
    token.write_text("t\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[api]\nport = 9\ntoken_file = "{token}"\n')
    jobs = subprocess.run(
        [sys.executable, "-m", "batchwatch", "--config", str(config), "jobs"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert jobs.returncode == 1
    assert jobs.stderr.startswith("batchwatch: error: cannot reach the batchwatch daemon")
    assert "Traceback" not in jobs.stderr


def poll_config(tmp_path: Path, server_url: str) -> str:
    """A config for `poll --once`: the upstream, a fresh SQLite file, warnings only."""
    path = tmp_path / "poll.toml"
    path.write_text(
        f'[mistral]\nserver_url = "{server_url}"\nmax_retries = 0\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "poll.db"}"\n'
        '[log]\nlevel = "warning"\n'
    )
    return str(path)


def test_poll_once_records_the_upstream_jobs_in_the_database(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MISTRAL_API_KEY", SIM_API_KEY)
    ids = {upstream_job(simulator.url, sim_queue_seconds="60") for _ in range(2)}
    config = poll_config(tmp_path, simulator.url)
    code, out, err = run(capsys, "--config", config, "poll", "--once", "--json")
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert (report["listed"], report["transitions"]) == (2, 2)
    with sqlite3.connect(tmp_path / "poll.db") as db:  # migrated, then written
        stored = {row[0]: row[1] for row in db.execute("SELECT id, status FROM jobs")}
    assert stored == dict.fromkeys(ids, "QUEUED")
    # Nothing moved upstream: a second cycle records nothing, and says so in words.
    code, out, _ = run(capsys, "--config", config, "poll", "--once")
    assert code == 0
    assert re.fullmatch(r"poll cycle: 2 listed, .* 0 transitions, .* in \d+\.\d\ds\n", out)


@pytest.mark.parametrize(
    "case",
    [
        ("no key", "no API key: set MISTRAL_API_KEY, OPENAI_API_KEY or ANTHROPIC_API_KEY"),
        ("wrong key", "cannot poll Mistral at http://127.0.0.1:"),
        ("unreachable", "cannot poll Mistral at http://127.0.0.1:9: "),
    ],
)
def test_poll_once_failing_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    simulator: RunningSimulator,
    tmp_path: Path,
    case: tuple[str, str],
) -> None:
    problem, message = case
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    if problem == "no key":
        for name in ("MISTRAL_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
            monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv("MISTRAL_API_KEY", "wrong-key" if problem == "wrong key" else "k")
    url = "http://127.0.0.1:9" if problem == "unreachable" else simulator.url
    code, out, err = run(capsys, "--config", poll_config(tmp_path, url), "poll", "--once")
    assert (code, out) == (1, "")
    assert err.startswith(f"batchwatch: error: {message}") and err.count("\n") == 1
    assert "wrong-key" not in err


def test_poll_needs_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["poll"])
    assert info.value.code == 2
    assert "--once" in capsys.readouterr().err


def test_demo_into_a_pipe_keeps_tables_and_titles_whole() -> None:
    """`batchwatch demo | cat`: rich's live table, off a terminal, ends without a line end,
    and a table's title is wrapped to the table's width; neither may show in a pipe."""
    clean = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run(
        [sys.executable, "-m", "batchwatch", "demo", "--jobs", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**clean, "COLUMNS": "60"},
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    tops = [line for line in lines if "┏" in line]
    # The jobs, each job's transitions (two Mistral jobs, one OpenAI batch and one
    # Anthropic batch, all tracked by the one daemon), then their results.
    assert len(tops) == 6
    assert all(line.startswith("┏") for line in tops)
    assert all(line.rstrip().endswith("┘") for line in lines if "┘" in line)
    titles = {
        "translate-catalogue": UUID,
        "summarise-tickets": UUID,
        "openai-translations": "batch_[0-9a-f]+",
        "anthropic-questions": "msgbatch_[A-Za-z0-9]+",
    }
    for name, job_id in titles.items():
        title = rf"{name} \({job_id}\): \d+ progress samples"
        assert any(re.fullmatch(title, line) for line in lines), f"{name}'s title is split"
    ended = [line for line in lines if "(completed)" in line or "(ended)" in line]
    assert any("SUCCESS (completed)" in line for line in ended), done.stdout[-2000:]
    assert any("SUCCESS (ended)" in line for line in ended), done.stdout[-2000:]
    merged = r"merged with its retry: 40 requests, \d+ succeeded, \d+ still failed .*"
    assert any(re.fullmatch(merged, line) for line in lines), done.stdout[-2000:]
    events = r"events recorded: \d+ job\.finished, \d+ job\.results_ready, \d+ job\.transitioned .*"
    assert any(re.fullmatch(events, line) for line in lines), done.stdout[-2000:]


def test_output_into_a_closed_pipe_is_no_traceback(config: str) -> None:
    """`batchwatch jobs | head -1`: the reader goes away; the command stops quietly with
    128 + SIGPIPE, as a shell reports it, instead of printing a traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read
    try:
        done = subprocess.run(
            [sys.executable, "-m", "batchwatch", "--config", config, "jobs"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
