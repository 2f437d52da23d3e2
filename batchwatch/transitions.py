"""Pure decisions: given what is stored and what was observed, what must be recorded?

No I/O and no clock: ``now`` is passed in, so every rule here is tested from tables of cases.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from batchwatch import providers
from batchwatch.models import (
    Counters,
    JobStatus,
    ProgressSample,
    RemoteJob,
    StoredJob,
    Transition,
    status_rank,
)


@dataclass(frozen=True, slots=True)
class JobWrite:
    """The new snapshot of one job, written only if the stored ``transition_count`` still
    equals ``expected_count`` (compare-and-set: a doubled daemon cannot record twice)."""

    job: RemoteJob
    is_new: bool
    expected_count: int
    new_count: int
    keep_status: bool  # an UNKNOWN observation: refresh fields, keep the last known status


@dataclass(frozen=True, slots=True)
class Skipped:
    job_id: str
    reason: str  # "unknown_status" | "stale_observation" | "terminal_changed"
    stored: str | None
    observed: str


@dataclass(frozen=True, slots=True)
class Changes:
    writes: tuple[JobWrite, ...] = ()
    transitions: tuple[Transition, ...] = ()
    progress: tuple[ProgressSample, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    touched: tuple[str, ...] = field(default=())  # seen unchanged: only last_seen_at moves

    @property
    def empty(self) -> bool:
        return not (self.writes or self.touched)


def plan(
    stored: Mapping[str, StoredJob],
    observed: Iterable[RemoteJob],
    now: datetime,
    source: str = "poll",
) -> Changes:
    """The writes, transitions and progress samples that ``observed`` implies.

    A transition is recorded only when the observed status is known and lies further along
    the lifecycle than the stored one; anything else (an unknown status string, a stale page
    showing an older status) refreshes nothing that could fake history.
    """
    writes: list[JobWrite] = []
    transitions: list[Transition] = []
    progress: list[ProgressSample] = []
    skipped: list[Skipped] = []
    touched: list[str] = []
    for job in latest_by_id(observed):
        before = stored.get(job.id)
        decision = _decide(before, job)
        if isinstance(decision, Skipped):
            skipped.append(decision)
            if decision.reason != "unknown_status":
                continue  # stale or anomalous: older data must not overwrite newer
            # An unknown status: keep the fields fresh and the last known status.
            writes.append(
                _write(before, job, changed=False, keep_status=True)
                if before is not None
                else JobWrite(job, True, 0, 0, keep_status=False)
            )
        elif before is not None and not decision and before.remote == job:
            touched.append(job.id)
            continue
        else:
            if decision:
                transitions.append(_transition(before, job, now, source))
            writes.append(
                _write(before, job, changed=decision, keep_status=False)
                if before is not None
                else JobWrite(job, True, 0, 1, keep_status=False)
            )
        if before is None or before.remote.counters != job.counters:
            progress.append(ProgressSample(job_id=job.id, observed_at=now, counters=job.counters))
    return Changes(
        tuple(writes), tuple(transitions), tuple(progress), tuple(skipped), tuple(touched)
    )


def _transition(before: StoredJob | None, job: RemoteJob, now: datetime, source: str) -> Transition:
    return Transition(
        job_id=job.id,
        seq=(before.transition_count if before else 0) + 1,
        # A stored job with no transition yet was only ever seen in an unknown status:
        # this is its first known sighting.
        from_status=before.status if before and before.transition_count else None,
        to_status=job.status,
        observed_at=now,
        last_seen_before=before.last_seen_at if before else None,
        source=source,
        from_provider_status=_known_raw(before) if before and before.transition_count else None,
        to_provider_status=job.raw_status,
    )


def _known_raw(before: StoredJob) -> str | None:
    """The provider status the stored job was last known in (an unknown one, kept as sent
    while the status stayed, is not a status it was in)."""
    raw = before.remote.raw_status
    return raw if providers.stage(before.remote.provider, raw) is not None else None


def _write(before: StoredJob, job: RemoteJob, *, changed: bool, keep_status: bool) -> JobWrite:
    count = before.transition_count
    return JobWrite(job, False, count, count + 1 if changed else count, keep_status)


def _decide(before: StoredJob | None, job: RemoteJob) -> bool | Skipped:
    """True: record a transition. False: no transition, refresh the snapshot. Skipped: ignore."""
    new_rank = status_rank(job.status)
    if new_rank is None:
        return Skipped(job.id, "unknown_status", before.status if before else None, job.raw_status)
    if before is None or before.transition_count == 0:
        return True  # first (known) sighting
    old_rank = status_rank(before.status)
    if before.status == job.status:
        return _within_status(before, job)
    if old_rank is not None and new_rank < old_rank:
        return Skipped(job.id, "stale_observation", before.status, job.raw_status)
    if before.status.is_terminal:
        # A terminal status is never left; a different terminal one is an upstream anomaly,
        # kept out of the history rather than recorded as a second ending.
        return Skipped(job.id, "terminal_changed", before.status, job.raw_status)
    return True


def _within_status(before: StoredJob, job: RemoteJob) -> bool | Skipped:
    """The common status did not change: a transition if the provider's own status moved
    on (OpenAI's in_progress → finalizing), stale if it moved back, else nothing."""
    old, new = _stage(before.remote), _stage(job)
    if old is None or new is None or old == new:
        return False
    if new < old:
        return Skipped(job.id, "stale_observation", before.remote.raw_status, job.raw_status)
    return True


def _stage(job: RemoteJob) -> int | None:
    return providers.stage(job.provider, job.raw_status)


def _position(job: RemoteJob) -> tuple[int, int]:
    """How far along its life an observation is: common status first, then the
    provider's own within it; unknown statuses first of all."""
    return (status_rank(job.status) or -1, _stage(job) or 0)


def latest_by_id(observed: Iterable[RemoteJob]) -> list[RemoteJob]:
    """One observation per job. Two reads of one job in a cycle (a list page and a ``get``)
    keep the one furthest along, so a stale page never hides a later ``get``."""
    best: dict[str, RemoteJob] = {}
    for job in observed:
        current = best.get(job.id)
        if current is None or _position(job) >= _position(current):
            best[job.id] = job
    return list(best.values())


def departed(stored_active: Collection[str], seen: Collection[str]) -> list[str]:
    """Stored-active jobs that no active listing nor discovery returned this cycle: each
    needs one ``get`` to learn how it ended (or that it moved while the pages were read)."""
    seen_set = set(seen)
    return sorted(job_id for job_id in stored_active if job_id not in seen_set)


# ---- progress history: which samples are kept -----------------------------------------------

#: A job's progress curve is kept to within this fraction of its total requests.
CURVE_TOLERANCE_PERCENT = 1
#: A sample this long after the one before it is kept even if the counters barely moved: the
#: curve then shows when a quiet job was last seen moving, and a rate over the quiet stretch.
QUIET = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Point:
    """One progress sample as the keep/drop rule sees it."""

    observed_at: datetime
    status: JobStatus | None  # the job's status when observed; None on rows from before 0005
    counters: Counters


def redundant(kept: Point, later: Point) -> bool:
    """Whether ``later`` adds nothing to the curve after ``kept``: same status, not a long
    quiet time later, and every counter within ``CURVE_TOLERANCE_PERCENT`` of the total."""
    if later.status is None or later.status != kept.status:
        return False
    if later.observed_at - kept.observed_at > QUIET:
        return False
    a, b = kept.counters, later.counters
    if a.total != b.total:
        return False
    moved = max(abs(a.completed - b.completed), abs(a.succeeded - b.succeeded))
    moved = max(moved, abs(a.failed - b.failed))
    return 100 * moved <= CURVE_TOLERANCE_PERCENT * b.total


def replaces_newest(tail: Sequence[Point], observed: Point) -> bool:
    """Whether ``observed`` overwrites the job's newest stored sample (True) or is stored as a
    new one (False). ``tail``: the job's last two stored samples, oldest first (fewer if it
    has fewer).

    The curve is drawn as steps: at any instant a counter has the value of the latest kept
    sample at or before it (between two observations nothing is known to have moved, so
    that is also what the full history shows). The newest sample is the one that may be
    overwritten, and only while it is ``redundant`` after the sample before it: every value
    ever written into it was then within 1% of that earlier sample, whose step covers the
    time they were observed. So the kept curve is never off by more than 1% of the total,
    the latest observation is always stored, and a status change freezes the newest sample
    (the next one has another status): the first and last sample of every status stay.
    """
    if len(tail) < 2:
        return False
    before, newest = tail[-2], tail[-1]
    return observed.status == newest.status and redundant(before, newest)


def thin(points: Sequence[Point]) -> list[int]:
    """The indexes of ``points`` (one job's samples, oldest first) that are kept when they
    arrive one by one under ``replaces_newest``; thinning kept points again keeps them all."""
    kept: list[int] = []
    for n, point in enumerate(points):
        if replaces_newest([points[i] for i in kept[-2:]], point):
            kept[-1] = n
        else:
            kept.append(n)
    return kept


def status_at(
    changes: Sequence[tuple[datetime, JobStatus]], observed_at: datetime
) -> JobStatus | None:
    """The status a job had at ``observed_at``, from its transitions (instant, new status)
    oldest first; a sample and the transition of the same cycle share their instant."""
    found = None
    for at, status in changes:
        if at > observed_at:
            break
        found = status
    return found
