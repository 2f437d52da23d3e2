"""Parsing Mistral's job objects at the edge: equal metadata is shared, never confused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchwatch.providers.mistral.wire import SharedMetadata, job_to_json, parse_job


def body(job_id: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": job_id, "object": "batch", "input_files": ["f"], "metadata": metadata,
        "endpoint": "/v1/ocr", "model": "m", "agent_id": None, "output_file": None,
        "error_file": None, "errors": [], "status": "RUNNING", "created_at": 1,
        "total_requests": 3, "completed_requests": 1, "succeeded_requests": 1,
        "failed_requests": 0, "started_at": 2, "completed_at": None,
    }  # fmt: skip


def test_jobs_tagged_alike_share_one_read_only_metadata() -> None:
    shared: SharedMetadata = {}
    a = parse_job(body("a", {"team": "ml", "run": "7"}), shared)
    b = parse_job(body("b", {"team": "ml", "run": "7"}), shared)
    c = parse_job(body("c", {"team": "ml", "run": "8"}), shared)
    assert a.metadata is b.metadata and a.metadata is not c.metadata
    with pytest.raises(TypeError):
        a.metadata["team"] = "x"  # type: ignore[index]


flat = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(-3, 3), st.text(max_size=3)
)
values = st.one_of(flat, st.lists(flat, max_size=2), st.dictionaries(st.text(max_size=2), flat))
metadata = st.one_of(st.none(), st.dictionaries(st.text(max_size=3), values, max_size=3))


@given(st.lists(metadata, min_size=1, max_size=6))
@example([{"k": 1}, {"k": True}, {"k": 1.0}])
@example([{"k": 0.0}, {"k": -0.0}])
def test_sharing_never_changes_what_a_job_says(tags: list[dict[str, Any] | None]) -> None:
    """1, 1.0 and True are equal in Python but not the same metadata: each job's JSON
    comes back exactly as it was sent, types included."""
    shared: SharedMetadata = {}
    for n, tag in enumerate(tags):
        sent = body(str(n), tag)
        got = job_to_json(parse_job(sent, shared))["metadata"]
        assert repr(got) == repr(tag)
