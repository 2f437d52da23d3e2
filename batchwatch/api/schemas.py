"""The local API's JSON shapes. The job shapes are Mistral's, so its SDK parses them, with
two fields of batchwatch's own: ``provider`` and ``provider_status``."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field, create_model
from pydantic_core import PydanticCustomError

from batchwatch.events import transition_data
from batchwatch.models import ActionRecord, ProgressSample, RemoteJob, Transition
from batchwatch.providers import PROVIDERS
from batchwatch.providers.mistral.schemas import METADATA_KEY, PLAIN_TEXT, FilePurpose
from batchwatch.providers.mistral.wire import JOB_FIELDS, job_to_json

#: A provider's name, as a query parameter takes it (an OpenAPI ``enum``).
if TYPE_CHECKING:
    ProviderName = str
else:
    ProviderName = Literal[PROVIDERS]

#: What the ``/v1`` job shapes add to Mistral's ``BatchJob`` (its SDK ignores the extra keys).
_EXTRA_FIELDS: dict[str, Any] = {
    "provider": (ProviderName, Field(description="the API the job lives in")),
    "provider_status": (str, Field(description="the status as the provider sent it")),
}


def job_body(job: RemoteJob) -> dict[str, Any]:
    """A job as the ``/v1/batch/jobs`` routes answer: Mistral's ``BatchJob`` plus its
    ``provider`` and ``provider_status``. ``status`` is the common status; for a Mistral
    job it stays exactly what Mistral sent (a status this version does not know included),
    as before providers, so the pair is equal for Mistral jobs."""
    body = job_to_json(job)
    if job.provider != "mistral":
        body["status"] = job.status.value
    body["provider"] = job.provider
    body["provider_status"] = job.raw_status
    return body


def _job_model() -> type[BaseModel]:
    """Mistral's ``BatchJob`` as a pydantic model, made from wire's one definition of a
    job's fields: what the job routes declare, so /openapi.json describes the job exactly
    (Mistral's SDK parses the answers, a fuzzer checks them against it)."""
    fields: dict[str, Any] = {f.key: (f.hint, ... if f.required else f.default) for f in JOB_FIELDS}
    return create_model(
        "BatchJobOut",
        __doc__="Mistral's ``BatchJob``, from the latest recorded snapshot, with its provider.",
        **fields,
        **_EXTRA_FIELDS,
    )


# A model made at run time; a type checker sees the base class (as models.py does for
# ``StatusName``).
if TYPE_CHECKING:
    BatchJobOut = BaseModel
else:
    BatchJobOut = _job_model()


class ListBatchJobsOut(BaseModel):
    """Mistral's ``ListBatchJobsResponse``."""

    object: Literal["list"] = "list"
    data: list[BatchJobOut]
    total: int


class TransitionOut(BaseModel):
    id: int
    job_id: str
    seq: int = Field(description="1 for the first sighting, then one more per change")
    from_status: str | None = Field(description="null on the first sighting of the job")
    to_status: str
    from_provider_status: str | None = Field(
        description="the provider's own status before (null on the first sighting)"
    )
    to_provider_status: str | None = Field(
        description="the provider's own status after, as sent (null if not recorded)"
    )
    observed_at: datetime = Field(description="when batchwatch saw the new status (UTC)")
    last_seen_before: datetime | None = Field(
        description="the last time the job was seen in from_status: the change happened "
        "between this and observed_at"
    )
    source: str = Field(description="poll, create, cancel or track")


def transition_body(t: Transition) -> dict[str, Any]:
    """A transition as ``TransitionOut``'s JSON: the routes answer with it (see
    ``reads.json_response``), the model declares it; events carry the same, without the feed id."""
    return {"id": t.id or 0, **transition_data(t)}


class TransitionListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[TransitionOut]
    total: int


class TransitionFeedOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[TransitionOut]
    next_cursor: int = Field(description="pass as ?after= to read what comes next")


class ProgressOut(BaseModel):
    # Named ``id`` since the first API version; the value is the sample's number within its
    # job (the store keeps no other id for a sample).
    id: int = Field(description="the sample's number within its job: 1, 2, 3, ... oldest first")
    job_id: str
    observed_at: datetime
    total_requests: int
    completed_requests: int
    succeeded_requests: int
    failed_requests: int


def progress_body(p: ProgressSample) -> dict[str, Any]:
    """A progress sample as ``ProgressOut``'s JSON, as ``transition_body`` is; its ``id`` is
    the sample's number within its job."""
    counters = p.counters
    return {
        "id": p.seq or 0,
        "job_id": p.job_id,
        "observed_at": p.observed_at,
        "total_requests": counters.total,
        "completed_requests": counters.completed,
        "succeeded_requests": counters.succeeded,
        "failed_requests": counters.failed,
    }


class ProgressListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ProgressOut]
    total: int


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str]
    started_at: str
    last_poll_at: str | None
    last_success_at: str | None
    last_error: str | None
    consecutive_failures: int
    cycles: int
    jobs_by_status: dict[str, int] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    detail: Any


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _date_time_text(value: object) -> object:
    # Pydantic would also take a number as a Unix time; the schema says date-time, and a
    # client sending 0.5 has a bug we should tell it about.
    if isinstance(value, str) and not _DATE_TIME.match(value):
        raise PydanticCustomError(
            "datetime_type", "Input should be an RFC 3339 date-time, like 2026-01-31T12:00:00Z"
        )
    return value


