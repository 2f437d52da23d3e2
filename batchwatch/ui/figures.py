"""Pure: what a page shows of a job's progress (share done, rate, ETA, outcome counts) and
the server-side SVG charts (a progress curve, a status timeline), as coordinates that the
templates draw. No I/O, ``now`` passed in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from batchwatch.models import ProgressSample, RemoteJob, Transition
from batchwatch.providers import progress_known

#: The most points a progress curve is drawn with: 10,000 samples drawn as they are made a
#: page of 400 kB and cost the job page most of its time budget.
MAX_POINTS = 500
#: The window the rate of a job page is measured over (its latest samples).
RATE_WINDOW = timedelta(minutes=10)
WIDTH, HEIGHT, PAD = 800, 200, 30


@dataclass(frozen=True, slots=True)
class Outlook:
    """A job's progress as a list row shows it."""

    percent: float
    completed: int
    total: int
    succeeded: int
    failed: int
    not_run: int  # requests not completed (still to run, or never run once it ended)
    rate: float | None  # requests per second
    eta: datetime | None
    #: Whether the counts say how far the job is: not while an Anthropic batch runs, whose
    #: counts stay in ``processing`` until it ends. The page then says "unknown", never a
    #: 0% bar, nor a rate or an ETA computed from zeros.
    known: bool = True


def outlook(job: RemoteJob, now: datetime, rate: float | None = None) -> Outlook:
    """The row figures; ``rate`` defaults to the job's average since it started."""
    c = job.counters
    if not progress_known(job):
        return Outlook(0.0, 0, c.total, 0, 0, c.total, None, None, known=False)
    started = job.started_at
    if rate is None and started is not None and not job.status.is_terminal:
        seconds = now.timestamp() - started
        rate = c.completed / seconds if seconds > 0 else None
    left = max(c.total - c.completed, 0)
    eta = None
    if rate and left and not job.status.is_terminal:
        eta = now + timedelta(seconds=left / rate)
    percent = 100.0 * c.completed / c.total if c.total else 0.0
    return Outlook(percent, c.completed, c.total, c.succeeded, c.failed, left, rate, eta)


def recent_rate(samples: Sequence[ProgressSample]) -> float | None:
    """Requests per second over the samples of the last ``RATE_WINDOW`` (None: too few)."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    first = last
    for s in reversed(samples):
        if last.observed_at - s.observed_at > RATE_WINDOW:
            break
        first = s
    seconds = (last.observed_at - first.observed_at).total_seconds()
    if seconds <= 0:
        return None
    return max(last.counters.completed - first.counters.completed, 0) / seconds


def downsample(samples: Sequence[ProgressSample], limit: int = MAX_POINTS) -> list[ProgressSample]:
    """At most ``limit`` samples, evenly spread, the first and the last kept."""
    if len(samples) <= limit:
        return list(samples)
    step = (len(samples) - 1) / (limit - 1)
    return [samples[round(k * step)] for k in range(limit)]


@dataclass(frozen=True, slots=True)
class Curve:
    """The progress chart: a polyline, the ETA's dashed projection, axis labels."""

    points: str
    projection: str | None
    start: datetime
    end: datetime
    total: int
    drawn: int


def _x(at: datetime, start: datetime, span: float) -> float:
    return PAD + (WIDTH - 2 * PAD) * ((at - start).total_seconds() / span)


def curve(samples: Sequence[ProgressSample], eta: datetime | None) -> Curve | None:
    """The completed count over time, downsampled, projected to the total at ``eta``."""
    if not samples:
        return None
    shown = downsample(samples)
    start, last = shown[0].observed_at, shown[-1].observed_at
    end = max(last, eta) if eta else last
    span = max((end - start).total_seconds(), 1.0)
    total = max([1, *(s.counters.total for s in shown)])

    def y(count: int) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (count / total)

    points = " ".join(
        f"{_x(s.observed_at, start, span):.1f},{y(s.counters.completed):.1f}" for s in shown
    )
    projection = None
    if eta is not None:
        x0, y0 = _x(last, start, span), y(shown[-1].counters.completed)
        projection = f"{x0:.1f},{y0:.1f} {_x(eta, start, span):.1f},{y(total):.1f}"
    return Curve(points, projection, start, end, total, len(shown))


@dataclass(frozen=True, slots=True)
class Span:
    """One status on the timeline: from x to x + width; ``doubt`` is where the change into
    it happened somewhere between (``last_seen_before`` to ``observed_at``)."""

    status: str
    x: float
    width: float
    doubt_x: float
    doubt_width: float
    since: datetime
    seen_before: datetime | None
    #: Where its label goes: a second row when the previous label would overlap it, and
    #: anchored at its end when it would run past the chart's right edge.
    label_x: float = 0.0
    label_y: float = 58.0
    label_anchor: str = "start"
    #: The label's text: the status, and the provider's own where it differs (a transition
    #: within RUNNING, OpenAI's in_progress -> finalizing, would otherwise show twice alike).
    label: str = ""


#: About the width of one label character, in chart units (the labels' font size is 12).
_CHAR = 7.5


def _placed(spans: list[Span]) -> list[Span]:
    placed: list[Span] = []
    ends = {58.0: -1e9, 72.0: -1e9}  # each label row: where its last label ends
    for s in spans:
        width = _CHAR * len(s.label or s.status)
        x, anchor = s.x + 2, "start"
        if x + width > WIDTH:
            x, anchor = WIDTH - 2, "end"
        left = x - width if anchor == "end" else x
        row = 58.0 if left > ends[58.0] + 6 else 72.0
        ends[row] = left + width
        placed.append(replace(s, label_x=x, label_y=row, label_anchor=anchor))
    return placed


def timeline(found: Sequence[Transition], now: datetime) -> list[Span]:
    """Each status the job held, as a band from its change to the next one (or ``now``)."""
    if not found:
        return []
    start = min(t.last_seen_before or t.observed_at for t in found)
    end = max(now, found[-1].observed_at)
    span = max((end - start).total_seconds(), 1.0)
    spans = []
    for k, t in enumerate(found):
        until = found[k + 1].observed_at if k + 1 < len(found) else end
        x, x_end = _x(t.observed_at, start, span), _x(until, start, span)
        doubt = _x(t.last_seen_before, start, span) if t.last_seen_before else x
        spans.append(
            Span(
                t.to_status.value,
                x,
                max(x_end - x, 1.0),
                doubt,
                x - doubt,
                t.observed_at,
                t.last_seen_before,
                label=_label(t.to_status.value, t.to_provider_status),
            )
        )
    return _placed(spans)


def _label(common: str, raw: str | None) -> str:
    return common if not raw or raw == common else f"{common} ({raw})"


def unix(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None
