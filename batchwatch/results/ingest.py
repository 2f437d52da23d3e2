"""Building a job's ledger from its downloaded files, in a process of its own.

Reading 100,000 result lines is a couple of seconds of pure Python. In the daemon's process
it holds the interpreter lock the poll cycle needs: figure 9 (``python -m
tests.benchmarks.results``) measured the cycle at 2.9 times its usual time while a
100 MB job was read in a thread (1.9 times with the reading thread yielding every 50
lines). The ledger is therefore built by one long-lived child process (spawned at the first
job that needs it), which writes the rows through a ``Store`` of its own, in the same short
transactions as before. On Linux the child is killed with the daemon (``PR_SET_PDEATHSIG``),
so a killed daemon never leaves it writing behind a restarted one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from batchwatch.models import RequestCounts, TokenUsage
from batchwatch.results.ledger import LedgerEntry, Tally, build_ledger
from batchwatch.store import Store, lease
from batchwatch.store import results as stored

#: Ledger rows written per transaction: short enough that a poll cycle's write is never
#: held up for long, few enough transactions for a 100,000-request job.
LEDGER_CHUNK = 2_000
_PR_SET_PDEATHSIG = 1

_stores: dict[str, Store] = {}


def start_child() -> None:
    """The child's initializer. It yields the CPU to the daemon (a nice of 10: the poll
    cycle comes first; on 2 cores, figure 9's cycle time while a 100 MB job is read was
    1.41x and 2.42x its usual time in two runs without, 1.11x and 0.94x with). On Linux, the
    kernel kills it when the daemon dies, even by SIGKILL; elsewhere it ends at its next
    job."""
    # Refused under systemd's SystemCallFilter=~@resources: then at the daemon's priority.
    with contextlib.suppress(OSError):
        os.nice(10)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() == 1:  # the daemon died before the request took effect
            os._exit(1)


def ingest(
    database_url: str,
    job_id: str,
    inputs: Sequence[str],
    output: str | None,
    error: str | None,
    *,
    provider: str = "mistral",
    fence: tuple[str, int] | None = None,
) -> tuple[RequestCounts, TokenUsage, dict[str, int]]:
    """The ledger of one job's files, written a chunk at a time; its totals, and its rows
    by outcome (duplicates included). ``fence`` (team mode): the leader's name and lease
    epoch, without which no row is written (``store.lease.check``)."""
    store = _stores.get(database_url)
    if store is None:
        store = _stores[database_url] = Store(database_url)
    if fence is not None:
        store = store.fenced(lease.fence(lambda: fence))
    totals = Tally()
    rows: Counter[str] = Counter()
    chunk: list[tuple[Any, ...]] = []
    written = 0
    entries = build_ledger(
        [Path(p) for p in inputs],
        Path(output) if output else None,
        Path(error) if error else None,
        # Each provider reads its own result lines (``providers.<name>.results``).
        parse_line=import_module(f"batchwatch.providers.{provider}.results").parse_result_line,
    )
    for entry in entries:
        totals.add(entry)
        rows[entry.outcome.value] += 1
        chunk.append(stored_row(entry))
        if len(chunk) == LEDGER_CHUNK:
            stored.insert_ledger(store, job_id, written + 1, chunk)
            written += len(chunk)
            chunk = []
    stored.insert_ledger(store, job_id, written + 1, chunk)
    return totals.counts(), totals.usage(), dict(rows)


def stored_row(entry: LedgerEntry) -> tuple[Any, ...]:
    """A ledger entry as the values of ``store.results.LEDGER_COLUMNS``, in their order."""
    e = entry
    return (
        e.custom_id,
        e.outcome.value,
        e.status_code,
        e.error_message,
        e.error_code,
        e.prompt_tokens,
        e.completion_tokens,
        e.total_tokens,
        e.raw,
        e.source,
        e.line,
        e.duplicate,
    )
