"""The systemd notify protocol: READY=1, WATCHDOG=1, STATUS=..., STOPPING=1.

A datagram to ``$NOTIFY_SOCKET``; nothing at all when the variable is unset (not under
systemd, or not ``Type=notify``). The protocol is one ``sendto`` of ``KEY=VALUE`` lines, so
it is written here rather than pulled in through libsystemd's C bindings.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from batchwatch.logs import get_logger

log = get_logger("batchwatch.notify")


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace: a leading NUL byte on the wire.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # The watchdog is ours only if no other process was named for it.
        mine = not pid or pid == str(os.getpid())
        self.watchdog_seconds = int(usec) / 1_000_000 if usec.isdigit() and mine else None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, **fields: str) -> None:
        if not self._address:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self._address)
        except OSError as exc:  # systemd gone or the socket unreachable: never fatal
            log.warning("notify_failed", error=exc.strerror or str(exc))

    def ready(self, status: str) -> None:
        self.send(READY="1", STATUS=status)

    def watchdog(self, status: str) -> None:
        self.send(WATCHDOG="1", STATUS=status)

    def stopping(self) -> None:
        self.send(STOPPING="1", STATUS="stopping")
