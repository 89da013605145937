"""/api/v1/inferences: submit, list, get, cancel, delete, events (SSE), outputs; /api/v1/inputs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Header, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.schemas.base import ListPage
from sdfleet.api.schemas.inference import InferenceAccepted, InferenceCreate, InferencePublic, InputImagePublic
from sdfleet.api.streaming import sse_frame
from sdfleet.jobs.records import EventType, JobStatus
from sdfleet.services.inference import Submission, request_hash
from sdfleet.services.notifier import job_topic

router = APIRouter(tags=["inferences"])
TERMINAL = {EventType.SUCCEEDED, EventType.FAILED, EventType.CANCELLED}
KEEPALIVE_SECONDS = 15.0
RECHECK_SECONDS = 2.0  # other API servers' changes are seen within this


@router.post("/inferences", response_model=InferenceAccepted, status_code=202)
def submit_inference(
    body: InferenceCreate,
    principal: CurrentPrincipal,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> InferenceAccepted:
    """Queue an A1111 task (`task` + `params`) or a ComfyUI API graph (`graph`)."""
    submission = Submission(task=body.task, params=body.params, graph=body.graph, endpoint=body.endpoint,
                            idempotency_key=idempotency_key, source="api", webhook=body.webhook)
    job = services.inference.submit(principal, submission, body_hash=request_hash(body.model_dump()))
    return InferenceAccepted(id=job.id, status=job.status.value)


@router.get("/inferences", response_model=ListPage[InferencePublic])
def list_inferences(principal: CurrentPrincipal, services: ServicesDep, page: PageDep,
                    status: JobStatus | None = None) -> ListPage[InferencePublic]:
    """Your jobs, newest first; filter by status."""
    result = services.inference.list(principal, page, status=status)
    return ListPage(items=[InferencePublic.of(j) for j in result.items], next_cursor=result.next_cursor)


@router.get("/inferences/{job_id}", response_model=InferencePublic)
def get_inference(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> InferencePublic:
    """Status, progress, times, outputs and error of one of your jobs."""
    return InferencePublic.of(services.inference.get(principal, job_id))


@router.post("/inferences/{job_id}/cancel", response_model=InferencePublic)
def cancel_inference(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> InferencePublic:
    """Queued: cancelled at once. Running: stopped at the next sampler step."""
    return InferencePublic.of(services.inference.cancel(principal, job_id))


@router.delete("/inferences/{job_id}", status_code=204)
def delete_inference(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Delete the job and its output images."""
    services.inference.delete(principal, job_id)
    return Response(status_code=204)


@router.get("/inferences/{job_id}/outputs/{index}")
def get_output(job_id: str, index: int, principal: CurrentPrincipal, services: ServicesDep) -> StreamingResponse:
    """An output PNG (with its generation parameters embedded)."""
    output, chunks = services.inference.open_output(principal, job_id, index)
    return StreamingResponse(chunks, media_type=output.content_type,
                             headers={"Content-Length": str(output.size),
                                      "Content-Disposition": f'inline; filename="{job_id}-{index}.png"'})


@router.get("/inferences/{job_id}/preview")
def get_preview(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """The latest step preview of a running job (204 when there is none)."""
    png = services.inference.preview(principal, job_id)
    return Response(status_code=204) if png is None else Response(png, media_type="image/png")


@router.get("/inferences/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def inference_events(
    job_id: str,
    request: Request,
    principal: CurrentPrincipal,
    services: ServicesDep,
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{0,18}$",
                                                description="Resume after this event id.")] = None,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="Resume after this event id.")] = None,
) -> StreamingResponse:
    """Server-Sent Events: queued, started, progress, output, succeeded | failed | cancelled.

    Resumable: send `Last-Event-ID` (or `?after=`) to receive only later events."""
    start = after or 0
    if last_event_id:
        start = int(last_event_id)
    await run_in_threadpool(services.inference.get, principal, job_id)
    notifier = services.notifier

    async def stream():
        seq = start
        quiet = 0.0
        while True:
            try:
                events = await run_in_threadpool(services.inference.events_after, principal, job_id, seq)
            except Exception:  # the job was deleted while streaming
                yield sse_frame(event="deleted", data={"id": job_id})
                return
            for event in events:
                seq = event.seq
                yield sse_frame(event=event.type.value, data={"job_id": job_id, **event.data}, event_id=event.seq)
                if event.type in TERMINAL:
                    return
            if await request.is_disconnected():
                return
            if await notifier.wait(job_topic(job_id), RECHECK_SECONDS):
                quiet = 0.0
            else:
                quiet += RECHECK_SECONDS
                if quiet >= KEEPALIVE_SECONDS:
                    quiet = 0.0
                    yield ": keep-alive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/inputs", response_model=InputImagePublic, status_code=201)
async def upload_input(principal: CurrentPrincipal, services: ServicesDep,
                       image: Annotated[UploadFile, File(description="PNG, JPEG or WebP")]) -> InputImagePublic:
    """Upload an input image for graphs (LoadImage's `image` is the returned name)."""
    data = await image.read(32 * 1024 * 1024 + 1)
    result = await run_in_threadpool(services.inference.upload_input, principal, data)
    return InputImagePublic(**result)


