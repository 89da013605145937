"""/api/v1/trainings: LoRA training jobs — submit, list, get, cancel, delete, events (SSE), artifacts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.base import ListPage
from sdfleet.api.schemas.trainings import ArtifactPublic, TrainingAccepted, TrainingCreate, TrainingPublic
from sdfleet.api.streaming import sse_frame
from sdfleet.jobs.records import EventType, JobStatus
from sdfleet.services.inference import request_hash
from sdfleet.services.notifier import job_topic
from sdfleet.services.trainings import TrainingRequest

router = APIRouter(prefix="/trainings", tags=["trainings"])
Id = Annotated[str, Path(max_length=64)]
TERMINAL = {EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED}
KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 2.0


def _public(services, job) -> TrainingPublic:
    return TrainingPublic.of(job, metrics=services.trainings.latest_metrics(job))


@router.post("", response_model=TrainingAccepted, status_code=202)
def submit_training(body: TrainingCreate, principal: CurrentPrincipal, services: ServicesDep,
                    idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> TrainingAccepted:
    """Queue a LoRA training on an endpoint whose workers may train (`train:all`)."""
    request = TrainingRequest(name=body.name, base_model=body.base_model, dataset_id=body.dataset_id,
                              params=body.params(), allowed_roles=body.allowed_roles, endpoint=body.endpoint,
                              idempotency_key=idempotency_key)
    job = services.trainings.submit(principal, request, body_hash=request_hash(body.model_dump()))
    return TrainingAccepted(id=job.id, status=job.status.value)


@router.get("", response_model=ListPage[TrainingPublic])
def list_trainings(principal: CurrentPrincipal, services: ServicesDep, page: PageDep,
                   status: JobStatus | None = None) -> ListPage[TrainingPublic]:
    """Your trainings, newest first."""
    result = services.trainings.list(principal, page, status=status)
    return ListPage(items=[_public(services, j) for j in result.items], next_cursor=result.next_cursor)


@router.get("/{job_id}", response_model=TrainingPublic)
def get_training(job_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> TrainingPublic:
    """Status, step, loss, lr, speed, ETA, parameters and the resulting LoRA."""
    return _public(services, services.trainings.get(principal, job_id))


@router.post("/{job_id}/cancel", response_model=TrainingPublic)
def cancel_training(job_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> TrainingPublic:
    """Queued: cancelled at once. Running: stopped at the next step; the last checkpoint stays downloadable."""
    return _public(services, services.trainings.cancel(principal, job_id))


@router.delete("/{job_id}", status_code=204)
def delete_training(job_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Delete a finished training and its files (the LoRA stays in the registry)."""
    services.trainings.delete(principal, job_id)
    return Response(status_code=204)


@router.get("/{job_id}/artifacts", response_model=list[ArtifactPublic])
def list_artifacts(job_id: Id, principal: CurrentPrincipal, services: ServicesDep) -> list[ArtifactPublic]:
    """The LoRA file, the evaluation grid, samples and the last checkpoint."""
    return [ArtifactPublic(name=a.name, size=a.size, step=a.step,
                           url=f"/api/v1/trainings/{job_id}/artifacts/{a.name}")
            for a in services.trainings.artifacts(principal, job_id)]


@router.get("/{job_id}/artifacts/{name:path}", response_class=StreamingResponse,
            responses={200: {"content": {"image/png": {}, "application/octet-stream": {}}}})
def get_artifact(job_id: Id, name: Annotated[str, Path(max_length=200)], principal: CurrentPrincipal,
                 services: ServicesDep) -> StreamingResponse:
    """One stored file of the training."""
    artifact, chunks = services.trainings.open_artifact(principal, job_id, name)
    image = name.endswith(".png")
    filename = f"{job_id}-{name.replace('/', '-')}"
    return StreamingResponse(chunks, media_type="image/png" if image else "application/octet-stream",
                             headers={"Content-Length": str(artifact.size),
                                      "Content-Disposition": f'{"inline" if image else "attachment"}; '
                                                             f'filename="{filename}"'})


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def training_events(
    job_id: Id, request: Request, principal: CurrentPrincipal, services: ServicesDep,
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{0,18}$",
                                                description="Resume after this event id.")] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="Resume after this event id.")] = None,
) -> StreamingResponse:
    """Server-Sent Events: queued, started, progress (step, loss, lr, steps/s, ETA), requeued, succeeded |
    failed | cancelled. Resumable with `Last-Event-ID` or `?after=`."""
    start = int(last_event_id) if last_event_id else (after or 0)
    await run_in_threadpool(services.trainings.get, principal, job_id)

    async def stream():
        seq, quiet = start, 0.0
        while True:
            try:
                events = await run_in_threadpool(services.trainings.events_after, principal, job_id, seq)
            except Exception:  # deleted while streaming
                yield sse_frame(event="deleted", data={"id": job_id})
                return
            for event in events:
                seq = event.seq
                yield sse_frame(event=event.type.value, data={"job_id": job_id, **event.data}, event_id=event.seq)
                if event.type in TERMINAL:
                    return
            if await request.is_disconnected():
                return
            if await services.notifier.wait(job_topic(job_id), RECHECK_SECONDS):
                quiet = 0.0
            else:
                quiet += RECHECK_SECONDS
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
