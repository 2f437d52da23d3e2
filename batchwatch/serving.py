"""The local API's listening socket and its uvicorn server, and the line ``systemctl status``
shows: the parts of serving that the composition root (``daemon.py``) only calls."""

from __future__ import annotations

import socket
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from batchwatch.errors import StartupError
from batchwatch.models import ACTIVE_STATUSES

if TYPE_CHECKING:
    from batchwatch.health import Health
    from batchwatch.store import Store


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a port in use is one clear error, not a thread dying."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on connections accepted from a
    # socket whose protocol says TCP; without it small responses wait on delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"api.port: cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def api_server(app: Any) -> Any:
    """The uvicorn server of the local API (run on its own thread by ``Daemon.start``)."""
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",  # the API serves no websockets: do not import a library for them
            loop="asyncio",
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )


def wait_started(server: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)


def status_line(health: Health, store: Store, now: datetime) -> str:
    """What `systemctl status` shows: jobs tracked, and how the last poll went (a team's
    follower: whom it follows)."""
    from batchwatch.errors import StoreUnavailable

    snap = health.snapshot(now)
    try:
        counts = store.count_by_status()
        active = sum(n for status, n in counts.items() if status in ACTIVE_STATUSES)
        jobs = f"{sum(counts.values())} jobs tracked, {active} active"
    except StoreUnavailable:
        jobs = "database unavailable"
    if snap.role == "follower":
        return f"{jobs}; following {snap.leader or 'no leader yet'}"
    if snap.last_poll_at is None:
        return f"{jobs}; no poll yet"
    when = snap.last_poll_at.strftime("%H:%M:%S")
    outcome = "ok" if snap.last_error is None else f"failed ({snap.last_error[:80]})"
    return f"{jobs}; last poll {when} {outcome}"
