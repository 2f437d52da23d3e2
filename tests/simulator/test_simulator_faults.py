"""Fault injection in the simulator, over real HTTP on loopback: what a plain client sees.

Every call is a bare ``requests`` call (no retries), so each assertion is about exactly one
exchange. The connection-level faults are also checked with ``httpx2`` (the official SDK's
HTTP library), since "the client sees a connection error" depends on how a client reads.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import requests

from batchwatch.cli.main import main
from batchwatch.simulator.fault_injector import FaultInjector
from batchwatch.simulator.faults import (
    FAULTS,
    MISTRAL_FAULTS,
    FaultRule,
    FaultSpecError,
    parse_fault_spec,
    with_timings,
)
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from batchwatch.simulator.simulation import Simulation
from tests.helpers import SIM_API_KEY, fresh_simulator

AUTH = {"Authorization": f"Bearer {SIM_API_KEY}"}
JOBS = "/v1/batch/jobs"
JOB_FIELDS = set(MISTRAL_FAULTS.required_fields["batch"])


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSimulator]:
    """One simulator for the module (each stop costs uvicorn ~0.2 s); ``sim`` resets it."""
    settings = SimulatorSettings(api_key=SIM_API_KEY, queue_seconds=30, run_seconds=30)
    simulator = start_in_thread(settings)
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(running: RunningSimulator) -> Iterator[RunningSimulator]:
    yield from fresh_simulator(running)


def inject(sim: RunningSimulator, *rules: FaultRule, seed: int = 0) -> None:
    sim.simulation.faults.set(rules, seed)


def get(sim: RunningSimulator, path: str, timeout: float = 5, **params: Any) -> requests.Response:
    return requests.get(sim.url + path, params=params, headers=AUTH, timeout=timeout)


def create(sim: RunningSimulator, marker: str) -> requests.Response:
    """A one-request inline job tagged ``probe=marker``, so a list can find exactly it."""
    body = {
        "endpoint": "/v1/chat/completions",
        "requests": [{"custom_id": "0", "body": {"messages": []}}],
        "metadata": {"probe": marker},
    }
    return requests.post(sim.url + JOBS, json=body, headers=AUTH, timeout=5)


def jobs_tagged(sim: RunningSimulator, marker: str) -> int:
    total = get(sim, JOBS, probe=marker).json()["total"]
    assert isinstance(total, int)
    return total


def new_job(sim: RunningSimulator) -> str:
    response = create(sim, uuid.uuid4().hex)
    assert response.status_code == 200
    job_id = response.json()["id"]
    assert isinstance(job_id, str)
    return job_id


def logged(sim: RunningSimulator) -> list[dict[str, Any]]:
    body = requests.get(sim.url + "/_sim/requests", timeout=5).json()
    entries = body["requests"]
    assert isinstance(entries, list)
    return entries


# --- Each fault, as the client sees it ------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "header"), [(None, "1"), (3, "3")])
def test_429_has_mistrals_observed_body_and_retry_after(
    sim: RunningSimulator, retry_after: float | None, header: str
) -> None:
    inject(sim, FaultRule("429", retry_after=retry_after))
    response = get(sim, JOBS)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == header
    assert response.json() == {"message": "Requests rate limit exceeded"}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_have_the_documented_error_body(sim: RunningSimulator, status: int) -> None:
    inject(sim, FaultRule(str(status)))
    response = get(sim, JOBS)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"object", "message", "type", "param", "code"}
    assert (body["object"], body["type"], body["param"], body["code"]) == (
        "error", "server_error", None, None,
    )  # fmt: skip
    assert response.headers.get("Retry-After") == ("1" if status == 503 else None)


def test_stall_outlasts_a_shorter_client_timeout(sim: RunningSimulator) -> None:
    inject(sim, FaultRule("stall", stall_seconds=0.4))
    with pytest.raises(requests.exceptions.ReadTimeout):
        get(sim, JOBS, timeout=0.1)
    started = time.monotonic()
    response = get(sim, JOBS, timeout=5)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4
    assert "total" in response.json()


def test_reset_answers_nothing_and_processes_nothing(sim: RunningSimulator) -> None:
    marker = uuid.uuid4().hex
    inject(sim, FaultRule("reset", route="POST /v1/batch/jobs"))
    with pytest.raises(requests.exceptions.ConnectionError):
        create(sim, marker)
    assert jobs_tagged(sim, marker) == 0
    entry = logged(sim)[0]
    assert (entry["route"], entry["status"], entry["fault"]) == (
        "POST /v1/batch/jobs",
        None,
        "reset",
    )


def test_drop_create_creates_the_job_but_loses_the_response(sim: RunningSimulator) -> None:
    marker = uuid.uuid4().hex
    inject(sim, FaultRule("drop_create", times=1))
    with pytest.raises(requests.exceptions.ConnectionError):
        create(sim, marker)
    assert jobs_tagged(sim, marker) == 1
    assert [(e["status"], e["fault"]) for e in logged(sim)] == [(None, "drop_create"), (200, None)]


def test_drop_create_leaves_other_routes_alone(sim: RunningSimulator) -> None:
    inject(sim, FaultRule("drop_create"))
    assert get(sim, JOBS).status_code == 200
    assert sim.simulation.faults.rules()[0].fired == 0


def test_truncate_sends_part_of_the_body_then_closes(sim: RunningSimulator) -> None:
    new_job(sim)
    inject(sim, FaultRule("truncate"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(sim, JOBS)
    assert [(e["status"], e["fault"]) for e in logged(sim)][-1] == (200, "truncate")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("reset", httpx2.ReadError),  # the RST: "connection reset by peer"
        ("drop_create", httpx2.RemoteProtocolError),  # a FIN: "disconnected without a response"
        ("truncate", httpx2.RemoteProtocolError),  # a FIN mid-body
    ],
)
def test_connection_faults_as_httpx_sees_them(
    sim: RunningSimulator, fault: str, error: type[Exception]
) -> None:
    inject(sim, FaultRule(fault))
    # reset and truncate on a GET: a reset that lands while a client still writes a body is
    # reported by that write, and the read after it sees a plain EOF instead.
    method = "POST" if fault == "drop_create" else "GET"
    body = {"endpoint": "/v1/chat/completions", "requests": [{"body": {}}]}
    with pytest.raises(error):
        httpx2.request(
            method, sim.url + JOBS, json=body if method == "POST" else None, headers=AUTH, timeout=5
        )


def test_garbage_is_a_200_that_is_not_json(sim: RunningSimulator) -> None:
    inject(sim, FaultRule("garbage"))
    response = get(sim, JOBS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()


def test_missing_field_drops_a_required_field_from_every_job(sim: RunningSimulator) -> None:
    job_id = new_job(sim)
    new_job(sim)
    inject(sim, FaultRule("missing_field"))
    listed = get(sim, JOBS).json()["data"]
    assert len(listed) >= 2
    assert all(len(JOB_FIELDS - set(job)) == 1 for job in listed)
    single = get(sim, f"{JOBS}/{job_id}").json()
    assert len(JOB_FIELDS - set(single)) == 1


def test_missing_field_on_an_empty_list_drops_total(sim: RunningSimulator) -> None:
    inject(sim, FaultRule("missing_field"))
    body = get(sim, JOBS, probe="matches-nothing").json()
    assert body == {"object": "list", "data": []}


def test_unknown_status_is_only_in_that_response(sim: RunningSimulator) -> None:
    job_id = new_job(sim)
    inject(sim, FaultRule("unknown_status", times=1))
    assert get(sim, f"{JOBS}/{job_id}").json()["status"] == "PAUSED"
    assert get(sim, f"{JOBS}/{job_id}").json()["status"] == "QUEUED"
    history = requests.get(f"{sim.url}/_sim/jobs/{job_id}/history", timeout=5).json()
    assert [entry["status"] for entry in history["statuses"]] == ["QUEUED"]


def test_a_body_fault_leaves_an_error_response_alone(sim: RunningSimulator) -> None:
    inject(sim, FaultRule("unknown_status"))
    response = get(sim, f"{JOBS}/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["object"] == "error"
    assert sim.simulation.faults.rules()[0].fired == 0
    assert logged(sim)[-1]["fault"] is None


# --- Control: rates, caps, routes, seeds ------------------------------------------------------


def statuses(sim: RunningSimulator, count: int) -> list[int]:
    with requests.Session() as session:
        return [
            session.get(sim.url + JOBS, headers=AUTH, timeout=5).status_code for _ in range(count)
        ]


def test_rate_faults_about_that_share_of_requests_reproducibly(sim: RunningSimulator) -> None:
    inject(sim, FaultRule("500", rate=0.5), seed=7)
    first = statuses(sim, 200)
    inject(sim, FaultRule("500", rate=0.5), seed=7)
    again = statuses(sim, 200)
    assert 70 <= first.count(500) <= 130
    assert first.count(500) + first.count(200) == 200
    assert again == first
    inject(sim, FaultRule("500", rate=0.5), seed=8)
    assert statuses(sim, 200) != first


def test_times_caps_the_injections_and_get_reports_the_counts(sim: RunningSimulator) -> None:
    inject(sim, FaultRule("503", times=3), FaultRule("429", rate=0.0))
    assert statuses(sim, 5) == [503, 503, 503, 200, 200]
    rules = requests.get(sim.url + "/_sim/faults", timeout=5).json()["rules"]
    assert [(r["fault"], r["times"], r["fired"]) for r in rules] == [
        ("503", 3, 3),
        ("429", None, 0),
    ]


def test_a_rule_with_a_route_faults_only_that_route(sim: RunningSimulator) -> None:
    job_id = new_job(sim)
    inject(sim, FaultRule("502", route="GET /v1/batch/jobs/{job_id}"))
    assert get(sim, JOBS).status_code == 200
    assert get(sim, f"{JOBS}/{job_id}").status_code == 502


def test_sim_routes_are_never_faulted(sim: RunningSimulator) -> None:
    inject(sim, FaultRule("reset"))
    assert requests.get(sim.url + "/_sim/stats", timeout=5).status_code == 200
    assert requests.get(sim.url + "/_sim/faults", timeout=5).status_code == 200


def test_faults_are_set_read_and_cleared_over_http(sim: RunningSimulator) -> None:
    url = sim.url + "/_sim/faults"
    rules = [{"fault": "429", "rate": 0.25, "retry_after": 2}, {"fault": "reset", "times": 1}]
    answer = requests.post(url, json={"rules": rules, "seed": 3}, timeout=5).json()
    assert answer["seed"] == 3
    assert [(r["fault"], r["rate"], r["retry_after"], r["fired"]) for r in answer["rules"]] == [
        ("429", 0.25, 2, 0), ("reset", 1.0, None, 0),
    ]  # fmt: skip
    assert sim.simulation.faults.rules()[1].rule == FaultRule("reset", times=1)
    assert requests.delete(url, timeout=5).json() == {"seed": 0, "rules": []}
    assert requests.get(url, timeout=5).json()["rules"] == []


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        ({"fault": "418"}, "unknown fault '418'"),
        ({"fault": "500", "rate": 1.5}, "between 0 and 1"),
        ({"fault": "drop_create", "route": "GET /v1/batch/jobs"}, "drop_create only applies"),
        ({"fault": "429", "retry_after": 0.5}, "whole number of seconds"),
        ({"fault": "500", "colour": "red"}, "Extra inputs are not permitted"),
    ],
)
def test_a_bad_rule_over_http_is_a_422_that_says_why(
    sim: RunningSimulator, rule: dict[str, Any], complaint: str
) -> None:
    response = requests.post(sim.url + "/_sim/faults", json={"rules": [rule]}, timeout=5)
    assert response.status_code == 422
    assert complaint in response.text


def test_request_log_records_status_and_fault_and_resets_with_stats(
    sim: RunningSimulator,
) -> None:
    inject(sim, FaultRule("429", times=1), FaultRule("reset", times=1))
    before = time.time()
    assert get(sim, JOBS).status_code == 429
    with pytest.raises(requests.exceptions.ConnectionError):
        get(sim, JOBS)
    assert get(sim, JOBS).status_code == 200
    entries = logged(sim)
    assert [(e["route"], e["status"], e["fault"]) for e in entries] == [
        ("GET /v1/batch/jobs", 429, "429"),
        ("GET /v1/batch/jobs", None, "reset"),
        ("GET /v1/batch/jobs", 200, None),
    ]
    assert before <= entries[0]["at"] <= entries[1]["at"] <= entries[2]["at"] <= time.time()
    # Requests answered by a fault still count as received.
    assert sim.simulation.stats()["requests"] == {"GET /v1/batch/jobs": 3}
    requests.post(sim.url + "/_sim/stats/reset", timeout=5)
    assert logged(sim) == []


# --- Rules, the spec and the CLI, in-process ----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "complaint"),
    [
        ({"fault": "404"}, "unknown fault"),
        ({"fault": "500", "rate": math.nan}, "rate"),
        ({"fault": "500", "rate": -0.1}, "rate"),
        ({"fault": "500", "times": -1}, "times"),
        ({"fault": "500", "route": "GET /batch/jobs"}, "route must be"),
        ({"fault": "503", "retry_after": -1.0}, "retry_after"),
        ({"fault": "stall", "stall_seconds": math.inf}, "stall_seconds"),
    ],
)
def test_a_rule_that_cannot_mean_anything_is_refused(
    kwargs: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(FaultSpecError, match=complaint):
        FaultRule(**kwargs)


@pytest.mark.parametrize(
    ("rule", "complaint"),
    [
        (FaultRule("unknown_status", route="GET /v1/files"), "return jobs"),
        (FaultRule("drop_create", route="POST /v1/files"), "only applies to 'POST /v1/batch/jobs'"),
    ],
)
def test_a_rule_mistrals_api_cannot_carry_is_refused_when_set(
    rule: FaultRule, complaint: str
) -> None:
    injector = FaultInjector([FaultRule("429")])
    with pytest.raises(FaultSpecError, match=complaint):
        injector.set([rule])
    assert [count.rule for count in injector.rules()] == [FaultRule("429")]  # unchanged


def test_the_spec_is_comma_separated_name_and_rate() -> None:
    assert parse_fault_spec("429:0.05, 500:0.02,reset:0.01,drop_create:0.1,stall") == (
        FaultRule("429", 0.05), FaultRule("500", 0.02), FaultRule("reset", 0.01),
        FaultRule("drop_create", 0.1), FaultRule("stall", 1.0),
    )  # fmt: skip
    assert {rule.fault for rule in parse_fault_spec(",".join(FAULTS))} == set(FAULTS)


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("", "no faults given"),
        ("429:0.05,teapot:0.1", "bad fault 'teapot:0.1': unknown fault 'teapot'"),
        ("429:lots", "bad fault '429:lots': 'lots' is not a rate"),
        ("500:2", "bad fault '500:2': the rate must be between 0 and 1"),
        ("429:0.1,,500:0.1", "an empty item in '429:0.1,,500:0.1'"),
    ],
)
def test_a_bad_spec_names_the_bad_item(spec: str, complaint: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        parse_fault_spec(spec)
    assert complaint in str(caught.value)


def test_simulate_passes_the_faults_to_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[SimulatorSettings] = []
    monkeypatch.setattr(
        "batchwatch.simulator.server.serve",
        lambda settings, host, port, provider: served.append(settings),
    )
    argv = ["simulate", "--faults", "429:0.05,stall:0.5", "--fault-seed", "9"]
    assert main([*argv, "--retry-after", "2", "--stall-seconds", "0.25"]) == 0
    (settings,) = served
    assert settings.faults == (
        FaultRule("429", 0.05, retry_after=2, stall_seconds=0.25),
        FaultRule("stall", 0.5, retry_after=2, stall_seconds=0.25),
    )
    assert settings.fault_seed == 9
    injector = Simulation(settings).faults
    assert (injector.seed, [c.rule for c in injector.rules()]) == (9, list(settings.faults))


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--faults", "429:0.05,reset:x"], "argument --faults: bad fault 'reset:x'"),
        (["--retry-after", "0.5"], "argument --retry-after: retry_after must be a whole"),
        (["--stall-seconds", "soon"], "argument --stall-seconds: stall_seconds must be"),
    ],
)
def test_a_bad_fault_option_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], complaint: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["simulate", *argv])
    assert exited.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert complaint in errors[0]


def test_cli_timings_override_only_when_given() -> None:
    rules = (FaultRule("503", retry_after=4),)
    assert with_timings(rules, None, None) == rules
    assert with_timings(rules, 2, 0.5) == (FaultRule("503", retry_after=2, stall_seconds=0.5),)


def test_the_request_log_is_bounded() -> None:
    injector = FaultInjector(log_size=3)
    for n in range(5):
        injector.begin(f"GET /v1/x{n}")
    assert [r.route for r in injector.requests()] == ["GET /v1/x2", "GET /v1/x3", "GET /v1/x4"]
