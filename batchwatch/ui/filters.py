"""The jobs page's filters, read from its query string into the store's ``JobQuery``
leniently: a value that does not parse is reported on the page and ignored, never a 422
(a person typed it)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.datastructures import QueryParams

from batchwatch.models import JobStatus
from batchwatch.providers import PROVIDERS
from batchwatch.providers.mistral.schemas import METADATA_KEY, PLAIN_TEXT
from batchwatch.store import JobQuery

_KEY = re.compile(METADATA_KEY)
_TEXT = re.compile(PLAIN_TEXT)
PAGE_SIZES = (25, 50, 100)
STATUSES = tuple(s.value for s in JobStatus if s is not JobStatus.UNKNOWN)


@dataclass(frozen=True, slots=True)
class JobFilters:
    """What the form shows back, and the query it makes."""

    statuses: tuple[str, ...] = ()
    provider: str = ""  # one of PROVIDERS; empty: every provider's jobs
    model: str = ""
    metadata: str = ""  # key=value
    since: str = ""  # a date or date-time, UTC unless it says otherwise
    sort: str = "-created"
    page: int = 0
    page_size: int = 50
    problems: tuple[str, ...] = field(default=())

    def query(self) -> JobQuery:
        key, _, value = self.metadata.partition("=")
        since = _parse_since(self.since)
        return JobQuery(
            statuses=tuple(JobStatus(s) for s in self.statuses),
            model=self.model or None,
            created_after=int(since.timestamp()) if since else None,
            metadata={key.strip(): value.strip()} if self.metadata else None,
            newest_first=self.sort != "created",
            page=self.page,
            page_size=self.page_size,
            provider=self.provider or None,
        )

    def link(self, page: int) -> str:
        """The query string of another page of the same filters."""
        from urllib.parse import urlencode

        pairs = [("status", s) for s in self.statuses]
        pairs += [
            (k, v)
            for k, v in (
                ("provider", self.provider),
                ("model", self.model),
                ("metadata", self.metadata),
                ("since", self.since),
            )
            if v
        ]
        pairs += [("sort", self.sort), ("page", str(page)), ("page_size", str(self.page_size))]
        return "?" + urlencode(pairs)


def _parse_since(text: str) -> datetime | None:
    if not text:
        return None
    found = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def _int(text: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(text or default), low), high)
    except ValueError:
        return default


def read_filters(params: QueryParams) -> JobFilters:
    problems: list[str] = []
    statuses = tuple(s for s in params.getlist("status") if s in STATUSES)
    provider = params.get("provider", "").strip()
    if provider and provider not in PROVIDERS:
        problems.append(f"the provider is one of {', '.join(PROVIDERS)}: ignored")
        provider = ""
    model = params.get("model", "").strip()
    if len(model) > 256 or not _TEXT.match(model):
        problems.append("the model is plain text of at most 256 characters: ignored")
        model = ""
    metadata = params.get("metadata", "").strip()
    key = metadata.partition("=")[0].strip()
    if metadata and (
        "=" not in metadata or len(key) > 32 or not _KEY.match(key) or not _TEXT.match(metadata)
    ):
        problems.append("metadata is key=value, a key of 1 to 32 plain characters: ignored")
        metadata = ""
    since = params.get("since", "").strip()
    try:
        _parse_since(since)
    except ValueError:
        problems.append(
            f"'created since' is a date such as 2026-01-31 or 2026-01-31T12:00: {since!r} ignored"
        )
        since = ""
    size = _int(params.get("page_size"), 50, 1, 100)
    return JobFilters(
        statuses=statuses,
        provider=provider,
        model=model,
        metadata=metadata,
        since=since,
        sort="created" if params.get("sort") == "created" else "-created",
        page=_int(params.get("page"), 0, 0, 100_000),
        page_size=size if size in PAGE_SIZES else 50,
        problems=tuple(problems),
    )
