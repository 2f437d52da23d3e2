"""Mistral's shapes at the edge: a job's JSON parsed and written back from its one
definition, malformed jobs told apart, equal metadata shared but never confused, and the
create body as it goes upstream."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchwatch.errors import ApiError
from batchwatch.providers.mistral.schemas import CreateBatchJobIn
from batchwatch.providers.mistral.wire import JOB_FIELDS, job_to_json, parse_job


def body(job_id: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": job_id, "object": "batch", "input_files": ["f"], "metadata": metadata,
        "endpoint": "/v1/ocr", "model": "m", "agent_id": None, "output_file": None,
        "error_file": None, "errors": [], "status": "RUNNING", "created_at": 1,
        "total_requests": 3, "completed_requests": 1, "succeeded_requests": 1,
        "failed_requests": 0, "started_at": 2, "completed_at": None,
    }  # fmt: skip


flat = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3), st.text(max_size=3)
)
values = st.one_of(flat, st.lists(flat, max_size=2), st.dictionaries(st.text(max_size=2), flat))
metadata = st.one_of(st.none(), st.dictionaries(st.text(max_size=3), values, max_size=3))


@given(st.lists(metadata, min_size=1, max_size=6))
@example([{"k": 1}, {"k": True}, {"k": 1.0}])
@example([{"k": 0.0}, {"k": -0.0}])
def test_metadata_comes_back_as_it_was_sent(tags: list[dict[str, Any] | None]) -> None:
    """1, 1.0 and True are equal in Python but not the same metadata: each job's JSON
    comes back exactly as it was sent, types included."""
    for n, tag in enumerate(tags):
        sent = body(str(n), tag)
        got = job_to_json(parse_job(sent))["metadata"]
        assert repr(got) == repr(tag)


def test_a_job_comes_back_from_its_json_unchanged() -> None:
    sent = body("a", {"team": "ml"}) | {"errors": [{"message": "bad line", "count": 2}]}
    job = parse_job(sent)
    assert job_to_json(job) == sent | {"outputs": None}
    assert list(job_to_json(job)) == [f.key for f in JOB_FIELDS]
    assert parse_job(job_to_json(job)) == job


@pytest.mark.parametrize("key", [f.key for f in JOB_FIELDS if f.required])
@pytest.mark.parametrize("value", [None, True, 1.5, {}])
def test_a_required_field_missing_or_mistyped_makes_the_job_malformed(
    key: str, value: object
) -> None:
    with pytest.raises(ApiError, match=key) as caught:
        parse_job(body("a", None) | {key: value})
    assert caught.value.retryable


@pytest.mark.parametrize("key", ["total_requests", "completed_requests", "failed_requests"])
@pytest.mark.parametrize("value", [-1, 2**31])
def test_a_request_count_out_of_range_makes_the_job_malformed(key: str, value: int) -> None:
    """No batch holds 2**31 requests (Mistral allows a million), nor fewer than none."""
    with pytest.raises(ApiError, match=f"{key}.*out of range: {value}") as caught:
        parse_job(body("a", None) | {key: value})
    assert caught.value.retryable
    assert parse_job(body("a", None) | {key: 2**31 - 1}).counters  # the largest is a count


@pytest.mark.parametrize("key", ["model", "agent_id", "output_file", "started_at", "metadata"])
def test_an_optional_field_of_the_wrong_type_reads_as_absent(key: str) -> None:
    job = job_to_json(parse_job(body("a", None) | {key: [1]}))
    assert job[key] is None


def test_the_create_body_leaves_out_what_was_not_given() -> None:
    """What goes upstream and what a reused Idempotency-Key is compared by: None and empty
    lists are left out, so the same request hashes the same however it was written."""
    file_id = "9a1c2d4e-1b2c-4d5e-8f90-123456789abc"
    spelled_out = CreateBatchJobIn.model_validate(
        {"endpoint": "/v1/ocr", "input_files": [file_id], "requests": [], "metadata": None}
    )
    short = CreateBatchJobIn.model_validate({"endpoint": "/v1/ocr", "input_files": [file_id]})
    expected = {"endpoint": "/v1/ocr", "input_files": [file_id], "timeout_hours": 24}
    assert spelled_out.to_json() == short.to_json() == expected
    inline = CreateBatchJobIn.model_validate(
        {"endpoint": "/v1/ocr", "requests": [{"body": {"a": None}}], "model": "m"}
    )
    assert inline.to_json()["requests"] == [{"body": {"a": None}}]
