"""The dashboard's forms: login and logout, and the actions (cancel, retry, redeliver).
Every post passes ``checked_post`` (same origin, a session, its CSRF token); the login form,
posted before any session exists, carries a token of its own, also kept in a short-lived
cookie (double submit), so another site cannot log a browser in to its choice of daemon."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from batchwatch.errors import ActionError
from batchwatch.logs import get_logger, redact
from batchwatch.models import Outcome
from batchwatch.store import events as stored_events
from batchwatch.ui.guards import CsrfField, Refused, Ui, checked_post
from batchwatch.ui.render import page
from batchwatch.ui.security import COOKIE, LOGIN_COOKIE, SESSION_SECONDS, csrf_matches, same_origin

log = get_logger("batchwatch.ui")
_T = TypeVar("_T")
BY = "ui"  # requested_by of the actions taken from the dashboard


def _login_form(request: Request, error: str | None, status_code: int) -> HTMLResponse:
    nonce = secrets.token_urlsafe(32)
    response = page(
        request, "login.html", {"csrf": nonce, "error": error, "session": None}, status_code
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path="/ui/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def post_router(ui: Ui) -> APIRouter:
    router = APIRouter(prefix="/ui", include_in_schema=False)

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> HTMLResponse:
        return _login_form(request, None, 200)

    @router.post("/login", response_model=None)
    def login(
        request: Request, token: Annotated[str, Form()] = "", csrf: CsrfField = None
    ) -> Response:
        if not same_origin(request.headers, request.url.scheme):
            raise Refused(403, "refused: this form was posted from another origin")
        if not csrf_matches(request.cookies.get(LOGIN_COOKIE, ""), csrf):
            raise Refused(403, "refused: the login form's token is missing or stale; reload it")
        if not ui.sessions.token_ok(token):
            log.warning("ui_login_refused")
            return _login_form(request, "Wrong token: use the one in api.token_file.", 401)
        session = ui.sessions.open()
        response = RedirectResponse("/ui/", status_code=303)
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=SESSION_SECONDS,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return response

    @router.post("/logout")
    def logout(request: Request, csrf: CsrfField = None) -> RedirectResponse:
        session = checked_post(ui, request, csrf)
        ui.sessions.close(session.id)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    _action_routes(router, ui)
    return router


def _action_routes(router: APIRouter, ui: Ui) -> None:
    @router.post("/jobs/{job_id}/cancel")
    def cancel(request: Request, job_id: str, csrf: CsrfField = None) -> RedirectResponse:
        checked_post(ui, request, csrf)
        acting = ui.actions
        if acting is None:
            raise Refused(409, "this daemon takes no actions")
        _act(lambda: acting.cancel(job_id, BY))
        return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)

    @router.post("/jobs/{job_id}/retry")
    def retry(request: Request, job_id: str, csrf: CsrfField = None) -> RedirectResponse:
        checked_post(ui, request, csrf)
        acting = ui.results_actions
        if acting is None:
            raise Refused(409, "this daemon takes no actions")
        child = _act(lambda: acting.retry(job_id, (Outcome.FAILED, Outcome.NOT_RUN), None, BY))
        return RedirectResponse(f"/ui/jobs/{child.id}", status_code=303)

    @router.post("/events/{event_id}/redeliver")
    async def redeliver(request: Request, event_id: str) -> RedirectResponse:
        form = await request.form()
        csrf = form.get("csrf")
        checked_post(ui, request, csrf if isinstance(csrf, str) else None)
        made = await run_in_threadpool(
            stored_events.redeliver, ui.store, event_id, datetime.now(UTC)
        )
        if not made:
            raise Refused(404, f"no delivery of event {event_id}")
        ui.store.events_changed()  # the dispatchers send it now, not at their next look
        log.info("ui_redelivered", event_id=event_id, deliveries=made)
        return RedirectResponse("/ui/events", status_code=303)


def _act(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except ActionError as exc:
        # Mistral's words are shown; a secret must not be, whatever it echoes back.
        raise Refused(exc.status_code, redact(exc.detail)) from None
