"""Domain types shared by every layer: statuses, remote jobs, stored history records.

Nothing here does I/O. Records are frozen so a value read from Mistral or the database
cannot be changed behind the back of the code that compares it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal


class JobStatus(enum.StrEnum):
    """batchwatch's common statuses: Mistral's seven ``BatchJobStatus`` values, plus
    ``UNKNOWN`` for anything else. OpenAI's and Anthropic's statuses map onto them
    (``providers``), and are kept as sent beside them."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    TIMEOUT_EXCEEDED = "TIMEOUT_EXCEEDED"
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, raw: object) -> JobStatus:
        """A status string from the wire; anything unrecognised is ``UNKNOWN``, never an error."""
        found = cls._value2member_map_.get(raw if isinstance(raw, str) else str(raw))
        return found if isinstance(found, JobStatus) else cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


#: The statuses in which Mistral may still change a job: these are what a poll lists.
ACTIVE_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLATION_REQUESTED}
)
#: The statuses a job never leaves.
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset(
    {JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.TIMEOUT_EXCEEDED, JobStatus.CANCELLED}
)
#: The real Mistral statuses (``UNKNOWN`` is ours, never sent upstream).
MISTRAL_STATUSES: tuple[JobStatus, ...] = tuple(s for s in JobStatus if s is not JobStatus.UNKNOWN)

#: Mistral's ``ApiEndpoint`` enum: the endpoints a batch job may target.
API_ENDPOINTS: tuple[str, ...] = (
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/fim/completions",
    "/v1/moderations",
    "/v1/chat/moderations",
    "/v1/ocr",
    "/v1/classifications",
    "/v1/chat/classifications",
    "/v1/conversations",
    "/v1/audio/transcriptions",
)

# The same two lists as types, for the schemas that validate them (an OpenAPI ``enum``).
# Built from the tuples above, so there is one list of each; a type checker sees ``str``.
if TYPE_CHECKING:
    StatusName = str
    EndpointName = str
else:
    StatusName = Literal[tuple(s.value for s in MISTRAL_STATUSES)]
    EndpointName = Literal[API_ENDPOINTS]

# How far along its life a status is. A job only moves forward, so an observation with a
# lower rank than the stored one is stale (a list page read before the change landed) and
# must not be recorded as a transition backwards.
_RANK: dict[JobStatus, int] = {
    JobStatus.QUEUED: 0,
    JobStatus.RUNNING: 1,
    JobStatus.CANCELLATION_REQUESTED: 2,
    JobStatus.SUCCESS: 3,
    JobStatus.FAILED: 3,
    JobStatus.TIMEOUT_EXCEEDED: 3,
    JobStatus.CANCELLED: 3,
}


def status_rank(status: JobStatus) -> int | None:
    """The lifecycle position of ``status``; ``None`` for ``UNKNOWN``."""
    return _RANK.get(status)


class JobOrigin(enum.StrEnum):
    """How batchwatch came to know a job (a transition's ``source`` is something else: what
    recorded that one change, the poller or an action)."""

    DISCOVERED = "discovered"  # seen in a list of the workspace's jobs
    CREATED = "created"  # created through batchwatch
    TRACKED = "tracked"  # added by hand with `track`


@dataclass(frozen=True, slots=True)
class BatchError:
    message: str
    count: int = 1


#: The largest request count a job can report: a signed 32-bit integer, in which the
#: progress history stores each count. Mistral allows a million requests in a batch.
MAX_COUNT = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Counters:
    """The request counters Mistral reports for a job; a change is a progress sample. Each is
    between 0 and ``MAX_COUNT`` (the edge refuses a job whose counters are not)."""

    total: int
    completed: int
    succeeded: int
    failed: int


@dataclass(frozen=True, slots=True)
class RemoteJob:
    """A batch job as its provider reported it, parsed at the edge (each provider package's
    ``wire.py``). ``status`` is the common status, ``raw_status`` the provider's own, as
    sent; the other fields are the common ones every provider's job is read into."""

    id: str
    status: JobStatus
    raw_status: str
    endpoint: str
    input_files: tuple[str, ...]
    model: str | None
    agent_id: str | None
    metadata: Mapping[str, Any] | None
    output_file: str | None
    error_file: str | None
    errors: tuple[BatchError, ...]
    created_at: int
    started_at: int | None
    completed_at: int | None
    counters: Counters
    #: Which API the job lives in (``providers.PROVIDERS``).
    provider: str = "mistral"


