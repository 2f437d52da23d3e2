"""Log rendering: the daemon's JSON lines and the console's plain tracebacks."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from batchwatch import logs


@pytest.fixture
def restore_logs() -> Iterator[None]:
    yield
    logs.configure("warning", "json")  # what the rest of the suite runs with (conftest)


def _fail(logger_name: str) -> None:
    log = logs.get_logger(logger_name)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("cycle_crashed")


@pytest.mark.usefixtures("restore_logs")
def test_console_tracebacks_are_plain_text_whether_or_not_rich_is_loaded() -> None:
    import rich  # loaded in this process: the console renderer must still not use it

    assert rich
    out = io.StringIO()
    logs.configure("info", "console", stream=out)
    _fail("test.console")
    text = out.getvalue()
    assert "cycle_crashed" in text
    assert "Traceback (most recent call last):" in text
    assert "ValueError: boom" in text
    assert "╭" not in text  # rich's boxed traceback


@pytest.mark.usefixtures("restore_logs")
def test_json_lines_carry_the_traceback_as_text() -> None:
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    _fail("test.json")
    event = json.loads(out.getvalue().strip().splitlines()[-1])
    assert event["event"] == "cycle_crashed"
    assert "ValueError: boom" in event["exception"]


@pytest.mark.usefixtures("restore_logs")
def test_a_library_record_is_rendered_like_the_daemons_events() -> None:
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    logging.getLogger("urllib3.connectionpool").warning("Retrying (%s) after %s", "Retry(1)", "x")
    logs.get_logger("batchwatch.test").warning("poll_failed", error="x")
    library, own = (json.loads(line) for line in out.getvalue().splitlines())
    assert library["event"] == "Retrying (Retry(1)) after x"
    assert library["logger"] == "urllib3.connectionpool"
    assert library["level"] == own["level"] == "warning"
    assert library.keys() >= {"timestamp"} and own.keys() >= {"timestamp"}
