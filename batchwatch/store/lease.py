"""The leader's lease and the team's members, in PostgreSQL (team mode: ``batchwatch/team.py``).

One row of ``team_lease`` names the daemon that polls, downloads and alerts, until when, and
under which epoch. Every time is the database server's ``clock_timestamp()``: the daemons'
own clocks never meet. A daemon takes the lease only once it has expired, and each take adds
one to the epoch.

Fencing: the writes a daemon makes as leader end with ``check`` in their own transaction. It
reads the row ``FOR SHARE``, so a takeover (an update of that row) waits for the write's
commit; and it refuses the write when the row names another holder, another epoch, or a time
already past. So a leader that lost its lease, frozen mid-write or cut off and back, can
never commit a write after its successor took over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.exc import DBAPIError

from batchwatch.errors import LeaseLost
from batchwatch.store.codecs import decode_time
from batchwatch.store.engine import _unavailable

LEADER = "leader"

#: A takeover or renewal waits at most this long for a row lock (a frozen leader's write
#: holds one until the server ends its session): it is tried again at the next tick.
_LOCK_TIMEOUT = "1s"

_ACQUIRE = text(
    """
    INSERT INTO team_lease (name, holder, epoch, acquired_at, expires_at)
    VALUES (:name, :me, 1, clock_timestamp(), clock_timestamp() + make_interval(secs => :ttl))
    ON CONFLICT (name) DO UPDATE
        SET holder = excluded.holder, epoch = team_lease.epoch + 1,
            acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
        WHERE team_lease.expires_at <= clock_timestamp()
    RETURNING epoch
    """
)
_RENEW = text(
    """
    UPDATE team_lease SET expires_at = clock_timestamp() + make_interval(secs => :ttl)
    WHERE name = :name AND holder = :me AND epoch = :epoch
    RETURNING epoch
    """
)
_RELEASE = text(
    """
    UPDATE team_lease SET expires_at = clock_timestamp()
    WHERE name = :name AND holder = :me AND epoch = :epoch
    """
)
_CHECK = text(
    """
    SELECT epoch FROM team_lease
    WHERE name = :name AND holder = :me AND epoch = :epoch AND expires_at > clock_timestamp()
    FOR SHARE
    """
)
_CURRENT = text(
    """
    SELECT holder, epoch, acquired_at, expires_at, expires_at > clock_timestamp()
    FROM team_lease WHERE name = :name
    """
)


@dataclass(frozen=True, slots=True)
class Holder:
    """The lease as stored: who holds (or last held) it, and whether it is still live."""

    name: str
    epoch: int
    acquired_at: datetime
    expires_at: datetime
    live: bool


def _run(engine: Engine, statement: TextClause, **params: object) -> list[tuple[Any, ...]]:
    """One short transaction on a connection of ``engine``; its rows. A lock not had within
    ``_LOCK_TIMEOUT`` or the database down: ``StoreUnavailable``."""
    try:
        with engine.begin() as conn:
            conn.execute(text(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'"))
            result = conn.execute(statement, params)
            return [tuple(row) for row in result] if result.returns_rows else []
    except DBAPIError as exc:
        raise _unavailable(exc) from exc


def acquire(engine: Engine, me: str, ttl: float) -> int | None:
    """Take the lease if nobody holds it, or its holder let it expire: the new epoch; None
    when it is held."""
    rows = _run(engine, _ACQUIRE, name=LEADER, me=me, ttl=ttl)
    return int(rows[0][0]) if rows else None


def renew(engine: Engine, me: str, epoch: int, ttl: float) -> bool:
    """Extend ``me``'s lease of ``epoch`` by ``ttl`` from now; False when it is not ``me``'s
    any more (someone took it after it expired)."""
    return bool(_run(engine, _RENEW, name=LEADER, me=me, epoch=epoch, ttl=ttl))


def release(engine: Engine, me: str, epoch: int) -> None:
    """Let the lease expire now (a daemon stopping): another takes over at its next try."""
    _run(engine, _RELEASE, name=LEADER, me=me, epoch=epoch)


def current(engine: Engine) -> Holder | None:
    rows = _run(engine, _CURRENT, name=LEADER)
    if not rows:
        return None
    holder, epoch, acquired_at, expires_at, live = rows[0]
    return Holder(str(holder), int(epoch), _time(acquired_at), _time(expires_at), bool(live))


def _time(value: object) -> datetime:
    at = decode_time(value)
    assert at is not None  # (the lease's and members' times are NOT NULL)
    return at


def check(conn: Connection, me: str, epoch: int) -> None:
    """In a leader's write transaction, just before it commits: ``LeaseLost`` unless ``me``
    still holds the lease of ``epoch`` (see the module's note on fencing)."""
    found = conn.execute(_CHECK, {"name": LEADER, "me": me, "epoch": epoch}).first()
    if found is None:
        raise LeaseLost(f"the leader's lease (epoch {epoch}) is no longer {me}'s")


def fence(token: Callable[[], tuple[str, int] | None]) -> Callable[[Connection], None]:
    """The fence of a leader's writes (``Store.fenced``): ``token`` says the leader's name
    and epoch, or None once this daemon no longer leads (then no write is even tried)."""

    def checked(conn: Connection) -> None:
        held = token()
        if held is None:
            raise LeaseLost("this daemon is no longer the leader")
        check(conn, *held)

    return checked


# ---- members --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    host: str
    pid: int
    api_url: str
    version: str
    started_at: datetime
    seen_at: datetime
    #: Seconds since it was last seen, by the database's clock.
    age: float


_MEMBER = text(
    """
    INSERT INTO team_members (name, host, pid, api_url, version, started_at, seen_at)
    VALUES (:name, :host, :pid, :api_url, :version, clock_timestamp(), clock_timestamp())
    ON CONFLICT (name) DO UPDATE
        SET host = excluded.host, pid = excluded.pid, api_url = excluded.api_url,
            version = excluded.version, seen_at = excluded.seen_at,
            started_at = CASE WHEN team_members.pid = excluded.pid
                AND team_members.host = excluded.host
                THEN team_members.started_at ELSE excluded.started_at END
    """
)
_MEMBERS = text(
    """
    SELECT name, host, pid, api_url, version, started_at, seen_at,
           extract(epoch FROM clock_timestamp() - seen_at)
    FROM team_members ORDER BY name
    """
)
_FORGET = text(
    "DELETE FROM team_members WHERE seen_at < clock_timestamp() - make_interval(secs => :after)"
)


def seen(engine: Engine, name: str, *, host: str, pid: int, api_url: str, version: str) -> None:
    """``name`` is up (its row made or refreshed)."""
    _run(engine, _MEMBER, name=name, host=host, pid=pid, api_url=api_url, version=version)


def members(engine: Engine) -> list[Member]:
    found = []
    for name, host, pid, api_url, version, started_at, seen_at, age in _run(engine, _MEMBERS):
        started, at = _time(started_at), _time(seen_at)
        member = Member(name, host, int(pid), api_url, version, started, at, float(age))
        found.append(member)
    return found


def forget(engine: Engine, unseen_for: float) -> None:
    """Drop the members not seen for ``unseen_for`` seconds (daemons long gone)."""
    _run(engine, _FORGET, after=unseen_for)


def leave(engine: Engine, name: str) -> None:
    _run(engine, text("DELETE FROM team_members WHERE name = :name"), name=name)
