"""The Files API routes (``/v1/files``, OpenAI's Files API), over the ``OpenAISimulation``.

A download answers the raw bytes as ``application/octet-stream`` (what the live API sends;
the OpenAPI description's ``application/json`` string is a known error in it,
openai/openai-openapi#261), streamed in slices with the full ``Content-Length``, never a
second copy of the file. A deleted file answers 404, ``No such File object``: the way a
test makes a result file "expired upstream".
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from batchwatch.simulator.downloads import download
from batchwatch.simulator.openai.files import FileOrder, UploadPurpose
from batchwatch.simulator.openai.simulation import OpenAISimulation


def files_router(simulation: OpenAISimulation) -> APIRouter:
    """The ``/v1/files`` routes. Auth is checked by the gateway."""
    router = APIRouter()

    # createFile: multipart; the SDK flattens expires_after into bracketed form fields
    @router.post("/v1/files")
    async def create_file(
        file: UploadFile,
        purpose: Annotated[UploadPurpose, Form()],
        anchor: Annotated[Literal["created_at"] | None, Form(alias="expires_after[anchor]")] = None,
        seconds: Annotated[int | None, Form(alias="expires_after[seconds]")] = None,
    ) -> JSONResponse:
        content = await file.read()
        ttl = seconds if anchor is not None else None
        stored = simulation.upload_file(file.filename or "upload", content, purpose, ttl)
        return JSONResponse(stored.to_wire())

    # listFiles: newest first by default; first_id/last_id are null on an empty page
    @router.get("/v1/files")
    async def list_files(
        purpose: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
        order: FileOrder = "desc",
        after: str | None = None,
    ) -> JSONResponse:
        page = simulation.list_files(purpose=purpose, order=order, after=after, limit=limit)
        data = [f.to_wire() for f in page.files]
        return JSONResponse({
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": page.has_more,
        })  # fmt: skip

    # retrieveFile
    @router.get("/v1/files/{file_id}")
    async def retrieve_file(file_id: str) -> JSONResponse:
        return JSONResponse(simulation.get_file(file_id).to_wire())

    # deleteFile
    @router.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str) -> JSONResponse:
        simulation.delete_file(file_id)
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    # downloadFile
    @router.get("/v1/files/{file_id}/content")
    async def download_file(file_id: str) -> StreamingResponse:
        return download(simulation.get_file(file_id))

    return router
