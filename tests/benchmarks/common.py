"""What every figure of the benchmark shares: result rows, statistics, machine facts, and the
real processes it measures (the simulator and the daemon, each a subprocess on loopback).

The simulator runs in its own process, not in a thread of the benchmark: in one process it
would compete for the GIL with the code being timed and its own work (rendering pages)
would be charged to batchwatch.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import requests

from tests.processes import free_port, spawn, wait_until

SIM_KEY = "benchmark-key-0123456789"
#: The bulk-seed route accepts at most this many jobs per call.
_SEED_CHUNK = 100_000


# ---- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the final table."""

    figure: str
    measured: str
    target: str = ""
    ok: bool | None = None  # None: shown for reference, no target

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return "info"
        return "PASS" if self.ok else "MISS"


@dataclass
class Context:
    """What a figure is given: the mode, a scratch directory, and fixtures that several
    figures share (built by the first that needs them, closed at the end of the run)."""

    quick: bool
    workdir: Path
    profile: bool = False
    stack: ExitStack = field(default_factory=ExitStack)
    shared: dict[str, Any] = field(default_factory=dict)

    def pick(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def say(text: str = "") -> None:
    print(text, flush=True)


def print_table(rows: Sequence[Row]) -> None:
    """The final table: figure | measured | target | PASS/MISS."""
    heads = ("figure", "measured", "target", "result")
    cells = [(r.figure, r.measured, r.target, r.verdict) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
    say(line)
    say("-+-".join("-" * w for w in widths))
    for cell in cells:
        say(" | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)))


def run_alone(
    figure: Callable[[Context], list[Row]], quick: bool, profile: bool = False, **shared: Any
) -> int:
    """A figure run on its own (a module's ``main``): in a throwaway directory, its table
    printed; exit status 1 when a target is missed."""
    import tempfile

    from batchwatch import logs

    logs.configure("warning", "console")
    with tempfile.TemporaryDirectory(prefix="bw-bench-") as tmp:
        ctx = Context(quick=quick, workdir=Path(tmp), profile=profile)
        ctx.shared.update(shared)
        rows = figure(ctx)
    print_table(rows)
    return 0 if all(row.ok is not False for row in rows) else 1


# ---- statistics ------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least q% of samples at or below."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def spread(values: Sequence[float], digits: int = 3) -> str:
    """``median (min-max, n=...)`` of repeated measurements."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return (
        f"{median(values):.{digits}f} (min {min(values):.{digits}f}, "
        f"max {max(values):.{digits}f}, n={len(values)})"
    )


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (NaN with fewer than two distinct xs)."""
    n = len(xs)
    if n < 2:
        return math.nan
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return math.nan
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


# ---- the machine -----------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} ({usable} usable by this process)",
        "memory": memory,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "load average at start": load,
    }


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (10^6 bytes), from /proc/PID/status VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for process {pid}")


# ---- processes -------------------------------------------------------------------------


def _spawn(
    args: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return spawn(*args, log=log, env=env)


def _stop(proc: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Simulator:
    """``batchwatch simulate`` as a subprocess; jobs are seeded through ``/_sim/jobs/bulk``."""

    def __init__(
        self,
        workdir: Path,
        *,
        latency_ms: float = 0.0,
        queue_seconds: float = 3600.0,
        run_seconds: float = 3600.0,
        cancel_seconds: float = 1.0,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = _spawn(
            [
                "simulate",
                "--port",
                str(self.port),
                "--api-key",
                SIM_KEY,
                "--queue-seconds",
                str(queue_seconds),
                "--run-seconds",
                str(run_seconds),
                "--cancel-seconds",
                str(cancel_seconds),
                "--latency-ms",
                str(latency_ms),
            ],
            workdir / f"simulator-{self.port}.log",
        )
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {SIM_KEY}"
        wait_until(
            lambda: self.session.get(f"{self.url}/_sim/stats", timeout=2).ok, 60, "simulator"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()
        _stop(self.proc)

    def seed(
        self,
        count: int,
        *,
        total_requests: int = 100,
        queue_seconds: float | None = None,
        run_seconds: float | None = None,
        created_by: str = "me",
    ) -> list[str]:
        """``count`` new jobs; ``queue_seconds``/``run_seconds`` override the simulator's
        lifecycle for them (the ``sim_*`` metadata directives)."""
        metadata: dict[str, str] = {}
        if queue_seconds is not None:
            metadata["sim_queue_seconds"] = repr(float(queue_seconds))
        if run_seconds is not None:
            metadata["sim_run_seconds"] = repr(float(run_seconds))
        ids: list[str] = []
        while len(ids) < count:
            body = {
                "count": min(_SEED_CHUNK, count - len(ids)),
                "total_requests": total_requests,
                "metadata": metadata or None,
                "created_by": created_by,
            }
            response = self.session.post(f"{self.url}/_sim/jobs/bulk", json=body, timeout=120)
            response.raise_for_status()
            ids += response.json()["ids"]
        return ids

    def requests_total(self) -> int:
        return int(self.session.get(f"{self.url}/_sim/stats", timeout=10).json()["total"])

    def get_job(self, job_id: str) -> dict[str, Any]:
        answer = self.session.get(f"{self.url}/v1/batch/jobs/{job_id}", timeout=30)
        answer.raise_for_status()
        return dict(answer.json())

    def history(self, job_id: str) -> list[tuple[str, float]]:
        """The true status sequence so far: (status, instant it was entered)."""
        response = self.session.get(f"{self.url}/_sim/jobs/{job_id}/history", timeout=10)
        response.raise_for_status()
        return [(e["status"], float(e["at"])) for e in response.json()["statuses"]]

    def cancel(self, job_id: str) -> None:
        # Mistral: jobs_api_routes_batch_cancel_batch_job, as another tool would send it.
        self.session.post(f"{self.url}/v1/batch/jobs/{job_id}/cancel", timeout=10)


class DaemonProcess:
    """``batchwatch serve`` as a subprocess, on its own config file, port and token."""

    def __init__(
        self,
        workdir: Path,
        *,
        upstream: str,
        database_url: str,
        poll_seconds: float = 60.0,
        concurrency: int = 4,
        log_level: str = "warning",
        name: str = "daemon",
        extra: str = "",
    ) -> None:
        """``extra``: more of the config file, after its sections (``[[webhooks]]`` ...)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token_file = workdir / f"{name}-token"
        self.config = workdir / f"{name}.toml"
        self.log = workdir / f"{name}.log"
        self.config.write_text(
            f'[mistral]\nserver_url = "{upstream}"\n'
            f"[tracking]\npoll_interval_seconds = {poll_seconds}\nconcurrency = {concurrency}\n"
            f'[database]\nurl = "{database_url}"\n'
            f'[api]\nport = {self.port}\ntoken_file = "{self.token_file}"\n'
            f'[log]\nlevel = "{log_level}"\nformat = "json"\n'
            f'[results]\ndir = "{workdir / f"{name}-results"}"\n{extra}'
        )
        self.started = time.monotonic()
        self.proc = _spawn(
            ["--config", str(self.config), "serve"], self.log, env={"MISTRAL_API_KEY": SIM_KEY}
        )
        self.session = requests.Session()
        wait_until(self._answers, 120, f"the daemon (log: {self.log})")
        self.token = self.token_file.read_text().strip()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {self.proc.returncode}; see {self.log}")
        return self.session.get(f"{self.url}/healthz", timeout=5).status_code in (200, 503)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = self.session.get(f"{self.url}/healthz", timeout=30).json()
        return body

    def get(self, path: str) -> Any:
        response = self.session.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        self.session.close()
        _stop(self.proc)


def run_json(args: Sequence[str], timeout: float) -> Any:
    """Run a helper process (``python -m tests.benchmarks...``) and parse its JSON stdout."""
    done = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
