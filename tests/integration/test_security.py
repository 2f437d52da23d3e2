"""Security by default: loopback only, every /v1 route behind the token, a private token
file, and neither the Mistral API key nor the local token in any log line or answer, at any
log level."""

from __future__ import annotations

import base64
import hmac
import io
import logging
import os
import secrets
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog
from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials

from batchwatch import logs
from batchwatch.api.auth import bearer_guard
from batchwatch.config import ApiSettings, Settings, load_settings
from batchwatch.config_providers import MistralSettings
from batchwatch.daemon import Daemon
from batchwatch.errors import StartupError
from batchwatch.simulator.server import RunningSimulator, start_in_thread
from batchwatch.simulator.settings import SimulatorSettings
from tests.helpers import SIM_API_KEY, daemon_settings, wait_for

SOME_ID = "8a1c7c3e-0000-4000-8000-000000000000"


def spec_of(daemon: Daemon) -> dict[str, Any]:
    spec: dict[str, Any] = requests.get(daemon.api_url + "/openapi.json", timeout=5).json()
    return spec


# ---- listening on loopback only -----------------------------------------------------------


def test_api_host_defaults_to_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./batchwatch.toml
    assert ApiSettings().host == "127.0.0.1"
    assert load_settings(None, env={"STATE_DIRECTORY": str(tmp_path)}).api.host == "127.0.0.1"


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on ``port``, from the kernel's own table."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def other_ipv4_addresses() -> set[str]:
    try:
        found = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except socket.gaierror:
        return set()
    return {str(a[4][0]) for a in found} - {"127.0.0.1", "127.0.1.1"}


def test_daemon_with_default_host_listens_on_loopback_only(
    tmp_path: Path, simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    defaults = load_settings(None, env={"STATE_DIRECTORY": str(tmp_path)})
    settings = replace(
        defaults,
        api=replace(defaults.api, port=0),  # the host stays the default
        mistral=MistralSettings(server_url=simulator.url, api_key=SIM_API_KEY),
    )
    daemon = Daemon(settings, threading.Event())
    daemon.start()
    try:
        host, port = daemon.api_url.removeprefix("http://").rsplit(":", 1)
        assert host == "127.0.0.1"
        if Path("/proc/net/tcp").exists():
            assert listening_addresses(int(port)) == {"0100007F"}  # 127.0.0.1, nothing else
        # And through this host's other addresses, if it has any: nobody answers there.
        for other in other_ipv4_addresses():
            with pytest.raises((ConnectionRefusedError, TimeoutError)):
                socket.create_connection((other, int(port)), 2).close()
    finally:
        daemon.close()


# ---- the token guards every /v1 route -----------------------------------------------------


def wrong_authorizations(token: str) -> list[str | None]:
    return [
        None,
        "Bearer",
        "Bearer wrong-token",
        f"Bearer {token}x",
        f"Bearer {token[:-1]}",
        token,  # no scheme
        f"Basic {base64.b64encode(f'user:{token}'.encode()).decode()}",
        "Bearer " + "é" * 40,  # not ASCII: still a plain 401
        "Bearer " + "a" * 8000,
    ]


def test_every_v1_route_refuses_a_missing_or_wrong_token(daemon: Daemon, token: str) -> None:
    """The routes come from the app's own OpenAPI: a route added later is covered here
    without anyone remembering to list it."""
    spec = spec_of(daemon)
    routes = [
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith("/v1/")
        for method in operations
    ]
    assert len(routes) >= 10
    for method, path in routes:
        url = daemon.api_url + path.replace("{job_id}", SOME_ID)
        declared = spec["paths"][path][method.lower()]
        assert declared["security"] == [{"HTTPBearer": []}], (method, path)
        assert "401" in declared["responses"], (method, path)
        for authorization in wrong_authorizations(token):
            headers = {"Authorization": authorization} if authorization else {}
            response = requests.request(method, url, headers=headers, timeout=5)
            assert response.status_code == 401, (method, path, authorization)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json() == {
                "detail": "missing or wrong bearer token (see api.token_file)"
            }


def test_health_metrics_and_openapi_need_no_token(daemon: Daemon) -> None:
    open_routes = ["/healthz", "/openapi.json"]
    if "/metrics" in spec_of(daemon)["paths"]:
        open_routes.append("/metrics")
    for path in open_routes:
        response = requests.get(daemon.api_url + path, timeout=5)
        assert response.status_code in (200, 503), path  # 503: healthz while degraded
        assert response.status_code != 401


def test_guard_compares_tokens_with_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the guess, the comparison goes through the constant-time primitive, and the
    result is what it says (no shortcut before it, no second comparison after)."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    check = bearer_guard("the-right-token-0123456789")
    check(HTTPAuthorizationCredentials(scheme="Bearer", credentials="the-right-token-0123456789"))
    for guess in ["", "x", "the-right-token-012345678", "the-right-token-0123456789-and-more"]:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=guess)
        with pytest.raises(HTTPException) as refused:
            check(credentials if guess else None)
        assert refused.value.status_code == 401
    given = [a for a, _ in calls]
    assert given == [
        b"the-right-token-0123456789",
        b"",
        b"x",
        b"the-right-token-012345678",
        b"the-right-token-0123456789-and-more",
    ]
    assert {b for _, b in calls} == {b"the-right-token-0123456789"}


