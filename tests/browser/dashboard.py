"""What the browser tests do to the dashboard, written against the contract ("Dashboard" in
INTERFACE.md) and the choices that should outlive a redesign: form field names (``token``,
``status``), button texts ("Cancel", "Retry"), links to ``/ui/jobs/{id}``, a ``<progress>``
or ``role=progressbar`` element; never class names or layout."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.command import Command
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.processes import DaemonProcess, Simulator, wait_until

T = TypeVar("T")
# The ``shot`` fixture: ``shot(name, full_page=True)`` saves a PNG and returns its path.
Shot = Callable[..., Path]

CSP_VIOLATION = "Content Security Policy"

# The first progress indicator of the page, as a number: a <progress> element's value, an
# ARIA progressbar's aria-valuenow, else the first "N / M" or "N%" of its text.
_PROGRESS_JS = """
const bar = document.querySelector('progress, [role="progressbar"]');
if (bar !== null) {
    if (bar.tagName === 'PROGRESS') { return bar.value; }
    const now = bar.getAttribute('aria-valuenow');
    if (now !== null) { return parseFloat(now); }
    const text = bar.textContent;
    if (text) { return text; }
}
return null;
"""


@dataclass
class Browser:
    """One headless Chromium on one daemon; keeps the console messages it has read (the
    driver hands each one out once)."""

    driver: Chrome
    base_url: str
    console: list[dict[str, Any]] = field(default_factory=list)

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    @property
    def path(self) -> str:
        return urlsplit(self.driver.current_url).path

    def text(self) -> str:
        return str(self.driver.find_element(By.TAG_NAME, "body").text)

    def read_console(self) -> list[dict[str, Any]]:
        # What Chrome's get_log("browser") does; that method has no type annotations.
        entries = self.driver.execute(Command.GET_LOG, {"type": "browser"})["value"]
        self.console.extend(entries)
        return self.console

    def csp_violations(self) -> list[str]:
        return [
            str(entry["message"])
            for entry in self.read_console()
            if CSP_VIOLATION in str(entry.get("message", ""))
        ]

    def js(self, script: str, *args: object) -> Any:
        return self.driver.execute_script(script, *args)


def eventually(probe: Callable[[], T | None], seconds: float, what: str) -> T:
    """``probe()``'s first truthy value within ``seconds``; the page may be swapping parts of
    itself meanwhile, so a stale or missing element only means "not yet"."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (WebDriverException, requests.RequestException) as exc:
            last = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last!r})" if last else ""
            raise AssertionError(f"timed out after {seconds} s waiting for {what}{detail}")
        time.sleep(0.2)


# --- jobs in the simulator and the daemon ----------------------------------------------------


def seed(
    sim: Simulator,
    count: int,
    *,
    run_seconds: float,
    outcome: str | None = None,
    total_requests: int = 200,
) -> list[str]:
    """``count`` jobs in the simulator, QUEUED for half a second then RUNNING for
    ``run_seconds`` and ending in ``outcome`` (SUCCESS unless told)."""
    metadata = {"sim_queue_seconds": "0.5", "sim_run_seconds": str(run_seconds)}
    if outcome is not None:
        metadata["sim_outcome"] = outcome
    response = requests.post(
        f"{sim.url}/_sim/jobs/bulk",
        json={"count": count, "total_requests": total_requests, "metadata": metadata},
        timeout=10,
    )
    response.raise_for_status()
    return [str(job_id) for job_id in response.json()["ids"]]


def wait_for_status(
    daemon: DaemonProcess, ids: Iterable[str], statuses: set[str], seconds: float = 30
) -> None:
    """Until the daemon has recorded every job of ``ids`` in one of ``statuses``."""
    ids = list(ids)
    wait_until(
        lambda: all(daemon.get(f"/v1/batch/jobs/{i}")["status"] in statuses for i in ids),
        seconds,
        f"{len(ids)} job(s) to be recorded in {sorted(statuses)}",
    )


def wait_for_results(daemon: DaemonProcess, job_id: str, seconds: float = 30) -> None:
    """Until the daemon has fetched the ended job's results (then the page offers Retry
    for a job with failed or not-run requests)."""
    wait_until(
        lambda: daemon.get(f"/v1/batch/jobs/{job_id}/results")["state"] == "ready",
        seconds,
        f"the results of {job_id}",
    )


# --- the pages ---------------------------------------------------------------------------------


