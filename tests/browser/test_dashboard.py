"""The dashboard (issue 13) in headless Chromium against the real daemon and simulator: the
login wall, logging in, filtering the jobs list, a job's page, live progress, cancelling from
the page, a phone-wide screen, and no Content-Security-Policy violations. Each test saves
screenshots (``shot``; $BATCHWATCH_SCREENSHOTS collects them)."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By

from tests.browser.dashboard import (
    Browser,
    Shot,
    accept_confirmation,
    button,
    choose,
    eventually,
    is_labelled,
    listed_job_ids,
    log_in,
    post_target,
    progress,
    seed,
    session_cookies,
    status_shown,
    submit,
    wait_for_results,
    wait_for_status,
)
from tests.processes import DaemonProcess, Simulator

pytestmark = pytest.mark.browser

PAGES = ("/ui/", "/ui/jobs", "/ui/events")
PHONE_WIDTH = 375


def test_every_page_without_a_session_lands_on_the_login_page(
    browser: Browser, sim: Simulator, daemon: DaemonProcess, shot: Shot
) -> None:
    (job_id,) = seed(sim, 1, run_seconds=60)
    wait_for_status(daemon, [job_id], {"QUEUED", "RUNNING"})
    for path in (*PAGES, f"/ui/jobs/{job_id}"):
        browser.open(path)
        assert browser.path == "/ui/login", f"{path} without a session showed {browser.path}"
        assert browser.driver.find_elements(By.NAME, "token"), "no token field on the login page"
    assert job_id not in browser.text()
    shot("login")


def test_logging_in_with_the_token_sets_a_strict_httponly_session(
    browser: Browser, token: str, shot: Shot
) -> None:
    # A wrong token is refused: no session, still at the login page.
    browser.open("/ui/login")
    field = browser.driver.find_element(By.NAME, "token")
    assert is_labelled(browser, field), "the token field has no label"
    assert field.get_attribute("type") == "password", "the token is shown as typed"
    field.send_keys("not-the-token")
    submit(field)
    eventually(lambda: browser.driver.find_elements(By.NAME, "token"), 10, "the login form again")
    assert browser.path == "/ui/login"
    browser.open("/ui/jobs")
    assert browser.path == "/ui/login", "a wrong token opened the dashboard"

    log_in(browser, token)
    cookies = session_cookies(browser)
    assert cookies, "logged in without a cookie"
    session = [c for c in cookies if c.get("httpOnly") and c.get("sameSite") == "Strict"]
    assert session, f"no HttpOnly SameSite=Strict cookie among {cookies}"
    readable = str(browser.js("return document.cookie;"))
    assert all(c["name"] not in readable for c in session), "scripts can read the session"
    assert token not in browser.driver.page_source, "the page shows the token"
    shot("overview-empty")

    for path in PAGES:
        browser.open(path)
        assert browser.path == path, f"{path} with a session went to {browser.path}"


def test_the_jobs_list_filters_by_status(
    signed_in: Browser, sim: Simulator, daemon: DaemonProcess, shot: Shot
) -> None:
    browser = signed_in
    done = seed(sim, 3, run_seconds=0.5)
    failed = seed(sim, 1, run_seconds=0.5, outcome="FAILED")
    running = seed(sim, 2, run_seconds=120)
    wait_for_status(daemon, done, {"SUCCESS"})
    wait_for_status(daemon, failed, {"FAILED"})
    wait_for_status(daemon, running, {"RUNNING"})
    every = {*done, *failed, *running}

    browser.open("/ui/jobs")
    eventually(lambda: every <= listed_job_ids(browser), 15, "all six jobs in the list")
    shot("jobs")

    field = choose(browser, "status", "RUNNING")
    assert is_labelled(browser, field), "the status filter has no label"
    submit(field)
    eventually(
        lambda: listed_job_ids(browser) & every == set(running),
        15,
        "the list to show the running jobs only",
    )
    shot("jobs-running")

    # The filter is in the address: reloading it, or sharing it, shows the same list.
    browser.driver.refresh()
    eventually(
        lambda: listed_job_ids(browser) & every == set(running), 15, "the same list after reload"
    )

    choose(browser, "status", "SUCCESS")
    submit(browser.driver.find_element(By.NAME, "status"))
    eventually(lambda: listed_job_ids(browser) & every == set(done), 15, "the succeeded jobs only")

    browser.open("/ui/")
    shot("overview")


def test_a_job_opens_from_the_list_with_its_actions(
    signed_in: Browser, sim: Simulator, daemon: DaemonProcess, shot: Shot
) -> None:
    browser = signed_in
    (failed,) = seed(sim, 1, run_seconds=0.5, outcome="FAILED")
    (running,) = seed(sim, 1, run_seconds=120)
    wait_for_status(daemon, [failed], {"FAILED"})
    wait_for_results(daemon, failed)
    wait_for_status(daemon, [running], {"RUNNING"})

    browser.open("/ui/jobs")
    eventually(lambda: running in listed_job_ids(browser), 15, "the running job in the list")
    link = next(
        a
        for a in browser.driver.find_elements(By.CSS_SELECTOR, "a[href]")
        if urlsplit(a.get_attribute("href") or "").path == f"/ui/jobs/{running}"
        and a.is_displayed()
    )
    link.click()
    eventually(lambda: browser.path == f"/ui/jobs/{running}", 15, "the job's page")
    text = browser.text()
    assert running in text
    assert status_shown(browser, ["RUNNING"])
    assert "mistral-small-latest" in text
    cancel = button(browser, "Cancel")
    assert post_target(cancel) == f"/ui/jobs/{running}/cancel"
    shot("job-running")

    browser.open(f"/ui/jobs/{failed}")
    assert failed in browser.text()
    assert status_shown(browser, ["FAILED"])
    retry = button(browser, "Retry")
    assert post_target(retry) == f"/ui/jobs/{failed}/retry"
    shot("job-failed")


def test_a_running_job_shows_its_progress_advancing_without_a_reload(
    signed_in: Browser, sim: Simulator, daemon: DaemonProcess, shot: Shot
) -> None:
    browser = signed_in
    total = 600
    (job_id,) = seed(sim, 1, run_seconds=40, total_requests=total)
    wait_for_status(daemon, [job_id], {"RUNNING"})
    browser.open(f"/ui/jobs/{job_id}")
    first = eventually(lambda: progress(browser), 15, "a progress figure on the job's page")
    # Gone if the page reloads or navigates; the page itself only swaps parts of itself.
    browser.js("window.__batchwatchNoReload = true;")
    time.sleep(2)

    later = eventually(
        lambda: (value := progress(browser)) is not None and value > first and value,
        30,
        f"the progress to move past {first} by itself",
    )
    assert browser.js("return window.__batchwatchNoReload === true;"), "the page was reloaded"
    assert browser.path == f"/ui/jobs/{job_id}"
    assert later > first

    # Further on, for a picture with a curve to see.
    eventually(
        lambda: (value := progress(browser)) is not None and value >= 0.4 * total,
        40,
        "the job to be 40% done",
    )
    assert browser.js("return window.__batchwatchNoReload === true;"), "the page was reloaded"
    shot("job-progress")


def test_cancelling_from_the_job_page_is_recorded(
    signed_in: Browser, sim: Simulator, daemon: DaemonProcess, shot: Shot
) -> None:
    browser = signed_in
    (job_id,) = seed(sim, 1, run_seconds=120)
    wait_for_status(daemon, [job_id], {"RUNNING"})
    browser.open(f"/ui/jobs/{job_id}")
    ending = ["CANCELLATION_REQUESTED", "CANCELLED"]
    assert status_shown(browser, ending) is None, "shown as cancelled before the click"

    button(browser, "Cancel").click()
    accept_confirmation(browser)
    shown = eventually(lambda: status_shown(browser, ending), 20, "the page to show the cancel")
    assert browser.path == f"/ui/jobs/{job_id}", f"the cancel left the job for {browser.path}"
    shot("job-cancelled")

    transitions = daemon.recorded(job_id)
    assert any(t["source"] == "cancel" for t in transitions), transitions
    assert daemon.get(f"/v1/batch/jobs/{job_id}")["status"] in ending
    assert shown in ending


def test_pages_fit_a_phone_screen(
    browser: Browser, token: str, sim: Simulator, daemon: DaemonProcess, shot: Shot
) -> None:
    seed(sim, 2, run_seconds=0.5)
    seed(sim, 1, run_seconds=0.5, outcome="FAILED")
    (running,) = seed(sim, 1, run_seconds=120)
    wait_for_status(daemon, [running], {"RUNNING"})
    # A phone: 375 CSS px wide, the page laid out as a mobile browser would (so it needs
    # its <meta name="viewport">).
    browser.driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE_WIDTH, "height": 812, "deviceScaleFactor": 2, "mobile": True},
    )
    too_wide: dict[str, int] = {}

    def measure(path: str, name: str) -> None:
        assert browser.path == path
        width = int(browser.js("return document.documentElement.scrollWidth;"))
        if width > PHONE_WIDTH:
            too_wide[path] = width
        shot(f"phone-{name}", full_page=False)

    browser.open("/ui/login")
    measure("/ui/login", "login")
    log_in(browser, token)
    for path, name in [
        ("/ui/", "overview"),
        ("/ui/jobs", "jobs"),
        (f"/ui/jobs/{running}", "job"),
        ("/ui/events", "events"),
    ]:
        browser.open(path)
        measure(path, name)
    assert not too_wide, f"wider than {PHONE_WIDTH} px (a horizontal scrollbar): {too_wide}"


def test_no_page_breaks_its_content_security_policy(
    browser: Browser, token: str, sim: Simulator, daemon: DaemonProcess, shot: Shot
) -> None:
    (job_id,) = seed(sim, 1, run_seconds=120)
    seed(sim, 1, run_seconds=0.5, outcome="FAILED")
    wait_for_status(daemon, [job_id], {"RUNNING"})
    policy = requests.get(f"{daemon.url}/ui/login", timeout=5).headers.get(
        "Content-Security-Policy", ""
    )
    assert policy, "the login page has no Content-Security-Policy"

    browser.open("/ui/login")
    log_in(browser, token)
    foreign: dict[str, list[str]] = {}
    for path in (*PAGES, f"/ui/jobs/{job_id}"):
        browser.open(path)
        time.sleep(3)  # let the live parts poll and swap at least once
        loaded: list[str] = browser.js(
            "return performance.getEntriesByType('resource').map(e => e.name);"
        )
        elsewhere = [u for u in loaded if not u.startswith(daemon.url + "/")]
        if elsewhere:
            foreign[path] = elsewhere
        if path == "/ui/events":
            shot("events")
    violations = browser.csp_violations()
    assert not violations, "\n".join(violations)
    assert not foreign, f"loaded from another origin: {foreign}"


def _polls(browser: Browser) -> int:
    """The page's background requests so far (htmx's polls are XMLHttpRequests)."""
    count: int = browser.js(
        "return performance.getEntriesByType('resource')"
        ".filter(e => e.initiatorType === 'xmlhttprequest').length;"
    )
    return count


def _visibility(browser: Browser, state: str) -> None:
    browser.js(
        "Object.defineProperty(document, 'visibilityState', {value: arguments[0],"
        " configurable: true}); document.dispatchEvent(new Event('visibilitychange'));",
        state,
    )


def test_a_hidden_tab_stops_polling_and_a_visible_one_catches_up(
    signed_in: Browser, daemon: DaemonProcess
) -> None:
    browser = signed_in
    browser.open("/ui/")
    eventually(lambda: _polls(browser) >= 1, 15, "the overview to poll")
    _visibility(browser, "hidden")
    hidden_at = _polls(browser)
    time.sleep(7)  # two polling periods of the overview (every 3 s)
    assert _polls(browser) == hidden_at, "a hidden tab kept polling"
    _visibility(browser, "visible")
    eventually(lambda: _polls(browser) > hidden_at, 10, "the visible tab to refresh")