# ---- the token file -----------------------------------------------------------------------


def settings_with_token_file(tmp_path: Path, token_file: Path) -> Settings:
    settings = daemon_settings(tmp_path, "http://127.0.0.1:9")
    return replace(settings, api=ApiSettings(port=0, token_file=token_file))


def test_daemon_creates_the_token_file_private_even_with_a_lax_umask(tmp_path: Path) -> None:
    token_file = tmp_path / "new-state" / "api-token"
    previous = os.umask(0)
    try:
        daemon = Daemon(settings_with_token_file(tmp_path, token_file), threading.Event())
        daemon.start()
        daemon.close()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    assert len(token_file.read_text().strip()) >= 32


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o666])
def test_daemon_refuses_a_token_file_others_can_read(tmp_path: Path, mode: int) -> None:
    token_file = tmp_path / "api-token"
    token_file.write_text(secrets.token_urlsafe(32) + "\n")
    token_file.chmod(mode)
    daemon = Daemon(settings_with_token_file(tmp_path, token_file), threading.Event())
    with pytest.raises(StartupError) as refused:
        daemon.start()
    message = str(refused.value)
    assert str(token_file) in message
    assert f"chmod 600 {token_file}" in message
    assert daemon.api_url == ""  # nothing was started


# ---- secrets never logged, never answered -------------------------------------------------


class Capture(io.StringIO):
    """Everything the process logs, from any thread."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            return super().write(text)


@pytest.fixture
def debug_logs() -> Iterator[Capture]:
    """The daemon's own configuration at debug level, writing to a buffer; and the root
    logger at debug too, so every library's debug lines (urllib3, SQLAlchemy, asyncio, ...)
    are in the capture, not only those the daemon turns on."""
    capture = Capture()
    logs.configure("debug", "json", stream=capture)
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.setLevel(previous)
        logs.configure("warning", "json")  # the test session's setting (conftest)


@pytest.fixture
def refusing_simulator() -> Iterator[RunningSimulator]:
    """A Mistral that accepts another key than the daemon's: every upstream call is a 401."""
    settings = SimulatorSettings(api_key="the-only-key-this-simulator-takes")
    running = start_in_thread(settings, host="127.0.0.1", port=0)
    try:
        yield running
    finally:
        running.stop()


