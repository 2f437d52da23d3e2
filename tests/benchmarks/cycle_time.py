"""Figure 2: the time of one poll cycle over 10,000 active jobs, the simulator adding 20 ms to
every response, at tracking.concurrency 4 (the default), 8 and 16; and the cycle's
correctness while pages shift under it.

Timing: a fresh SQLite store, a warm-up cycle (the back-fill), then repeated steady cycles
(nothing changed upstream, so every job is listed and touched). In the same run: the
*upstream floor* (the same 101 pages fetched with the same concurrency by a bare HTTP
client that parses nothing), which no client can beat, and the cycle's parts called one by
one (the store's active set, the listing, the write), to show where the rest goes.

Shifting pages: 2,000 of the 10,000 jobs, in blocks interleaved with the others, are seeded
to finish at instants spread over the measured cycle, so the active listing shrinks while
its pages are read and later pages slide under the reader. Checked afterwards against the
simulator's truth (``/_sim/jobs/{id}/history``): every job that was stored active was
observed by the cycle (listed, discovered or fetched: its last_seen_at moved), every stored
status is one the job really had during the cycle, every recorded transition is one the
job really went through, never recorded before it happened; and once all have finished,
one more cycle leaves every job at its true status with its true history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import select

from batchwatch.models import ACTIVE_STATUSES, TERMINAL_STATUSES, JobOrigin, ListFilter
from batchwatch.poller import PollOptions, poll_once
from batchwatch.providers.mistral.client import MistralClient
from batchwatch.store import Store
from batchwatch.store.schema import jobs, transitions
from batchwatch.transitions import plan
from tests.benchmarks.common import (
    SIM_KEY,
    Context,
    Row,
    Simulator,
    median,
    say,
    spread,
)
from tests.benchmarks.profiling import profile_here

ACTIVE = 10_000
LATENCY_MS = 20.0
TARGET_SECONDS = 0.5
CONCURRENCIES = (4, 8, 16)
_ACTIVE_FILTER = ListFilter(statuses=tuple(sorted(ACTIVE_STATUSES)))
_ENDED_FILTER = ListFilter(statuses=tuple(sorted(TERMINAL_STATUSES)))


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _client(url: str, concurrency: int) -> MistralClient:
    # As the daemon builds it: a connection per concurrent page, plus two.
    return MistralClient(url, SIM_KEY, pool_size=concurrency + 2)


def upstream_floor(url: str, concurrency: int, pages: int) -> float:
    """The cycle's requests (first page, the rest ``concurrency`` at a time, the discovery
    page) sent by a bare client that parses nothing."""
    session = requests.Session()
    session.mount("http://", HTTPAdapter(pool_maxsize=concurrency + 2))
    session.headers["Authorization"] = f"Bearer {SIM_KEY}"
    active = [("status", s.value) for s in _ACTIVE_FILTER.statuses]
    ended = [("status", s.value) for s in _ENDED_FILTER.statuses]

    def page(n: int, statuses: list[tuple[str, str]]) -> None:
        params = [("page", str(n)), ("page_size", "100"), *statuses]
        session.get(f"{url}/v1/batch/jobs", params=params, timeout=30).raise_for_status()

    try:
        page(0, active)  # a warm connection pool, as the poller's client has
        started = time.perf_counter()
        page(0, active)
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda n: page(n, active), range(1, pages)))
        page(0, ended)
        return time.perf_counter() - started
    finally:
        session.close()


@dataclass(frozen=True, slots=True)
class Timing:
    concurrency: int
    cycles: list[float]
    floors: list[float]


def _timings(ctx: Context, sim: Simulator, store: Store) -> list[Timing]:
    repeats = ctx.pick(5, 2)
    pages = math.ceil(ACTIVE / 100)
    found = []
    for concurrency in CONCURRENCIES:
        with _client(sim.url, concurrency) as client:
            options = PollOptions(concurrency=concurrency)
            poll_once(client, store, options)  # this client's connections, warm
            cycles, floors = [], []
            for _ in range(repeats):  # interleaved, so both see the same machine noise
                cycles.append(_timed(lambda: poll_once(client, store, options)))  # noqa: B023
                floors.append(upstream_floor(sim.url, concurrency, pages))
        found.append(Timing(concurrency, cycles, floors))
    return found


def _parts(ctx: Context, sim: Simulator, store: Store) -> dict[str, float]:
    """The steps of ``poll_once`` at the default concurrency, each timed on its own."""
    repeats = ctx.pick(5, 2)
    active_s, list_s, write_s = [], [], []
    with _client(sim.url, 4) as client:
        for _ in range(repeats):
            active_s.append(_timed(store.active_job_ids))
            started = time.perf_counter()
            listed = client.list_all(_ACTIVE_FILTER, 100, 4)
            list_s.append(time.perf_counter() - started)
            now = datetime.now(UTC)

            def write() -> None:
                with store.write() as writer:
                    before = writer.load({job.id for job in listed.jobs})  # noqa: B023
                    changes = plan(before, listed.jobs, now)  # noqa: B023
                    writer.apply(changes, now, JobOrigin.DISCOVERED)  # noqa: B023

            write_s.append(_timed(write))
    return {
        "store.active_job_ids()": median(active_s),
        "client.list_all() (active, 100 pages)": median(list_s),
        "write: load + plan + apply + commit": median(write_s),
    }


def timing(ctx: Context) -> tuple[list[Row], float, dict[int, float]]:
    say(f"Figure 2 - poll cycle time, {ACTIVE:,} active jobs, +{LATENCY_MS:.0f} ms per response")
    rows: list[Row] = []
    with Simulator(ctx.workdir, latency_ms=LATENCY_MS) as sim:
        sim.seed(ACTIVE)
        store = Store(f"sqlite:///{ctx.workdir / 'cycle-time.db'}")
        store.migrate()
        try:
            with _client(sim.url, 4) as client:
                backfill = _timed(lambda: poll_once(client, store, PollOptions()))
            say(f"  warm-up cycle (back-fills {ACTIVE:,} new jobs): {backfill:.2f} s")
            found = _timings(ctx, sim, store)
            parts = _parts(ctx, sim, store)
            if ctx.profile:
                with _client(sim.url, 4) as client:
                    profile_here(
                        "three poll_once cycles, concurrency 4",
                        lambda: [poll_once(client, store, PollOptions()) for _ in range(3)],
                        ctx.workdir,
                    )
        finally:
            store.close()
    say(
        f"  {'concurrency':>11}  {'cycle s (median, min-max)':<36} {'upstream floor s':>16}"
        f" {'cycle - floor':>13}"
    )
    for t in found:
        say(
            f"  {t.concurrency:>11}  {spread(t.cycles):<36} {median(t.floors):>16.3f}"
            f" {median(t.cycles) - median(t.floors):>13.3f}"
        )
        default = " (default)" if t.concurrency == PollOptions().concurrency else ""
        # The cycle's round trips one after another: the first page (it gives the total),
        # the other 99 pages `concurrency` at a time, the discovery page. No client gets
        # under this, whatever its speed.
        rounds = 2 + math.ceil((math.ceil(ACTIVE / 100) - 1) / t.concurrency)
        latency_floor = rounds * LATENCY_MS / 1000
        reachable = latency_floor < TARGET_SECONDS
        rows.append(
            Row(
                f"2. cycle time, 10k active, 20 ms, concurrency {t.concurrency}{default}",
                f"{median(t.cycles):.3f} s (upstream floor {median(t.floors):.3f} s,"
                f" {rounds} round trips = {latency_floor:.2f} s)",
                f"<= {TARGET_SECONDS} s" if reachable else "none: round trips alone exceed it",
                median(t.cycles) <= TARGET_SECONDS if reachable else None,
            )
        )
    say("  the cycle's steps, each alone (concurrency 4, medians):")
    for name, seconds in parts.items():
        say(f"    {name:<40} {seconds:.3f} s")
        rows.append(Row(f"2. part: {name}", f"{seconds:.3f} s"))
    say()
    return rows, backfill, {t.concurrency: median(t.cycles) for t in found}


# ---- shifting pages ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shift:
    concurrency: int
    requests: int
    bound: int
    left_during: int  # jobs whose true end fell inside the measured cycle
    fetched: int  # stored-active jobs that no page returned: read with a get
    vanished: list[str]
    faked: list[str]
    wrong_after: list[str]
    checked: int
    seconds: float


def shifting(ctx: Context, concurrency: int, lead: float, window: float) -> Shift:
    """One measured cycle while 20% of the jobs finish under it (see the module doc)."""
    # 10,000 jobs in all: 20% of them move (10% with --quick, whose cycle is then shorter).
    blocks, movers_per_block = (10, 100) if ctx.quick else (20, 100)
    stayers_per_block = ACTIVE // blocks - movers_per_block
    with Simulator(ctx.workdir, latency_ms=LATENCY_MS) as sim:
        start_at = time.time() + lead
        movers: list[str] = []
        for k in range(blocks):
            sim.seed(stayers_per_block)
            # This block finishes at start_at + (k + 0.5) / blocks of the expected cycle.
            ends = start_at + (k + 0.5) / blocks * window
            movers += sim.seed(movers_per_block, queue_seconds=0, run_seconds=ends - time.time())
        store = Store(f"sqlite:///{ctx.workdir / f'shifting-{concurrency}.db'}")
        store.migrate()
        try:
            with _client(sim.url, concurrency) as client:
                options = PollOptions(concurrency=concurrency)
                poll_once(client, store, options)  # back-fill: every job stored active
                if time.time() > start_at:
                    raise RuntimeError("the warm-up cycle overran the lead; raise it")
                time.sleep(start_at - time.time())
                before_active = store.active_job_ids()
                requests_before = sim.requests_total()
                c0 = time.time()
                report = poll_once(client, store, options)
                c1 = time.time()
                used = sim.requests_total() - requests_before
                after_active = store.active_job_ids()
                seen = _last_seen(store)
                recorded = _recorded(store)
                # Once every mover has finished: one more cycle, and all must be exact.
                time.sleep(max(0.0, start_at + window - time.time()) + 0.2)
                poll_once(client, store, options)
                final = _recorded(store)
                now_seen = _last_seen(store)
                ids = sorted(seen)
                if ctx.quick:  # every mover, and a tenth of the rest
                    ids = sorted(set(movers) | set(ids[::10]))
                # The truth only grows, each status with the instant it began: one read
                # serves both the measured cycle (by time) and the final state.
                truth = _truths(sim, ids)
                vanished = [j for j in before_active if seen[j][1] < c0]
                faked = [
                    j for j in ids if _faked(truth[j], recorded.get(j, []), seen[j][0], c0, c1)
                ]
                left_during = sum(
                    1 for j in movers if any(c0 <= at <= c1 for s, at in truth[j] if s == "SUCCESS")
                )
                wrong_after = [
                    j for j in ids if not _exact(truth[j], final.get(j, []), now_seen[j][0])
                ]
        finally:
            store.close()
    bound = math.ceil(len(before_active) / 100) + 1 + len(before_active - after_active)
    return Shift(
        concurrency,
        used,
        bound,
        left_during,
        report.departed,
        vanished,
        faked,
        wrong_after,
        len(ids),
        c1 - c0,
    )


def _last_seen(store: Store) -> dict[str, tuple[str, float]]:
    with store.reading() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.status, jobs.c.last_seen_at)).all()
    return {r.id: (r.status, r.last_seen_at.timestamp()) for r in rows}


def _recorded(store: Store) -> dict[str, list[tuple[str | None, str, float]]]:
    """Every job's recorded transitions, in order: (from, to, observed_at)."""
    query = select(
        transitions.c.job_id,
        transitions.c.from_status,
        transitions.c.to_status,
        transitions.c.observed_at,
    ).order_by(transitions.c.job_id, transitions.c.seq)
    found: dict[str, list[tuple[str | None, str, float]]] = {}
    with store.reading() as conn:
        for r in conn.execute(query):
            found.setdefault(r.job_id, []).append(
                (r.from_status, r.to_status, r.observed_at.timestamp())
            )
    return found


