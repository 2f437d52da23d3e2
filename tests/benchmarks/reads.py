"""Figure 4: reads through the real local API over loopback, with 100,000 jobs and 1,000,000
transitions stored in SQLite.

The history is generated (``dataset.py``), then ``batchwatch serve`` runs on it as a
subprocess, polling a simulator that has no jobs (so the poller does next to nothing and the
reads have the daemon to themselves, as on a quiet evening). Every request comes from
another process: latencies from ``loadgen latency`` (sequential, one kept-alive
connection, many samples, in rounds whose percentiles are then taken as medians), the
throughput of single-job reads from ``wrk`` (C, with a Lua script that sets the token and
walks through random ids) or, without wrk, ``loadgen throughput`` (Python processes).

For reference, in the same run: the same client against a path no route serves (the HTTP
stack's own floor), and single-job reads sampled sequentially.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.benchmarks.common import (
    Context,
    DaemonProcess,
    Row,
    Simulator,
    median,
    percentile,
    rss_mb,
    run_json,
    say,
)
from tests.benchmarks.dataset import MODELS, History, generate
from tests.benchmarks.profiling import sampled
from tests.processes import wait_until

JOBS = 100_000
TRANSITIONS = 1_000_000
WRK_SCRIPT = """
-- Every request: the bearer token, and the next path of the file (random job ids).
local paths = {}
local token = ""
local counter = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  local f = io.open(args[2])
  token = f:read("*l")
  f:close()
  counter = offset or 0
end

function request()
  counter = counter % #paths + 1
  return wrk.format("GET", paths[counter], {["Authorization"] = "Bearer " .. token})
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d" ..
    " p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Reads:
    """The shared fixture: the generated history and a daemon serving it."""

    history: History
    daemon: DaemonProcess
    workdir: Path
    generate_seconds: float


def fixture(ctx: Context) -> Reads:
    if "reads" in ctx.shared:
        found: Reads = ctx.shared["reads"]
        return found
    say(f"  generating {JOBS:,} jobs and {TRANSITIONS:,} transitions in SQLite ...")
    started = time.perf_counter()
    history = generate(ctx.workdir / "reads.db", JOBS, TRANSITIONS)
    took = time.perf_counter() - started
    size = sum(p.stat().st_size for p in ctx.workdir.glob("reads.db*")) / 1e6
    say(f"  generated in {took:.1f} s ({size:.0f} MB); by status: {history.by_status}")
    sim = ctx.stack.enter_context(Simulator(ctx.workdir))
    daemon = ctx.stack.enter_context(
        DaemonProcess(ctx.workdir, upstream=sim.url, database_url=history.url, name="reads-daemon")
    )
    wait_until(lambda: daemon.health().get("cycles", 0) >= 1, 120, "the daemon's first cycle")
    reads = Reads(history, daemon, ctx.workdir, took)
    ctx.shared["reads"] = reads
    return reads


def _paths(reads: Reads, name: str, paths: list[str]) -> Path:
    target = reads.workdir / f"paths-{name}.txt"
    target.write_text("\n".join(paths) + "\n")
    return target


def _latency(
    reads: Reads, paths: Path, samples: int, rounds: int, expect: str = "200"
) -> dict[str, Any]:
    """p50/p99 (ms) per round from a separate process; the medians across rounds."""
    p50s, p99s, maxes, bad = [], [], [], 0
    for _ in range(rounds):
        result = run_json(
            [
                "-m",
                "tests.benchmarks.loadgen",
                "latency",
                "--url",
                reads.daemon.url,
                "--token-file",
                str(reads.daemon.token_file),
                "--paths",
                str(paths),
                "--samples",
                str(samples),
                "--warmup",
                "30",
            ],
            timeout=600,
        )
        millis = result["latencies_ms"]
        bad += sum(n for code, n in result["statuses"].items() if code != expect)
        p50s.append(percentile(millis, 50))
        p99s.append(percentile(millis, 99))
        maxes.append(max(millis))
    return {"p50": median(p50s), "p99": median(p99s), "p99s": p99s, "max": max(maxes), "bad": bad}


