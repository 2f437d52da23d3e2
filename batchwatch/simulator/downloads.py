"""A file's download, as the Mistral and OpenAI Files APIs answer it: the raw bytes as
``application/octet-stream`` with the full ``Content-Length``, streamed in slices of the one
copy in memory, never a second copy of the file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from fastapi.responses import StreamingResponse

# Slices this size keep uvicorn's write buffer (it waits for the socket to drain before
# each send) to about one slice, however big the file.
DOWNLOAD_CHUNK_BYTES = 256 * 1024


class Downloadable(Protocol):
    """A stored file: each provider's record has these two."""

    @property
    def filename(self) -> str: ...

    @property
    def content(self) -> bytes: ...


def download(file: Downloadable) -> StreamingResponse:
    headers = {
        "Content-Disposition": f'attachment; filename="{file.filename}"',
        "Content-Length": str(len(file.content)),
    }
    return StreamingResponse(
        _slices(file.content), media_type="application/octet-stream", headers=headers
    )


async def _slices(content: bytes) -> AsyncIterator[memoryview]:
    view = memoryview(content)
    for start in range(0, len(view), DOWNLOAD_CHUNK_BYTES):
        yield view[start : start + DOWNLOAD_CHUNK_BYTES]
