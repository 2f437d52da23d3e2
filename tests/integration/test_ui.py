"""The dashboard over real HTTP, from a daemon running in-process against the simulator:
the login wall, the session cookie, CSRF and origin refusals, the security headers, the
pages (filters, a job's page, its cancel) and that nothing is loaded from another origin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from batchwatch.daemon import Daemon
from batchwatch.simulator.faults import FaultRule
from batchwatch.simulator.server import RunningSimulator
from batchwatch.ui.render import STATIC
from tests.helpers import get, upstream_job, wait_for
from tests.integration.test_cli_providers import (  # the daemon of the three providers
    Three,
    anthropic_sim_fixture,  # noqa: F401 - the fixture anthropic_sim, which three uses
    openai_sim_fixture,  # noqa: F401 - the fixture openai_sim, which three uses
    three_fixture,  # noqa: F401 - the fixture three
    upstream_anthropic_batch,
    upstream_openai_batch,
)

PAGES = ("/ui/", "/ui/jobs", "/ui/events")
_HIDDEN = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _HIDDEN.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def post_login(browser: requests.Session, daemon: Daemon, token: str) -> requests.Response:
    """Fill in the login form as served (its CSRF field included) and post it."""
    form = browser.get(daemon.api_url + "/ui/login", timeout=5)
    return browser.post(
        daemon.api_url + "/ui/login",
        data={"token": token, "csrf": csrf_of(form.text)},
        allow_redirects=False,
        timeout=5,
    )


def login(daemon: Daemon, token: str) -> requests.Session:
    browser = requests.Session()
    answer = post_login(browser, daemon, token)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/"
    return browser


@pytest.mark.parametrize("path", [*PAGES, "/ui/jobs/some-job", "/ui/jobs/x/files/output/1"])
def test_pages_without_a_session_redirect_to_the_login(daemon: Daemon, path: str) -> None:
    answer = requests.get(daemon.api_url + path, allow_redirects=False, timeout=5)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login"
    forged = requests.get(
        daemon.api_url + path,
        cookies={"batchwatch_session": "made-up"},
        allow_redirects=False,
        timeout=5,
    )
    assert forged.status_code == 303


def test_login_sets_an_httponly_samesite_strict_cookie(daemon: Daemon, token: str) -> None:
    browser = requests.Session()
    form = browser.get(daemon.api_url + "/ui/login", timeout=5)
    assert 'name="token"' in form.text
    assert '<label for="token">' in form.text
    answer = post_login(browser, daemon, token)
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers["set-cookie"].split(", ") if "batchwatch_session=" in c)
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert browser.get(daemon.api_url + "/ui/", timeout=5).status_code == 200


def test_a_wrong_token_is_refused_with_the_form_again(daemon: Daemon) -> None:
    browser = requests.Session()
    form = browser.get(daemon.api_url + "/ui/login", timeout=5)
    answer = browser.post(
        daemon.api_url + "/ui/login",
        data={"token": "not-the-token", "csrf": csrf_of(form.text)},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 401
    assert "Wrong token" in answer.text
    assert "batchwatch_session" not in answer.headers.get("set-cookie", "")


def test_login_without_its_csrf_token_is_refused(daemon: Daemon, token: str) -> None:
    answer = requests.post(
        daemon.api_url + "/ui/login", data={"token": token}, allow_redirects=False, timeout=5
    )
    assert answer.status_code == 403


def test_posts_without_csrf_or_from_another_origin_are_refused(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    job_id = upstream_job(simulator.url, sim_run_seconds="60", sim_queue_seconds="0")
    wait_for(lambda: get(daemon, token, f"/v1/batch/jobs/{job_id}").status_code == 200)
    browser = login(daemon, token)
    page = browser.get(f"{daemon.api_url}/ui/jobs/{job_id}", timeout=5)
    csrf = csrf_of(page.text)
    url = f"{daemon.api_url}/ui/jobs/{job_id}/cancel"
    missing = browser.post(url, data={}, allow_redirects=False, timeout=5)
    wrong = browser.post(url, data={"csrf": "guess"}, allow_redirects=False, timeout=5)
    foreign = browser.post(
        url,
        data={"csrf": csrf},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
        timeout=5,
    )
    referer = browser.post(
        url,
        data={"csrf": csrf},
        headers={"Referer": "https://evil.example/page"},
        allow_redirects=False,
        timeout=5,
    )
    assert [r.status_code for r in (missing, wrong, foreign, referer)] == [403] * 4
    assert get(daemon, token, f"/v1/batch/jobs/{job_id}").json()["status"] == "RUNNING"
    assert get(daemon, token, f"/v1/batch/jobs/{job_id}/actions").json()["total"] == 0


def test_cancel_from_the_job_page_is_recorded(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    job_id = upstream_job(simulator.url, sim_run_seconds="60", sim_queue_seconds="0")
    wait_for(lambda: get(daemon, token, f"/v1/batch/jobs/{job_id}").status_code == 200)
    browser = login(daemon, token)
    page = browser.get(f"{daemon.api_url}/ui/jobs/{job_id}", timeout=5)
    assert f'action="/ui/jobs/{job_id}/cancel"' in page.text
    answer = browser.post(
        f"{daemon.api_url}/ui/jobs/{job_id}/cancel",
        data={"csrf": csrf_of(page.text)},
        headers={"Origin": daemon.api_url},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/ui/jobs/{job_id}"
    log = get(daemon, token, f"/v1/batch/jobs/{job_id}/actions").json()["data"]
    assert [(a["action"], a["requested_by"]) for a in log] == [("cancel", "ui")]
    after = browser.get(f"{daemon.api_url}/ui/jobs/{job_id}", timeout=5).text
    assert "cancel" in after
    assert "CANCELLATION_REQUESTED" in after or "CANCELLED" in after


def test_every_ui_response_carries_the_security_headers(daemon: Daemon, token: str) -> None:
    browser = login(daemon, token)
    answers = [browser.get(daemon.api_url + p, timeout=5) for p in PAGES]
    answers += [
        requests.get(daemon.api_url + "/ui/login", timeout=5),
        requests.get(daemon.api_url + "/ui/", allow_redirects=False, timeout=5),
        requests.get(daemon.api_url + "/ui/static/ui.css", timeout=5),
        browser.get(daemon.api_url + "/ui/jobs/no-such-job", timeout=5),
    ]
    for answer in answers:
        csp = answer.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
    assert answers[-1].status_code == 404


def test_no_page_or_static_file_refers_to_another_origin(
    simulator: RunningSimulator, daemon: Daemon, token: str
) -> None:
    job_id = upstream_job(simulator.url, sim_run_seconds="0.2", sim_queue_seconds="0")
    wait_for(lambda: get(daemon, token, f"/v1/batch/jobs/{job_id}").json()["status"] == "SUCCESS")
    browser = login(daemon, token)
    texts = {p: browser.get(daemon.api_url + p, timeout=5).text for p in PAGES}
    texts[job_id] = browser.get(f"{daemon.api_url}/ui/jobs/{job_id}", timeout=5).text
    texts["login"] = requests.get(daemon.api_url + "/ui/login", timeout=5).text
    for path in sorted(Path(STATIC).iterdir()):
        served = requests.get(f"{daemon.api_url}/ui/static/{path.name}", timeout=5)
        assert served.status_code == 200
        texts[path.name] = served.text
    for name, text in texts.items():
        if name.endswith(".txt"):  # the licence names its authors' site, nothing loads it
            continue
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]", text, re.IGNORECASE), name
        assert "<script>" not in text, name
        assert not re.search(r"\son[a-z]+=", text), f"{name} has an inline event handler"
    assert 'hx-trigger="every' in texts["/ui/"]


def test_the_jobs_page_filters(simulator: RunningSimulator, daemon: Daemon, token: str) -> None:
    done = upstream_job(simulator.url, sim_run_seconds="0.2", sim_queue_seconds="0")
    running = upstream_job(simulator.url, sim_run_seconds="60", sim_queue_seconds="0")
    wait_for(lambda: get(daemon, token, f"/v1/batch/jobs/{done}").json()["status"] == "SUCCESS")
    wait_for(lambda: get(daemon, token, f"/v1/batch/jobs/{running}").status_code == 200)
    browser = login(daemon, token)

    def listed(**params: str | list[str]) -> str:
        answer = browser.get(daemon.api_url + "/ui/jobs", params=params, timeout=5)
        assert answer.status_code == 200
        return answer.text

    by_status = listed(status="SUCCESS")
    assert done in by_status
    assert running not in by_status
    both = listed(status=["SUCCESS", "RUNNING"], metadata="team=search")
    assert done in both
    assert running in both
    assert "<progress" in both
    assert done not in listed(metadata="team=nobody")
    assert done not in listed(model="other-model")
    assert done not in listed(since="2999-01-01")
    assert done in listed(model="mistral-small-latest", since="2000-01-01", sort="created")
    assert "ignored" in listed(since="not a date")
    fragment = browser.get(
        daemon.api_url + "/ui/jobs", headers={"HX-Request": "true"}, timeout=5
    ).text
    assert "<html" not in fragment
    assert done in fragment


def test_the_overview_shows_the_upstream_s_retry_after_wait(
    daemon: Daemon, token: str, simulator: RunningSimulator
) -> None:
    browser = login(daemon, token)
    assert "Retry-After wait</dt><dd>none" in browser.get(daemon.api_url + "/ui/", timeout=5).text
    simulator.simulation.faults.set([FaultRule("429", retry_after=30)])
    held = re.compile(r"Retry-After wait</dt><dd>(\d+) s left")

    def waiting() -> bool:
        found = held.search(browser.get(daemon.api_url + "/ui/", timeout=5).text)
        return found is not None and 20 <= int(found.group(1)) <= 30

    wait_for(waiting, 10)


# ---- providers: the column, the filter, and progress that is unknown while a batch runs ----


def _listed(browser: requests.Session, daemon: Daemon, **params: str) -> str:
    answer = browser.get(daemon.api_url + "/ui/jobs", params=params, timeout=5)
    assert answer.status_code == 200
    return answer.text


_ROW = re.compile(r'<tr>\s*<td data-label="Job"><a href="/ui/jobs/([^"]+)">.*?</tr>', re.S)


def _rows(html: str) -> dict[str, str]:
    """The jobs page's rows, by the job id each links to."""
    return {found.group(1): found.group(0) for found in _ROW.finditer(html)}


