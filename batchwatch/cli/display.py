"""How jobs look on a terminal: rich tables with status colours, counters and durations;
off a terminal, the job list as plain text.

rich is imported by the functions that draw with it, not by this module: ``batchwatch jobs``
into a pipe prints ``plain_jobs_table`` without loading it (about 30 ms of start-up).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from batchwatch.models import JobStatus, RemoteJob

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table
    from rich.text import Text

STATUS_STYLE: dict[str, str] = {
    "QUEUED": "cyan",
    "RUNNING": "bold blue",
    "SUCCESS": "bold green",
    "FAILED": "bold red",
    "TIMEOUT_EXCEEDED": "red",
    "CANCELLATION_REQUESTED": "yellow",
    "CANCELLED": "magenta",
}


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False, default=str))


def stdout_is_terminal() -> bool:
    """Whether rich would treat stdout as a terminal, by its own rule (TTY_COMPATIBLE, then
    FORCE_COLOR, then isatty), decided without importing it."""
    tty_compatible = os.environ.get("TTY_COMPATIBLE", "")
    if tty_compatible in ("0", "1"):
        return tty_compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # no stdout, or a closed one
        return False


@cache
def console() -> Console:
    from rich.console import Console

    return Console()


def status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=STATUS_STYLE.get(status, "dim"))


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    hours, rest = divmod(seconds, 3600)
    if hours < 48:
        return f"{hours}h{rest // 60:02d}m"
    return f"{hours // 24}d{hours % 24:02d}h"


def age(epoch: int | None, now: float | None = None) -> str:
    if epoch is None:
        return "-"
    return duration((now or time.time()) - epoch) + " ago"


def run_time(job: RemoteJob, now: float | None = None) -> str:
    """How long the job has run (or ran): started → completed, or started → now."""
    if job.started_at is None:
        return "-"
    end = job.completed_at if job.completed_at is not None else (now or time.time())
    return duration(end - job.started_at)


def counters(job: RemoteJob) -> str:
    c = job.counters
    return f"{c.completed}/{c.total}" + (f" ({c.failed} failed)" if c.failed else "")


def counters_text(job: RemoteJob) -> Text:
    from rich.text import Text

    c = job.counters
    text = Text(f"{c.completed}/{c.total}")
    if c.failed:
        text.append(f" ({c.failed} failed)", style="red")
    return text


JOB_COLUMNS = ("ID", "STATUS", "MODEL", "ENDPOINT", "REQUESTS", "CREATED", "RUN TIME")
NO_JOBS = "no tracked jobs match"


def plain_jobs_table(jobs: Sequence[RemoteJob]) -> str:
    """The wide ``jobs_table`` as plain text, for a pipe or a file: no colours, no borders,
    no width to fit, so nothing is cut; columns two spaces apart, a header line first."""
    now = time.time()
    rows = [JOB_COLUMNS] + [
        (
            job.id,
            job.raw_status,
            job.model or "-",
            job.endpoint,
            counters(job),
            age(job.created_at, now),
            run_time(job, now),
        )
        for job in jobs
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(JOB_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if not jobs:
        lines.append(NO_JOBS)
    return "\n".join(lines)


def jobs_table(jobs: Sequence[RemoteJob], title: str | None = None, compact: bool = False) -> Table:
    """All of a job's key facts a row; ``compact`` (the demo) trades model and endpoint for
    the job's ``job_name`` metadata and a short id, to fit 80 columns."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, header_style="bold", expand=False)
    # Below ~120 columns the full-length ids leave no room: model, endpoint and age go first.
    width = console().width
    narrow = width < 120
    names = (
        ("ID", "NAME", "STATUS", "REQUESTS", "RUN TIME")
        if compact
        else ("ID", "STATUS", "MODEL", "REQUESTS", "RUN TIME")
        if narrow
        else JOB_COLUMNS
    )
    for name in names:
        table.add_column(name, no_wrap=name in ("ID", "STATUS", "REQUESTS"))
    now = time.time()
    for job in jobs:
        # Text, not str: a job's name or model is shown as it is, never read as rich markup.
        if compact:
            name = str((job.metadata or {}).get("job_name", "-"))
            table.add_row(
                Text(job.id[:8]),
                Text(name),
                status_text(job.raw_status),
                counters_text(job),
                Text(run_time(job, now)),
            )
            continue
        if narrow:
            table.add_row(
                Text(job.id),
                status_text(job.raw_status),
                Text(job.model or "-"),
                counters_text(job),
                Text(run_time(job, now)),
            )
            continue
        table.add_row(
            Text(job.id),
            status_text(job.raw_status),
            Text(job.model or "-"),
            Text(job.endpoint),
            counters_text(job),
            Text(age(job.created_at, now)),
            Text(run_time(job, now)),
        )
    if not jobs:
        table.caption = NO_JOBS
    _fit_widths(table, width)
    return table


