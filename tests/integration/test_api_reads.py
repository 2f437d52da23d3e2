"""The read routes' fast path: the store's driver-level reads and the pre-built JSON bodies
answer exactly what SQLAlchemy's decoding and the response models would, on SQLite and
PostgreSQL; a job without history is told from no job; the request metrics count every
answer."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, text

from batchwatch.api.app import create_app
from batchwatch.api.reads import INLINE_ROWS
from batchwatch.api.schemas import (
    BatchJobOut,
    ListBatchJobsOut,
    ProgressListOut,
    ProgressOut,
    TransitionFeedOut,
    TransitionListOut,
    TransitionOut,
    job_body,
    progress_body,
    transition_body,
)
from batchwatch.health import Health
from batchwatch.metrics import Metrics
from batchwatch.models import (
    BatchError,
    Counters,
    JobOrigin,
    JobStatus,
    ProgressSample,
    RemoteJob,
    StoredJob,
    Transition,
)
from batchwatch.store import JobQuery, Store, Writer
from batchwatch.store.rowcache import RowCache
from batchwatch.store.schema import jobs
from batchwatch.transitions import plan
from tests.helpers import remote

T0 = datetime(2026, 11, 26, 12, 0, 0, 250_000, tzinfo=UTC)
TOKEN = "read-path-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RICH = str(uuid.UUID(int=1, version=4))
PLAIN = str(uuid.UUID(int=2, version=4))
OTHER = str(uuid.UUID(int=3, version=4))
NO_HISTORY = str(uuid.UUID(int=4, version=4))
UNKNOWN = str(uuid.UUID(int=5, version=4))


def rich(status: str, completed: int) -> RemoteJob:
    """Every optional field set, and text that JSON must escape."""
    return dataclasses.replace(
        remote(status, job_id=RICH, completed=completed),
        model="mistral-large-latest",
        agent_id="agent-7",
        input_files=("file-1", "file-2"),
        metadata={"team": "search", "note": 'quote " and é'},
        output_file="out-1",
        error_file="err-1",
        errors=(BatchError("rate limited", 3), BatchError("bad line")),
        started_at=1_795_000_060,
        completed_at=1_795_000_600 if status == "SUCCESS" else None,
        counters=Counters(total=10, completed=completed, succeeded=completed - 1, failed=1),
    )


def observe(store: Store, at: datetime, *seen: RemoteJob) -> None:
    with store.write() as w:
        before = w.load({j.id for j in seen})
        w.apply(plan(before, list(seen), at), at, JobOrigin.DISCOVERED)


@pytest.fixture
def history(store: Store) -> Store:
    """Three jobs with transitions and progress; one job row without any history."""
    observe(store, T0, rich("QUEUED", 1), remote("QUEUED", job_id=PLAIN))
    observe(
        store,
        T0 + timedelta(seconds=30),
        rich("RUNNING", 5),
        remote("RUNNING", job_id=PLAIN),
        remote("RUNNING", job_id=OTHER),
    )
    observe(store, T0 + timedelta(minutes=1, microseconds=1), rich("SUCCESS", 10))
    with store.engine.begin() as conn:  # as a row only: recorded without any history
        row = {c.name: None for c in jobs.columns} | {
            "id": NO_HISTORY,
            "status": "RUNNING",
            "raw_status": "RUNNING",
            "provider": "mistral",
            "endpoint": "/v1/ocr",
            "input_files": [],
            "errors": [],
            "created_at": 1_795_000_000,
            "total_requests": 0,
            "completed_requests": 0,
            "succeeded_requests": 0,
            "failed_requests": 0,
            "origin": "tracked",
            "first_seen_at": T0,
            "last_seen_at": T0,
            "transition_count": 0,
            "row_version": 0,
        }
        conn.execute(insert(jobs).values(row))
    return store


@pytest.fixture
def http(history: Store) -> TestClient:
    return TestClient(create_app(history, Health(60, T0), TOKEN))


def expected_jobs() -> dict[str, StoredJob]:
    """The rows of ``history`` as records: what was written, field for field."""
    half, end = T0 + timedelta(seconds=30), T0 + timedelta(minutes=1, microseconds=1)
    bare = RemoteJob(
        NO_HISTORY, JobStatus.RUNNING, "RUNNING", "/v1/ocr", (), None, None, None, None,
        None, (), 1_795_000_000, None, None, Counters(0, 0, 0, 0),
    )  # fmt: skip
    return {
        RICH: StoredJob(rich("SUCCESS", 10), JobOrigin.DISCOVERED, T0, end, 3),
        PLAIN: StoredJob(remote("RUNNING", job_id=PLAIN), JobOrigin.DISCOVERED, T0, half, 2),
        OTHER: StoredJob(remote("RUNNING", job_id=OTHER), JobOrigin.DISCOVERED, half, half, 1),
        NO_HISTORY: StoredJob(bare, JobOrigin.TRACKED, T0, T0, 0),
    }


def test_every_read_of_a_job_gives_back_the_record_written(history: Store) -> None:
    """The API's reads and the write transaction's load (driver rows) decode alike."""
    expected = expected_jobs()
    for job_id, job in expected.items():
        found = history.get_job(job_id)
        assert found == job
        assert found is not None and found.first_seen_at.tzinfo is not None
    with history.engine.begin() as conn:
        assert Writer(conn, RowCache()).load(list(expected)) == expected
    listed, total = history.list_jobs(JobQuery(page_size=10))
    assert total == 4 and listed == [expected[j.id] for j in listed]
    assert history.stored_statuses([RICH, NO_HISTORY, UNKNOWN]) == {
        RICH: JobStatus.SUCCESS,
        NO_HISTORY: JobStatus.RUNNING,
    }


def test_store_reads_of_history(history: Store) -> None:
    assert history.get_job(UNKNOWN) is None
    assert history.has_job(NO_HISTORY) and not history.has_job(UNKNOWN)
    steps = history.transitions(RICH)
    assert [(t.seq, t.from_status, t.to_status) for t in steps] == [
        (1, None, JobStatus.QUEUED),
        (2, JobStatus.QUEUED, JobStatus.RUNNING),
        (3, JobStatus.RUNNING, JobStatus.SUCCESS),
    ]
    assert steps[2].observed_at == T0 + timedelta(minutes=1, microseconds=1)
    assert steps[2].last_seen_before == T0 + timedelta(seconds=30)
    assert steps[0].last_seen_before is None
    assert all(t.id for t in steps)
    samples = history.progress(RICH)
    assert [(p.observed_at, p.counters.completed) for p in samples] == [
        (T0, 1),
        (T0 + timedelta(seconds=30), 5),
        (T0 + timedelta(minutes=1, microseconds=1), 10),
    ]
    assert [p.seq for p in samples] == [1, 2, 3]  # numbered within the job
    assert [p.seq for p in history.progress(OTHER)] == [1]
    feed = history.feed(0, 3)
    assert len(feed) == 3 and feed == sorted(feed, key=lambda t: t.id or 0)
    assert history.feed(feed[-1].id or 0, 100) == history.feed(0, 100)[3:]
    assert history.transitions(NO_HISTORY) == [] and history.progress(UNKNOWN) == []


def test_bodies_are_the_models_json() -> None:
    """The dict builders and the models agree field for field, in the models' order: a
    job's JSON is one its response model takes unchanged."""
    for job in (rich("RUNNING", 5), remote("QUEUED")):
        written = job_body(job)
        expected = BatchJobOut.model_validate(written).model_dump(mode="json")
        assert written == expected and list(written) == list(expected)
    t = Transition(
        RICH, 2, JobStatus.QUEUED, JobStatus.RUNNING, T0, T0, "poll", 7, "QUEUED", "RUNNING"
    )
    first = Transition(RICH, 1, None, JobStatus.QUEUED, T0, None, "create", 6)
    for step in (t, first):
        dumped = TransitionOut.model_validate(transition_body(step)).model_dump()
        assert transition_body(step) == dumped and list(transition_body(step)) == list(dumped)
    p = ProgressSample(RICH, T0, Counters(10, 5, 4, 1), 3)
    assert progress_body(p) == ProgressOut.model_validate(progress_body(p)).model_dump()