#: A date-time given as text (a query parameter): RFC 3339 only; naive means UTC.
DateTimeText = Annotated[datetime, BeforeValidator(_date_time_text)]
#: Mistral's ``FilePurpose``: any other value is refused upstream, so it is refused here. An
#: empty form field counts as absent (the form convention FastAPI follows), so it is listed.
UploadPurpose = Literal[FilePurpose, ""]


class ActionOut(BaseModel):
    id: int
    job_id: str
    action: str = Field(description="create, cancel or track")
    requested_by: str = Field(description="who asked: cli, api, sdk, ...")
    requested_at: datetime
    status_after: str = Field(description="the job's status Mistral answered with")

    @classmethod
    def of(cls, a: ActionRecord) -> ActionOut:
        return cls(
            id=a.id or 0,
            job_id=a.job_id,
            action=a.action,
            requested_by=a.requested_by,
            requested_at=a.requested_at,
            status_after=a.status_after,
        )


class ActionListOut(BaseModel):
    object: Literal["list"] = "list"
    data: list[ActionOut]
    total: int


# ---- what /openapi.json declares beyond the models ----------------------------------------


def error_response(description: str) -> dict[str, object]:
    return {"model": ErrorOut, "description": description}


# What any route may answer besides its success: declared, so /openapi.json is the whole
# truth and a client (or a fuzzer) meets no undocumented status.
COMMON_ERRORS: dict[int | str, dict[str, object]] = {
    401: error_response("missing or wrong bearer token"),
    413: error_response("request body over the limit; detail names it"),
    422: error_response("a malformed parameter or body; detail names the field"),
    503: error_response("the database is unavailable; retry later"),
}
NOT_FOUND: dict[int | str, dict[str, object]] = {404: error_response("no tracked job with this id")}
BAD_BODY: dict[int | str, dict[str, object]] = {
    400: error_response("a body that cannot be parsed at all (not UTF-8, broken multipart)")
}
# Create, cancel, track and upload go to Mistral: its refusal (a 4xx) passes through with
# its status; its own fault is a 502.
UPSTREAM_ERRORS: dict[int | str, dict[str, object]] = {
    "4XX": error_response("Mistral refused the request; its status passes through"),
    502: error_response("Mistral failed or refused batchwatch's API key"),
    503: error_response("the database is unavailable, or Mistral's answer is unknown: retry"),
}

# Query keys Mistral's list defines; any other key is a flattened metadata filter, which is
# how the official SDKs send ``metadata={...}``.
LIST_KEYS = frozenset(
    {
        "page",
        "page_size",
        "model",
        "agent_id",
        "metadata",
        "created_after",
        "created_by_me",
        "status",
        "order_by",
        "provider",
    }
)
# Mistral's list declares ``metadata`` as an object sent form-exploded (``?team=search``);
# FastAPI cannot express that from a signature, so it is declared by hand.
METADATA_PARAMETER = {
    "name": "metadata",
    "in": "query",
    "required": False,
    "style": "form",
    "explode": True,
    "description": "filter on metadata: each other query key is a metadata key to match",
    "schema": {
        "type": "object",
        "propertyNames": {
            "minLength": 1,
            "maxLength": 32,
            "pattern": METADATA_KEY,
            "not": {"enum": sorted(LIST_KEYS)},
        },
        "additionalProperties": {"type": "string", "pattern": PLAIN_TEXT},
    },
}