def test_the_jobs_page_shows_each_provider_and_filters_by_one(three: Three) -> None:
    mistral = upstream_job(three.mistral.url, sim_run_seconds="60", sim_queue_seconds="0")
    openai = upstream_openai_batch(three.openai, sim_run_seconds="60", sim_queue_seconds="0")
    anthropic = upstream_anthropic_batch(three.anthropic, "sim_run_seconds=60")
    wait_for(lambda: all(three.job(j)["status"] == "RUNNING" for j in (mistral, openai, anthropic)))
    browser = login(three.daemon, three.token)
    rows = _rows(_listed(browser, three.daemon))
    assert set(rows) == {mistral, openai, anthropic}
    for job_id, label in ((mistral, "Mistral"), (openai, "OpenAI"), (anthropic, "Anthropic")):
        assert f'<td data-label="Provider">{label}</td>' in rows[job_id]
    # The common status, and the provider's own beside it where it differs.
    assert "RUNNING <small>(in_progress)</small>" in rows[openai]
    assert "<small>" not in rows[mistral]
    only = _listed(browser, three.daemon, provider="openai")
    assert set(_rows(only)) == {openai}
    assert '<option value="openai" selected>OpenAI</option>' in only
    assert "provider=openai" in only  # the live fragment keeps the filter
    wrong = _listed(browser, three.daemon, provider="cohere")
    assert "the provider is one of mistral, openai, anthropic: ignored" in wrong
    assert set(_rows(wrong)) == {mistral, openai, anthropic}


