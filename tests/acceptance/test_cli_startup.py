"""`batchwatch jobs` starts fast: run as a real process against a real daemon, it loads
neither pydantic (``config`` reads its settings with the standard library), nor rich when
its output is not a terminal, nor requests, structlog or the server stack; and its plain
table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchwatch.cli.display import JOB_COLUMNS, plain_jobs_table, stdout_is_terminal
from batchwatch.cli.main import main
from batchwatch.daemon import Daemon
from batchwatch.models import Counters, JobStatus, RemoteJob

HEAVY = (
    "pydantic",
    "pydantic_core",
    "rich",
    "requests",
    "urllib3",
    "structlog",
    "fastapi",
    "starlette",
    "uvicorn",
    "anyio",
    "sqlalchemy",
    "alembic",
    "apscheduler",
    "batchwatch.logs",
)

# The CLI's main in a fresh interpreter, then the heavy modules it loaded, on stderr's last line.
PROBE = (
    "import sys\n"
    "from batchwatch.cli.main import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "finally:\n"
    f"    heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
    "    print('loaded:' + ','.join(heavy), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def probe(*argv: str, **env: str) -> tuple[int, str, str, list[str]]:
    """Exit code, stdout, stderr without the probe's line, and the heavy modules loaded."""
    clean = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**clean, **env},
    )
    err, _, last = done.stderr.rstrip("\n").rpartition("\n")
    if not last.startswith("loaded:"):
        err, last = done.stderr, "loaded:?"
    loaded = [m for m in last.removeprefix("loaded:").split(",") if m]
    return done.returncode, done.stdout, err, loaded


def test_the_query_modules_import_nothing_heavy() -> None:
    """What `jobs`, `show` and the action commands load, module by module (the wider check of
    test_architecture, with pydantic and rich added)."""
    code = (
        "import sys, batchwatch.cli.main as c\n"
        "c.build_parser()\n"
        "from batchwatch import config, tokens\n"
        "from batchwatch.cli import actions, daemon_client, display\n"
        "from batchwatch.providers.mistral import wire\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_query_commands_load_nothing_heavy(config: str, daemon: Daemon) -> None:
    code, out, err, loaded = probe("--config", config, "jobs")
    assert (code, err, loaded) == (0, "", [])
    assert out.split("\n", 1)[0] == "  ".join(JOB_COLUMNS)  # no job yet: nothing wider
    code, out, err, loaded = probe("--config", config, "jobs", "--json", "--status", "RUNNING")
    assert (code, json.loads(out), loaded) == (0, [], [])
    job_id = "8a1c7c3e-0000-4000-8000-000000000000"
    code, _, err, loaded = probe("--config", config, "show", job_id, "--json")
    assert code == 1 and "is not a tracked job" in err and loaded == []


def test_errors_load_nothing_heavy(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[api]\nport = 9\ntoken_file = "{token}"\n')
    code, _, err, loaded = probe("--config", str(path), "jobs")
    assert code == 1 and err.startswith("batchwatch: error: cannot reach") and loaded == []
    code, _, err, loaded = probe("jobs", BATCHWATCH_CONFIG=str(path), BATCHWATCH_API_PORT="x")
    assert code == 1 and "api.port" in err and err.count("\n") == 0
    assert loaded == ["pydantic", "pydantic_core"]  # to word the error


def test_a_terminal_still_gets_the_rich_table(config: str, daemon: Daemon) -> None:
    code, out, _, loaded = probe("--config", config, "jobs", FORCE_COLOR="1", COLUMNS="160")
    assert code == 0 and "┏" in out and "\x1b[" in out  # rich's borders and colours
    assert "rich" in loaded and "pydantic" not in loaded


@pytest.mark.parametrize(
    ("env", "tty"),
    [
        ({}, False),
        ({"FORCE_COLOR": "1"}, True),
        ({"FORCE_COLOR": ""}, False),
        ({"TTY_COMPATIBLE": "1"}, True),
        ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, False),
    ],
)
def test_terminal_detection_follows_rich(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], tty: bool
) -> None:
    from rich.console import Console

    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert stdout_is_terminal() is tty
    assert Console().is_terminal is tty


def job(n: int, status: str, failed: int = 0, started: int | None = None) -> RemoteJob:
    return RemoteJob(
        id=f"job-{n}",
        status=JobStatus.parse(status),
        raw_status=status,
        endpoint="/v1/embeddings",
        input_files=(),
        model=None if n else "mistral-small-latest",
        agent_id=None,
        metadata=None,
        output_file=None,
        error_file=None,
        errors=(),
        created_at=1_000,
        started_at=started,
        completed_at=None if started is None else started + 75,
        counters=Counters(total=10, completed=4, succeeded=4 - failed, failed=failed),
    )


def test_plain_table_aligns_columns_and_cuts_nothing() -> None:
    text = plain_jobs_table(
        [job(0, "SUCCESS", started=1_010), job(12, "CANCELLATION_REQUESTED", 2)]
    )
    header, first, second = text.split("\n")
    assert header.startswith("ID      STATUS                  MODEL                 ENDPOINT")
    for name in JOB_COLUMNS:
        assert name in header
    for cell, name in (("SUCCESS", "STATUS"), ("mistral-small-latest", "MODEL")):
        assert first.index(cell) == header.index(name)
    assert first.index("/v1/embeddings") == header.index("ENDPOINT") == second.index("/v1/e")
    assert first.endswith("1m15s") and second.index("-", 8) == header.index("MODEL")
    assert "CANCELLATION_REQUESTED  -" in second and "4/10 (2 failed)" in second
    assert not any(line.endswith(" ") for line in text.split("\n"))
    assert plain_jobs_table([]) == "  ".join(JOB_COLUMNS) + "\nno tracked jobs match"


def test_jobs_into_a_pipe_is_the_plain_table(
    capsys: pytest.CaptureFixture[str], config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    assert main(["--config", config, "jobs", "--status", "FAILED"]) == 0
    assert capsys.readouterr().out == "  ".join(JOB_COLUMNS) + "\nno tracked jobs match\n"
