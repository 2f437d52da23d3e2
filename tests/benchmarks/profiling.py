"""Where the time goes (``run --profile``): py-spy samples a process, every thread of it, and
the folded stacks are summed here into the functions that hold the CPU.

py-spy comes from PyPI (``pip install py-spy``); without it, an in-process step falls back
to cProfile, which sees only the calling thread.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.benchmarks.common import say

TOP = 14


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@contextmanager
def sampled(pid: int, label: str, out: Path, rate: int = 200) -> Iterator[None]:
    """Sample ``pid`` with py-spy while the block runs; print a summary after it."""
    spy = py_spy()
    if spy is None:
        say(f"  (profile of {label} skipped: py-spy is not installed)")
        yield
        return
    log = out.with_suffix(".log")
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
                # Only the thread holding the GIL: what keeps a Python process busy, not
                # its threads waiting for the GIL or a socket.
                "--gil",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    time.sleep(0.5)  # py-spy attaches
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    summarize(out, label)


def summarize(raw: Path, label: str, top: int = TOP) -> None:
    """Functions by samples on CPU: where they are the innermost frame (self), and where
    they are on the stack at all (inclusive), as shares of every sample."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    if not raw.exists():
        say(f"  (no samples for {label})")
        return
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    say(f"  profile of {label}: {total} samples holding the GIL (py-spy --gil)")
    say("    self%  function (file:line) - innermost frame")
    for frame, n in own.most_common(top):
        say(f"    {100 * n / total:5.1f}  {frame}")
    say("    incl%  batchwatch function - on the stack")
    ours = [(f, n) for f, n in inclusive.most_common() if "batchwatch/" in f or "tests/" in f]
    for frame, n in ours[:top]:
        say(f"    {100 * n / total:5.1f}  {frame}")


def _short(frame: str) -> str:
    """``name (/long/path/pkg/mod.py:12)`` -> ``name (pkg/mod.py:12)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    parts = where.split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif "batchwatch" in parts:
        parts = parts[parts.index("batchwatch") :]
    else:
        parts = parts[-2:]
    return f"{name} ({'/'.join(parts)})"


def profile_here(label: str, call: Callable[[], object], workdir: Path | None = None) -> None:
    """Profile ``call`` in this process: py-spy on our own pid, else cProfile."""
    import os

    if py_spy() is not None and workdir is not None:
        with sampled(os.getpid(), label, workdir / f"profile-{abs(hash(label))}.txt"):
            call()
        return
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top_n := 25)
    say(f"  profile of {label} (cProfile, calling thread only, top {top_n} cumulative):")
    for line in text.getvalue().splitlines()[: top_n + 12]:
        say(f"    {line}")
