"""Figure 6: ``batchwatch jobs`` end to end, from process start to exit, against a running
daemon with data (the 100,000-job history of figure 4), its output to a pipe.

In the same run, for reference: ``python -c pass`` (the interpreter's own start),
``batchwatch --version`` (the CLI's imports, without a request), ``jobs --json``, and
``jobs`` drawing rich's table as on a terminal (``FORCE_COLOR=1``; into a pipe it prints a
plain table without importing rich). Then one ``python -X importtime -m batchwatch jobs``,
whose slowest imports are listed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from tests.benchmarks.common import Context, Row, median, say
from tests.benchmarks.reads import fixture

TARGET_MS = 300.0

#: What rich (and ``batchwatch jobs``) would take for a terminal despite the pipe: unset,
#: so the figure measures what a script piping the output gets.
_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE")


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in _TERMINAL_ENV}, **extra}


def _command() -> list[str]:
    """The installed console script when there is one (what users run), else ``-m``."""
    script = Path(sys.executable).parent / "batchwatch"
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchwatch"]


def _time(argv: list[str], runs: int, env: Mapping[str, str] | None = None) -> list[float]:
    """Wall milliseconds of each run, from spawn to exit; a failure stops the figure."""
    found = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, check=False, env=env or _env())
        found.append((time.perf_counter() - started) * 1000)
        if done.returncode != 0:
            raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-1000:]!r}")
    return found


def import_offenders(argv: list[str], top: int = 12) -> tuple[float, list[tuple[int, str]]]:
    """Total import time (ms) of one run, and the top-level imports (with their children)
    that cost the most, in microseconds."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "batchwatch", *argv],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
    )
    entries: list[tuple[int, str]] = []
    total = 0
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        if depth <= 1:  # a package imported by the program, or by one of its imports
            entries.append((int(cumulative), name.rstrip()))
        if depth == 0:
            total += int(cumulative)
    entries.sort(reverse=True)
    return total / 1000, entries[:top]


def figure(ctx: Context) -> list[Row]:
    say("Figure 6 - CLI: `batchwatch jobs` against a daemon holding 100,000 jobs")
    reads = fixture(ctx)
    runs = ctx.pick(10, 5)
    config = ["--config", str(reads.daemon.config)]
    jobs = [*_command(), *config, "jobs"]
    _time(jobs, 2)  # warm: the OS's file cache, the daemon's connections
    python = _time([sys.executable, "-c", "pass"], runs)
    version = _time([*_command(), "--version"], runs)
    listing = _time(jobs, runs)
    as_json = _time([*jobs, "--json"], runs)
    rich = _time(jobs, runs, _env(FORCE_COLOR="1"))
    say(
        f"  python -c pass: {median(python):.0f} ms; batchwatch --version: {median(version):.0f}"
        f" ms; batchwatch jobs: {median(listing):.0f} ms (runs"
        f" {', '.join(f'{v:.0f}' for v in listing)}); jobs --json: {median(as_json):.0f} ms;"
        f" jobs as on a terminal (rich, FORCE_COLOR=1): {median(rich):.0f} ms"
    )
    total, offenders = import_offenders([*config, "jobs"])
    say(
        f"  python -X importtime -m batchwatch jobs: {total:.0f} ms of imports; slowest"
        " (cumulative, nested one level):"
    )
    for micros, name in offenders:
        say(f"    {micros / 1000:7.1f} ms  {name}")
    say()
    return [
        Row(
            "6. `batchwatch jobs`, process start to exit",
            f"{median(listing):.0f} ms (python -c pass {median(python):.0f} ms)",
            f"<= {TARGET_MS:.0f} ms",
            median(listing) <= TARGET_MS,
        ),
        Row(
            "6. ref: `batchwatch --version` / `jobs --json`",
            f"{median(version):.0f} ms / {median(as_json):.0f} ms",
        ),
        Row("6. ref: `jobs` on a terminal (rich table)", f"{median(rich):.0f} ms"),
        Row(
            "6. ref: import time of `batchwatch jobs`",
            f"{total:.0f} ms; top: " + ", ".join(n.strip() for _, n in offenders[:3]),
        ),
    ]
