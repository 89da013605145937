"""A job's thumbnails and input images: /api/v1/inferences/{id}/outputs/{n}/thumbnail and …/inputs."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from sdfleet.api.deps import CurrentPrincipal, ServicesDep

router = APIRouter(tags=["inferences"])
#: a job's outputs never change once recorded; the browser may keep a thumbnail for a year
IMMUTABLE = "private, max-age=31536000, immutable"


class JobInputPublic(BaseModel):
    kind: Literal["image", "mask"]
    url: str


@router.get("/inferences/{job_id}/outputs/{index}/thumbnail",
            responses={200: {"content": {"image/webp": {}}}, 304: {"description": "not modified"}})
async def get_thumbnail(job_id: str, index: int, request: Request, principal: CurrentPrincipal,
                        services: ServicesDep) -> Response:
    """A WebP thumbnail (320 px on its longest side) of an output, made once and kept."""
    thumb = await run_in_threadpool(services.job_media.thumbnail, principal, job_id, index)
    headers = {"ETag": thumb.etag, "Cache-Control": IMMUTABLE}
    if request.headers.get("if-none-match") == thumb.etag:
        return Response(status_code=304, headers=headers)
    return Response(thumb.data, media_type=thumb.content_type, headers=headers)


@router.get("/inferences/{job_id}/inputs", response_model=list[JobInputPublic])
def list_job_inputs(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> list[JobInputPublic]:
    """The input image and mask a job was made from (empty for txt2img and graphs without inputs)."""
    return [JobInputPublic(kind=i.kind, url=f"/api/v1/inferences/{job_id}/inputs/{i.kind}")
            for i in services.job_media.inputs(principal, job_id)]


@router.get("/inferences/{job_id}/inputs/{kind}", responses={200: {"content": {"image/png": {}}}})
def get_job_input(job_id: str, kind: Literal["image", "mask"], principal: CurrentPrincipal,
                  services: ServicesDep) -> StreamingResponse:
    """The input image or mask of a job (as stored: PNG)."""
    chunks = services.job_media.open_input(principal, job_id, kind)
    return StreamingResponse(chunks, media_type="image/png", headers={"Cache-Control": IMMUTABLE})
