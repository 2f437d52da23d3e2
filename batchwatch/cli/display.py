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
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from batchwatch.models import JobStatus, RemoteJob
from batchwatch.providers import progress_known
from batchwatch.providers import provider as catalog

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


def status_text(text: str, status: str | None = None) -> Text:
    """``text`` in the colour of ``status`` (by default the text is the status)."""
    from rich.text import Text

    return Text(text, style=STATUS_STYLE.get(status or text, "dim"))


def status_label(job: RemoteJob) -> str:
    """The common status, and the provider's own where it says more: ``RUNNING
    (finalizing)`` for OpenAI, ``SUCCESS`` alone for Mistral, whose statuses are the
    common ones. A status batchwatch does not know is shown as sent."""
    if job.status is JobStatus.UNKNOWN or job.raw_status == job.status.value:
        return job.raw_status
    return f"{job.status.value} ({job.raw_status})"


def provider_label(job: RemoteJob) -> str:
    try:
        return catalog(job.provider).label
    except KeyError:  # a provider of a newer daemon: shown as it names it
        return job.provider


def short_id(job_id: str) -> str:
    """Eight characters that tell jobs apart: OpenAI's and Anthropic's ids all start with
    the same prefix (``batch_``, ``msgbatch_``), so theirs are taken after it."""
    return job_id.rpartition("_")[2][:8]


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


#: What a job's request counts read while its provider does not tell them (Anthropic's
#: stay in ``processing`` until the batch ends): not 0 done, but not known yet.
UNKNOWN_COUNTS = "?/{total} (not known yet)"


def counters(job: RemoteJob) -> str:
    c = job.counters
    if not progress_known(job):
        return UNKNOWN_COUNTS.format(total=c.total)
    return f"{c.completed}/{c.total}" + (f" ({c.failed} failed)" if c.failed else "")


def counters_text(job: RemoteJob) -> Text:
    from rich.text import Text

    c = job.counters
    if not progress_known(job):
        return Text(UNKNOWN_COUNTS.format(total=c.total), style="dim")
    text = Text(f"{c.completed}/{c.total}")
    if c.failed:
        text.append(f" ({c.failed} failed)", style="red")
    return text


JOB_COLUMNS = (
    "ID",
    "STATUS",
    "MODEL",
    "ENDPOINT",
    "PROVIDER",
    "REQUESTS",
    "CREATED",
    "RUN TIME",
)
#: Below ~120 columns the full-length ids leave no room: endpoint and age go first, and
#: the provider too when every job listed is of one provider.
NARROW_COLUMNS = ("ID", "STATUS", "MODEL", "REQUESTS", "RUN TIME")
#: ... or the model, when they are of several: a job's provider says more then (an OpenAI
#: batch's model is in its requests, an Anthropic batch has none).
NARROW_MIXED_COLUMNS = ("ID", "STATUS", "PROVIDER", "REQUESTS", "RUN TIME")
#: The demo's: the job's ``job_name`` metadata and a short id, to fit 80 columns.
COMPACT_COLUMNS = ("ID", "NAME", "PROVIDER", "STATUS", "REQUESTS", "RUN TIME")
NO_JOBS = "no tracked jobs match"


def _plain_cells(job: RemoteJob, now: float) -> dict[str, str]:
    """Each column's text for ``job`` (the status label and the counters as plain text)."""
    return {
        "ID": job.id,
        "NAME": str((job.metadata or {}).get("job_name", "-")),
        "STATUS": status_label(job),
        "MODEL": job.model or "-",
        "ENDPOINT": job.endpoint,
        "PROVIDER": provider_label(job),
        "REQUESTS": counters(job),
        "CREATED": age(job.created_at, now),
        "RUN TIME": run_time(job, now),
    }


def plain_jobs_table(jobs: Sequence[RemoteJob]) -> str:
    """The wide ``jobs_table`` as plain text, for a pipe or a file: no colours, no borders,
    no width to fit, so nothing is cut; columns two spaces apart, a header line first."""
    now = time.time()
    rows: list[tuple[str, ...]] = [JOB_COLUMNS]
    for job in jobs:
        cells = _plain_cells(job, now)
        rows.append(tuple(cells[name] for name in JOB_COLUMNS))
    widths = [max(len(row[i]) for row in rows) for i in range(len(JOB_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if not jobs:
        lines.append(NO_JOBS)
    return "\n".join(lines)


def jobs_table(
    jobs: Sequence[RemoteJob],
    title: str | None = None,
    compact: bool = False,
    names: Mapping[str, str] | None = None,
) -> Table:
    """All of a job's key facts a row; ``compact`` (the demo) trades model and endpoint for
    the job's name (from ``names`` by id, else its ``job_name`` metadata: an Anthropic batch
    has no metadata) and a short id, to fit 80 columns."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, header_style="bold", expand=False)
    width = console().width
    columns: tuple[str, ...] = COMPACT_COLUMNS if compact else JOB_COLUMNS
    if not compact and width < 120:
        mixed = len({job.provider for job in jobs}) > 1
        columns = NARROW_MIXED_COLUMNS if mixed else NARROW_COLUMNS
    for name in columns:
        table.add_column(name, no_wrap=name in ("ID", "STATUS", "REQUESTS"))
    now = time.time()
    for job in jobs:
        # Text, not str: a job's name or model is shown as it is, never read as rich markup.
        cells: dict[str, Text] = {k: Text(v) for k, v in _plain_cells(job, now).items()}
        cells["STATUS"] = status_text(status_label(job), job.status.value)
        cells["REQUESTS"] = counters_text(job)
        if compact:
            cells["ID"] = Text(short_id(job.id))
            if names and job.id in names:
                cells["NAME"] = Text(names[job.id])
        table.add_row(*(cells[name] for name in columns))
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


def _side(row: dict[str, Any], side: str) -> Text:
    """One side of a transition: its common status, and the provider's where it differs
    (OpenAI's in_progress → finalizing is a transition within RUNNING)."""
    common, raw = row[f"{side}_status"], row.get(f"{side}_provider_status")
    text = common if not raw or raw == common else f"{common} ({raw})"
    return status_text(text, common)


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
            _side(row, "from") if row.get("from_status") else Text("(new)", "dim"),
            _side(row, "to"),
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


def _requests_detail(job: RemoteJob) -> Text:
    text = counters_text(job)
    if not progress_known(job):
        label = provider_label(job)
        text.append(f": {label} counts the requests done only when the whole batch ends")
    return text


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
    status = status_text(status_label(job), job.status.value)
    if job.status is JobStatus.UNKNOWN:
        status.append("  (not a status batchwatch knows)", style="dim")
    rows: list[tuple[str, RenderableType]] = [
        ("id", job.id),
        ("provider", provider_label(job)),
        ("status", status),
        ("model", job.model or "-"),
        ("endpoint", job.endpoint),
        ("requests", _requests_detail(job)),
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
