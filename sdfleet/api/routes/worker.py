"""/api/v1/worker: the protocol `sdfleet worker` speaks. Worker tokens only; a worker reaches only its jobs."""

from __future__ import annotations

import base64
import binascii
import io
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from sdfleet.api.deps import ServicesDep
from sdfleet.api.streaming import ranged_response
from sdfleet.domain.errors import InvalidInput, Unauthenticated
from sdfleet.domain.workers import WorkerRecord
from sdfleet.jobs.records import JobProgress
from sdfleet.jobs.spec import GenerateSpec, JobSpec
from sdfleet.jobs.wire import (
    ClaimedJob,
    ClaimRequest,
    CompleteRequest,
    FailRequest,
    HeartbeatAnswer,
    HeartbeatRequest,
    InputToFetch,
    ModelToFetch,
    TokenRequest,
    WorkerAssignment,
    WorkerReport,
)
from sdfleet.services.workers import OutputReport

router = APIRouter(prefix="/worker", tags=["worker"])


def current_worker(request: Request, services: ServicesDep) -> WorkerRecord:
    """The worker presenting `Authorization: Bearer sfw_…`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("a worker token is required: Authorization: Bearer sfw_…")
    return services.workers.authenticate(token.strip())


CurrentWorker = Annotated[WorkerRecord, Depends(current_worker)]


@router.post("/report", status_code=204)
def report(body: WorkerReport, worker: CurrentWorker, services: ServicesDep) -> Response:
    """The worker's state, device and loaded models."""
    services.workers.report(worker, status=body.status, device=body.device, loaded_models=body.loaded_models,
                            info=body.info)
    return Response(status_code=204)


@router.get("/assignment", response_model=WorkerAssignment)
def assignment(worker: CurrentWorker, services: ServicesDep) -> WorkerAssignment:
    """The worker's endpoint and the models its `preload` names (download and load them before claiming)."""
    found = services.workers.assignment(worker)
    return WorkerAssignment(endpoint=found.endpoint, preload=[ModelToFetch.of(m) for m in found.preload])


@router.post("/claim", response_model=ClaimedJob, responses={204: {"description": "no job within wait_seconds"}})
async def claim(body: ClaimRequest, worker: CurrentWorker, services: ServicesDep, request: Request):
    """Long-poll for the next job of this worker's endpoint (204 when none arrived in `wait_seconds`)."""
    lease = await services.workers.claim_waiting(worker, wait_seconds=body.wait_seconds,
                                                 disconnected=request.is_disconnected)
    if lease is None:
        return Response(status_code=204)
    return _claimed(lease.job.id, lease.job.spec, token=lease.fencing_token, expires_at=lease.expires_at,
                    lease_seconds=services.workers.lease_seconds)


def _claimed(job_id: str, spec: JobSpec, *, token: int, expires_at: datetime, lease_seconds: float) -> ClaimedJob:
    """The claim answer: the lease, the pinned models and inputs, and the kind's payload."""
    claimed = ClaimedJob(id=job_id, kind=spec.kind, fencing_token=token, lease_expires_at=expires_at,
                         lease_seconds=lease_seconds, models=[ModelToFetch.of(m) for m in spec.models],
                         inputs=[InputToFetch.of(i) for i in spec.inputs])
    if isinstance(spec, GenerateSpec):
        return claimed.model_copy(update={"graph": dict(spec.graph), "extra": dict(spec.extra)})
    return claimed.model_copy(update={"training": dict(spec.training)})


@router.post("/jobs/{job_id}/heartbeat", response_model=HeartbeatAnswer)
def heartbeat(job_id: str, body: HeartbeatRequest, worker: CurrentWorker, services: ServicesDep) -> HeartbeatAnswer:
    """Extend the lease, report progress (and a preview); answers whether the owner asked to cancel."""
    progress = None
    if body.phase is not None:
        progress = JobProgress(phase=body.phase, model=body.model)
    elif body.value is not None and body.max is not None:
        progress = JobProgress(value=body.value, max=body.max, node_id=body.node_id, metrics=body.metrics)
    preview = None
    if body.preview_png_base64:
        try:
            preview = base64.b64decode(body.preview_png_base64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("preview_png_base64 is not base64", field="preview_png_base64") from None
    job = services.workers.heartbeat(worker, job_id, token=body.fencing_token, progress=progress,
                                     preview_png=preview)
    return HeartbeatAnswer(cancel_requested=job.cancel_requested, lease_expires_at=job.lease_expires_at)


@router.put("/jobs/{job_id}/outputs/{index}", status_code=204)
async def upload_output(job_id: str, index: int, request: Request, worker: CurrentWorker, services: ServicesDep,
                        fencing_token: Annotated[int, Query()]) -> Response:
    """Upload output `index` (PNG bytes) for a held job."""
    body = await request.body()
    await run_in_threadpool(services.workers.store_output, worker, job_id, token=fencing_token, index=index,
                            stream=io.BytesIO(body))
    return Response(status_code=204)


@router.post("/jobs/{job_id}/complete", status_code=204)
def complete(job_id: str, body: CompleteRequest, worker: CurrentWorker, services: ServicesDep) -> Response:
    """Finish a held job with its uploaded outputs (exactly once; a stale token gets 409)."""
    services.workers.complete(worker, job_id, token=body.fencing_token,
                              outputs=[OutputReport(index=o.index, node_id=o.node_id) for o in body.outputs],
                              info=body.info,
                              model_loads=[m.record() for m in body.model_loads] if body.model_loads else None)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/fail", status_code=204)
def fail(job_id: str, body: FailRequest, worker: CurrentWorker, services: ServicesDep) -> Response:
    """Finish a held job as failed."""
    services.workers.fail(worker, job_id, token=body.fencing_token, error=body.error())
    return Response(status_code=204)


@router.post("/jobs/{job_id}/cancelled", status_code=204)
def cancelled(job_id: str, body: TokenRequest, worker: CurrentWorker, services: ServicesDep) -> Response:
    """The worker stopped the job after a cancel request."""
    services.workers.cancelled(worker, job_id, token=body.fencing_token)
    return Response(status_code=204)


@router.post("/jobs/{job_id}/release", status_code=204)
def release(job_id: str, body: TokenRequest, worker: CurrentWorker, services: ServicesDep) -> Response:
    """Give a held job back to the queue (shutting down)."""
    services.workers.release(worker, job_id, token=body.fencing_token, reason=body.reason or "worker released it")
    return Response(status_code=204)


@router.get("/jobs/{job_id}/inputs/{name}")
def get_input(job_id: str, name: str, worker: CurrentWorker, services: ServicesDep,
              fencing_token: Annotated[int, Query()]) -> StreamingResponse:
    """An input image of a held job."""
    chunks = services.workers.open_input(worker, job_id, token=fencing_token, name=name)
    return StreamingResponse(chunks, media_type="image/png")


@router.get("/models/{sha256}")
def get_model(sha256: str, worker: CurrentWorker, services: ServicesDep,
              range_header: Annotated[str | None, Header(alias="range")] = None) -> Response:
    """A model blob referenced by a job this worker holds or its endpoint preloads (HTTP Range, for resuming)."""
    return ranged_response(
        size=services.workers.model_size(worker, sha256), range_header=range_header,
        media_type="application/octet-stream",
        open_range=lambda start, end: services.workers.open_model(worker, sha256, start=start, end=end),
    )