def _truths(sim: Simulator, ids: list[str]) -> dict[str, list[tuple[str, float]]]:
    with ThreadPoolExecutor(4) as pool:
        return dict(zip(ids, pool.map(sim.history, ids), strict=True))


def _status_during(truth: list[tuple[str, float]], c0: float, c1: float) -> set[str]:
    """The statuses the job had at some instant between c0 and c1."""
    had = set()
    for n, (status, began) in enumerate(truth):
        ended = truth[n + 1][1] if n + 1 < len(truth) else math.inf
        if began <= c1 and ended >= c0:
            had.add(status)
    return had


def _consistent(
    truth: list[tuple[str, float]], recorded: list[tuple[str | None, str, float]]
) -> bool:
    """Each recorded transition is a real one (to_status follows from_status in the truth)
    and was recorded no earlier than the job entered it; in the truth's order."""
    statuses = [s for s, _ in truth]
    entered = dict(truth)
    position = -1
    for from_status, to_status, observed in recorded:
        if to_status not in entered or entered[to_status] > observed + 0.001:
            return False
        index = statuses.index(to_status)
        if index <= position or (from_status is not None and from_status not in statuses[:index]):
            return False
        position = index
    return True


def _faked(
    truth: list[tuple[str, float]],
    recorded: list[tuple[str | None, str, float]],
    stored: str,
    c0: float,
    c1: float,
) -> bool:
    return not _consistent(truth, recorded) or stored not in _status_during(truth, c0, c1)


