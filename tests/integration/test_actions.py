"""Create, cancel and track through the daemon's local API, over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from mistralai.client import Mistral
from mistralai.client.models import BatchRequest

from batchwatch.daemon import Daemon
from batchwatch.simulator.faults import FaultRule
from batchwatch.simulator.server import RunningSimulator
from tests.helpers import get, upstream_job, wait_for

BODY: dict[str, Any] = {
    "endpoint": "/v1/chat/completions",
    "model": "mistral-small-latest",
    "requests": [{"custom_id": str(n), "body": {"messages": []}} for n in range(4)],
    "metadata": {"team": "search"},
}


def post(
    daemon: Daemon, token: str, path: str, json: Any = None, **headers: str
) -> requests.Response:
    return requests.post(
        daemon.api_url + path,
        json=json,
        timeout=30,
        headers={"Authorization": f"Bearer {token}", **headers},
    )


def upstream_creates(simulator: RunningSimulator) -> int:
    stats = requests.get(f"{simulator.url}/_sim/stats", timeout=5).json()
    return int(stats["requests"].get("POST /v1/batch/jobs", 0))


def test_official_sdk_creates_lists_gets_and_cancels_through_batchwatch(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    sdk = Mistral(api_key=token, server_url=daemon.api_url)
    created = sdk.batch.jobs.create(
        endpoint="/v1/chat/completions",
        model="mistral-small-latest",
        requests=[BatchRequest(custom_id="a", body={"messages": []})],
        metadata={"sim_run_seconds": "30", "sim_queue_seconds": "0.3"},
    )
    assert created.status == "QUEUED"
    # recorded before the answer: the history already has the first sighting
    transitions = get(daemon, token, f"/v1/batch/jobs/{created.id}/transitions").json()
    assert [(t["to_status"], t["source"]) for t in transitions["data"]] == [("QUEUED", "create")]
    wait_for(lambda: sdk.batch.jobs.get(job_id=created.id).status == "RUNNING")
    assert [j.id for j in sdk.batch.jobs.list(status=["RUNNING"]).data or []] == [created.id]
    cancelled = sdk.batch.jobs.cancel(job_id=created.id)
    assert cancelled.status == "CANCELLATION_REQUESTED"
    wait_for(lambda: sdk.batch.jobs.get(job_id=created.id).status == "CANCELLED")
    history = get(daemon, token, f"/v1/batch/jobs/{created.id}/transitions").json()["data"]
    assert [(t["to_status"], t["source"]) for t in history] == [
        ("QUEUED", "create"),
        ("RUNNING", "poll"),
        ("CANCELLATION_REQUESTED", "cancel"),
        ("CANCELLED", "poll"),
    ]
    actions = get(daemon, token, f"/v1/batch/jobs/{created.id}/actions").json()["data"]
    assert [(a["action"], a["requested_by"], a["status_after"]) for a in actions] == [
        ("create", "api", "QUEUED"),
        ("cancel", "api", "CANCELLATION_REQUESTED"),
    ]
    # the job is tagged upstream with batchwatch's request id
    assert "batchwatch_request_id" in (created.metadata or {})


def test_same_idempotency_key_twice_creates_one_job(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    first = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "k-1"})
    second = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert upstream_creates(simulator) == 1
    third = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "k-2"})
    assert third.json()["id"] != first.json()["id"]
    assert upstream_creates(simulator) == 2


def test_reused_key_with_another_body_is_refused(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "k-3"})
    other = {**BODY, "model": "mistral-large-latest"}
    response = post(daemon, token, "/v1/batch/jobs", other, **{"Idempotency-Key": "k-3"})
    assert response.status_code == 409
    assert "different request body" in response.json()["detail"]
    assert upstream_creates(simulator) == 1


def test_create_refused_upstream_passes_the_reason_through(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    body = {**BODY, "requests": None, "input_files": ["8a1c7c3e-0000-4000-8000-00000000f11e"]}
    response = post(daemon, token, "/v1/batch/jobs", body, **{"Idempotency-Key": "k-4"})
    assert response.status_code == 404
    assert "Mistral refused the create" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "endpoint": "/v1/nowhere"}, "endpoint"),
        ({**BODY, "timeout_hours": 500}, "timeout_hours"),
        ({**BODY, "requests": None}, "input_files or requests"),
        ({**BODY, "metadata": {"k": ""}}, "metadata"),
        ({**BODY, "metadata": {"batchwatch_request_id": "x"}}, "reserved"),
    ],
)
def test_bad_create_bodies_are_4xx_naming_the_field(
    simulator: RunningSimulator, daemon: Daemon, token: str, body: dict[str, Any], field: str
) -> None:
    response = post(daemon, token, "/v1/batch/jobs", body)
    assert 400 <= response.status_code < 500
    assert field in str(response.json()["detail"])
    assert upstream_creates(simulator) == 0


def test_cancel_running_cancelling_and_finished_jobs(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    running = post(
        daemon,
        token,
        "/v1/batch/jobs",
        {**BODY, "metadata": {"sim_run_seconds": "30", "sim_queue_seconds": "0"}},
        **{"X-Batchwatch-Client": "cli"},
    ).json()["id"]
    first = post(
        daemon, token, f"/v1/batch/jobs/{running}/cancel", **{"X-Batchwatch-Client": "cli"}
    )
    assert first.status_code == 200 and first.json()["status"] == "CANCELLATION_REQUESTED"
    again = post(daemon, token, f"/v1/batch/jobs/{running}/cancel")
    assert again.status_code == 200  # cancelling a cancelling job is harmless
    wait_for(
        lambda: get(daemon, token, f"/v1/batch/jobs/{running}").json()["status"] == "CANCELLED"
    )
    assert post(daemon, token, f"/v1/batch/jobs/{running}/cancel").status_code == 200
    actions = get(daemon, token, f"/v1/batch/jobs/{running}/actions").json()["data"]
    assert actions[1]["requested_by"] == "cli"

    done = post(
        daemon,
        token,
        "/v1/batch/jobs",
        {**BODY, "metadata": {"sim_run_seconds": "0.2", "sim_queue_seconds": "0"}},
    ).json()["id"]
    wait_for(lambda: get(daemon, token, f"/v1/batch/jobs/{done}").json()["status"] == "SUCCESS")
    refused = post(daemon, token, f"/v1/batch/jobs/{done}/cancel")
    assert refused.status_code == 409
    assert "already ended: it is SUCCESS" in refused.json()["detail"]


def test_cancel_of_a_job_that_ended_unseen_says_its_status(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    job_id = upstream_job(simulator.url, sim_run_seconds="0.1", sim_queue_seconds="0")
    wait_for(lambda: simulator.simulation.get_job(job_id).state.status.value == "SUCCESS")
    response = post(daemon, token, f"/v1/batch/jobs/{job_id}/cancel")
    assert response.status_code == 409
    assert "SUCCESS" in response.json()["detail"]


def test_track_known_and_unknown_jobs(
    simulator: RunningSimulator, tmp_path: Any, token: str, daemon: Daemon
) -> None:
    job_id = upstream_job(simulator.url, sim_run_seconds="30")
    response = post(daemon, token, f"/v1/batch/jobs/{job_id}/track")
    assert response.status_code == 200 and response.json()["id"] == job_id
    history = get(daemon, token, f"/v1/batch/jobs/{job_id}/transitions").json()["data"]
    assert history[0]["source"] in ("track", "poll")  # the poller may have seen it first
    unknown = post(daemon, token, "/v1/batch/jobs/8a1c7c3e-0000-4000-8000-000000000000/track")
    assert unknown.status_code == 404
    assert "Mistral has no job" in unknown.json()["detail"]


def upstream_jobs(simulator: RunningSimulator) -> int:
    from batchwatch.simulator.jobs import SimJobQuery

    total: int = simulator.simulation.list_jobs(SimJobQuery()).total
    return total


def test_lost_create_response_is_found_not_resent(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    """Mistral creates the job but the answer never arrives: batchwatch finds the job by
    its tag instead of creating it again."""
    simulator.simulation.faults.set([FaultRule("drop_create", times=1)])
    response = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "lost-1"})
    assert response.status_code == 200, response.text
    assert upstream_creates(simulator) == 1
    assert upstream_jobs(simulator) == 1
    again = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "lost-1"})
    assert again.json()["id"] == response.json()["id"]
    assert upstream_jobs(simulator) == 1


def test_every_create_response_lost_still_makes_one_job(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    simulator.simulation.faults.set([FaultRule("drop_create")])
    first = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "lost-2"})
    assert first.status_code == 200, first.text
    for _ in range(3):  # the caller retries too
        retry = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "lost-2"})
        assert retry.json()["id"] == first.json()["id"]
    assert upstream_jobs(simulator) == 1


def test_unknown_outcome_is_resolved_by_a_later_retry_under_the_same_key(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    """The answer is lost and Mistral cannot even be asked whether the job exists: the
    caller hears 503, retry later; the retry finds the job, and nothing runs twice."""
    simulator.simulation.faults.set(
        [
            FaultRule("drop_create", times=1),
            FaultRule("503", route="GET /v1/batch/jobs", retry_after=0),
        ]
    )
    first = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "lost-3"})
    assert first.status_code == 503
    assert "same Idempotency-Key" in first.json()["detail"]
    assert upstream_jobs(simulator) == 1
    simulator.simulation.faults.clear()
    second = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "lost-3"})
    assert second.status_code == 200
    assert upstream_creates(simulator) == 1
    assert upstream_jobs(simulator) == 1
    history = get(daemon, token, f"/v1/batch/jobs/{second.json()['id']}/transitions").json()
    assert history["data"][0]["from_status"] is None  # recorded once, from its first sighting
    assert [t["seq"] for t in history["data"]] == list(range(1, len(history["data"]) + 1))


def test_server_error_on_create_then_success_makes_one_job(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    simulator.simulation.faults.set([FaultRule("502", route="POST /v1/batch/jobs", times=2)])
    response = post(daemon, token, "/v1/batch/jobs", BODY, **{"Idempotency-Key": "k-502"})
    assert response.status_code == 200
    assert upstream_jobs(simulator) == 1
