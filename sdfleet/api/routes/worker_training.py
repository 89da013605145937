"""/api/v1/worker/jobs/{id}/training/…: what a worker holding a `train` job reads and writes (worker tokens)."""

from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from sdfleet.api.deps import ServicesDep
from sdfleet.api.routes.worker import CurrentWorker
from sdfleet.api.schemas.trainings import TrainingComplete
from sdfleet.domain.errors import InvalidInput
from sdfleet.services.training_worker import MAX_ARTIFACT_BYTES, MAX_CHECKPOINT_BYTES

router = APIRouter(prefix="/worker/jobs/{job_id}/training", tags=["worker"])
Token = Annotated[int, Query()]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")]
SPOOL_BYTES = 16 << 20


async def _spooled(request: Request, *, limit: int, field: str):
    """The request body in a temporary file (memory up to 16 MiB), refused past `limit` bytes."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            spool.close()
            raise InvalidInput(f"{field} larger than {limit} bytes", field=field)
        spool.write(chunk)
    spool.seek(0)
    return spool


@router.get("/images/{sha256}")
def get_dataset_image(job_id: str, sha256: Sha256, worker: CurrentWorker, services: ServicesDep,
                      fencing_token: Token) -> StreamingResponse:
    """An image of the held training's dataset, by hash."""
    chunks = services.training_worker.open_dataset_image(worker, job_id, token=fencing_token, sha256=sha256)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.get("/checkpoint", responses={204: {"description": "no checkpoint yet: start from step 0"}})
def get_checkpoint(job_id: str, worker: CurrentWorker, services: ServicesDep, fencing_token: Token):
    """The last checkpoint an earlier attempt stored (`X-Step` says its step)."""
    found = services.training_worker.latest_checkpoint(worker, job_id, token=fencing_token)
    if found is None:
        return Response(status_code=204)
    return StreamingResponse(found.chunks, media_type="application/octet-stream",
                             headers={"X-Step": str(found.step), "Content-Length": str(found.size)})


@router.put("/checkpoint", status_code=204)
async def put_checkpoint(job_id: str, request: Request, worker: CurrentWorker, services: ServicesDep,
                         fencing_token: Token, step: Annotated[int, Query(ge=1, le=10_000_000)]) -> Response:
    """Store a resumable checkpoint at `step` (the older ones are dropped)."""
    await run_in_threadpool(services.workers.held, worker, job_id, fencing_token)  # before reading the body
    body = await _spooled(request, limit=MAX_CHECKPOINT_BYTES, field="body")
    with body:
        await run_in_threadpool(services.training_worker.store_checkpoint, worker, job_id, token=fencing_token,
                                step=step, stream=body)
    return Response(status_code=204)


@router.put("/artifacts/{name:path}", status_code=204)
async def put_artifact(job_id: str, name: Annotated[str, Path(max_length=64)], request: Request,
                       worker: CurrentWorker, services: ServicesDep, fencing_token: Token) -> Response:
    """Store `lora.safetensors`, `grid.png` or `samples/NNNNNNNN-N.png`."""
    body = await _spooled(request, limit=MAX_ARTIFACT_BYTES, field="body")
    with body:
        await run_in_threadpool(services.training_worker.store_artifact, worker, job_id, token=fencing_token,
                                name=name, stream=body)
    return Response(status_code=204)


@router.post("/complete", status_code=204)
def complete_training(job_id: str, body: TrainingComplete, worker: CurrentWorker, services: ServicesDep) -> Response:
    """Register the uploaded LoRA and finish the training (exactly once; a stale token gets 409)."""
    services.training_worker.complete(worker, job_id, token=body.fencing_token, info=body.info)
    return Response(status_code=204)
