"""The results tables on both databases: queueing ended jobs from the feed, an attempt's
life, the ledger written in chunks by the ingest function, its pages, usage, deletion."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from batchwatch.models import Outcome, ResultFile, ResultsState
from batchwatch.results import ingest
from batchwatch.store import Store, ledger
from batchwatch.store import results as stored
from tests.integration.test_store import T0, record


def _files(tmp_path: Path, n: int = 5) -> tuple[str, str, str]:
    """Input of ``n`` requests; r0 and r1 succeed, r2 fails in the error file, r3 with a
    422 in the output file, r4 never ran; r0 appears twice (a duplicate)."""
    inputs = tmp_path / "input.jsonl"
    inputs.write_text(
        "".join(json.dumps({"custom_id": f"r{k}", "body": {}}) + "\n" for k in range(n))
    )
    ok = {
        "status_code": 200,
        "body": {"usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
    }
    output = tmp_path / "output.jsonl"
    output.write_text(
        "".join(
            json.dumps(line) + "\n"
            for line in (
                {"custom_id": "r0", "response": ok, "error": None},
                {"custom_id": "r1", "response": ok, "error": None},
                {
                    "custom_id": "r3",
                    "response": {"status_code": 422, "body": {"message": "bad"}},
                    "error": None,
                },
                {"custom_id": "r0", "response": ok, "error": None},
            )
        )
    )
    error = tmp_path / "error.jsonl"
    error.write_text(
        json.dumps({"custom_id": "r2", "error": {"message": "boom", "code": "x"}}) + "\n"
    )
    return str(inputs), str(output), str(error)


def test_an_ended_job_is_queued_once_and_its_ledger_reads_back(
    store: Store, tmp_path: Path
) -> None:
    record(store, "RUNNING", job_id="a", at=T0)
    assert stored.queue_ended(store, T0) == 0
    record(store, "SUCCESS", job_id="a", at=T0 + timedelta(seconds=1))
    assert stored.queue_ended(store, T0) == 1
    assert stored.queue_ended(store, T0) == 0  # the cursor moved past it
    assert stored.due(store, T0, 10) == ["a"]
    assert stored.start_attempt(store, "a", T0)
    assert not stored.start_attempt(store, "a", T0)  # another attempt has it
    inputs, output, error = _files(tmp_path)
    counts, usage, rows = ingest.ingest(store.url, "a", [inputs], output, error)
    assert (counts.total, counts.succeeded, counts.failed, counts.not_run) == (5, 2, 2, 1)
    assert usage.total_tokens == 15  # the duplicate line's tokens count: it was produced
    found = [
        ResultFile("input", 1, "f-in", 10, "0" * 64, inputs),
        ResultFile("output", 1, "f-out", 20, "1" * 64, output),
    ]
    stored.finish_ready(store, "a", files=found, counts=counts, usage=usage, rows=rows, now=T0)
    results = stored.job_results(store, "a")
    assert results is not None and results.state is ResultsState.READY
    assert results.files == tuple(found) and results.counts == counts
    text, total = ledger.ledger_page(store, "a", [Outcome.FAILED], 0, 10)
    page = json.loads(text)
    assert total == 2
    assert [(r["custom_id"], r["status_code"], r["error"]) for r in page] == [
        ("r3", 422, {"message": "bad", "code": None}),
        ("r2", None, {"message": "boom", "code": "x"}),
    ]
    text, total = ledger.ledger_page(store, "a", [], 0, 4)
    every = json.loads(text)
    assert total == 6 and [r["custom_id"] for r in every] == ["r0", "r1", "r3", "r0"]
    assert every[0] == {
        "custom_id": "r0",
        "outcome": "succeeded",
        "status_code": 200,
        "error": None,
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        "raw": None,
        "source": "output",
        "line": 1,
        "duplicate": False,
    }
    assert [r["duplicate"] for r in every] == [False, False, False, True]
    second, _ = ledger.ledger_page(store, "a", [], 1, 4)
    assert [(r["custom_id"], r["outcome"]) for r in json.loads(second)] == [
        ("r2", "failed"),
        ("r4", "not_run"),
    ]
    both, total = ledger.ledger_page(store, "a", [Outcome.FAILED, Outcome.NOT_RUN], 1, 2)
    assert total == 3 and [r["custom_id"] for r in json.loads(both)] == ["r4"]
    assert ledger.ledger_page(store, "a", [Outcome.FAILED], 5, 10) == ("[]", 2)
    assert ledger.custom_ids(store, "a", [Outcome.FAILED, Outcome.NOT_RUN]) == ["r3", "r2", "r4"]
    assert stored.usage(store, None, None) == [
        ("mistral-small-latest", "mistral-small-latest", 1, 5, 9, 6, 15)
    ]


def test_a_failed_attempt_waits_and_an_interrupted_one_starts_again(store: Store) -> None:
    record(store, "SUCCESS", job_id="b", at=T0)
    stored.queue_ended(store, T0)
    assert stored.start_attempt(store, "b", T0)
    later = T0 + timedelta(minutes=1)
    stored.finish_failed(store, "b", "reset", T0, retry_at=later)
    assert stored.due(store, T0, 10) == []
    assert stored.due(store, later, 10) == ["b"]
    assert stored.start_attempt(store, "b", later)
    assert stored.interrupted(store, later) == 1  # the daemon stopped in the middle
    results = stored.job_results(store, "b")
    assert results is not None and results.state is ResultsState.PENDING and results.attempts == 2
    assert stored.start_attempt(store, "b", later)
    stored.finish_failed(store, "b", "output file: HTTP 404", later, retry_at=None)
    gone = stored.job_results(store, "b")
    assert gone is not None and gone.state is ResultsState.UNAVAILABLE
    assert ledger.ledger_page(store, "b", [], 0, 10) == ("[]", 0)


def test_a_deleted_job_is_no_longer_polled_and_says_who(store: Store) -> None:
    record(store, "SUCCESS", job_id="c", at=T0)
    stored.record_deleted(store, "c", "cli", "SUCCESS")
    job = store.get_job("c")
    assert job is not None and job.deleted_upstream_at is not None
    from batchwatch.store.intents import job_actions

    assert [(a.action, a.requested_by) for a in job_actions(store, "c")] == [("delete", "cli")]