def exercise(daemon: Daemon, token: str) -> list[str]:
    """Every kind of answer the local API gives when upstream is broken: what comes back."""
    auth = {"Authorization": f"Bearer {token}"}
    api = daemon.api_url
    calls: list[Callable[[], requests.Response]] = [
        lambda: requests.get(api + "/healthz", timeout=10),
        lambda: requests.get(api + "/openapi.json", timeout=10),
        lambda: requests.get(api + "/v1/batch/jobs", headers=auth, timeout=10),
        lambda: requests.get(api + "/v1/batch/jobs", headers={"Authorization": "No"}, timeout=10),
        lambda: requests.get(api + f"/v1/batch/jobs/{SOME_ID}", headers=auth, timeout=10),
        lambda: requests.post(
            api + "/v1/batch/jobs",
            json={"endpoint": "/v1/ocr", "input_files": [SOME_ID]},
            headers={**auth, "Idempotency-Key": "k-1"},
            timeout=30,
        ),
        lambda: requests.post(api + f"/v1/batch/jobs/{SOME_ID}/track", headers=auth, timeout=30),
        lambda: requests.post(api + f"/v1/batch/jobs/{SOME_ID}/cancel", headers=auth, timeout=30),
        lambda: requests.post(
            api + "/v1/files", files={"file": ("a.jsonl", b"{}\n")}, headers=auth, timeout=30
        ),
    ]
    if "/metrics" in spec_of(daemon)["paths"]:
        calls.append(lambda: requests.get(api + "/metrics", timeout=10))
    answers = []
    for call in calls:
        response = call()
        assert response.status_code < 500 or response.status_code in (502, 503), response.text
        answers.append(f"{response.status_code} {dict(response.headers)} {response.text}")
    return answers


@pytest.mark.parametrize("upstream", ["refuses the key", "unreachable"])
def test_secrets_stay_out_of_every_log_line_and_answer(
    tmp_path: Path, debug_logs: Capture, refusing_simulator: RunningSimulator, upstream: str
) -> None:
    api_key = "mistral-key-" + secrets.token_hex(16)
    url = refusing_simulator.url if upstream == "refuses the key" else "http://127.0.0.1:9"
    settings = daemon_settings(tmp_path, url)
    settings = replace(settings, mistral=replace(settings.mistral, api_key=api_key))
    daemon = Daemon(settings, threading.Event())
    daemon.start()
    try:
        token = (tmp_path / "token").read_text().strip()
        wait_for(lambda: requests.get(daemon.api_url + "/healthz", timeout=5).json()["cycles"] >= 2)
        answers = exercise(daemon, token)
    finally:
        daemon.close()
    logged = debug_logs.getvalue()
    # The capture is real: debug lines of the daemon and of the libraries are in it, and
    # the failing upstream is visible.
    assert '"level": "debug"' in logged or "DEBUG:" in logged
    assert "urllib3" in logged
    assert "poll_failed" in logged
    assert ("401" in logged) if upstream == "refuses the key" else ("Connection refused" in logged)
    for secret in (api_key, token):
        assert secret not in logged
        for answer in answers:
            assert secret not in answer
    health = next(a for a in answers if '"reasons"' in a)
    assert health.startswith("503")  # degraded, and saying so without the key


def test_stdlib_records_are_redacted_message_args_and_traceback(debug_logs: Capture) -> None:
    secret = "sk-" + secrets.token_hex(12)
    logs.register_secret(secret)
    library = logging.getLogger("urllib3.connectionpool")
    library.debug("sending Authorization: Bearer %s", secret)
    library.warning(f"in the message itself: {secret}")
    try:
        raise ValueError(f"upstream said: bad key {secret}")
    except ValueError:
        library.exception("request failed")
        structlog.get_logger("batchwatch.test").error("call_failed", exc_info=True)

    class Holder:
        def __repr__(self) -> str:
            return f"Holder(key={secret})"

    structlog.get_logger("batchwatch.test").info("holder_seen", holder=Holder())
    logged = debug_logs.getvalue()
    assert secret not in logged
    assert logged.count("[redacted]") == 5  # the last via the repr of a logged object
    assert "Traceback" in logged and "ValueError" in logged