def _fit_widths(table: Table, width: int) -> None:
    """Give each column the width of its widest cell when the table fits ``width`` as it
    is: rich, which finds the same by measuring every cell again, then skips that (most of
    the drawing time of a long list). A table too wide is left to rich to shrink and wrap."""
    from rich.text import Text

    natural = []
    for column in table.columns:
        cells = [Text(str(column.header)), *column.cells]
        if not all(isinstance(cell, Text) and "\n" not in cell.plain for cell in cells):
            return
        natural.append(max(cell.cell_len for cell in cells if isinstance(cell, Text)))
    # A space either side of each column, a border between columns and at both edges.
    if sum(natural) + 3 * len(natural) + 1 <= width:
        for column, fits in zip(table.columns, natural, strict=True):
            column.width = fits


def _when(value: Any, digits: int = 3) -> str:
    if not value:
        return "-"
    stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)
    # Today's times without the date: the status names need the width more.
    fmt = "%H:%M:%S.%f" if stamp.date() == datetime.now(UTC).date() else "%Y-%m-%d %H:%M:%S.%f"
    return stamp.strftime(fmt)[: digits - 6 or None]


def transitions_table(rows: Iterable[dict[str, Any]], title: str | None = "Transitions") -> Table:
    """Oldest first. SPAN: how long before SEEN the job was last seen in FROM, i.e. the
    window in which the change happened. Sized to fit 80 columns."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, header_style="bold", title_justify="left")
    for name in ("FROM", "TO", "SEEN (UTC)", "SPAN", "VIA"):
        table.add_column(name, no_wrap=True)
    for row in rows:
        span = "-"
        if row.get("last_seen_before"):
            start = datetime.fromisoformat(str(row["last_seen_before"]).replace("Z", "+00:00"))
            end = datetime.fromisoformat(str(row["observed_at"]).replace("Z", "+00:00"))
            span = f"{(end - start).total_seconds():.1f}s"
        table.add_row(
            status_text(row["from_status"]) if row.get("from_status") else Text("(new)", "dim"),
            status_text(row["to_status"]),
            _when(row["observed_at"], digits=1),
            span,
            str(row.get("source", "")),
        )
    return table


def progress_table(rows: Sequence[dict[str, Any]], limit: int = 12) -> Table:
    from rich.table import Table

    table = Table(title="Progress", header_style="bold", title_justify="left")
    for name in ("SEEN (UTC)", "COMPLETED", "SUCCEEDED", "FAILED", "TOTAL"):
        table.add_column(name, justify="right")
    shown = rows if len(rows) <= limit else [*rows[: limit // 2], *rows[-limit // 2 :]]
    for row in shown:
        table.add_row(
            _when(row["observed_at"]),
            str(row["completed_requests"]),
            str(row["succeeded_requests"]),
            str(row["failed_requests"]),
            str(row["total_requests"]),
        )
    if len(rows) > limit:
        table.caption = f"{len(rows)} samples; first and last {limit // 2} shown"
    return table


def job_details(
    job: RemoteJob,
    transitions: Sequence[dict[str, Any]],
    samples: Sequence[dict[str, Any]],
    actions: Sequence[dict[str, Any]] = (),
    results: RenderableType | None = None,
) -> list[RenderableType]:
    from rich.table import Table

    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column()
    status = status_text(job.raw_status)
    if job.status is JobStatus.UNKNOWN:
        status.append("  (not a status batchwatch knows)", style="dim")
    rows: list[tuple[str, RenderableType]] = [
        ("id", job.id),
        ("status", status),
        ("model", job.model or "-"),
        ("endpoint", job.endpoint),
        ("requests", counters_text(job)),
        ("created", age(job.created_at)),
        ("run time", run_time(job)),
        ("input files", ", ".join(job.input_files) or "-"),
        ("output file", job.output_file or "-"),
        ("error file", job.error_file or "-"),
        ("metadata", ", ".join(f"{k}={v}" for k, v in (job.metadata or {}).items()) or "-"),
    ]
    rows += [("error", f"{e.message} (x{e.count})") for e in job.errors]
    if results is not None:
        rows.append(("results", results))
    for name, value in rows:
        fields.add_row(name, value)
    parts: list[RenderableType] = [fields, transitions_table(transitions)]
    if actions:
        parts.append(actions_table(actions))
    parts.append(progress_table(samples))
    return parts


def actions_table(rows: Iterable[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title="Actions", header_style="bold", title_justify="left")
    for name in ("ACTION", "BY", "REQUESTED (UTC)", "ANSWERED"):
        table.add_column(name, no_wrap=True)
    for row in rows:
        table.add_row(
            row["action"],
            row["requested_by"],
            _when(row["requested_at"]),
            status_text(row["status_after"]),
        )
    return table


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
        self._task = self._progress.add_task(job.id[:8], total=job.counters.total or None, rate="")
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
        elapsed = time.monotonic() - self._started
        done_here = c.completed - self._first_done
        rate = f"{done_here / elapsed:.1f} req/s" if elapsed > 0 and done_here > 0 else ""
        self._progress.update(
            self._task,
            total=c.total or None,
            completed=c.completed,
            description=f"{job.id[:8]} {job.raw_status}",
            rate=rate,
        )
        if job.raw_status != self._status and not self._quiet:
            self._status = job.raw_status
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            line = Text(f"{stamp} {job.id} ")
            line.append_text(status_text(job.raw_status))
            line.append(f" {c.completed}/{c.total}")
            self._console.print(line)
