"""What every dashboard route shares: ``Ui`` (the parts a page reads and acts through), the
login wall and the checks of a post (same origin, then session, then CSRF token)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from batchwatch.actions import Actions
from batchwatch.health import Health
from batchwatch.results.actions import ResultsActions
from batchwatch.store import Store
from batchwatch.ui.render import is_fragment, page
from batchwatch.ui.security import COOKIE, CSRF_FIELD, Session, Sessions, csrf_matches, same_origin

LOGIN = "/ui/login"


@dataclass(frozen=True, slots=True)
class Ui:
    store: Store
    health: Health
    sessions: Sessions
    actions: Actions | None
    results_actions: ResultsActions | None
    results_dir: Path | None
    #: Seconds the upstream's ``Retry-After`` still holds the poller (None: not known here).
    upstream_held: Callable[[], float] | None = None


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login form."""


class Refused(Exception):
    """A post refused (403: another origin or no valid CSRF token), or a page's own 4xx."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def session_of(ui: Ui, request: Request) -> Session:
    session = ui.sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise LoginRequired
    return session


def checked_post(ui: Ui, request: Request, csrf: str | None) -> Session:
    """The session of a post that passed every check."""
    if not same_origin(request.headers, request.url.scheme):
        raise Refused(403, "refused: this form was posted from another origin")
    session = session_of(ui, request)
    if not csrf_matches(session.csrf, csrf):
        raise Refused(403, "refused: the form's CSRF token is missing or stale; reload the page")
    return session


CsrfField = Annotated[str | None, Form(alias=CSRF_FIELD)]


def to_login(request: Request, exc: Exception) -> Response:
    """The login wall. An htmx poll gets ``HX-Redirect`` (a plain redirect would be
    followed by the poll and the login form swapped into the page)."""
    del exc
    if is_fragment(request):
        return Response(status_code=204, headers={"HX-Redirect": LOGIN})
    return RedirectResponse(LOGIN, status_code=303)


def refused_page(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, Refused)
    return page(
        request,
        "error.html",
        {"status_code": exc.status_code, "message": exc.message, "session": None},
        exc.status_code,
    )
