"""/api/v1/checkpoints: the model registry, resumable uploads and URL imports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

import anyio.from_thread
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.errors import error_response
from sdfleet.api.schemas.base import ListPage
from sdfleet.api.schemas.checkpoints import (
    CheckpointPublic,
    CheckpointUpdate,
    ImportCreate,
    ImportPublic,
    UploadComplete,
    UploadCreate,
    UploadPartPublic,
    UploadPublic,
)
from sdfleet.api.streaming import RangeNotSatisfiable, parse_range
from sdfleet.domain.errors import InvalidInput
from sdfleet.services.checkpoints import CheckpointQuery
from sdfleet.services.imports import ImportRequest
from sdfleet.services.uploads import UploadRequest

router = APIRouter(prefix="/checkpoints", tags=["checkpoints"])
Id = Annotated[str, Path(max_length=64)]
Filter = Annotated[str | None, Query(max_length=255)]
# 1. Uploads and imports (declared first: their paths would otherwise read as checkpoint ids)


@router.post("/uploads", response_model=UploadPublic, status_code=201)
def create_upload(body: UploadCreate, principal: CurrentPrincipal, services: ServicesDep) -> UploadPublic:
    """Announce a file to upload in parts (`checkpoint:all`); answers the upload id and part size."""
    request = UploadRequest(filename=body.filename, model_type=body.type, size=body.size, sha256=body.sha256,
                            name=body.name, allowed_roles=body.allowed_roles)
    view = services.uploads.create(principal, request)
    return UploadPublic.of(view.upload, view.part_urls)


@router.get("/uploads/{upload_id}", response_model=UploadPublic)
def get_upload(upload_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> UploadPublic:
    """Your upload and the parts received so far: resend the missing ones after a dropped connection."""
    view = services.uploads.get(principal, upload_id)
    return UploadPublic.of(view.upload, view.part_urls)


@router.put("/uploads/{upload_id}/parts/{part_number}", response_model=UploadPartPublic)
async def put_upload_part(
    upload_id: Id,
    part_number: Annotated[int, Path(ge=1, le=10_000)],
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
    x_part_sha256: Annotated[str | None, Header(max_length=64, description="sha256 of the part (hex).")] = None,
) -> UploadPartPublic:
    """Send part `n` (from 1) as the raw body, exactly `part_size` bytes (the last: the rest); idempotent."""
    length = request.headers.get("content-length")
    content_length = int(length) if length is not None and length.isascii() and length.isdigit() else None
    part = await run_in_threadpool(
        services.uploads.put_part, principal, upload_id, part_number, _body_chunks(request),
        sha256=x_part_sha256, content_length=content_length,
    )
    return UploadPartPublic.of(part)


@router.post("/uploads/{upload_id}/complete", response_model=CheckpointPublic)
def complete_upload(
    upload_id: Id, body: UploadComplete, principal: CurrentPrincipal, services: ServicesDep
) -> CheckpointPublic:
    """Assemble, hash, verify size and sha256, inspect and register the file; answers the checkpoint."""
    checkpoint = services.uploads.complete(principal, upload_id, parts=body.parts, sha256=body.sha256)
    return CheckpointPublic.of(checkpoint)


@router.post("/imports", response_model=ImportPublic, status_code=202)
def create_import(body: ImportCreate, principal: CurrentPrincipal, services: ServicesDep) -> ImportPublic:
    """Fetch a model from a URL in the background (`checkpoint:all`); poll the import for progress."""
    request = ImportRequest(url=body.url, model_type=body.type, name=body.name, allowed_roles=body.allowed_roles)
    return ImportPublic.of(services.imports.create(principal, request))


@router.get("/imports/{import_id}", response_model=ImportPublic)
def get_import(import_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> ImportPublic:
    """Your import: status, bytes done of total, the checkpoint once registered, the error if it failed."""
    return ImportPublic.of(services.imports.get(principal, import_id))


# 2. Checkpoints


@router.get("", response_model=ListPage[CheckpointPublic])
def list_checkpoints(
    principal: CurrentPrincipal,
    services: ServicesDep,
    page: PageDep,
    type: Filter = None,  # the seed's query parameter name
    status: Filter = None,
    architecture: Filter = None,
    name: Filter = None,
) -> ListPage[CheckpointPublic]:
    """Models you may see, filtered by type, status, architecture and part of the name."""
    query = CheckpointQuery(model_type=type, status=status, architecture=architecture, name=name)
    result = services.checkpoints.list(principal, query, page)
    return ListPage(items=[CheckpointPublic.of(c) for c in result.items], next_cursor=result.next_cursor)


@router.get("/{checkpoint_id}", response_model=CheckpointPublic)
def get_checkpoint(checkpoint_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> CheckpointPublic:
    """One model: hashes, architecture, precision, size, safetensors metadata."""
    return CheckpointPublic.of(services.checkpoints.get(principal, checkpoint_id))


@router.patch("/{checkpoint_id}", response_model=CheckpointPublic)
def update_checkpoint(
    checkpoint_id: Id, body: CheckpointUpdate, principal: CurrentPrincipal, services: ServicesDep
) -> CheckpointPublic:
    """Rename a model or change the roles that may see it (`checkpoint:all`)."""
    checkpoint = services.checkpoints.update(principal, checkpoint_id, name=body.name,
                                             allowed_roles=body.allowed_roles)
    return CheckpointPublic.of(checkpoint)


@router.delete("/{checkpoint_id}", status_code=204)
def delete_checkpoint(
    checkpoint_id: Id,
    principal: CurrentPrincipal,
    services: ServicesDep,
    force: Annotated[bool, Query(description="Delete even while pinned (admins only).")] = False,
) -> Response:
    """Delete a model (`checkpoint:all`); 409 while an endpoint or a published workflow pins it."""
    services.checkpoints.delete(principal, checkpoint_id, force=force)
    return Response(status_code=204)


@router.get("/{checkpoint_id}/download", response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "A byte range."}})
def download_checkpoint(
    checkpoint_id: Id,
    principal: CurrentPrincipal,
    services: ServicesDep,
    range_header: Annotated[str | None, Header(alias="range", max_length=200)] = None,
) -> Response:
    """The model file, streamed; honours a single `Range: bytes=…` (206)."""
    checkpoint = services.checkpoints.get(principal, checkpoint_id)
    size = checkpoint.size
    try:
        span = parse_range(range_header, size)
    except RangeNotSatisfiable:
        return error_response(416, "range_not_satisfiable", f"range {range_header!r} is outside the {size} bytes",
                              headers={"Content-Range": f"bytes */{size}"})
    start, end = span if span else (0, size - 1)
    try:
        download = services.checkpoints.open_download(principal, checkpoint_id, start=start, end=end)
    except InvalidInput:
        return error_response(416, "range_not_satisfiable", f"range {range_header!r} is outside the {size} bytes",
                              headers={"Content-Range": f"bytes */{size}"})
    headers = {
        "Content-Length": str(download.end - download.start + 1),
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(checkpoint.name)}",
        "ETag": f'"{checkpoint.sha256}"',
    }
    status = 200
    if span:
        status = 206
        headers["Content-Range"] = f"bytes {download.start}-{download.end}/{size}"
    return StreamingResponse(download.chunks, status_code=status, headers=headers,
                             media_type="application/octet-stream")


def _body_chunks(request: Request) -> Iterator[bytes]:
    """The request body as a blocking iterator, for a worker thread: pulls from the event loop chunk by chunk."""
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = anyio.from_thread.run(stream.__anext__)
        except StopAsyncIteration:
            return
        if chunk:
            yield chunk