def _wrk(reads: Reads, paths: Path, seconds: int) -> dict[str, float]:
    script = reads.workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    done = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c16",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            reads.daemon.url,
            "--",
            str(paths),
            str(reads.daemon.token_file),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    found = re.search(r"^BENCH (.*)$", done.stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no summary: {done.stdout} {done.stderr}")
    fields = {k: float(v) for k, v in (kv.split("=") for kv in found.group(1).split())}
    errors = sum(fields[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {
        "rps": fields["requests"] / (fields["duration_us"] / 1e6),
        "errors": errors,
        "p50_ms": fields["p50_us"] / 1000,
        "p99_ms": fields["p99_us"] / 1000,
    }


def _python_load(reads: Reads, paths: Path, seconds: int) -> dict[str, float]:
    result = run_json(
        [
            "-m",
            "tests.benchmarks.loadgen",
            "throughput",
            "--url",
            reads.daemon.url,
            "--token-file",
            str(reads.daemon.token_file),
            "--paths",
            str(paths),
            "--seconds",
            str(seconds),
            "--procs",
            "2",
            "--conns",
            "4",
        ],
        timeout=seconds + 120,
    )
    bad = sum(n for code, n in result["statuses"].items() if code != "200")
    return {"rps": float(result["requests_per_second"]), "errors": float(bad)}


def figure(ctx: Context) -> list[Row]:
    say(f"Figure 4 - reads through the local API, {JOBS:,} jobs / {TRANSITIONS:,} transitions")
    reads = fixture(ctx)
    rng = random.Random(11)
    ids = rng.sample(reads.history.ids, 5000)
    rounds = ctx.pick(3, 1)
    transitions = _paths(reads, "transitions", [f"/v1/batch/jobs/{i}/transitions" for i in ids])
    singles = _paths(reads, "get", [f"/v1/batch/jobs/{i}" for i in ids])
    running = _paths(reads, "running", ["/v1/batch/jobs?status=RUNNING&page_size=100"])
    model = _paths(
        reads, "model", [f"/v1/batch/jobs?status=RUNNING&model={MODELS[0]}&page_size=100"]
    )
    floor = _paths(reads, "floor", ["/no-such-route"])
    _latency(reads, singles, 200, 1)  # warm-up: page cache, statement caches, the pools

    rows: list[Row] = []
    lat = _latency(reads, transitions, ctx.pick(1000, 500), rounds)
    say(
        f"  GET /v1/batch/jobs/{{id}}/transitions: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f}"
        f" ms (per round {_ms(lat['p99s'])}), max {lat['max']:.1f} ms"
    )
    rows.append(
        Row(
            "4. one job's transitions, p50",
            f"{lat['p50']:.2f} ms",
            "<= 3 ms",
            lat["p50"] <= 3 and not lat["bad"],
        )
    )
    rows.append(
        Row(
            "4. one job's transitions, p99",
            f"{lat['p99']:.2f} ms",
            "<= 10 ms",
            lat["p99"] <= 10 and not lat["bad"],
        )
    )
    for label, paths in (("status=RUNNING", running), (f"status=RUNNING&model={MODELS[0]}", model)):
        lat = _latency(reads, paths, ctx.pick(150, 80), rounds)
        say(
            f"  GET /v1/batch/jobs?{label}&page_size=100: p50 {lat['p50']:.2f} ms,"
            f" p99 {lat['p99']:.2f} ms (per round {_ms(lat['p99s'])})"
        )
        rows.append(
            Row(
                f"4. jobs page {label}, p99",
                f"{lat['p99']:.2f} ms (p50 {lat['p50']:.2f})",
                "<= 20 ms",
                lat["p99"] <= 20 and not lat["bad"],
            )
        )
    for label, paths, expect in (
        ("GET /v1/batch/jobs/{id}", singles, "200"),
        ("unrouted path, 404 (floor)", floor, "404"),
    ):
        lat = _latency(reads, paths, ctx.pick(1000, 300), 1, expect)
        say(f"  {label}, sequential: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms")
        rows.append(
            Row(f"4. ref: {label}, sequential", f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms")
        )
    rows += _throughput(ctx, reads, singles, floor)
    rss = rss_mb(reads.daemon.pid)
    say(f"  daemon RSS after the reads: {rss:.1f} MB")
    rows.append(Row("4. ref: daemon RSS after the reads", f"{rss:.1f} MB"))
    say()
    return rows


def _throughput(ctx: Context, reads: Reads, singles: Path, floor: Path) -> list[Row]:
    """Single-job reads under concurrent load, each run followed by one on the unrouted path
    (what the HTTP stack alone sustains on the machine at that moment: the ratio of the two
    is steadier than either on a shared machine)."""
    seconds, repeats = ctx.pick(6, 4), ctx.pick(3, 1)
    tool = "wrk -t2 -c16" if shutil.which("wrk") else "Python, 2 processes x 4 connections"
    runs: list[dict[str, float]] = []
    floors: list[float] = []
    for _ in range(repeats):
        runs.append(_load(reads, singles, seconds))
        floors.append(_load(reads, floor, max(2, seconds // 2))["rps"])
    if ctx.profile:  # a run of its own: sampling slows the daemon down
        out = reads.workdir / "profile-reads.txt"
        with sampled(reads.daemon.pid, "the daemon under single-job read load", out):
            _load(reads, singles, seconds)
    rps = [r["rps"] for r in runs]
    errors = sum(r["errors"] for r in runs)
    extra = ""
    if "p99_ms" in runs[0]:
        extra = (
            f", under load p50 {median([r['p50_ms'] for r in runs]):.1f} ms"
            f" p99 {median([r['p99_ms'] for r in runs]):.1f} ms"
        )
    say(
        f"  GET /v1/batch/jobs/{{id}} under load ({tool}, {seconds} s x {repeats}): "
        f"{median(rps):.0f} req/s (runs {', '.join(f'{r:.0f}' for r in rps)}), "
        f"{errors:.0f} errors{extra}; unrouted path (404) in between: {median(floors):.0f}"
        f" req/s (runs {', '.join(f'{r:.0f}' for r in floors)})"
    )
    return [
        Row(
            "4. single-job reads, concurrent",
            f"{median(rps):.0f} req/s ({tool.split(',', maxsplit=1)[0]})",
            ">= 800 req/s",
            median(rps) >= 800 and errors == 0,
        ),
        Row(
            "4. ref: unrouted 404 under the same load",
            f"{median(floors):.0f} req/s (single-job reads: "
            f"{median(rps) / median(floors):.0%} of it)",
        ),
    ]


def _load(reads: Reads, singles: Path, seconds: int) -> dict[str, float]:
    return (
        _wrk(reads, singles, seconds)
        if shutil.which("wrk")
        else _python_load(reads, singles, seconds)
    )


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)