def is_labelled(browser: Browser, element: WebElement) -> bool:
    """A form field with a <label>, an aria-label or an aria-labelledby."""
    return bool(
        browser.js(
            "const e = arguments[0];"
            "return (e.labels && e.labels.length > 0) || !!e.getAttribute('aria-label')"
            " || !!e.getAttribute('aria-labelledby');",
            element,
        )
    )


def submit(field: WebElement) -> None:
    """Submit ``field``'s form as a person would: its submit button, else Enter."""
    form = field.find_element(By.XPATH, "./ancestor::form")
    buttons = [
        b
        for b in form.find_elements(
            By.CSS_SELECTOR, "button[type=submit], button:not([type]), input[type=submit]"
        )
        if b.is_displayed()
    ]
    if buttons:
        buttons[0].click()
    else:
        field.submit()


def log_in(browser: Browser, token: str) -> None:
    browser.open("/ui/login")
    field = browser.driver.find_element(By.NAME, "token")
    field.send_keys(token)
    submit(field)
    eventually(lambda: browser.path == "/ui/", 15, "the login to land on /ui/")


def session_cookies(browser: Browser) -> list[dict[str, Any]]:
    return [dict(c) for c in browser.driver.get_cookies()]


def choose(browser: Browser, name: str, value: str) -> WebElement:
    """Set the filter field ``name`` to ``value``, whether a <select>, a group of checkboxes or
    radio buttons, or a text field; returns the field."""
    fields = browser.driver.find_elements(By.NAME, name)
    assert fields, f"no form field named {name!r} on {browser.path}"
    first = fields[0]
    kind = (first.get_attribute("type") or "").lower()
    if first.tag_name.lower() == "select":
        select = Select(first)
        if select.is_multiple:
            select.deselect_all()
        select.select_by_value(value)
        return first
    if kind in ("checkbox", "radio"):
        for box in fields:
            if (box.get_attribute("value") == value) != box.is_selected():
                box.click()
        return next(box for box in fields if box.get_attribute("value") == value)
    first.clear()
    first.send_keys(value)
    return first


def listed_job_ids(browser: Browser) -> set[str]:
    """The jobs the page links to (``/ui/jobs/{id}``)."""
    hrefs: list[str] = browser.js(
        "return Array.from(document.querySelectorAll('a[href]'), a => a.href);"
    )
    ids = set()
    for href in hrefs:
        match = re.fullmatch(r"/ui/jobs/([^/?#]+)", urlsplit(href).path)
        if match:
            ids.add(match.group(1))
    return ids


def button(browser: Browser, text: str) -> WebElement:
    """The visible button whose text (or value) starts with ``text``."""
    candidates = browser.driver.find_elements(
        By.XPATH,
        f"//button[starts-with(normalize-space(), '{text}')]"
        f" | //input[(@type='submit' or @type='button') and starts-with(@value, '{text}')]",
    )
    shown = [c for c in candidates if c.is_displayed()]
    assert shown, f"no {text!r} button on {browser.path}"
    return shown[0]


def post_target(element: WebElement) -> str:
    """Where a button posts: its formaction or hx-post, else its form's action or hx-post."""
    for attribute in ("formaction", "hx-post", "data-hx-post"):
        value = element.get_attribute(attribute)
        if value:
            return urlsplit(value).path
    form = element.find_element(By.XPATH, "./ancestor::form")
    for attribute in ("hx-post", "data-hx-post", "action"):
        value = form.get_attribute(attribute)
        if value:
            return urlsplit(value).path
    return ""


def accept_confirmation(browser: Browser) -> None:
    """Say yes to a confirm() the button may raise."""
    with contextlib.suppress(NoAlertPresentException):
        browser.driver.switch_to.alert.accept()


def progress(browser: Browser) -> float | None:
    """The page's first progress indicator as a number, or None when it has none."""
    value = browser.js(_PROGRESS_JS)
    if isinstance(value, int | float):
        return float(value)
    text = value if isinstance(value, str) else browser.text()
    match = re.search(r"(\d[\d,]*)\s*/\s*\d[\d,]*", text) or re.search(r"(\d+(?:\.\d+)?)\s*%", text)
    return float(match.group(1).replace(",", "")) if match else None


def status_shown(browser: Browser, statuses: Iterable[str]) -> str | None:
    """The first of ``statuses`` the page shows, as a word written as the API writes it
    (``CANCELLED``; "Failed" as a column heading is not the status FAILED)."""
    text = browser.text()
    return next((s for s in statuses if re.search(rf"\b{s}\b", text)), None)
