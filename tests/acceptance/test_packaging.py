"""The built wheel carries the migrations: an installed batchwatch migrates without a checkout."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from batchwatch import __version__

REPO = Path(__file__).resolve().parents[2]


def build_wheel(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = wheels.glob("batchwatch-*.whl")
    return wheel


@pytest.mark.acceptance
def test_wheel_installs_and_migrates_a_fresh_database(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path)
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    assert (target / "batchwatch" / "migrations" / "env.py").is_file()
    db = tmp_path / "fresh.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{db}"\n')
    # Run from an empty directory with only the installed copy first on the path (the
    # dependencies come from this environment), so the checkout cannot be what is used.
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import batchwatch, sys; print(batchwatch.__file__);"
            "from batchwatch.cli.main import main; sys.exit(main(sys.argv[1:]))",
            "--config",
            str(config),
            "migrate",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(str(target))
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"jobs", "transitions", "progress", "alembic_version"} <= tables


@pytest.mark.acceptance
def test_wheel_in_a_fresh_venv_migrates_and_serves(tmp_path: Path) -> None:
    """What an operator does: build the wheel, install it alone into a new virtualenv, start
    `batchwatch serve` on a fresh database, see it answer, stop it with SIGTERM."""
    import signal

    import requests

    from tests.processes import free_port, wait_until

    wheel = build_wheel(tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)],
        check=True,
        timeout=600,
        capture_output=True,
    )
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(
        f'[mistral]\nserver_url = "http://127.0.0.1:9"\n'
        f'[database]\nurl = "sqlite:///{tmp_path / "fresh.db"}"\n'
        f'[api]\nport = {port}\ntoken_file = "{tmp_path / "token"}"\n'
    )
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [str(venv / "bin" / "batchwatch"), "--config", str(config), "serve"],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: (
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code
                in (200, 503)
            ),
            60,
            "the installed daemon",
        )
        token = (tmp_path / "token").read_text().strip()
        listed = requests.get(
            f"http://127.0.0.1:{port}/v1/batch/jobs",
            timeout=5,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert listed.status_code == 200 and listed.json()["total"] == 0
        # The dashboard's templates and static files came with the wheel.
        login = requests.get(f"http://127.0.0.1:{port}/ui/login", timeout=5)
        assert login.status_code == 200 and 'name="token"' in login.text
        htmx = requests.get(f"http://127.0.0.1:{port}/ui/static/htmx.min.js", timeout=5)
        assert htmx.status_code == 200 and len(htmx.content) > 10_000
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=15) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(timeout=10)
    module = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "batchwatch", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # The version is written once, in batchwatch/__init__.py, and the wheel is named by it.
    assert module.stdout == f"batchwatch {__version__}\n"
    assert wheel.name.startswith(f"batchwatch-{__version__}-")
    assert_postgres_is_an_extra(venv, tmp_path)


def assert_postgres_is_an_extra(venv: Path, tmp_path: Path) -> None:
    """The base install brings no PostgreSQL driver; a postgresql URL then says, in one
    line, which extra brings it, instead of a traceback about a missing module."""
    python = str(venv / "bin" / "python")
    driver = subprocess.run(
        [python, "-c", "import psycopg"], capture_output=True, timeout=60, check=False
    )
    assert driver.returncode == 1 and b"No module named 'psycopg'" in driver.stderr
    config = tmp_path / "pg.toml"
    config.write_text('[database]\nurl = "postgresql+psycopg://postgres@127.0.0.1:9/x"\n')
    migrate = subprocess.run(
        [str(venv / "bin" / "batchwatch"), "--config", str(config), "migrate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (migrate.returncode, migrate.stdout) == (1, "")
    assert migrate.stderr.count("\n") == 1, migrate.stderr
    assert migrate.stderr.startswith("batchwatch: error: database.url: no psycopg module")
    assert "pip install 'batchwatch[postgres]'" in migrate.stderr