def _exact(
    truth: list[tuple[str, float]], recorded: list[tuple[str | None, str, float]], stored: str
) -> bool:
    return (
        _consistent(truth, recorded)
        and bool(recorded)
        and stored == truth[-1][0] == recorded[-1][1]
    )


def correctness(ctx: Context, backfill: float, cycle: dict[int, float]) -> list[Row]:
    movers = "1,000" if ctx.quick else "2,000"
    say(f"Figure 2 - correctness while pages shift ({movers} of 10,000 jobs finish under a cycle)")
    rows = []
    for concurrency in (4,) if ctx.quick else (4, 16):
        lead = max(4.0, 2.0 * backfill)
        s = shifting(ctx, concurrency, lead, window=max(0.3, cycle.get(concurrency, 1.0)))
        ok = not (s.vanished or s.faked or s.wrong_after) and s.requests <= s.bound
        say(
            f"  concurrency {s.concurrency}: cycle {s.seconds:.2f} s, {s.left_during} jobs finished"
            f" during it, {s.fetched} read by a get; {s.requests} requests (bound {s.bound});"
            f" checked {s.checked} jobs: vanished {len(s.vanished)}, faked {len(s.faked)},"
            f" wrong after the next cycle {len(s.wrong_after)}"
        )
        for label, bad in (("vanished", s.vanished), ("faked", s.faked), ("wrong", s.wrong_after)):
            if bad:
                say(f"    {label}: {', '.join(bad[:5])}")
        rows.append(
            Row(
                f"2. shifting pages, concurrency {s.concurrency}",
                f"{s.left_during} left mid-cycle (cycle {s.seconds:.1f} s, {s.fetched} gets);"
                f" vanished {len(s.vanished)}, "
                f"faked {len(s.faked)}, wrong after {len(s.wrong_after)}; "
                f"{s.requests} req (bound {s.bound})",
                "0 vanished, 0 faked, requests <= bound",
                ok,
            )
        )
    say()
    return rows


def figure(ctx: Context) -> list[Row]:
    rows, backfill, cycle = timing(ctx)
    return rows + correctness(ctx, backfill, cycle)
