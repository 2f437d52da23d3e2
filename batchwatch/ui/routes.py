"""The dashboard mounted on the API's app: the pages, the forms, the static files (shipped
in the wheel, served from a fixed list, never by a path a caller gives), a job's result
files, the login wall and the security headers of every ``/ui`` response."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from batchwatch.actions import Actions
from batchwatch.health import Health
from batchwatch.results.actions import ResultsActions
from batchwatch.results.files import kept_file
from batchwatch.store import Store
from batchwatch.store import results as stored_results
from batchwatch.ui.guards import LoginRequired, Refused, Ui, refused_page, session_of, to_login
from batchwatch.ui.pages import page_router
from batchwatch.ui.posts import post_router
from batchwatch.ui.render import STATIC
from batchwatch.ui.security import SecurityHeaders, Sessions

_MEDIA = {".js": "text/javascript", ".css": "text/css", ".txt": "text/plain"}
#: The static files, by name: what the pages load, and the vendored library's licence.
STATIC_FILES = {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in _MEDIA}
FILE_KINDS = ("input", "output", "error")


def install(
    app: FastAPI,
    store: Store,
    health: Health,
    token: str,
    *,
    actions: Actions | None = None,
    results_dir: Path | None = None,
    upstream_held: Callable[[], float] | None = None,
) -> None:
    ui = Ui(
        store=store,
        health=health,
        sessions=Sessions(token),
        actions=actions,
        results_actions=ResultsActions(actions) if actions is not None else None,
        results_dir=results_dir,
        upstream_held=upstream_held,
    )
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(LoginRequired, to_login)
    app.add_exception_handler(Refused, refused_page)
    app.include_router(page_router(ui))
    app.include_router(post_router(ui))
    _extra_routes(app, ui)


def _extra_routes(app: FastAPI, ui: Ui) -> None:
    @app.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    @app.get("/ui/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        path = STATIC_FILES.get(name)
        if path is None:
            raise Refused(404, f"no static file {name}")
        media = _MEDIA[path.suffix]
        # Cached for an hour: a new release's files reach browsers within that.
        return FileResponse(path, media_type=media, headers={"Cache-Control": "max-age=3600"})

    @app.get("/ui/jobs/{job_id}/files/{kind}/{n}", include_in_schema=False)
    def result_file(request: Request, job_id: str, kind: str, n: int) -> Response:
        session_of(ui, request)
        if kind not in FILE_KINDS:
            raise Refused(404, f"no file kind {kind}")
        ready = stored_results.job_results(ui.store, job_id)
        files = ready.files if ready is not None else ()
        found = next((f for f in files if (f.kind, f.n) == (kind, n)), None)
        path = kept_file(found.path, ui.results_dir) if found else None
        if path is None:
            raise Refused(404, f"no downloaded {kind} file {n} of job {job_id}")
        return FileResponse(
            path,
            media_type="application/octet-stream",
            filename=f"{job_id}-{kind}-{n}.jsonl",
        )
