"""Each provider's statuses as the pure core sees them: the mapping to common statuses,
the order within one common status, and what a change of the provider's own status
records. Plus the wire: a provider's job JSON read into the common record."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from batchwatch import providers
from batchwatch.errors import ApiError
from batchwatch.models import JobOrigin, JobStatus, RemoteJob, StoredJob
from batchwatch.providers.anthropic import wire as anthropic_wire
from batchwatch.providers.openai import wire as openai_wire
from batchwatch.transitions import plan
from tests.helpers import remote

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
S = JobStatus


def job(provider: str, raw: str, status: JobStatus) -> RemoteJob:
    return replace(remote("RUNNING"), provider=provider, raw_status=raw, status=status)


def stored(observed: RemoteJob) -> StoredJob:
    return StoredJob(observed, JobOrigin.DISCOVERED, T0, T0, transition_count=2)


@pytest.mark.parametrize(
    ("provider", "before", "after", "recorded"),
    [
        # OpenAI: a change of its own status within one common status is a transition.
        ("openai", ("in_progress", S.RUNNING), ("finalizing", S.RUNNING), True),
        ("openai", ("finalizing", S.RUNNING), ("in_progress", S.RUNNING), False),  # stale
        ("openai", ("validating", S.QUEUED), ("in_progress", S.RUNNING), True),
        ("openai", ("cancelling", S.CANCELLATION_REQUESTED), ("cancelled", S.CANCELLED), True),
        ("openai", ("completed", S.SUCCESS), ("completed", S.SUCCESS), False),
        ("anthropic", ("in_progress", S.RUNNING), ("canceling", S.CANCELLATION_REQUESTED), True),
        ("anthropic", ("in_progress", S.RUNNING), ("ended", S.SUCCESS), True),
        ("anthropic", ("in_progress", S.RUNNING), ("in_progress", S.RUNNING), False),
        ("mistral", ("RUNNING", S.RUNNING), ("RUNNING", S.RUNNING), False),
    ],
)
def test_a_provider_status_change_is_a_transition_only_forward(
    provider: str,
    before: tuple[str, JobStatus],
    after: tuple[str, JobStatus],
    recorded: bool,
) -> None:
    old, new = job(provider, *before), job(provider, *after)
    changes = plan({old.id: stored(old)}, [new], T0 + timedelta(minutes=1))
    assert bool(changes.transitions) is recorded
    if recorded:
        (t,) = changes.transitions
        assert (t.from_status, t.to_status) == (before[1], after[1])
        assert (t.from_provider_status, t.to_provider_status) == (before[0], after[0])


def test_every_provider_status_maps_to_a_common_one_or_is_resolved_by_the_job() -> None:
    for name in providers.PROVIDERS:
        entry = providers.provider(name)
        assert set(entry.statuses) == set(entry.stages)
        for raw, common in entry.statuses.items():
            assert common is None or common is not JobStatus.UNKNOWN, (name, raw)


@pytest.mark.parametrize(
    ("job_id", "provider"),
    [
        ("batch_abc123", "openai"),
        ("msgbatch_01HkcTjaV5uDC8jWR4ZsDV8d", "anthropic"),
        ("3f2a9a8e-6c8b-4d0e-9a51-2b8c1f1e0a77", "mistral"),
        ("something-else", "mistral"),
    ],
)
def test_a_job_id_tells_its_provider(job_id: str, provider: str) -> None:
    assert providers.provider_of_id(job_id) == provider


def openai_batch(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions",
        "input_file_id": "file-in", "completion_window": "24h", "status": "in_progress",
        "created_at": 1_795_000_000, "in_progress_at": 1_795_000_010,
        "request_counts": {"total": 10, "completed": 6, "failed": 2},
        "output_file_id": None, "error_file_id": None, "errors": None, "metadata": {"a": "b"},
    }  # fmt: skip
    return body | changes


def test_an_openai_batch_reads_into_the_common_record() -> None:
    parsed = openai_wire.parse_job(openai_batch())
    assert (parsed.status, parsed.raw_status, parsed.provider) == (
        S.RUNNING,
        "in_progress",
        "openai",
    )
    # OpenAI's "completed" count is the successes; batchwatch's completed is every answer.
    assert (parsed.counters.total, parsed.counters.completed) == (10, 8)
    assert (parsed.counters.succeeded, parsed.counters.failed) == (6, 2)
    assert parsed.input_files == ("file-in",) and parsed.started_at == 1_795_000_010


def test_an_expired_openai_batch_does_not_count_unrun_requests_as_failed() -> None:
    parsed = openai_wire.parse_job(
        openai_batch(status="expired", expired_at=1_795_090_000,
                     request_counts={"total": 10, "completed": 4, "failed": 1})
    )  # fmt: skip
    assert parsed.status is S.TIMEOUT_EXCEEDED and parsed.completed_at == 1_795_090_000
    assert parsed.counters.completed == 5  # five never ran: neither succeeded nor failed


def test_an_openai_batch_in_an_unknown_status_is_kept_as_sent() -> None:
    parsed = openai_wire.parse_job(openai_batch(status="paused"))
    assert (parsed.status, parsed.raw_status) == (S.UNKNOWN, "paused")


def test_a_malformed_openai_batch_is_a_retryable_error() -> None:
    with pytest.raises(ApiError) as caught:
        openai_wire.parse_job(openai_batch(created_at="yesterday"))
    assert caught.value.retryable and "created_at" in caught.value.message


def message_batch(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "msgbatch_1", "type": "message_batch", "processing_status": "ended",
        "request_counts": {"processing": 0, "succeeded": 7, "errored": 1, "canceled": 0,
                           "expired": 0},
        "created_at": "2026-12-03T12:00:00Z", "ended_at": "2026-12-03T12:30:00.5Z",
        "expires_at": "2026-12-04T12:00:00Z", "cancel_initiated_at": None,
        "archived_at": None, "results_url": "https://api.anthropic.com/v1/messages/batches/msgbatch_1/results",
    }  # fmt: skip
    return body | changes


@pytest.mark.parametrize(
    ("counts", "cancel_initiated", "expected"),
    [
        ({"succeeded": 7, "errored": 1}, False, S.SUCCESS),
        ({"succeeded": 0, "errored": 8}, False, S.FAILED),
        ({"succeeded": 5, "expired": 3}, False, S.TIMEOUT_EXCEEDED),
        ({"succeeded": 5, "canceled": 3, "expired": 1}, True, S.CANCELLED),
    ],
)
def test_an_ended_message_batch_maps_by_its_counts(
    counts: dict[str, int], cancel_initiated: bool, expected: JobStatus
) -> None:
    full = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0} | counts
    body = message_batch(
        request_counts=full,
        cancel_initiated_at="2026-12-03T12:10:00Z" if cancel_initiated else None,
    )
    parsed = anthropic_wire.parse_job(body)
    assert (parsed.status, parsed.raw_status) == (expected, "ended")
    assert parsed.counters.total == sum(full.values())


def test_a_running_message_batch_has_no_progress_and_no_results_yet() -> None:
    body = message_batch(
        processing_status="in_progress", ended_at=None, results_url=None,
        request_counts={"processing": 8, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
    )  # fmt: skip
    parsed = anthropic_wire.parse_job(body)
    assert parsed.status is S.RUNNING and parsed.output_file is None
    assert (parsed.counters.total, parsed.counters.completed) == (8, 0)
    assert not providers.provider("anthropic").live_progress


def test_an_ended_message_batch_names_its_results_by_its_id() -> None:
    parsed = anthropic_wire.parse_job(message_batch())
    assert parsed.output_file == "msgbatch_1"
    assert parsed.created_at == int(datetime(2026, 12, 3, 12, tzinfo=UTC).timestamp())
