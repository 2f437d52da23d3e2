"""The dashboard's timeline, pure: labels of close changes do not overlap, and a label
near the right edge stays inside the chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from batchwatch.models import JobStatus, Transition
from batchwatch.ui.figures import WIDTH, timeline

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def change(seq: int, to: JobStatus, at: timedelta) -> Transition:
    return Transition("j", seq, None, to, T0 + at, T0 + at - timedelta(seconds=1))


def test_labels_of_close_changes_take_two_rows_and_stay_inside() -> None:
    spans = timeline(
        [
            change(1, JobStatus.QUEUED, timedelta(0)),
            change(2, JobStatus.RUNNING, timedelta(seconds=1)),
            change(3, JobStatus.CANCELLATION_REQUESTED, timedelta(seconds=99)),
        ],
        T0 + timedelta(seconds=100),
    )
    queued, running, cancelling = spans
    assert queued.label_y != running.label_y  # a second apart: one above the other
    assert cancelling.label_anchor == "end" and cancelling.label_x <= WIDTH
