"""structlog, set up once: JSON lines for machines, readable lines on a terminal.

Secrets (the Mistral API key, the local API token) are registered here and scrubbed from
every event before it is rendered, whatever the level and whichever field carries them. The
libraries' standard-library records (urllib3, uvicorn, apscheduler, SQLAlchemy) go through
the same processors: one format and one redaction for every line.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

# structlog imports rich, when it is installed, as it is itself imported (for the development
# renderer's tracebacks): about 4 MB of resident memory, with pygments, for the whole life of
# the daemon, which never renders through rich. An entry of None in sys.modules makes an
# import raise ImportError (the documented way to keep a module out), which structlog takes
# as "rich is not installed"; the entry is removed at once, so the CLI's tables still import
# rich normally. Where rich or structlog is already loaded, nothing changes. Benchmark figure
# 5 (the daemon's RSS, peak target 100 MB), with the row cache (``store.rowcache``): 83.2 MB
# at start without it, 79.0 MB with it.
_KEEP_RICH_OUT = "rich" not in sys.modules and "structlog" not in sys.modules
if _KEEP_RICH_OUT:
    sys.modules["rich"] = None  # type: ignore[assignment]
try:
    import structlog
finally:
    if _KEEP_RICH_OUT and sys.modules.get("rich", sys) is None:
        del sys.modules["rich"]

_SECRETS: set[str] = set()
_REDACTED = "[redacted]"


def register_secret(value: str | None) -> None:
    """Never let ``value`` reach a log line. Short values are ignored (they would mask noise)."""
    if value and len(value) >= 8:
        _SECRETS.add(value)


def redact(text: str) -> str:
    # Longest first, so a secret containing another is masked whole; a copy, because the
    # daemon registers secrets while other threads may already be logging.
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, BaseException):
        return redact(repr(value))
    return value


def _scrub_processor(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not _SECRETS:
        return event
    return {key: _scrub(value) for key, value in event.items()}


def _redact_rendered(_logger: Any, _name: str, rendered: Any) -> Any:
    """After rendering: catches a secret inside the repr of an object the field scrub
    cannot see into (a client, a request)."""
    return redact(rendered) if _SECRETS and isinstance(rendered, str) else rendered


class _CurrentStderr(io.TextIOBase):
    """Whatever ``sys.stderr`` is at the moment of writing, not at set-up: a caller that
    swaps stderr (a test harness, a daemonising wrapper) must not leave logs pointing at a
    closed stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set structlog up; ``fmt`` is ``json``, ``console`` or ``auto`` (console on a TTY).

    The libraries that log through the standard library (urllib3's retries, uvicorn,
    apscheduler, SQLAlchemy) are rendered by the same processors, redaction included, so
    every line of the stream has one format."""
    out: TextIO = stream or cast(TextIO, _CurrentStderr())
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        # Plain tracebacks, whether or not rich was loaded before structlog (see above).
        structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        if use_console
        else structlog.processors.JSONRenderer()
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)
    # Scrubbed field by field, then once more as rendered (see ``_redact_rendered``).
    rendering = [structlog.processors.format_exc_info, _scrub_processor, renderer]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            *rendering,
            _redact_rendered,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # One write per line (message and newline together): print() writes the newline
        # separately, and a library record logged from another thread in between ran two
        # JSON lines into one.
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = _library_handler(out, stamp, rendering)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    # Keep the libraries quiet unless debugging: urllib3 at debug shows each upstream
    # connection, request line and retry, what one needs when Mistral misbehaves.
    root.setLevel(logging.WARNING)
    for noisy in ("apscheduler", "uvicorn", "uvicorn.error", "uvicorn.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def _library_handler(out: TextIO, stamp: Any, rendering: list[Any]) -> logging.Handler:
    """The root handler: standard-library records rendered by structlog's own processors."""
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                stamp,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *rendering,
                _redact_rendered,
            ],
        )
    )
    return handler


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
