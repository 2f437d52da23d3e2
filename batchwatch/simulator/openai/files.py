"""The simulator's Files API: OpenAI's File objects, uploads, and the listing (held in the
shared ``batchwatch.simulator.file_store.FileStore``).

Everything here is about *bytes in files*; the ``simulation`` owns the batches and calls in
with its lock held and ``now`` in hand, so nothing here takes a lock or reads the clock.

* Ids look like OpenAI's: ``file-`` and 22 base-62 characters.
* ``purpose="batch"`` uploads must be ``.jsonl`` files (OpenAI's create-file description:
  "The Batch API only supports .jsonl files"); they expire 30 days after upload, as OpenAI's
  do by default, unless ``expires_after`` says otherwise. Other purposes never expire
  unless asked to.
* Result files (``batch_output``) are registered when a batch ends and rendered on first
  read: 10,000 seeded batches ending in one instant must not render 10,000 files at once.
* Every File shows ``status: "processed"`` (deprecated upstream, yet required by the spec).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from batchwatch.simulator.openai.errors import OpenAIApiError

UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
FileOrder = Literal["asc", "desc"]
FILE_TTL_SECONDS = 30 * 24 * 3600  # batch inputs and outputs, by default
MIN_TTL_SECONDS, MAX_TTL_SECONDS = 3600, 30 * 24 * 3600  # expires_after.seconds bounds
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_file_id() -> str:
    """``file-`` and 22 base-62 characters: a uuid4, as OpenAI's ids look."""
    number, digits = uuid.uuid4().int, []
    for _ in range(22):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return "file-" + "".join(digits)


@dataclass(frozen=True, slots=True)
class SimFile:
    """One file of the Files API, content included (``OpenAIFile`` on the wire)."""

    id: str
    filename: str
    purpose: str
    created_at: float
    content: bytes
    expires_at: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": int(self.created_at),
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


def expiry(created_at: float, seconds: int | None, *, by_default: bool) -> int | None:
    """``expires_at`` for a file: ``seconds`` after creation, else 30 days when the
    purpose expires by default, else never."""
    if seconds is None:
        return int(created_at) + FILE_TTL_SECONDS if by_default else None
    if not MIN_TTL_SECONDS <= seconds <= MAX_TTL_SECONDS:
        raise OpenAIApiError(
            400,
            f"expires_after.seconds must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}, "
            f"not {seconds}",
            param="expires_after.seconds",
        )
    return int(created_at) + seconds


def uploaded_file(
    filename: str, content: bytes, purpose: str, created_at: float, ttl_seconds: int | None
) -> SimFile:
    """The record for an upload, checked as OpenAI checks it."""
    if purpose == "batch" and not filename.endswith(".jsonl"):
        raise OpenAIApiError(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
    return SimFile(
        id=new_file_id(),
        filename=filename,
        purpose=purpose,
        created_at=created_at,
        content=content,
        expires_at=expiry(created_at, ttl_seconds, by_default=purpose == "batch"),
    )


@dataclass(frozen=True, slots=True)
class FilePage:
    files: list[SimFile]
    has_more: bool


def page_of(
    files: list[SimFile], *, purpose: str | None, order: FileOrder, after: str | None, limit: int
) -> FilePage:
    """``GET /v1/files``: by ``created_at`` (ties in creation order), ``limit`` files after
    the one named ``after``. ``files`` in creation order, pending ones rendered
    (``FileStore.all``): a listing shows sizes."""
    ordered = sorted(files, key=lambda f: f.created_at)  # stable: ties
    if order == "desc":
        ordered.reverse()
    matching = [f for f in ordered if purpose is None or f.purpose == purpose]
    start = 0
    if after is not None:
        position = next((i for i, f in enumerate(matching) if f.id == after), None)
        if position is None:
            raise OpenAIApiError(400, f"No file with id {after!r} to list after", param="after")
        start = position + 1
    chosen = matching[start : start + limit]
    return FilePage(chosen, start + limit < len(matching))
