"""A TCP relay on loopback that a test can cut and restore: a server (the database), as a
process behind it sees it, goes away and comes back."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.processes import free_port


class TcpProxy:
    """A loopback TCP relay that can be cut (listener and live connections closed) and
    restored on the same port: the database, as the daemon sees it, goes away and back."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._live: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        if self._server is not None:
            # shutdown() first: close() alone would not wake the thread blocked in accept(),
            # which would go on accepting on the half-closed socket.
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
        with self._lock:
            for conn in self._live:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._live.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            backend = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                self._live += [client, backend]
            for a, b in ((client, backend), (backend, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
