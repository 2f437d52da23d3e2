"""The simulator's files: the Files API store, uploads, and the requests a batch reads.

Everything here is about *bytes in files*; ``simulation`` owns the job lifecycle and calls
in with its lock held and ``now`` in hand, so nothing here takes a lock or reads the clock.
The files a finished job writes are rendered by ``results``; the store that holds them
is ``file_store``'s, the routes are in ``files_routes``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

SimFilePurpose = Literal["fine-tune", "batch", "ocr"]
SampleType = Literal["pretrain", "instruct", "batch_request", "batch_result", "batch_error"]
FileSource = Literal["upload", "repository", "mistral"]
FileVisibility = Literal["workspace", "user"]


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of the Files API, content included (``FileSchema`` on the wire)."""

    id: str
    filename: str
    purpose: SimFilePurpose
    sample_type: SampleType
    source: FileSource
    created_at: float
    content: bytes
    num_lines: int | None
    mimetype: str | None = "application/jsonl"
    visibility: FileVisibility | None = "workspace"
    expires_at: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": int(self.created_at),
            "filename": self.filename,
            "purpose": self.purpose,
            "sample_type": self.sample_type,
            "source": self.source,
            "num_lines": self.num_lines,
            "mimetype": self.mimetype,
            # Mistral shows 16 hex chars here; a content hash is the natural reading.
            "signature": hashlib.sha256(self.content).hexdigest()[:16],
            "expires_at": self.expires_at,
            "visibility": self.visibility,
        }


@dataclass(frozen=True, slots=True)
class FileQuery:
    """Query parameters of ``GET /v1/files``."""

    page: int = 0
    page_size: int = 100
    sample_types: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    search: str | None = None
    purpose: str | None = None
    mimetypes: frozenset[str] = frozenset()

    def matches(self, file: StoredFile) -> bool:
        return (
            (not self.sample_types or file.sample_type in self.sample_types)
            and (not self.sources or file.source in self.sources)
            and (self.search is None or self.search in file.filename)
            and (self.purpose is None or file.purpose == self.purpose)
            and (not self.mimetypes or file.mimetype in self.mimetypes)
        )

    def select(self, files: Iterable[StoredFile]) -> tuple[list[StoredFile], int]:
        """One page of ``files``, newest first (ties by id, for a stable order), and the
        match count."""
        matching = sorted(
            (f for f in files if self.matches(f)),
            key=lambda f: (f.created_at, f.id),
            reverse=True,
        )
        start = self.page * self.page_size
        return matching[start : start + self.page_size], len(matching)


def uploaded_file(
    filename: str,
    content: bytes,
    *,
    purpose: SimFilePurpose,
    created_at: float,
    visibility: FileVisibility,
    expiry_hours: int | None,
) -> StoredFile:
    """The record for an upload: batch inputs are ``batch_request`` (docs/mistral-api.md §2)."""
    return StoredFile(
        id=str(uuid.uuid4()),
        filename=filename,
        purpose=purpose,
        # Only batch's sample type is documented; "instruct" is what fine-tune data is.
        sample_type="batch_request" if purpose == "batch" else "instruct",
        source="upload",
        created_at=created_at,
        content=content,
        num_lines=count_lines(content),
        mimetype="application/jsonl" if filename.endswith(".jsonl") else None,
        visibility=visibility,
        expires_at=None if expiry_hours is None else int(created_at) + expiry_hours * 3600,
    )


def count_lines(content: bytes) -> int | None:
    """Non-blank lines of a text file; ``None`` for binary content (a PDF for OCR)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return sum(1 for line in text.splitlines() if line.strip())


# --- Batch input lines ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestLine:
    """One request of a batch: from an input file line, or an inline ``BatchRequest``."""

    custom_id: str | None
    body: Mapping[str, Any]


def parse_request_lines(content: bytes) -> tuple[RequestLine, ...]:
    """The requests of an input JSONL file, one per non-blank line.

    Lenient on purpose: a line that is not a JSON object still counts as a request (the
    real service accepts the file at create and fails bad lines later).
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return ()
    return tuple(_request_line(raw) for raw in text.splitlines() if raw.strip())


def _request_line(raw: str) -> RequestLine:
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError:
        return RequestLine(None, {})
    if not isinstance(parsed, dict):
        return RequestLine(None, {})
    custom_id = parsed.get("custom_id")
    body = parsed.get("body")
    return RequestLine(
        None if custom_id is None else str(custom_id), body if isinstance(body, dict) else {}
    )


def jsonl_objects(content: bytes) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (the inline ``outputs`` of a finished job)."""
    return [json.loads(line) for line in content.splitlines() if line.strip()]
