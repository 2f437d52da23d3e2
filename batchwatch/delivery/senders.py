"""Sending one event to one endpoint: a webhook (a signed POST) or a hook (a program run
with the event on its standard input). Each send returns an ``Attempt``; retrying is the
dispatcher's, from the database, so it survives a restart.

The only place that speaks HTTP to webhook receivers (the Mistral client is another
boundary) and that runs hook programs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple, Protocol

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks.webhooks import Webhook
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from batchwatch import __version__
from batchwatch.config_events import HookSettings, WebhookSettings
from batchwatch.logs import redact

#: The most of a hook's standard error kept with its attempt.
STDERR_TAIL = 2000


class Attempt(NamedTuple):
    ok: bool
    #: The HTTP status, or the hook's exit code; None when there was no answer.
    status: int | None = None
    error: str | None = None
    #: 429/503 with ``Retry-After``: nothing is sent to the endpoint before this many seconds.
    retry_after: float | None = None
    #: 410 Gone: the endpoint is disabled.
    gone: bool = False


class Sender(Protocol):
    def send(self, event_id: str, body: bytes) -> Attempt: ...

    def close(self) -> None: ...


class WebhookSender:
    """POSTs with the Standard Webhooks headers; a session per thread (connections are
    kept alive between deliveries); no redirect followed, no retry inside a send."""

    def __init__(self, settings: WebhookSettings, now: Callable[[], datetime]) -> None:
        assert settings.secret is not None  # (read at start-up: config_events.with_secrets)
        self.url = settings.url
        self.timeout = settings.timeout_seconds
        self._signer = Webhook(settings.secret)
        self._now = now
        self._local = threading.local()
        self._sessions: list[requests.Session] = []

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # No ``max_redirects = 0``: with it, requests raises TooManyRedirects on any
            # 3xx even when not following (it works out the next hop all the same), and the
            # attempt would lose its status and Location. ``allow_redirects=False`` suffices.
            session.mount("http://", HTTPAdapter(max_retries=Retry(total=0, redirect=0)))
            session.mount("https://", HTTPAdapter(max_retries=Retry(total=0, redirect=0)))
            session.headers["User-Agent"] = f"batchwatch/{__version__}"
            self._local.session = session
            self._sessions.append(session)
        return session

    def send(self, event_id: str, body: bytes) -> Attempt:
        at = self._now()
        text = body.decode()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": self._signer.sign(event_id, at, text),
        }
        try:
            answer = self._session().post(
                self.url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            return Attempt(False, None, redact(_reason(exc)))
        answer.close()
        status = answer.status_code
        if 200 <= status < 300:
            return Attempt(True, status)
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += f" (redirect to {answer.headers.get('Location', '?')} not followed)"
        wait = _retry_after(answer.headers.get("Retry-After")) if status in (429, 503) else None
        return Attempt(False, status, error, retry_after=wait, gone=status == 410)

    def close(self) -> None:
        for session in self._sessions:
            session.close()


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (urllib3 reads both of its forms); None if absent or
    unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(Retry().parse_retry_after(value)))
    except InvalidHeader:
        return None


class HookSender:
    """Runs the program (its argv, no shell) with the event on standard input; exit 0 is
    delivered. A program still running at the timeout is killed with its process group."""

    def __init__(self, settings: HookSettings) -> None:
        self.command = list(settings.command)
        self.timeout = settings.timeout_seconds

    def send(self, event_id: str, body: bytes) -> Attempt:
        try:
            child = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env={**_hook_environment(), "BATCHWATCH_EVENT_ID": event_id},
            )
        except OSError as exc:
            return Attempt(False, None, f"cannot run {self.command[0]}: {exc.strerror}")
        try:
            _, stderr = child.communicate(body, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            child.communicate()
            return Attempt(False, None, f"killed after {self.timeout:g} s (timeout_seconds)")
        tail = stderr.decode(errors="replace")[-STDERR_TAIL:].strip()
        if child.returncode == 0:
            return Attempt(True, 0)
        return Attempt(False, child.returncode, redact(tail) or f"exit code {child.returncode}")

    def close(self) -> None:
        pass


#: What a hook program does not inherit from the daemon: the Mistral key, and where systemd
#: put the service's credentials (the key, webhook secrets, a config with a password).
_WITHHELD = frozenset({"MISTRAL_API_KEY", "CREDENTIALS_DIRECTORY", "BATCHWATCH_CONFIG"})


def _hook_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _WITHHELD}


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGKILL)
