"""Fixtures of the browser tests: a real ``batchwatch simulate`` and ``batchwatch serve``,
headless Chromium from Debian's packages (``chromium``, ``chromium-driver``) driven by
Selenium, and ``shot(name)`` for screenshots.

When Chromium cannot start, every browser test is skipped with the reason, which is also
printed at the end of the run (a skip is never silent)."""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from tests.browser.dashboard import Browser, Shot, log_in
from tests.processes import DaemonProcess, Simulator, stop

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install chromium chromium-driver"
# Without the background-networking ones Chromium keeps calling home, and on a closed
# network its own connections are then refused.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = (1280, 900)
SCREENSHOTS_ENV = "BATCHWATCH_SCREENSHOTS"

# Why Chromium could not start, once known: the remaining tests skip at once.
_cannot_start: list[str] = []


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    """The simulator; its jobs take their pace from their ``sim_*`` metadata (``seed``)."""
    upstream = Simulator(tmp_path, "--cancel-seconds", "1")
    yield upstream
    stop(upstream.proc)


@pytest.fixture
def daemon(tmp_path: Path, sim: Simulator) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path, sim.url)
    yield process
    stop(process.proc)


@pytest.fixture
def token(daemon: DaemonProcess, tmp_path: Path) -> str:
    return (tmp_path / "token").read_text().strip()


def _options(profile: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    # The console (CSP violations among it) through driver.get_log("browser").
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def _start_chromium(tmp_path: Path) -> webdriver.Chrome:
    if _cannot_start:
        pytest.skip(_cannot_start[0])
    for program in (CHROMIUM, CHROMEDRIVER):
        if not os.access(program, os.X_OK):
            _cannot_start.append(f"Chromium cannot start: {program} is missing ({INSTALL})")
            pytest.skip(_cannot_start[0])
    service = Service(str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log"))
    try:
        return webdriver.Chrome(service=service, options=_options(tmp_path / "chromium"))
    except WebDriverException as exc:
        reason = (exc.msg or str(exc)).strip().splitlines()[0]
        _cannot_start.append(f"Chromium cannot start: {reason}")
        pytest.skip(_cannot_start[0])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test itself failed, for the browser fixture's teardown."""
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def browser(
    request: pytest.FixtureRequest, tmp_path: Path, daemon: DaemonProcess
) -> Iterator[Browser]:
    """A fresh headless Chromium (its own profile: no cookies) on the daemon, not logged in.
    When the test fails, the window as it was is saved as failure.png in its tmp dir."""
    driver = _start_chromium(tmp_path)
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver, daemon.url)
        if request.node.stash.get(_FAILED, False):
            driver.save_screenshot(str(tmp_path / "failure.png"))
    finally:
        driver.quit()


@pytest.fixture
def signed_in(browser: Browser, token: str) -> Browser:
    """The browser, logged in through the login form."""
    log_in(browser, token)
    return browser


@pytest.fixture
def shot(browser: Browser, tmp_path: Path) -> Shot:
    """``shot(name)`` saves the page as ``name.png`` in the test's tmp dir and, when
    $BATCHWATCH_SCREENSHOTS names a directory, there too; returns the first. The whole page,
    or with ``full_page=False`` what the window shows."""

    def save(name: str, *, full_page: bool = True) -> Path:
        # Chromium's DevTools call: Selenium's own screenshot stops at the window's edge.
        image = browser.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page}
        )
        path = tmp_path / f"{name}.png"
        path.write_bytes(base64.b64decode(image["data"]))
        elsewhere = os.environ.get(SCREENSHOTS_ENV)
        if elsewhere:
            Path(elsewhere).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(elsewhere) / path.name)
        return path

    return save


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say why the browser tests were skipped, whatever ``-r`` asks for."""
    if _cannot_start:
        terminalreporter.write_line(
            f"browser tests skipped: {_cannot_start[0]}", yellow=True, bold=True
        )
