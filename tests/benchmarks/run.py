"""The batchwatch performance benchmark: every figure, measured against its target.

    python -m tests.benchmarks.run [--quick] [--only NAME[,NAME]] [--profile] [--keep]

Figures (NAME): requests (1, requests per poll cycle), cycle (2, cycle time and shifting
pages), writes (3, one transaction of 10,000 changes), reads (4, the local API under
load), cli (6, `batchwatch jobs` end to end), memory (5, the daemon's RSS over an hour of
polling), discovery (7, discovery's requests after a burst of ended jobs, and the local
API's reads meanwhile), progress (8, the progress history of a simulated day), results (9,
a big job's results fetched), events (10, webhook latency and a backlog drained), ui (11,
the dashboard's jobs and job pages, in process), providers (12, requests per cycle per
provider), team (13, team mode's takeover time). It makes its own data, runs the simulator
and the daemon as real processes on loopback, and prints a table: figure | measured |
target | PASS/MISS. Exit status 0 when every target is met, 1 otherwise.

A full run takes about 10 minutes on 2 cores; ``--quick`` (fewer repetitions and samples,
half an hour of simulated polling) about 2. ``--profile`` adds, per figure, where the time
goes (py-spy over every thread when it is installed, else cProfile). PostgreSQL is measured
too when ``BATCHWATCH_TEST_DATABASE_URL`` is set. ``wrk`` (Debian package) is used for the
throughput load when installed, else a multi-process Python load generator.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from batchwatch import logs
from tests.benchmarks import (
    cli_time,
    cycle_time,
    discovery,
    events,
    memory,
    providers,
    reads,
    requests_per_cycle,
    results,
    team,
    ui,
    writes,
)
from tests.benchmarks import progress as progress_history
from tests.benchmarks.common import Context, Row, machine, print_table, say

Figure = Callable[[Context], list[Row]]
FIGURES: dict[str, Figure] = {
    "requests": requests_per_cycle.figure,
    "cycle": cycle_time.figure,
    "writes": writes.figure,
    "reads": reads.figure,
    "cli": cli_time.figure,
    "memory": memory.figure,
    "discovery": discovery.figure,
    "progress": progress_history.figure,
    "results": results.figure,
    "events": events.figure,
    "ui": ui.figure,
    "providers": providers.figure,
    "team": team.figure,
}
#: Figures that use the shared history + daemon of ``reads.fixture``.
_USE_READS = frozenset({"reads", "cli"})


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown figure {', '.join(unknown)}; choose from {', '.join(FIGURES)}"
        )
    return names


def _revision() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "batchwatch", "migrations")
    return f"{head}{' + uncommitted changes in batchwatch/' if dirty else ''}"


def run(names: list[str], ctx: Context) -> list[Row]:
    rows: list[Row] = []
    for n, name in enumerate(names):
        started = time.monotonic()
        try:
            rows += FIGURES[name](ctx)
        except Exception as exc:  # one broken figure must not hide the others
            traceback.print_exc()
            rows.append(
                Row(f"{name}: failed to run", f"{type(exc).__name__}: {exc}"[:120], "runs", False)
            )
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        say(f"  ({name}: {time.monotonic() - started:.0f} s; load average now {load})")
        say()
        if not _USE_READS & set(names[n + 1 :]):
            ctx.stack.close()  # the shared daemon is not needed any more: free its core
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.benchmarks.run", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="a shorter run (about 2 minutes)")
    parser.add_argument(
        "--only",
        type=_names,
        action="extend",
        metavar="NAME[,NAME]",
        help=f"only these figures ({', '.join(FIGURES)}); repeatable",
    )
    parser.add_argument("--profile", action="store_true", help="show where the time goes")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    names = [n for n in FIGURES if n in (args.only or FIGURES)]
    logs.configure("warning", "console")
    started = time.monotonic()
    say(
        f"batchwatch benchmark, {'quick' if args.quick else 'full'} run, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, revision {_revision()}"
    )
    for key, value in machine().items():
        say(f"  {key}: {value}")
    say()
    scratch = tempfile.mkdtemp(prefix="batchwatch-bench-")
    ctx = Context(quick=args.quick, workdir=Path(scratch), profile=args.profile)
    try:
        rows = run(names, ctx)
    finally:
        ctx.stack.close()
        if args.keep:
            say(f"scratch directory kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    say(
        f"Results ({'quick' if args.quick else 'full'} run, {time.monotonic() - started:.0f} s;"
        f" medians of repeated runs; machine above)"
    )
    print_table(rows)
    missed = [r for r in rows if r.ok is False]
    say(f"{len(missed)} of {sum(r.ok is not None for r in rows)} targets missed")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
