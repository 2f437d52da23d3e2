"""Templates to HTML: one Jinja2 environment (autoescaped), the filters the pages use, and
the response of a page or of its live fragment (an htmx poll asks for the fragment)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from batchwatch.providers import provider

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(("html", "svg")),
    undefined=StrictUndefined,  # a misspelt name fails the test, not the page silently
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(int(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def rate(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}/s" if value >= 1 else f"{value * 60:.1f}/min"


def status_class(status: str) -> str:
    """A CSS class per status family (colour); the status is always written out too."""
    lowered = status.lower()
    if lowered in ("success", "delivered", "ok", "ready"):
        return "st-good"
    if lowered in ("failed", "timeout_exceeded", "dead", "degraded", "unavailable"):
        return "st-bad"
    if lowered in ("running", "queued", "pending", "downloading"):
        return "st-live"
    return "st-other"


def provider_label(name: str) -> str:
    """A provider's name as people know it (``OpenAI``); an unknown one as stored."""
    try:
        return provider(name).label
    except KeyError:
        return name


_env.filters.update(
    when=when,
    duration=duration,
    rate=rate,
    status_class=status_class,
    provider_label=provider_label,
)


def is_fragment(request: Request) -> bool:
    """An htmx poll (``HX-Request``) of the live part, not a full page load."""
    return request.headers.get("hx-request") == "true"


def page(
    request: Request, name: str, context: dict[str, Any], status_code: int = 200
) -> HTMLResponse:
    """``name`` rendered (its live fragment ``_name`` for an htmx poll)."""
    if is_fragment(request) and (TEMPLATES / f"_{name}").exists():
        name = f"_{name}"
    context = {"request": request, "path": request.url.path, **context}
    html = _env.get_template(name).render(context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})
