"""The Files API routes (``/v1/files``, docs/mistral-api.md §2), over the ``Simulation``.

A download streams the stored bytes in slices with the full ``Content-Length``, never a
second copy of the file: a benchmark's result files pass 100 MB. A deleted file (the way a
test makes a result file "expired upstream") answers 404 with Mistral's error body.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse

from batchwatch.simulator.downloads import download
from batchwatch.simulator.files import (
    FileQuery,
    FileSource,
    FileVisibility,
    SampleType,
    SimFilePurpose,
)
from batchwatch.simulator.simulation import Simulation


def files_router(simulation: Simulation) -> APIRouter:
    """The ``/v1/files`` routes (docs/mistral-api.md §2). Auth is checked by the gateway."""
    router = APIRouter()
    _add_collection_routes(router, simulation)
    _add_file_routes(router, simulation)
    return router


def _add_collection_routes(router: APIRouter, simulation: Simulation) -> None:
    """``/v1/files`` itself: upload and list."""

    # files_api_routes_upload_file
    @router.post("/v1/files")
    async def upload_file(
        file: UploadFile,
        purpose: Annotated[SimFilePurpose | None, Form()] = None,
        visibility: Annotated[FileVisibility, Form()] = "workspace",
        expiry: Annotated[int | None, Form()] = None,
    ) -> JSONResponse:
        content = await file.read()
        stored = simulation.upload_file(
            file.filename or "upload",
            content,
            # The spec gives no default purpose; "fine-tune" was the API's historical one.
            purpose=purpose or "fine-tune",
            visibility=visibility,
            expiry_hours=expiry,
        )
        return JSONResponse(stored.to_wire())

    # files_api_routes_list_files
    @router.get("/v1/files")
    async def list_files(
        *,
        page: Annotated[int, Query(ge=0)] = 0,
        page_size: Annotated[int, Query(ge=0)] = 100,
        include_total: bool = True,
        sample_type: Annotated[list[SampleType] | None, Query()] = None,
        source: Annotated[list[FileSource] | None, Query()] = None,
        search: str | None = None,
        purpose: SimFilePurpose | None = None,
        mimetypes: Annotated[list[str] | None, Query()] = None,
    ) -> JSONResponse:
        query = FileQuery(
            page=page,
            page_size=page_size,
            sample_types=frozenset(sample_type or ()),
            sources=frozenset(source or ()),
            search=search,
            purpose=purpose,
            mimetypes=frozenset(mimetypes or ()),
        )
        files, total = simulation.list_files(query)
        data = [f.to_wire() for f in files]
        return JSONResponse(
            {"object": "list", "data": data, "total": total if include_total else None}
        )


def _add_file_routes(router: APIRouter, simulation: Simulation) -> None:
    """``/v1/files/{file_id}``: one file, its content and its signed URL."""

    # files_api_routes_retrieve_file
    @router.get("/v1/files/{file_id}")
    async def retrieve_file(file_id: uuid.UUID) -> JSONResponse:
        return JSONResponse(simulation.get_file(str(file_id)).to_wire() | {"deleted": False})

    # files_api_routes_delete_file
    @router.delete("/v1/files/{file_id}")
    async def delete_file(file_id: uuid.UUID) -> JSONResponse:
        simulation.delete_file(str(file_id))
        return JSONResponse({"id": str(file_id), "object": "file", "deleted": True})

    # files_api_routes_download_file
    @router.get("/v1/files/{file_id}/content")
    async def download_file(file_id: uuid.UUID) -> StreamingResponse:
        return download(simulation.get_file(str(file_id)))

    # files_api_routes_get_signed_url: points at the unauthenticated /_sim download below.
    @router.get("/v1/files/{file_id}/url")
    async def signed_url(
        file_id: uuid.UUID, request: Request, expiry: Annotated[int, Query(ge=1, le=168)] = 24
    ) -> JSONResponse:
        stored = simulation.get_file(str(file_id))
        url = request.url_for("signed_download", file_id=stored.id)
        return JSONResponse({"url": f"{url}?expiry={expiry}"})

    @router.get("/_sim/files/{file_id}/content", name="signed_download")
    async def signeddownload(file_id: uuid.UUID) -> StreamingResponse:
        return download(simulation.get_file(str(file_id)))
