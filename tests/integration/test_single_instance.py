"""One daemon per SQLite file: a second one refuses to start, naming the holder, and may
start once the first has stopped (or died: the kernel drops the hold with the process)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import requests

from batchwatch.config import ApiSettings
from batchwatch.daemon import Daemon
from batchwatch.errors import StartupError
from batchwatch.simulator.server import RunningSimulator
from tests.helpers import daemon_settings
from tests.integration.test_ui import login


def test_a_second_daemon_on_the_same_sqlite_file_refuses_to_start(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    settings = daemon_settings(tmp_path, simulator.url)
    first = Daemon(settings, threading.Event())
    first.start()
    try:
        second = Daemon(
            replace(settings, api=ApiSettings(port=0, token_file=tmp_path / "token")),
            threading.Event(),
        )
        with pytest.raises(StartupError) as refused:
            second.start()
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and "bw.db" in message
        assert "\n" not in message
    finally:
        first.close()
    again = Daemon(settings, threading.Event())
    again.start()  # the first one stopped: its hold went with it
    again.close()


def test_batchwatch_serve_refuses_in_one_line_while_another_holds_the_file(
    tmp_path: Path, simulator: RunningSimulator
) -> None:
    settings = daemon_settings(tmp_path, simulator.url)
    first = Daemon(settings, threading.Event())
    first.start()
    try:
        config = tmp_path / "second.toml"
        config.write_text(
            f'[mistral]\nserver_url = "{simulator.url}"\n'
            f'[database]\nurl = "{settings.database_url}"\n'
            f'[api]\nport = 0\ntoken_file = "{tmp_path / "token"}"\n'
        )
        done = subprocess.run(
            [sys.executable, "-m", "batchwatch", "--config", str(config), "serve"],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "MISTRAL_API_KEY": "k"},
        )  # fmt: skip
    finally:
        first.close()
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "another batchwatch daemon" in lines[0] and f"pid {os.getpid()}" in lines[0]


def test_a_daemon_on_sqlite_says_it_is_single(daemon: Daemon, token: str) -> None:
    body = requests.get(daemon.api_url + "/healthz", timeout=10).json()
    assert (body["role"], body["leader"]) == ("single", None)
    metrics = requests.get(daemon.api_url + "/metrics", timeout=10).text
    assert "\nbatchwatch_leader 1.0\n" in metrics
    overview = login(daemon, token).get(daemon.api_url + "/ui/", timeout=10).text
    assert '<dd data-role="single">single</dd>' in overview
    assert 'id="team-h"' not in overview
