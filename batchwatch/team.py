"""Team mode: several daemons on one PostgreSQL database, exactly one of them leading.

The leader polls, downloads results, raises stuck-job alerts and delivers events; every
daemon serves the API and the dashboard and performs create / cancel / retry. Leadership is
a lease in the database (``store/lease.py``) with an expiry, renewed every third of its
length. The others try to take it every tick; they get it once it has expired.

A leader stops acting before anyone else can start: it counts its lease from the moment it
*sent* the renewal (so by its own clock the lease ends no later than by the database's), and
every part that acts for the leader asks ``leading()`` first. The writes it makes as leader
are fenced besides (``store.lease.fence`` of ``Team.token``, run in each write's
transaction): a leader frozen mid-write, or cut off and back, has its write refused once a
successor took over.

A SQLite database has no team: its daemon is ``single`` (``instance.py`` keeps it alone).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from batchwatch import __version__
from batchwatch.errors import StartupError, StoreUnavailable
from batchwatch.logs import get_logger
from batchwatch.store import Store, lease

log = get_logger("batchwatch.team")

#: A member is dropped from ``team_members`` this many lease lengths (and at least a
#: minute) after its last sign of life: a daemon that died without leaving.
FORGET_AFTER_LEASES = 10


def _tell(listeners: list[Callable[[Any], None]], value: object) -> None:
    """Each listener, even when one before it failed (the database down, say)."""
    for listener in listeners:
        try:
            listener(value)
        except Exception as exc:
            log.warning("team_listener_failed", error=str(exc))


class Role(StrEnum):
    LEADER = "leader"
    FOLLOWER = "follower"
    SINGLE = "single"  # SQLite: no team


def tick_seconds(ttl: float) -> float:
    """How often a daemon looks at the lease: a follower takes an expired lease within this."""
    return min(1.0, ttl / 5)


class Team:
    """This daemon's place in the team: ``join`` at start, ``leading`` at every step,
    ``leave`` at shutdown. ``on_gained`` / ``on_lost`` run on the team's thread."""

    def __init__(
        self,
        store: Store,
        name: str,
        ttl: float,
        *,
        api_url: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = store.engine
        self.name = name
        self.ttl = ttl
        self.api_url = api_url
        self.on_gained: list[Callable[[int], None]] = []
        self.on_lost: list[Callable[[str], None]] = []
        self._clock = clock
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._deadline = 0.0  # clock(): this daemon leads until then, unless renewed
        self._renew_at = 0.0
        self._seen_at = float("-inf")  # clock(): when its member row was last refreshed
        #: The live holder's name, as last read (None: nobody leads).
        self._leader: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Why the last renewal failed, until one succeeds (said once, not every tick).
        self._renewal_error: str | None = None

    # ---- what the rest of the daemon asks ------------------------------------------------

    def leading(self) -> bool:
        with self._lock:
            return self._epoch is not None and self._clock() < self._deadline

    @property
    def role(self) -> Role:
        return Role.LEADER if self.leading() else Role.FOLLOWER

    @property
    def leader(self) -> str | None:
        """The leader's name (this daemon's when it leads); None while nobody does."""
        if self.leading():
            return self.name
        with self._lock:
            return self._leader

    def token(self) -> tuple[str, int] | None:
        """This daemon's name and lease epoch while it leads: what another process's writes
        made for it are fenced with (``store.lease.check``)."""
        with self._lock:
            live = self._epoch is not None and self._clock() < self._deadline
            return (self.name, self._epoch) if live and self._epoch is not None else None

    # ---- life cycle ----------------------------------------------------------------------

    def join(self) -> None:
        """Say this daemon is up (refusing a name another live daemon uses) and try the
        lease once, so that a daemon alone on its database leads from its first cycle."""
        try:
            self._check_name()
            self._seen()
        except StoreUnavailable as exc:
            raise StartupError(f"team: cannot join the team: {exc}") from None
        self.step()
        log.info(
            "team_joined",
            instance=self.name,
            role=self.role.value,
            leader=self.leader,
            lease_seconds=self.ttl,
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="team", daemon=True)
        self._thread.start()

    def leave(self) -> None:
        """Stop; a leader lets its lease go at once, so another takes over at its next tick."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            epoch, self._epoch = self._epoch, None
        try:
            if epoch is not None:
                lease.release(self.engine, self.name, epoch)
                log.info("leadership_released", instance=self.name, epoch=epoch)
            lease.leave(self.engine, self.name)
        except StoreUnavailable as exc:
            log.warning("team_leave_failed", error=str(exc))

    def _run(self) -> None:
        every = tick_seconds(self.ttl)
        while not self._stop.wait(every):
            try:
                self.step()
            except Exception as exc:  # a bug here must not end leadership checks
                log.exception("team_step_failed", error=str(exc))

    def step(self) -> None:
        """One look at the lease: renew it when leading and due, else try to take it."""
        if self._epoch is not None:
            self._keep()
        if self._epoch is None:
            self._try_take()
        if self._clock() - self._seen_at >= self.ttl / 3:
            try:
                self._seen()
            except StoreUnavailable as exc:
                log.warning("team_heartbeat_failed", error=str(exc))

    def _keep(self) -> None:
        epoch = self._epoch
        assert epoch is not None
        if self._clock() >= self._renew_at:
            sent = self._clock()
            try:
                mine = lease.renew(self.engine, self.name, epoch, self.ttl)
            except StoreUnavailable as exc:
                if self._renewal_error is None:
                    log.warning("lease_renewal_failed", epoch=epoch, error=str(exc))
                self._renewal_error = str(exc)
            else:
                if not mine:
                    self._lose(epoch, "another daemon holds the lease")
                    return
                if self._renewal_error is not None:
                    log.info("lease_renewed", epoch=epoch, after=self._renewal_error)
                    self._renewal_error = None
                with self._lock:
                    self._deadline = sent + self._usable(self.ttl)
                    self._renew_at = sent + self.ttl / 3
        if self._clock() >= self._deadline:
            self._lose(epoch, "the lease ran out before it could be renewed")

    def _try_take(self) -> None:
        sent = self._clock()
        try:
            epoch = lease.acquire(self.engine, self.name, self.ttl)
            holder = None if epoch is not None else lease.current(self.engine)
        except StoreUnavailable as exc:
            log.debug("lease_unreadable", error=str(exc))
            with self._lock:
                self._leader = None
            return
        if epoch is None:
            with self._lock:
                self._leader = holder.name if holder is not None and holder.live else None
            return
        with self._lock:
            self._epoch = epoch
            self._deadline = sent + self._usable(self.ttl)
            self._renew_at = sent + self.ttl / 3
            self._leader = self.name
        log.info("leadership_gained", instance=self.name, epoch=epoch)
        _tell(self.on_gained, epoch)

    def _lose(self, epoch: int, reason: str) -> None:
        with self._lock:
            if self._epoch != epoch:
                return
            self._epoch = None
            self._leader = None
        self._renewal_error = None
        log.warning("leadership_lost", instance=self.name, epoch=epoch, reason=reason)
        _tell(self.on_lost, reason)

    @staticmethod
    def _usable(ttl: float) -> float:
        """The part of a lease this daemon uses: a little less than all of it, in case its
        clock runs a little slower than the database's."""
        return ttl - min(1.0, ttl / 10)

    def _seen(self) -> None:
        lease.seen(
            self.engine,
            self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            api_url=self.api_url,
            version=__version__,
        )
        self._seen_at = self._clock()
        if self.leading():
            lease.forget(self.engine, max(60.0, FORGET_AFTER_LEASES * self.ttl))

    def _check_name(self) -> None:
        """Two live daemons under one name are safe (each lease has its own epoch) but
        confusing: ``leader`` could mean either. Said once, at start."""
        pid, host = os.getpid(), socket.gethostname()
        for member in lease.members(self.engine):
            same = member.pid == pid and member.host == host
            if member.name == self.name and not same and member.age < self.ttl / 2:
                log.warning(
                    "instance_name_in_use",
                    instance=self.name,
                    pid=member.pid,
                    host=member.host,
                    hint="give each daemon its own team.instance_name",
                )
