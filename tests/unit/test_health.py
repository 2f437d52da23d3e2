"""``Health`` in team mode: a follower's health does not depend on polling, a new leader's
polls are judged from when it took over, and a follower's scheduler counts as alive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from batchwatch.health import Health

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HANG = timedelta(seconds=120)


def test_a_follower_is_not_degraded_for_polling_it_does_not_do() -> None:
    health = Health(10.0, T0)
    role = ["follower", "d0"]
    health.team(lambda: (role[0], role[1]))
    late = T0 + timedelta(hours=1)
    snap = health.snapshot(late)
    assert (snap.status, snap.role, snap.leader) == ("ok", "follower", "d0")
    role[0] = "leader"
    snap = health.snapshot(late)
    assert snap.status == "degraded"
    assert snap.reasons == ("no successful poll for 3600s",)


def test_a_new_leader_is_judged_from_when_it_took_over() -> None:
    health = Health(10.0, T0)
    health.record_success(T0)
    health.record_failure(T0 + timedelta(seconds=5), "ApiError: 503")
    took_over = T0 + timedelta(hours=1)
    health.leading(took_over)
    snap = health.snapshot(took_over + timedelta(seconds=20))
    assert snap.status == "ok"  # neither the old error nor the hour as a follower counts
    assert health.snapshot(took_over + timedelta(seconds=60)).reasons == (
        "last successful poll for 60s",
    )


def test_a_followers_ticks_keep_it_alive_for_the_watchdog() -> None:
    health = Health(10.0, T0)
    assert not health.poller_alive(T0 + timedelta(seconds=200), HANG)
    health.standby(T0 + timedelta(seconds=190))
    assert health.poller_alive(T0 + timedelta(seconds=200), HANG)
    assert not health.poller_alive(T0 + timedelta(seconds=190) + HANG, HANG)
    # Leading again, its cycles are what counts.
    health.cycle_started(T0 + timedelta(seconds=195))
    assert health.poller_alive(T0 + timedelta(seconds=200), HANG)
    assert not health.poller_alive(T0 + timedelta(seconds=195) + HANG, HANG)
