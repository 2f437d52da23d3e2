"""One daemon per SQLite file: a second ``batchwatch serve`` on the same file refuses to
start, naming the one that holds it.

SQLite serves one host's processes, and two daemons on one file would both poll (twice the
requests) and both deliver every webhook. The hold is an exclusive ``flock`` on a file
beside the database (``<database>.lock``), taken before migrating: the kernel drops it when
the process dies, however it dies, so a crash never leaves a stale hold. (SQLite's own
locks are POSIX record locks on the database file, which ``flock`` neither sees nor
disturbs.) The file holds the holder's host and pid, for the refusal's message.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Callable
from pathlib import Path

from batchwatch.errors import StartupError


def hold_database_file(database: Path) -> Callable[[], None]:
    """Hold ``database`` for this process; the release. ``StartupError`` naming the holder
    when another process holds it."""
    lock = database.with_name(database.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise StartupError(
            f"database.url: another batchwatch daemon ({holder}) holds {database}; stop it, or "
            "use PostgreSQL for several daemons"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)

    def release() -> None:
        os.close(fd)  # closing the descriptor drops the flock

    return release