def test_an_active_anthropic_batch_shows_its_progress_as_unknown(three: Three) -> None:
    running = upstream_anthropic_batch(three.anthropic, "sim_run_seconds=60")
    ended = upstream_anthropic_batch(three.anthropic, "sim_run_seconds=0.2")
    wait_for(lambda: three.job(running)["status"] == "RUNNING")
    wait_for(lambda: three.job(ended)["status"] == "SUCCESS")
    browser = login(three.daemon, three.token)
    rows = _rows(_listed(browser, three.daemon))
    assert "progress unknown until the batch ends" in rows[running]
    assert "<progress" not in rows[running] and "0.0%" not in rows[running]
    assert "<progress" in rows[ended] and "100.0% (2/2)" in rows[ended]
    page = browser.get(f"{three.daemon.api_url}/ui/jobs/{running}", timeout=5).text
    assert "progress unknown until the batch ends" in page
    assert "<dt>ETA</dt><dd>—</dd>" in page and "<dt>Rate</dt><dd>—</dd>" in page
    assert "<dt>Provider</dt><dd>Anthropic</dd>" in page
    assert "<dt>Provider status</dt><dd>in_progress</dd>" in page
    assert 'class="curve"' not in page  # no progress curve drawn from zeros
    page = browser.get(f"{three.daemon.api_url}/ui/jobs/{ended}", timeout=5).text
    assert "progress unknown" not in page and "SUCCESS <small>(ended)</small>" in page
