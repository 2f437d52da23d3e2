"""A webhook receiver for the tests and benchmarks: a real HTTP server on loopback that
verifies each request with the ``standardwebhooks`` verifier and keeps what it received.

Its answer is set by ``answer`` (a status, a ``Retry-After``, a delay); ``down()`` closes
its socket (connections refused) and ``up()`` opens it again on the same port.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.processes import free_port


def make_secret(path: Path) -> str:
    """A Standard Webhooks secret in ``path``, mode 0600."""
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection reset by a sender killed mid-request (the crash tests) is no error
        of the receiver's: the request simply did not arrive."""


@dataclass
class Received:
    at: float  # time.time() when the request arrived
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the receiver answered
    verified: bool


@dataclass
class Answer:
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0


@dataclass
class Receiver:
    secret: str
    port: int = field(default_factory=free_port)
    answer: Answer = field(default_factory=Answer)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._verifier = Webhook(self.secret)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                try:
                    raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    body = json.loads(raw)
                except (OSError, ValueError):
                    # A sender killed mid-request (the crash tests): nothing arrived.
                    self.close_connection = True
                    return
                receiver._take(self, raw, body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _QuietServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _take(self, handler: BaseHTTPRequestHandler, raw: bytes, body: dict[str, Any]) -> None:
        answer = self.answer
        if answer.delay:
            time.sleep(answer.delay)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        try:
            self._verifier.verify(raw, headers)
            verified = True
        except Exception:
            verified = False
        with self._lock:
            self.received.append(Received(time.time(), headers, body, answer.status, verified))
        handler.send_response(answer.status)
        if answer.retry_after is not None:
            handler.send_header("Retry-After", answer.retry_after)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]

    def close(self) -> None:
        self.down()
