"""The settings of events: ``[alerts]``, ``[[webhooks]]`` and ``[[hooks]]`` (sections of
``config.Settings``, kept here so ``config.py`` stays about loading). Standard library only,
like ``config.py``: pydantic reads the annotations when it validates a whole file.
"""

from __future__ import annotations

import base64
import binascii
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urlsplit

from annotated_types import Ge, Gt, Le, MinLen

from batchwatch.errors import ConfigError

_STRICT_KEYS: dict[str, Any] = {"extra": "forbid"}

EventName = Literal[
    "job.transitioned", "job.finished", "job.results_ready", "job.stalled", "job.deadline_near"
]


#: A hook's endpoint is named this and its argv; a webhook's is its URL.
HOOK_PREFIX = "hook:"


@dataclass(frozen=True, slots=True)
class AlertSettings:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    #: A RUNNING job whose completed count has not moved for this long is stalled.
    stall_minutes: Annotated[float, Gt(0)] = 30.0
    #: A job QUEUED for longer than this is stalled.
    queued_minutes: Annotated[float, Gt(0)] = 120.0
    #: ``job.deadline_near`` once a job with requests left has used this much of its
    #: ``timeout_hours``.
    deadline_fraction: Annotated[float, Gt(0), Le(1)] = 0.8


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``[[webhooks]]``: an endpoint that receives events as signed POSTs."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    url: Annotated[str, MinLen(8)]
    #: A file holding the Standard Webhooks secret (``whsec_`` + base64), mode 0600.
    secret_file: Path
    #: The event types it takes; all when empty.
    events: tuple[EventName, ...] = ()
    timeout_seconds: Annotated[float, Gt(0), Le(300)] = 10.0
    #: Not a file key: read from ``secret_file`` at start-up.
    secret: str | None = field(default=None, repr=False, metadata={"key": False})

    @property
    def name(self) -> str:
        return self.url


@dataclass(frozen=True, slots=True)
class HookSettings:
    """``[[hooks]]``: a program run with each event's JSON on its standard input."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT_KEYS

    #: The program and its arguments (no shell).
    command: Annotated[tuple[str, ...], MinLen(1)]
    events: tuple[EventName, ...] = ()
    timeout_seconds: Annotated[float, Gt(0), Le(3600)] = 30.0
    #: Attempts run at once (events of one job always run one after another).
    concurrency: Annotated[int, Ge(1), Le(16)] = 1

    @property
    def name(self) -> str:
        return HOOK_PREFIX + " ".join(self.command)


def endpoint_labels(
    webhooks: tuple[WebhookSettings, ...], hooks: tuple[HookSettings, ...]
) -> dict[str, str]:
    """How logs, metrics and /healthz name each endpoint (by its name in the database): its
    place in the config and, for a webhook, its origin only. Never the URL's path or user
    part, which often hold a credential (Slack's do); /healthz and /metrics need no token."""
    labels = {w.name: f"webhooks[{n}] ({_origin(w.url)})" for n, w in enumerate(webhooks)}
    return labels | {h.name: f"hooks[{n}]" for n, h in enumerate(hooks)}


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def check_urls(webhooks: tuple[WebhookSettings, ...]) -> None:
    for n, hook in enumerate(webhooks):
        if not hook.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"webhooks[{n}].url: must start with http:// or https://, got {hook.url!r}"
            )


def with_secrets(webhooks: tuple[WebhookSettings, ...]) -> tuple[WebhookSettings, ...]:
    """Each webhook with its secret read from ``secret_file``; ``ConfigError`` naming the
    key when the file is missing, readable by others, or not a Standard Webhooks secret."""
    check_urls(webhooks)
    return tuple(
        replace(hook, secret=read_secret(hook.secret_file, f"webhooks[{n}].secret_file"))
        for n, hook in enumerate(webhooks)
    )


def read_secret(path: Path, key: str) -> str:
    try:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            raise ConfigError(f"{key}: {path} is readable by other users; run `chmod 600 {path}`")
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    body = value.removeprefix("whsec_")
    try:
        if not value.startswith("whsec_") or len(base64.b64decode(body, validate=True)) < 16:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ConfigError(
            f"{key}: {path} does not hold a webhook secret (whsec_ and at least 16 bytes of"
            ' base64; make one with: python -c "import base64,os;'
            " print('whsec_' + base64.b64encode(os.urandom(24)).decode())\")"
        ) from None
    return value
