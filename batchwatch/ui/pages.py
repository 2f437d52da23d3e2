"""The dashboard's pages (GET): overview, jobs, one job, events. Each reads the store and
renders its template; an htmx poll of the same URL gets the page's live fragment. Plain
``def`` routes: FastAPI runs them in its worker threads, off the event loop."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from batchwatch.models import ACTIVE_STATUSES, JobStatus, Outcome, ResultsState
from batchwatch.providers import PROVIDERS
from batchwatch.store import JobQuery, intents, lease, ledger
from batchwatch.store import dashboard as reads
from batchwatch.store import events as stored_events
from batchwatch.store import results as stored_results
from batchwatch.ui import figures
from batchwatch.ui.filters import PAGE_SIZES, STATUSES, read_filters
from batchwatch.ui.guards import Refused, Ui, session_of
from batchwatch.ui.render import page

FAILED_PAGE = 20
ACTIVE = [s.value for s in ACTIVE_STATUSES]


def page_router(ui: Ui) -> APIRouter:
    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        session = session_of(ui, request)
        return page(request, "overview.html", {"session": session, **_overview(ui)})

    @router.get("/jobs", response_class=HTMLResponse)
    def jobs(request: Request) -> HTMLResponse:
        session = session_of(ui, request)
        return page(request, "jobs.html", {"session": session, **_jobs(ui, request)})

    @router.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job(request: Request, job_id: str, failed_page: int = 0) -> HTMLResponse:
        session = session_of(ui, request)
        context = _job(ui, job_id, max(failed_page, 0))
        return page(request, "job.html", {"session": session, **context})

    @router.get("/events", response_class=HTMLResponse)
    def events(request: Request, state: str = "") -> HTMLResponse:
        session = session_of(ui, request)
        return page(request, "events.html", {"session": session, **_events(ui, state)})

    return router


def _overview(ui: Ui) -> dict[str, Any]:
    now = datetime.now(UTC)
    health = ui.health.snapshot(now)
    by_status = ui.store.count_by_status()
    running, _ = ui.store.list_jobs(JobQuery(statuses=(JobStatus.RUNNING,), page_size=10))
    return {
        "now": now,
        "by_status": sorted(by_status.items(), key=lambda kv: (-kv[1], kv[0])),
        "active_total": sum(n for s, n in by_status.items() if s in ACTIVE),
        "ended": reads.ended_since(ui.store, int((now - timedelta(hours=24)).timestamp())),
        "health": health,
        # Team mode: every daemon serving the database, the leader first.
        "team": [] if health.role == "single" else _team(ui, health.leader),
        "held": ui.upstream_held() if ui.upstream_held is not None else None,
        "alerts": reads.alerts(ui.store),
        "running": [(j, figures.outlook(j.remote, now)) for j in running],
    }


def _team(ui: Ui, leader: str | None) -> list[dict[str, Any]]:
    members = lease.members(ui.store.engine)
    rows = [
        {
            "name": m.name,
            "role": "leader" if m.name == leader else "follower",
            "where": f"pid {m.pid} on {m.host}",
            "api_url": m.api_url,
            "version": m.version,
            "seen": f"{m.age:.0f} s ago",
        }
        for m in members
    ]
    return sorted(rows, key=lambda r: (r["role"] != "leader", r["name"]))


def _jobs(ui: Ui, request: Request) -> dict[str, Any]:
    now = datetime.now(UTC)
    chosen = read_filters(request.query_params)
    found, total = ui.store.list_jobs(chosen.query())
    pages = max((total + chosen.page_size - 1) // chosen.page_size, 1)
    return {
        "filters": chosen,
        "statuses": STATUSES,
        "providers": PROVIDERS,
        "page_sizes": PAGE_SIZES,
        "rows": [(j, figures.outlook(j.remote, now)) for j in found],
        "total": total,
        "pages": pages,
        "unix": figures.unix,
    }


def _job(ui: Ui, job_id: str, failed_page: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    job = ui.store.get_job(job_id)
    if job is None:
        raise Refused(404, f"no tracked job with id {job_id}")
    count, samples = reads.progress_sampled(ui.store, job_id, figures.MAX_POINTS)
    found = ui.store.transitions(job_id)
    outlook = figures.outlook(job.remote, now, figures.recent_rate(samples) or None)
    results = stored_results.job_results(ui.store, job_id)
    failed: list[dict[str, Any]] = []
    failed_total = 0
    if results is not None and results.state is ResultsState.READY:
        text, failed_total = ledger.ledger_page(
            ui.store, job_id, [Outcome.FAILED], failed_page, FAILED_PAGE
        )
        failed = json.loads(text)
    counts = results.counts if results else None
    retryable = bool(counts and (counts.failed or counts.not_run))
    return {
        "now": now,
        "job": job,
        "remote": job.remote,
        "outlook": outlook,
        "curve": figures.curve(samples, outlook.eta),
        "samples": count,
        "spans": figures.timeline(found, now),
        "transitions": found,
        "chart": {"width": figures.WIDTH, "height": figures.HEIGHT, "pad": figures.PAD},
        "actions_log": intents.job_actions(ui.store, job_id),
        "results": results,
        "failed": failed,
        "failed_page": failed_page,
        "failed_pages": max((failed_total + FAILED_PAGE - 1) // FAILED_PAGE, 1),
        "failed_total": failed_total,
        "can_cancel": ui.actions is not None
        and not job.status.is_terminal
        and job.status is not JobStatus.CANCELLATION_REQUESTED,
        "can_retry": ui.results_actions is not None and retryable,
        "unix": figures.unix,
    }


def _events(ui: Ui, state: str) -> dict[str, Any]:
    state = state if state in ("pending", "delivered", "dead") else ""
    return {
        "events": reads.newest_events(ui.store, None, 50),
        "deliveries": stored_events.delivery_rows(ui.store, state or None, 50),
        "counts": stored_events.counts(ui.store),
        "state": state,
    }
