"""``events`` and ``webhooks`` from the command line: in-process against a real daemon, and
``events --follow`` as a real process across a restart of a real daemon process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from batchwatch.daemon import Daemon
from batchwatch.simulator.server import RunningSimulator
from tests.helpers import get, upstream_job, wait_for
from tests.integration.test_cli import run as run_main
from tests.processes import DaemonProcess, Simulator, free_port, wait_until
from tests.receiver import Receiver, make_secret

FAST = {"sim_queue_seconds": "0.3", "sim_run_seconds": "0.5"}


def run(capsys: pytest.CaptureFixture[str], config: str, *argv: str) -> tuple[int, str, str]:
    return run_main(capsys, "--config", config, *argv)


def whole_feed(url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        body = requests.get(
            f"{url}/v1/events", params={"after": after, "limit": 1000}, headers=headers, timeout=5
        ).json()
        found += body["data"]
        if not body["data"]:
            return found
        after = body["next_after"]


@pytest.fixture
def finished_job(daemon: Daemon, token: str, simulator: RunningSimulator) -> str:
    job_id = upstream_job(simulator.url, **FAST)

    def done() -> bool:
        body = get(daemon, token, "/v1/events", type="job.finished").json()
        return any(e["job_id"] == job_id for e in body["data"])

    wait_for(done, 20)
    return job_id


def test_events_prints_the_recorded_events_and_exits(
    daemon: Daemon,
    token: str,
    config: str,
    finished_job: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed = whole_feed(daemon.api_url, {"Authorization": f"Bearer {token}"})
    code, out, err = run(capsys, config, "events", "--json")
    assert (code, err) == (0, "")
    printed = [json.loads(line) for line in out.splitlines()]
    assert printed == feed[: len(printed)] and len(printed) >= len(feed)
    code, text, _ = run(capsys, config, "events")
    lines = text.splitlines()
    assert len(lines) == len(printed)
    finish = next(line for line in lines if "job.finished" in line)
    assert finished_job in finish
    assert finish.endswith("SUCCESS, 3 of 3 succeeded")
    assert any(line.endswith("-> SUCCESS") for line in lines if "job.transitioned" in line)


def test_events_filters_by_type_and_starts_after_a_seq(
    daemon: Daemon, config: str, finished_job: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, config, "events", "--json", "--type", "job.finished")
    [finish] = [json.loads(line) for line in out.splitlines()]
    assert (code, finish["type"], finish["job_id"]) == (0, "job.finished", finished_job)
    code, out, _ = run(capsys, config, "events", "--json", "--after", str(finish["seq"] - 1))
    after = [json.loads(line) for line in out.splitlines()]
    assert after[0] == finish
    assert all(e["seq"] >= finish["seq"] for e in after)


@pytest.mark.parametrize(
    "argv",
    [("--type", "job.exploded"), ("--after", "-1"), ("--after", "first")],
)
def test_events_with_a_bad_option_is_a_usage_error(
    config: str, capsys: pytest.CaptureFixture[str], argv: tuple[str, str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        run(capsys, config, "events", *argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {argv[0]}" in err and "Traceback" not in err


def test_events_without_a_daemon_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cli.toml"
    config.write_text(f'[api]\nport = {free_port()}\ntoken_file = "{tmp_path / "token"}"\n')
    (tmp_path / "token").write_text("a-token\n")
    code, out, err = run(capsys, str(config), "events")
    assert (code, out) == (1, "")
    assert err.startswith("batchwatch: error: cannot reach the batchwatch daemon")
    assert err.count("\n") == 1


def test_webhooks_without_endpoints_says_how_to_add_one(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, config, "webhooks")
    assert (code, out) == (0, "no webhooks or hooks: add [[webhooks]] or [[hooks]] to the config\n")
    code, out, _ = run(capsys, config, "webhooks", "--json")
    assert (code, json.loads(out)) == (0, [])


def test_redelivering_an_unknown_event_is_one_line_error(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, config, "webhooks", "redeliver", "evt_nothing")
    assert (code, out) == (1, "")
    assert err == (
        "batchwatch: error: no delivery of event evt_nothing: no such event, or no endpoint"
        " took it\n"
    )


# ---- against real daemon processes -------------------------------------------------------


@pytest.fixture
def simulator_process(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator(tmp_path)
    try:
        yield sim
    finally:
        sim.proc.kill()
        sim.proc.wait(timeout=10)


def seed(sim: Simulator, count: int) -> None:
    requests.post(
        f"{sim.url}/_sim/jobs/bulk",
        json={"count": count, "total_requests": 5, "metadata": FAST},
        timeout=10,
    ).raise_for_status()


def test_webhooks_table_and_redeliver(
    tmp_path: Path, simulator_process: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver = Receiver(make_secret(tmp_path / "whsec"))
    extra = f'[[webhooks]]\nurl = "{receiver.url}"\nsecret_file = "{tmp_path / "whsec"}"\n'
    d = DaemonProcess(tmp_path, simulator_process.url, extra=extra)
    try:
        seed(simulator_process, 1)
        wait_for(lambda: any(r.body["type"] == "job.finished" for r in receiver.delivered()), 30)
        config = str(d.config)
        code, out, _ = run(capsys, config, "webhooks")
        header, row = out.splitlines()[:2]
        assert header.split() == ["KIND", "PENDING", "DELIVERED", "DEAD", "DISABLED", "ENDPOINT"]
        kind, _pending, delivered, dead, disabled, name = row.split()
        assert (kind, dead, disabled, name) == ("webhook", "0", "-", receiver.url)
        assert int(delivered) >= 1
        code, out, _ = run(capsys, config, "webhooks", "--json")
        [endpoint] = json.loads(out)
        assert endpoint["name"] == receiver.url and endpoint["delivered"] == int(delivered)

        event_id = next(r.body["id"] for r in receiver.delivered())
        code, out, _ = run(capsys, config, "webhooks", "redeliver", event_id)
        assert (code, out) == (0, f"event {event_id} will be delivered again to 1 endpoint\n")
        # An option given before the action is kept.
        code, out, _ = run(capsys, config, "webhooks", "--json", "redeliver", event_id)
        assert json.loads(out) == {"event_id": event_id, "deliveries": 1}
        wait_for(lambda: [r.body["id"] for r in receiver.delivered()].count(event_id) >= 2, 15)
    finally:
        d.kill()
        receiver.close()


class Follower:
    """``batchwatch events --follow --json`` as a real process; its lines read as they come."""

    def __init__(self, config: Path, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchwatch", "--config", str(config), "events", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode())

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: its exit code and everything it wrote on stderr."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read().decode()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.timeout(180)
def test_follow_prints_every_event_once_across_a_daemon_restart(
    tmp_path: Path, simulator_process: Simulator
) -> None:
    d = DaemonProcess(tmp_path, simulator_process.url)
    follower = Follower(d.config, "--follow", "--json", "--after", "0")
    try:
        seed(simulator_process, 3)
        wait_until(lambda: follower.lines, 20, "the first event printed")
        d.kill()
        time.sleep(1.5)  # the follower retries against a closed port meanwhile
        d.start()
        seed(simulator_process, 3)
        wait_until(lambda: d.all_ended(6), 60, "six ended jobs")
        recorded = whole_feed(d.url, d.headers)
        wait_until(lambda: len(follower.lines) >= len(recorded), 30, "the follower caught up")
        time.sleep(0.5)  # an event printed twice would show up by now
        latest = whole_feed(d.url, d.headers)
        code, err = follower.interrupt()
    finally:
        follower.close()
        d.kill()
    printed = [e["id"] for e in follower.events()]
    shown = min(len(printed), len(latest))
    assert shown >= len(recorded)
    assert printed[:shown] == [e["id"] for e in latest][:shown]
    assert len(set(printed)) == len(printed)
    assert code == 130
    notices = err.splitlines()
    assert len(notices) == 2, err
    assert notices[0].startswith("batchwatch: lost the daemon (") and "Traceback" not in err
    assert notices[0].endswith("; retrying")
    assert notices[1].startswith("batchwatch: reconnected, after event ")