@dataclass(frozen=True, slots=True)
class StoredJob:
    """What the store holds about a job: its latest snapshot plus batchwatch's bookkeeping."""

    remote: RemoteJob
    origin: JobOrigin
    first_seen_at: datetime
    last_seen_at: datetime
    transition_count: int
    deleted_upstream_at: datetime | None = None

    @property
    def id(self) -> str:
        return self.remote.id

    @property
    def status(self) -> JobStatus:
        return self.remote.status


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded status change.

    ``from_status`` is ``None`` on the first sighting. The change happened somewhere between
    ``last_seen_before`` (the last time the job was seen in ``from_status``) and
    ``observed_at``.
    """

    job_id: str
    seq: int
    from_status: JobStatus | None
    to_status: JobStatus
    observed_at: datetime
    last_seen_before: datetime | None
    source: str = "poll"
    id: int | None = None
    #: The provider's own statuses either side (``from_status``/``to_status`` are common):
    #: OpenAI's in_progress → finalizing is a transition whose common status stays RUNNING.
    from_provider_status: str | None = None
    to_provider_status: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressSample:
    """A job's counters as observed at one instant."""

    job_id: str
    observed_at: datetime
    counters: Counters
    #: The sample's number within its job (1, 2, 3, ... as stored); None before it is stored.
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a Mistral list response."""

    jobs: tuple[RemoteJob, ...]
    total: int
    #: Items that could not be parsed (a field missing, a wrong type): left out of ``jobs``
    #: rather than failing the page, so one bad job cannot stop all polling.
    malformed: int = 0


@dataclass(frozen=True, slots=True)
class FileInfo:
    id: str
    filename: str
    bytes: int
    purpose: str
    num_lines: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Query parameters of Mistral's list operation (``GET /v1/batch/jobs``)."""

    statuses: tuple[JobStatus, ...] = ()
    model: str | None = None
    agent_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_after: datetime | None = None
    created_by_me: bool = False
    order_by: str = "-created"


class IntentState(enum.StrEnum):
    PENDING = "pending"  # written before the create went upstream; outcome not yet known
    CREATED = "created"  # the job exists upstream and is recorded
    FAILED = "failed"  # Mistral refused the request; nothing was created


@dataclass(frozen=True, slots=True)
class CreateIntent:
    """A create under one Idempotency-Key, recorded before it goes upstream."""

    key: str
    request_id: str
    request_hash: str
    body: Mapping[str, Any]
    state: IntentState
    job_id: str | None
    error: str | None
    error_status: int | None
    requested_by: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """Someone asked batchwatch to create, cancel or track a job."""

    job_id: str
    action: str
    requested_by: str
    requested_at: datetime
    status_after: str
    id: int | None = None


# ---- results of ended jobs ---------------------------------------------------------------


class ResultsState(enum.StrEnum):
    PENDING = "pending"  # to be fetched (again, after a failed attempt, at next_attempt_at)
    DOWNLOADING = "downloading"  # an attempt is running
    READY = "ready"  # every file on disk with its sha256, the ledger complete
    UNAVAILABLE = "unavailable"  # a file is gone upstream (``reason``); not tried again


class Outcome(enum.StrEnum):
    """What became of one request of a job."""

    SUCCEEDED = "succeeded"  # a 2xx response
    FAILED = "failed"  # an error line, or a non-2xx response
    NOT_RUN = "not_run"  # in the input, in neither the output nor the error file


@dataclass(frozen=True, slots=True)
class ResultFile:
    """One downloaded file of a job's results, complete on disk."""

    kind: str  # input | output | error
    n: int  # the n-th file of its kind, from 1 (a job may have several inputs)
    file_id: str | None  # None: inline outputs, written from the job itself
    bytes: int
    sha256: str
    path: str


@dataclass(frozen=True, slots=True)
class RequestCounts:
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    not_run: int = 0


@dataclass(frozen=True, slots=True)
class TokenUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True, slots=True)
class JobResults:
    """Where fetching a job's results stands, and (once ready) what they hold."""

    job_id: str
    state: ResultsState
    reason: str | None
    attempts: int
    next_attempt_at: datetime
    updated_at: datetime
    files: tuple[ResultFile, ...] = ()
    counts: RequestCounts | None = None
    usage: TokenUsage | None = None
