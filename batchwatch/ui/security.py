"""The dashboard's guards: sessions made by logging in with the API token, CSRF tokens,
the same-origin check of a post, and the security headers of every ``/ui`` response.

Sessions are random ids kept in this process's memory, not signed cookies: logout (or a
restart) really ends a session, nothing the browser holds can be replayed after that, and
there is no signing key to keep or rotate. The price: a restart logs everyone out, and in
team mode each daemon has its own sessions (a dashboard user sticks to one daemon).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

COOKIE = "batchwatch_session"
LOGIN_COOKIE = "batchwatch_login"  # the login form's CSRF token, before any session exists
CSRF_FIELD = "csrf"
SESSION_SECONDS = 12 * 3600
#: At most this many live sessions; the oldest goes first (a bound on memory, whatever
#: number of logins a script makes).
MAX_SESSIONS = 1000

HEADERS = {
    # Nothing from another origin, no inline script or handler; htmx is a static file. Inline
    # style attributes are not used either (htmx's indicator styles are turned off).
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}
_RAW_HEADERS = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str
    expires: float


class Sessions:
    """The live sessions, thread-safe (pages render in worker threads)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._lock = threading.Lock()
        self._live: OrderedDict[str, Session] = OrderedDict()

    def token_ok(self, given: str) -> bool:
        # Constant time: the answer's timing must not tell how much of a guess was right.
        return hmac.compare_digest(given.encode(), self._token)

    def open(self) -> Session:
        session = Session(
            secrets.token_urlsafe(32), secrets.token_urlsafe(32), time.time() + SESSION_SECONDS
        )
        with self._lock:
            self._live[session.id] = session
            while len(self._live) > MAX_SESSIONS:
                self._live.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            found = self._live.get(session_id)
            if found is not None and found.expires < time.time():
                del self._live[session_id]
                return None
        return found

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._live.pop(session_id or "", None)


def csrf_matches(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


def same_origin(headers: MutableMapping[str, str] | Any, scheme: str) -> bool:
    """False when the post says it comes from another origin (``Origin``, else
    ``Referer``); a post with neither is left to the CSRF token."""
    host = headers.get("host")
    own = f"{scheme}://{host}"
    origin = headers.get("origin")
    if origin is not None:
        return bool(origin == own)
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}" == own
    return True


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class SecurityHeaders:
    """Adds ``HEADERS`` to every response under ``/ui`` (pages, redirects, errors, static
    files). A plain ASGI middleware: the API's routes pass through with one path check,
    not the cost of a ``BaseHTTPMiddleware`` (which the API's latency figures would pay)."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/ui" or path.startswith("/ui/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_RAW_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
