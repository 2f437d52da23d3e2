"""The dashboard with two providers in headless Chromium: a real daemon tracking the Mistral
and the Anthropic simulators (real processes); the jobs list filtered by provider with the
form, and an Anthropic batch in progress shown as unknown, never as a 0% bar."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By

from tests.browser.dashboard import (
    Browser,
    Shot,
    choose,
    eventually,
    is_labelled,
    listed_job_ids,
    seed,
    submit,
    wait_for_status,
)
from tests.processes import API_KEY, DaemonProcess, Simulator, stop

pytestmark = pytest.mark.browser

UNKNOWN = "progress unknown until the batch ends"


@pytest.fixture
def anthropic(tmp_path: Path) -> Iterator[Simulator]:
    """The Anthropic simulator, as `batchwatch simulate --provider anthropic`."""
    where = tmp_path / "anthropic"
    where.mkdir()
    upstream = Simulator(where, "--provider", "anthropic")
    yield upstream
    stop(upstream.proc)


@pytest.fixture
def daemon(tmp_path: Path, sim: Simulator, anthropic: Simulator) -> Iterator[DaemonProcess]:
    """This module's daemon tracks Anthropic's batches beside Mistral's jobs."""
    key = tmp_path / "anthropic-api-key"
    key.write_text(API_KEY)
    process = DaemonProcess(
        tmp_path,
        sim.url,
        extra=f'[anthropic]\nserver_url = "{anthropic.url}"\napi_key_file = "{key}"\n',
    )
    yield process
    stop(process.proc)


def anthropic_batch(anthropic: Simulator, run_seconds: float) -> str:
    """A two-request batch created straight on the simulator; it runs ``run_seconds``."""
    params: dict[str, Any] = {
        "model": "claude-3-5-haiku-latest",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "hi"}],
    }
    first = {**params, "metadata": {"user_id": f"sim_run_seconds={run_seconds}"}}
    response = requests.post(
        f"{anthropic.url}/v1/messages/batches",
        headers={"x-api-key": API_KEY, "anthropic-version": "2023-06-01"},
        json={
            "requests": [
                {"custom_id": "r0", "params": first},
                {"custom_id": "r1", "params": params},
            ]
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["id"])


def test_the_jobs_list_filters_by_provider_and_says_when_progress_is_unknown(
    signed_in: Browser, sim: Simulator, anthropic: Simulator, daemon: DaemonProcess, shot: Shot
) -> None:
    browser = signed_in
    (mistral,) = seed(sim, 1, run_seconds=120)
    claude = anthropic_batch(anthropic, run_seconds=120)
    wait_for_status(daemon, [mistral, claude], {"RUNNING"})

    browser.open("/ui/jobs")
    eventually(lambda: {mistral, claude} <= listed_job_ids(browser), 15, "both jobs listed")
    field = choose(browser, "provider", "anthropic")
    assert is_labelled(browser, field), "the provider filter has no label"
    submit(field)
    eventually(
        lambda: listed_job_ids(browser) & {mistral, claude} == {claude},
        15,
        "the list to show the Anthropic batch only",
    )
    assert "provider=anthropic" in browser.driver.current_url  # shareable, as every filter
    text = browser.text()
    assert "Anthropic" in text and UNKNOWN in text
    # Its counts say nothing while it runs: no bar at all, rather than one at 0%.
    assert browser.driver.find_elements(By.TAG_NAME, "progress") == []
    shot("jobs-anthropic")

    browser.open(f"/ui/jobs/{claude}")
    eventually(lambda: UNKNOWN in browser.text(), 15, "the job page saying progress is unknown")
    assert "in_progress" in browser.text()
    assert browser.driver.find_elements(By.TAG_NAME, "progress") == []
    shot("job-anthropic")
