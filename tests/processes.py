"""Real ``batchwatch`` processes for the acceptance tiers: the simulator and the daemon."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

API_KEY = "acceptance-secret-key-0123456789"
TERMINAL = frozenset({"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], object], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def spawn(*args: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "batchwatch", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


class Simulator:
    """``batchwatch simulate`` as a process."""

    def __init__(self, tmp_path: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = spawn(
            "simulate",
            "--port",
            str(self.port),
            "--api-key",
            API_KEY,
            *options,
            log=tmp_path / "simulator.log",
        )
        wait_until(
            lambda: requests.get(f"{self.url}/_sim/stats", timeout=1).ok, 30, "the simulator"
        )

    def truth(self, job_id: str) -> list[tuple[str, float]]:
        body = requests.get(f"{self.url}/_sim/jobs/{job_id}/history", timeout=5).json()
        return [(e["status"], float(e["at"])) for e in body["statuses"]]

    def faults(self, rules: Sequence[dict[str, Any]], seed: int = 7) -> None:
        requests.post(
            f"{self.url}/_sim/faults", json={"rules": list(rules), "seed": seed}, timeout=5
        ).raise_for_status()

    def request_log(self) -> list[dict[str, Any]]:
        body = requests.get(f"{self.url}/_sim/requests", timeout=10).json()
        return list(body["requests"])


class DaemonProcess:
    """``batchwatch serve`` as a process, on its own config, database and port; it can be
    killed and started again on the same database."""

    def __init__(
        self,
        tmp_path: Path,
        upstream: str,
        *,
        poll: float = 0.1,
        database: str | None = None,
        mistral_extra: str = "",
        extra: str = "",
    ) -> None:
        """``extra``: more of the config file, after its sections (``[[webhooks]]`` ...)."""
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "daemon.log"
        self.config = tmp_path / "batchwatch.toml"
        url = database or f"sqlite:///{tmp_path / 'bw.db'}"
        self.config.write_text(
            f'[mistral]\nserver_url = "{upstream}"\n{mistral_extra}'
            f"[tracking]\npoll_interval_seconds = {poll}\n"
            f'[database]\nurl = "{url}"\n'
            f'[api]\nport = {self.port}\ntoken_file = "{tmp_path / "token"}"\n'
            '[log]\nlevel = "info"\nformat = "json"\n'
            f'[results]\ndir = "{tmp_path / "results"}"\n{extra}'
        )
        self.proc = self.start()
        self.headers = {"Authorization": f"Bearer {(tmp_path / 'token').read_text().strip()}"}

    def start(self) -> subprocess.Popen[bytes]:
        self.proc = spawn(
            "--config", str(self.config), "serve", log=self.log, env={"MISTRAL_API_KEY": API_KEY}
        )
        wait_until(
            lambda: requests.get(f"{self.url}/healthz", timeout=1).status_code in (200, 503),
            30,
            "the daemon",
        )
        return self.proc

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)

    def get(self, path: str) -> Any:
        response = requests.get(self.url + path, headers=self.headers, timeout=5)
        response.raise_for_status()
        return response.json()

    def health(self) -> tuple[int, dict[str, Any]]:
        response = requests.get(f"{self.url}/healthz", timeout=5)
        return response.status_code, response.json()

    def recorded(self, job_id: str) -> list[dict[str, Any]]:
        response = requests.get(
            f"{self.url}/v1/batch/jobs/{job_id}/transitions", headers=self.headers, timeout=5
        )
        if response.status_code == 404:
            return []  # not discovered yet
        response.raise_for_status()
        return list(response.json()["data"])

    def all_ended(self, count: int) -> bool:
        listed = self.get("/v1/batch/jobs?page_size=1000")["data"]
        return len(listed) == count and all(job["status"] in TERMINAL for job in listed)


def is_subsequence(short: Sequence[str], long: Sequence[str]) -> bool:
    it = iter(long)
    return all(item in it for item in short)


def cycle_gaps(
    log: Path, longer_than: float, since: float | None = None
) -> list[tuple[float, float]]:
    """The stretches (epoch seconds) between two cycles of a daemon that read everything,
    from its JSON log, longer than ``longer_than``: while upstream faults made its cycles
    fail, a status could come and go without any cycle able to see it. With ``since``, the
    stretch from then to the first such cycle counts too (a daemon whose first cycles failed
    was blind from its start)."""
    good: list[float] = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        event = entry.get("event") if isinstance(entry, dict) else None
        if event == "poll_finished":
            good.append(datetime.fromisoformat(entry["timestamp"]).timestamp())
        elif event == "poll_failed" and good:
            good.pop()  # that cycle logged what it read, then failed on the rest
    if since is not None:
        good.insert(0, since)
    return [(a, b) for a, b in itertools.pairwise(good) if b - a > longer_than]


def unobserved(
    truth: Sequence[tuple[str, float]],
    recorded: Sequence[str],
    blind: Sequence[tuple[float, float]],
    slack: float = 0.5,
) -> list[str]:
    """Statuses of ``truth`` missing from ``recorded`` that did NOT come and go entirely
    inside a ``blind`` window (when batchwatch could not look): these are real misses."""
    misses = []
    recorded_left = list(recorded)
    for n, (status, began) in enumerate(truth):
        if recorded_left and recorded_left[0] == status:
            recorded_left.pop(0)
            continue
        ended = truth[n + 1][1] if n + 1 < len(truth) else float("inf")
        if not any(start - slack <= began and ended <= end + slack for start, end in blind):
            misses.append(status)
    return misses