def _get(http: TestClient, path: str) -> bytes:
    response = http.get(path, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.content


def test_read_routes_answer_the_bytes_the_models_would(history: Store, http: TestClient) -> None:
    for job_id in (RICH, PLAIN, NO_HISTORY):
        stored = history.get_job(job_id)
        assert stored is not None
        expected = BatchJobOut.model_validate(job_body(stored.remote)).model_dump_json()
        assert _get(http, f"/v1/batch/jobs/{job_id}") == expected.encode()
        steps = [
            TransitionOut.model_validate(transition_body(t)) for t in history.transitions(job_id)
        ]
        listed = TransitionListOut(data=steps, total=len(steps)).model_dump_json().encode()
        assert _get(http, f"/v1/batch/jobs/{job_id}/transitions") == listed
        samples = [ProgressOut.model_validate(progress_body(p)) for p in history.progress(job_id)]
        progress = ProgressListOut(data=samples, total=len(samples)).model_dump_json().encode()
        assert _get(http, f"/v1/batch/jobs/{job_id}/progress") == progress
    # A sample's "id" is its number within its job.
    ids = [p["id"] for p in json.loads(_get(http, f"/v1/batch/jobs/{RICH}/progress"))["data"]]
    assert ids == [1, 2, 3]
    for query, statuses, model in (
        ("", (), None),
        (
            "?status=RUNNING&model=mistral-small-latest",
            (JobStatus.RUNNING,),
            "mistral-small-latest",
        ),
        ("?status=SUCCESS&status=RUNNING&page_size=1&page=1", (), None),
        ("?team=search&order_by=created", (), None),
    ):
        body = _get(http, f"/v1/batch/jobs{query}")
        if statuses:
            found, total = history.list_jobs(JobQuery(statuses=statuses, model=model))
            data = [job_body(j.remote) for j in found]
            page = ListBatchJobsOut.model_validate({"data": data, "total": total})
            assert body == page.model_dump_json().encode()
        # Whatever the filter, the body is one the response model accepts unchanged.
        parsed = ListBatchJobsOut.model_validate_json(body)
        assert parsed.model_dump_json().encode() == body
    feed = [TransitionOut.model_validate(transition_body(t)) for t in history.feed(0, 2)]
    expected_feed = TransitionFeedOut(data=feed, next_cursor=feed[-1].id).model_dump_json()
    assert _get(http, "/v1/transitions?limit=2") == expected_feed.encode()
    last = history.feed(0, 100)[-1].id
    empty = TransitionFeedOut(data=[], next_cursor=last or 0).model_dump_json().encode()
    assert _get(http, f"/v1/transitions?after={last}") == empty


@pytest.mark.parametrize("route", ["", "/transitions", "/progress"])
def test_unknown_job_is_404_and_a_job_without_history_is_an_empty_list(
    http: TestClient, route: str
) -> None:
    missing = http.get(f"/v1/batch/jobs/{UNKNOWN}{route}", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"no tracked job with id {UNKNOWN}"}
    known = http.get(f"/v1/batch/jobs/{NO_HISTORY}{route}", headers=AUTH)
    assert known.status_code == 200
    if route:
        assert known.json() == {"object": "list", "data": [], "total": 0}


def test_big_pages_are_read_in_a_worker_thread_small_ones_on_the_loop(
    history: Store, http: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite reads of a few rows run on the event loop; a big page (or any PostgreSQL
    read) goes to a worker thread, so it does not hold up the other requests."""
    on_loop: list[bool] = []
    real = history.list_jobs

    def spy(q: JobQuery) -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:  # a worker thread has no event loop
            on_loop.append(False)
        return real(q)

    monkeypatch.setattr(history, "list_jobs", spy)
    _get(http, f"/v1/batch/jobs?page_size={INLINE_ROWS}")
    _get(http, f"/v1/batch/jobs?page_size={INLINE_ROWS + 1}")
    _get(http, "/v1/batch/jobs?page_size=100")
    assert on_loop == [history.is_sqlite, False, False]


def test_status_and_model_page_reads_its_own_index(sqlite_url: str) -> None:
    """Migration 0004: the filtered page in Mistral's order is read from one index, not by
    walking every job of the status (a rare model made that walk the whole status)."""
    store = Store(sqlite_url)
    store.migrate()
    try:
        with store.reading() as conn:
            plan_rows = conn.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE status IN ('RUNNING')"
                    " AND model = 'm' ORDER BY created_at DESC, id DESC LIMIT 100"
                )
            ).all()
    finally:
        store.close()
    detail = " ".join(str(r[-1]) for r in plan_rows)
    assert "ix_jobs_status_model_created_at_id" in detail, detail
    assert "TEMP B-TREE" not in detail, detail


def _count(metrics: Metrics, route: str, code: str, method: str = "GET") -> float | None:
    labels = {"method": method, "route": route, "code": code}
    return metrics.registry.get_sample_value("batchwatch_api_requests_total", labels)


def test_request_metrics_count_route_templates_and_statuses(history: Store) -> None:
    health = Health(60, T0)
    app = create_app(history, health, TOKEN)
    metrics = Metrics(health, history.count_by_status)
    metrics.install(app)

    def boom(job_id: str) -> None:
        raise RuntimeError("a bug")

    http = TestClient(app, raise_server_exceptions=False)
    assert http.get(f"/v1/batch/jobs/{RICH}", headers=AUTH).status_code == 200
    assert http.get(f"/v1/batch/jobs/{PLAIN}", headers=AUTH).status_code == 200
    assert http.get(f"/v1/batch/jobs/{UNKNOWN}", headers=AUTH).status_code == 404
    assert http.get(f"/v1/batch/jobs/{RICH}").status_code == 401
    assert http.get("/no-such-route").status_code == 404
    history.get_job = boom  # type: ignore[method-assign]
    assert http.get(f"/v1/batch/jobs/{RICH}", headers=AUTH).status_code == 500
    route = "/v1/batch/jobs/{job_id}"
    assert _count(metrics, route, "200") == 2
    assert _count(metrics, route, "404") == 1
    assert _count(metrics, route, "401") == 1
    assert _count(metrics, route, "500") == 1
    assert _count(metrics, "unmatched", "404") == 1
    timed = metrics.registry.get_sample_value(
        "batchwatch_api_request_duration_seconds_count", {"route": route}
    )
    assert timed == 5
