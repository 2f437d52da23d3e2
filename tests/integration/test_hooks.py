"""Hooks end to end: a real daemon runs real programs with each event's JSON on their
standard input; one that hangs is killed, one that fails is retried with its stderr kept."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_webhooks import daemon_running, delivery_rows, recorded_events, seed
from tests.processes import Simulator, stop, wait_until

# The hook programs, run by the daemon as `python SCRIPT OUT_DIR`. Each writes what it was
# given to OUT_DIR/<event id>.json once it decides to succeed.
RECORDS = """\
import os, pathlib, sys
out = pathlib.Path(sys.argv[1])
data = sys.stdin.buffer.read()
(out / "environment").write_text("\\n".join(sorted(os.environ)))
(out / (os.environ["BATCHWATCH_EVENT_ID"] + ".json")).write_bytes(data)
"""

# The first run starts a grandchild (same process group) and hangs; later runs succeed.
HANGS_ONCE = """\
import os, pathlib, subprocess, sys, time
out = pathlib.Path(sys.argv[1])
data = sys.stdin.buffer.read()
if not (out / "hung").exists():
    (out / "hung").write_text("")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    (out / "pids").write_text(f"{os.getpid()} {child.pid}")
    time.sleep(120)
(out / (os.environ["BATCHWATCH_EVENT_ID"] + ".json")).write_bytes(data)
"""

# Fails with a message on stderr until the flag file exists.
FAILS_UNTIL_FLAG = """\
import os, pathlib, sys
out = pathlib.Path(sys.argv[1])
data = sys.stdin.buffer.read()
if not (out / "flag").exists():
    print("starting up", file=sys.stderr)
    print("boom: the disk is not mounted", file=sys.stderr)
    sys.exit(3)
(out / (os.environ["BATCHWATCH_EVENT_ID"] + ".json")).write_bytes(data)
"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    simulator = Simulator(tmp_path)
    yield simulator
    stop(simulator.proc)


def hook_toml(tmp_path: Path, script: str, *, events: str = "", timeout: float = 30) -> str:
    path = tmp_path / "hook.py"
    path.write_text(script)
    out = tmp_path / "out"
    out.mkdir()
    command = json.dumps([sys.executable, str(path), str(out)])
    chosen = f"events = [{events}]\n" if events else ""
    return f"[[hooks]]\ncommand = {command}\ntimeout_seconds = {timeout}\n{chosen}"


def written(tmp_path: Path) -> dict[str, dict[str, object]]:
    """What the hook wrote, by event id."""
    return {p.stem: json.loads(p.read_text()) for p in (tmp_path / "out").glob("evt_*.json")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def test_the_hook_gets_each_event_as_json_on_stdin(tmp_path: Path, sim: Simulator) -> None:
    with daemon_running(tmp_path, sim, hook_toml(tmp_path, RECORDS)) as daemon:
        seed(sim, 2, run_seconds=1)
        wait_until(lambda: daemon.all_ended(2), 30, "every job to end")

        def all_run() -> bool:
            rows = delivery_rows(tmp_path)
            return len(rows) == len(recorded_events(tmp_path)) and all(
                r["state"] == "delivered" for r in rows
            )

        wait_until(all_run, 30, "every event through the hook")
    events = recorded_events(tmp_path)
    got = written(tmp_path)
    assert set(got) == {e["id"] for e in events}
    for e in events:
        body = got[e["id"]]
        assert (body["id"], body["seq"], body["type"], body["job_id"]) == (
            e["id"],
            e["seq"],
            e["type"],
            e["job_id"],
        )
        assert set(body) == {"id", "seq", "type", "job_id", "occurred_at", "data"}
    assert all(r["last_status"] == 0 and r["attempts"] == 1 for r in delivery_rows(tmp_path))
    # The daemon has the Mistral key in its environment; the hook program does not.
    environment = (tmp_path / "out" / "environment").read_text().split("\n")
    assert "PATH" in environment and "MISTRAL_API_KEY" not in environment


def test_a_hanging_hook_is_killed_with_its_children_and_retried(
    tmp_path: Path, sim: Simulator
) -> None:
    extra = hook_toml(tmp_path, HANGS_ONCE, events='"job.finished"', timeout=1)
    with daemon_running(tmp_path, sim, extra) as daemon:
        seed(sim, 1, run_seconds=0.5, queue_seconds=0.2)
        pids = tmp_path / "out" / "pids"
        wait_until(pids.exists, 30, "the hook to hang")
        began = time.monotonic()
        hook, grandchild = (int(p) for p in pids.read_text().split())
        wait_until(lambda: not alive(hook) and not alive(grandchild), 10, "the hook killed")
        killed_after = time.monotonic() - began
        wait_until(lambda: len(written(tmp_path)) == 1, 20, "the retry to succeed")
        wait_until(
            lambda: [r["state"] for r in delivery_rows(tmp_path)] == ["delivered"],
            10,
            "the delivery recorded",
        )
        log = daemon.log.read_text()
    # killed at timeout_seconds (1 s), not left to its 120 s
    assert killed_after < 5
    [row] = delivery_rows(tmp_path)
    assert row["attempts"] == 2
    assert row["type"] == "job.finished"
    assert set(written(tmp_path)) == {row["event_id"]}
    failed = [json.loads(line) for line in log.splitlines() if '"delivery_failed"' in line]
    assert [f["error"] for f in failed] == ["killed after 1 s (timeout_seconds)"]


def test_a_failing_hook_keeps_its_stderr_and_succeeds_once_fixed(
    tmp_path: Path, sim: Simulator
) -> None:
    extra = hook_toml(tmp_path, FAILS_UNTIL_FLAG, events='"job.finished"')
    with daemon_running(tmp_path, sim, extra):
        seed(sim, 1, run_seconds=0.5, queue_seconds=0.2)
        wait_until(
            lambda: any(r["attempts"] >= 2 for r in delivery_rows(tmp_path)),
            30,
            "two failed runs",
        )
        [failing] = delivery_rows(tmp_path)
        (tmp_path / "out" / "flag").write_text("")
        wait_until(
            lambda: [r["state"] for r in delivery_rows(tmp_path)] == ["delivered"],
            30,
            "the hook to succeed",
        )
    assert failing["state"] == "pending"
    assert failing["last_status"] == 3
    # the tail of its standard error, as written
    assert failing["last_error"] == "starting up\nboom: the disk is not mounted"
    [done] = delivery_rows(tmp_path)
    assert done["attempts"] > failing["attempts"]
    assert done["last_status"] == 0
    assert done["last_error"] is None
    assert set(written(tmp_path)) == {done["event_id"]}
