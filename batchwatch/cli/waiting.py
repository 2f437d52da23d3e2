"""``batchwatch wait``'s live display: a progress bar (done/total, rate, ETA) and a line per
status change. rich is imported when a wait starts, never by a query command."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from batchwatch.cli.display import short_id, status_label, status_text
from batchwatch.models import RemoteJob
from batchwatch.providers import progress_known

UNKNOWN_PROGRESS = " (progress unknown until the batch ends)"


class WaitDisplay:
    """`batchwatch wait`: a progress bar (done/total, rate, ETA) and a line per status change.

    Off a terminal only the status lines are printed, so a log file stays readable.
    """

    def __init__(self, job: RemoteJob, quiet: bool = False) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._quiet = quiet
        self._console = Console(stderr=True)
        self._status = ""
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TimeElapsedColumn(),
            console=self._console,
            disable=quiet or not self._console.is_terminal,
            transient=False,
        )
        self._task = self._progress.add_task(short_id(job.id), total=None, rate="")
        self._started = time.monotonic()
        self._first_done = job.counters.completed
        self.update(job)

    def __enter__(self) -> WaitDisplay:
        self._progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._progress.stop()

    def update(self, job: RemoteJob) -> None:
        from rich.text import Text

        c = job.counters
        known = progress_known(job)
        elapsed = time.monotonic() - self._started
        done_here = c.completed - self._first_done
        rate = f"{done_here / elapsed:.1f} req/s" if known and elapsed > 0 and done_here > 0 else ""
        label = status_label(job)
        self._progress.update(
            self._task,
            # An unknown total makes the bar a pulse, with no ETA: Anthropic's counts say
            # nothing until the batch ends, and 0 of N would claim that nothing was done.
            total=(c.total or None) if known else None,
            completed=c.completed if known else 0,
            description=f"{short_id(job.id)} {label}" + ("" if known else UNKNOWN_PROGRESS),
            rate=rate,
        )
        if label != self._status and not self._quiet:
            self._status = label
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            line = Text(f"{stamp} {job.id} ")
            line.append_text(status_text(label, job.status.value))
            line.append(f" {c.completed}/{c.total}" if known else UNKNOWN_PROGRESS)
            # One line per change, never wrapped: a log file keeps one per line.
            self._console.print(line, soft_wrap=True)
