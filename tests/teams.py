"""Teams of real daemons on one PostgreSQL database, for the team-mode tests and figure 13:
how to start a member, ask its role, find the leader, read its log and the database."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.processes import DaemonProcess, Simulator, wait_until

LIST_ROUTE = "GET /v1/batch/jobs"


def team_toml(name: str, lease: float) -> str:
    return f'[team]\ninstance_name = "{name}"\nlease_seconds = {lease}\n'


def member(
    tmp_path: Path,
    name: str,
    sim: Simulator,
    url: str,
    *,
    lease: float,
    poll: float,
    extra: str = "",
) -> DaemonProcess:
    """A daemon named ``name`` in its own directory under ``tmp_path``, on database ``url``."""
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    toml = team_toml(name, lease) + extra
    return DaemonProcess(directory, sim.url, poll=poll, database=url, extra=toml)


def role(daemon: DaemonProcess) -> str | None:
    try:
        return str(daemon.health()[1]["role"])
    except Exception:  # frozen or dead: no answer
        return None


def has_role(daemons: list[DaemonProcess], wanted: str) -> bool:
    return any(role(d) == wanted for d in daemons)


def leader_of(daemons: list[DaemonProcess]) -> DaemonProcess:
    found: list[DaemonProcess] = []

    def one_leads() -> bool:
        found[:] = [d for d in daemons if role(d) == "leader"]
        return len(found) == 1

    wait_until(one_leads, 20, "one leader")
    return found[0]


def query(url: str, sql: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(text(sql)).mappings()]
    finally:
        engine.dispose()


def log_events(daemon: DaemonProcess, event: str) -> list[float]:
    """When the daemon logged ``event`` (epoch seconds)."""
    found = []
    for line in daemon.log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append(datetime.fromisoformat(entry["timestamp"]).timestamp())
    return found


def per_cycle(sim: Simulator, daemons: list[DaemonProcess], start: float, end: float) -> float:
    """List requests per poll cycle in ``[start, end)``, every daemon's cycles counted (the
    other requests, for jobs that ended and their files, follow what happened upstream)."""
    requests_made = [
        r for r in sim.request_log() if start <= r["at"] < end and r["route"] == LIST_ROUTE
    ]
    cycles = sum(1 for d in daemons for at in log_events(d, "poll_finished") if start <= at < end)
    assert cycles > 0
    return len(requests_made) / cycles


def first_request_after(sim: Simulator, began: float, seconds: float = 30) -> float:
    """When the simulator received its first request after ``began`` (epoch seconds), once
    there is one: in a team, the new leader's first poll."""
    found: list[float] = []

    def arrived() -> bool:
        found[:] = [r["at"] for r in sim.request_log() if r["at"] > began]
        return bool(found)

    wait_until(arrived, seconds, "a request upstream")
    return min(found)
