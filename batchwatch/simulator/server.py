"""Serving the simulator with uvicorn: in a background thread (``start_in_thread``, for the
demo and the tests) or in the foreground (``serve``, for ``batchwatch simulate``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from batchwatch.simulator.fault_layer import TRANSPORT_EXTENSION
from batchwatch.simulator.providers import build
from batchwatch.simulator.settings import SimulatorSettings


@dataclass
class RunningSimulator:
    """A simulator serving in a background thread (see ``start_in_thread``)."""

    url: str
    #: The provider's simulation (``Simulation`` for Mistral): its state, stats and faults.
    simulation: Any
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _socket: socket.socket = field(repr=False)

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call twice."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


class _ConnectionAwareH11(H11Protocol):
    """uvicorn's h11 protocol, handing every request its connection (the asyncio transport)
    in ``scope["extensions"]``: a fault closes it to answer with nothing at all."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        app = self.app

        async def with_transport(scope: Any, receive: Any, send: Any) -> None:
            scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = transport
            await app(scope, receive, send)

        self.app = with_transport


def _uvicorn_config(app: FastAPI, log_level: str, **kwargs: Any) -> uvicorn.Config:
    # ws="none": the simulator has no websockets, and importing them warns on some
    # versions, which ``filterwarnings = error`` would turn into a failure. The protocol
    # lets the fault layer close a connection without answering.
    return uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="off", ws="none",
        http=_ConnectionAwareH11, **kwargs,
    )  # fmt: skip


def start_in_thread(
    settings: SimulatorSettings,
    host: str = "127.0.0.1",
    port: int = 0,
    provider: str = "mistral",
) -> RunningSimulator:
    """Serve ``provider``'s simulator on ``host:port`` (0: a free port) in a daemon thread;
    return once it listens."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio only sets TCP_NODELAY on accepted
    # connections of a socket whose proto says TCP, and without it every response
    # waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Binding here, not in uvicorn, is what makes port 0 race-free: the port is known
    # and held before the server thread even starts.
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    simulation, app = build(provider, settings)
    server = uvicorn.Server(_uvicorn_config(app, "warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"{provider}-simulator", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the simulator did not start on {host}:{port}")
        time.sleep(0.005)
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if family == socket.AF_INET6 else host
    return RunningSimulator(f"http://{url_host}:{bound_port}", simulation, server, thread, sock)


def serve(settings: SimulatorSettings, host: str, port: int, provider: str = "mistral") -> None:
    """Serve in the foreground until SIGINT/SIGTERM, then return (``batchwatch simulate``)."""
    config = _uvicorn_config(build(provider, settings)[1], "info", host=host, port=port)
    with _absorb_reraised_signals():
        uvicorn.Server(config).run()


@contextlib.contextmanager
def _absorb_reraised_signals() -> Iterator[None]:
    """uvicorn stops on SIGINT/SIGTERM, restores the previous handlers and raises the signal
    again for them. Ignoring it there lets ``serve`` return normally, instead of the process
    dying with status 143 (SIGTERM) or a KeyboardInterrupt (SIGINT)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
