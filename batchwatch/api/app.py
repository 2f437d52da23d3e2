"""The local HTTP API: history read back from the store, in Mistral's own shapes, and the
actions that go upstream. This module wires the parts: the guards (``guards.py``), the
token (``auth.py``), the history routes (``reads.py``), the action routes (``actions.py``),
the events and deliveries (``events.py``), the provider-native routes (``openai_routes.py``,
``anthropic_routes.py``, with their errors in ``native_errors.py``) and the health check.

The app depends on the store, the health state and the token, not on the scheduler, so
tests build it around a store of their own.
"""

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse

from batchwatch import __version__
from batchwatch.actions import Actions
from batchwatch.api import native_errors
from batchwatch.api.actions import action_router
from batchwatch.api.anthropic_routes import anthropic_router
from batchwatch.api.auth import bearer_dependency, bearer_or_api_key_dependency
from batchwatch.api.events import events_router
from batchwatch.api.guards import (
    MAX_BODY_BYTES,
    MAX_MESSAGE_BATCH_BYTES,
    MAX_UPLOAD_BYTES,
    BodySizeLimit,
    allow_every_method,
    database_unavailable,
)
from batchwatch.api.openai_routes import openai_router
from batchwatch.api.reads import read_router
from batchwatch.api.results import results_router
from batchwatch.api.schemas import COMMON_ERRORS, HealthOut
from batchwatch.api.webhooks import webhooks_router
from batchwatch.config import PriceSettings
from batchwatch.errors import StoreUnavailable
from batchwatch.health import Health
from batchwatch.logs import redact
from batchwatch.results.actions import ResultsActions
from batchwatch.store import Store
from batchwatch.ui.routes import install as install_dashboard


def create_app(
    store: Store,
    health: Health,
    token: str,
    actions: Actions | None = None,
    prices: dict[str, PriceSettings] | None = None,
    *,
    stop: threading.Event | None = None,
    results_dir: Path | None = None,
    upstream_held: Callable[[], float] | None = None,
) -> FastAPI:
    """``stop``: the daemon's shutdown event; long polls and event streams end when it is
    set, instead of holding up the server's shutdown until it gives up on them.
    ``results_dir``: where the dashboard may serve result files from (None: it serves
    none); ``upstream_held``: how long a ``Retry-After`` still holds the poller, for the
    dashboard."""
    app = FastAPI(
        title="batchwatch",
        version=__version__,
        description="History of Mistral, OpenAI and Anthropic batch jobs, served in Mistral's "
        "API shape, and in OpenAI's and Anthropic's under /openai and /anthropic.",
    )
    app.add_middleware(
        BodySizeLimit,
        default=MAX_BODY_BYTES,
        per_route={
            ("POST", "/v1/files"): MAX_UPLOAD_BYTES,
            ("POST", "/openai/v1/files"): MAX_UPLOAD_BYTES,
            ("POST", "/anthropic/v1/messages/batches"): MAX_MESSAGE_BATCH_BYTES,
        },
    )
    app.add_exception_handler(StoreUnavailable, database_unavailable)
    app.add_exception_handler(405, allow_every_method(app))
    native_errors.install(app)
    guard = Depends(bearer_dependency(token))
    app.include_router(read_router(store), dependencies=[guard])
    if actions is not None:
        app.include_router(action_router(actions), dependencies=[guard])
        _native_routes(app, actions, token, results_dir)
    acting = ResultsActions(actions) if actions is not None else None
    app.include_router(results_router(store, acting, prices or {}), dependencies=[guard])
    app.include_router(events_router(store, stop), dependencies=[guard])
    app.include_router(webhooks_router(store), dependencies=[guard])
    _health_route(app, store, health)
    # The dashboard: its own login (a session cookie), not the bearer token guard.
    install_dashboard(
        app,
        store,
        health,
        token,
        actions=actions,
        results_dir=results_dir,
        upstream_held=upstream_held,
    )
    return app


def _native_routes(app: FastAPI, actions: Actions, token: str, results_dir: Path | None) -> None:
    """The provider-native routes, each guarded by the daemon's token as its SDK sends an
    API key: OpenAI's as a bearer token, Anthropic's as ``x-api-key`` or a bearer token."""
    app.include_router(openai_router(actions), dependencies=[Depends(bearer_dependency(token))])
    anthropic_guard = Depends(bearer_or_api_key_dependency(token))
    app.include_router(anthropic_router(actions, results_dir), dependencies=[anthropic_guard])


def _health_route(app: FastAPI, store: Store, health: Health) -> None:
    @app.get(
        "/healthz",
        response_model=HealthOut,
        tags=["service"],
        responses={
            413: COMMON_ERRORS[413],
            503: {"model": HealthOut, "description": "degraded (the reasons say why)"},
        },
    )
    def healthz() -> JSONResponse:
        snap = health.snapshot(datetime.now(UTC))
        body = snap.to_json()
        try:
            body["jobs_by_status"] = store.count_by_status()
        except StoreUnavailable as exc:  # the database being down is itself a health fact
            body["status"] = "degraded"
            body["reasons"] = [*body["reasons"], redact(str(exc))]
        except Exception as exc:
            body["status"] = "degraded"
            body["reasons"] = [*body["reasons"], f"database unavailable: {type(exc).__name__}"]
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)
