"""What the rest of batchwatch asks of a provider's client: the operations every provider
offers, as typed records (``RemoteJob``, ``JobPage``), whatever its JSON.

Two ways of listing. Mistral filters its list by status, so a cycle reads only the active
jobs (``StatusListing``). OpenAI and Anthropic list every batch newest first, with a cursor
(``NewestFirstListing``): a cycle reads until a page whose jobs are all stored as ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from batchwatch.errors import ApiError
from batchwatch.models import JobPage, ListFilter, RemoteJob


class CreateRequest(Protocol):
    """A validated create body of some provider (a pydantic model of its ``schemas``)."""

    def to_json(self) -> dict[str, Any]: ...


class ProviderClient(Protocol):
    """A provider's batch operations (each client's methods name the API call they make)."""

    provider: str
    base_url: str
    #: How long a just-created job may answer 404 before it is taken as deleted upstream
    #: (Anthropic's batches do, for a moment; zero elsewhere).
    not_found_grace: timedelta
    #: The pydantic model of the provider's create body.
    create_model: Any

    def get_job(self, job_id: str) -> RemoteJob: ...
    def cancel_job(self, job_id: str) -> RemoteJob: ...
    def create_job(self, request: Any, headers: Mapping[str, str] | None = None) -> RemoteJob: ...
    def tagged(self, request: Any, request_id: str) -> Any:
        """``request`` carrying ``request_id`` where ``find_created`` can see it."""
        ...

    def find_created(self, request_id: str, since: datetime, request: Any) -> RemoteJob | None:
        """The job a create of ``request`` under ``request_id`` made, if it made one."""
        ...

    def reserved(self, request: Any) -> str | None:
        """What in ``request`` is batchwatch's to set (None: nothing)."""
        ...

    def child_request(self, parent: RemoteJob, lines: Path, parent_tag: str) -> Any:
        """The create body of a retry of ``parent`` holding the input ``lines``."""
        ...

    def file_content(
        self, file_id: str, chunk_bytes: int = 1 << 20
    ) -> AbstractContextManager[Iterator[bytes]]: ...
    def inline_outputs(self, job_id: str) -> list[Any]: ...
    def pause(self, retry: int) -> bool: ...
    def held_seconds(self) -> float: ...
    def close(self) -> None: ...


@runtime_checkable
class StatusListing(Protocol):
    """A list that filters by status (Mistral's)."""

    def list_page(self, flt: ListFilter, page: int, page_size: int = 100) -> JobPage: ...
    def list_all(self, flt: ListFilter, page_size: int = 100, concurrency: int = 1) -> JobPage: ...


@runtime_checkable
class NewestFirstListing(Protocol):
    """A list of every job, newest first, read with a cursor (OpenAI's, Anthropic's)."""

    #: The largest page the API serves.
    max_page_size: int

    def list_newest(self, cursor: str | None, limit: int) -> tuple[JobPage, str | None]:
        """One page after ``cursor`` (None: the newest), and the cursor of the next page
        (None: this was the last)."""
        ...


class StatusListingClient(ProviderClient, StatusListing, Protocol):
    """A provider client whose list filters by status (Mistral's)."""


class NewestFirstClient(ProviderClient, NewestFirstListing, Protocol):
    """A provider client whose list is newest first with a cursor (OpenAI's, Anthropic's)."""


def parsed_page(items: list[Any], parse: Callable[[Any], RemoteJob], total: int) -> JobPage:
    """A list page's items read with ``parse``. An item that cannot be read is left out
    and counted (``malformed``), rather than failing the page: one bad job cannot stop all
    polling, and the caller reads such a job some other way."""
    jobs: list[RemoteJob] = []
    for item in items:
        try:
            jobs.append(parse(item))
        except ApiError:
            continue
    return JobPage(tuple(jobs), total=total, malformed=len(items) - len(jobs))
