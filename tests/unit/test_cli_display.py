"""`batchwatch jobs` on a terminal: rich's table, drawn faster when it fits (the column widths
are handed to rich), and exactly as rich would draw it by measuring every cell."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console

from batchwatch.cli import display
from batchwatch.models import Counters, JobStatus, RemoteJob

NOW = 2_000_000_000


def jobs(count: int) -> list[RemoteJob]:
    rnd = random.Random(count)
    statuses = ["QUEUED", "RUNNING", "SUCCESS", "CANCELLATION_REQUESTED", "SOMETHING_NEW"]
    models = ["mistral-small-latest", "m", None, "codestral", "a-model-with-[brackets]-and-:x:"]
    names = ["x", "nightly eval", "[bold]not markup[/bold]", "两个字", "multi\nline"]
    found = []
    for n in range(count):
        status = rnd.choice(statuses)
        total = rnd.choice([0, 10, 12_345])
        failed = rnd.choice([0, 0, 3])
        started = NOW - rnd.randrange(10, 100_000) if status != "QUEUED" else None
        found.append(
            RemoteJob(
                id=f"8a1c7c3e-0000-4000-8000-{n:012d}",
                status=JobStatus.parse(status),
                raw_status=status,
                endpoint=rnd.choice(["/v1/chat/completions", "/v1/ocr"]),
                input_files=(),
                model=rnd.choice(models),
                agent_id=None,
                metadata={"job_name": rnd.choice(names)},
                output_file=None,
                error_file=None,
                errors=(),
                created_at=NOW - rnd.randrange(100, 10_000_000),
                started_at=started,
                completed_at=None,
                counters=Counters(total, min(total, 7), min(total, 7) - failed, failed),
            )
        )
    return found


def draw(table: object, width: int) -> str:
    buffer = io.StringIO()
    out = Console(file=buffer, force_terminal=True, width=width, color_system="truecolor")
    out.print(table)
    return buffer.getvalue()


@pytest.mark.parametrize("width", [40, 80, 119, 120, 140, 160, 200, 260])
@pytest.mark.parametrize("compact", [False, True])
def test_the_width_hint_changes_nothing_drawn(
    monkeypatch: pytest.MonkeyPatch, width: int, compact: bool
) -> None:
    monkeypatch.setattr("batchwatch.cli.display.time.time", lambda: NOW)
    terminal = Console(file=io.StringIO(), width=width)
    monkeypatch.setattr(display, "console", lambda: terminal)
    hinted = 0
    for count, model_free in ((0, False), (1, False), (30, False), (30, True)):
        listed = jobs(count)
        if model_free:  # short cells and one line each: the table fits wider terminals
            listed = [
                j
                for j in listed
                if "[" not in (j.model or "") and "\n" not in str((j.metadata or {})["job_name"])
            ]
        table = display.jobs_table(listed, title="Jobs", compact=compact)
        hinted += count > 1 and any(column.width is not None for column in table.columns)
        as_hinted = draw(table, width)
        for column in table.columns:
            column.width = None
        assert as_hinted == draw(table, width)
    if width >= 200 or (compact and width >= 119):
        assert hinted  # the hint is given where the table fits


def test_cells_are_shown_as_written_not_as_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Console(file=io.StringIO(), width=200)
    monkeypatch.setattr(display, "console", lambda: terminal)
    listed = [j for j in jobs(40) if (j.metadata or {}).get("job_name", "").startswith("[")]
    text = draw(display.jobs_table(listed[:1], compact=True), 200)
    assert "[bold]not markup[/bold]" in text
