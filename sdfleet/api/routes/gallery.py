"""/api/v1/gallery (search, stars, full images, bulk zip and delete), /api/v1/boards, /api/v1/me/prompts,
/api/v1/queue (places in line; everyone's jobs for queue:all)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, StrictStr

from sdfleet.api.deps import CurrentPrincipal, PageDep, ServicesDep
from sdfleet.api.routes.job_media import IMMUTABLE
from sdfleet.api.schemas.base import ListPage, Strict
from sdfleet.api.schemas.inference import InferencePublic
from sdfleet.domain.accounts import Principal
from sdfleet.domain.gallery import Board, GalleryItem, GalleryQuery, QueueEntry
from sdfleet.domain.permissions import Permission
from sdfleet.jobs.records import JobStatus

router = APIRouter(tags=["gallery"])
JobIds = Annotated[list[StrictStr], Field(min_length=1, max_length=500)]


class GalleryOutput(BaseModel):
    index: int
    url: str
    thumbnail_url: str
    width: int
    height: int
    size: int


class GalleryItemPublic(BaseModel):
    job: InferencePublic
    owner: str
    starred: bool
    board_ids: list[str]
    outputs: list[GalleryOutput]

    @classmethod
    def of(cls, item: GalleryItem) -> GalleryItemPublic:
        job = item.job
        return cls(job=InferencePublic.of(job), owner=item.owner, starred=item.starred, board_ids=list(item.board_ids),
                   outputs=[GalleryOutput(index=o.index, url=f"/api/v1/gallery/{job.id}/outputs/{o.index}",
                                          thumbnail_url=f"/api/v1/inferences/{job.id}/outputs/{o.index}/thumbnail",
                                          width=o.width, height=o.height, size=o.size) for o in job.outputs])


class BoardPublic(BaseModel):
    id: str
    name: str
    item_count: int
    created_at: datetime

    @classmethod
    def of(cls, board: Board) -> BoardPublic:
        return cls(id=board.id, name=board.name, item_count=board.item_count, created_at=board.created_at)


class BoardName(Strict):
    name: StrictStr = Field(max_length=100)


class JobIdList(Strict):
    job_ids: JobIds


class PromptPublic(BaseModel):
    prompt: str
    negative_prompt: str


class QueueEntryPublic(BaseModel):
    id: str
    status: str
    owner: str
    task: str | None
    prompt: str | None
    model: str | None
    endpoint: str | None
    position: int | None
    progress: dict[str, Any]
    queued_at: datetime
    started_at: datetime | None
    cancel_requested: bool
    can_cancel: bool

    @classmethod
    def of(cls, entry: QueueEntry, principal: Principal) -> QueueEntryPublic:
        job, public = entry.job, InferencePublic.of(entry.job)
        return cls(id=job.id, status=job.status.value, owner=entry.owner, task=public.task, prompt=public.prompt,
                   model=public.model, endpoint=job.endpoint, position=entry.position,
                   progress=public.progress.model_dump(), queued_at=job.queued_at, started_at=job.started_at,
                   cancel_requested=job.cancel_requested,
                   can_cancel=job.user_id == principal.user_id or principal.can(Permission.QUEUE_ALL))


class QueuePublic(BaseModel):
    items: list[QueueEntryPublic]
    queued: int = Field(description="Queued jobs of everyone.")
    running: int = Field(description="Running jobs of everyone.")
    everyone: bool


@router.get("/gallery", response_model=ListPage[GalleryItemPublic])
def search_gallery(
    principal: CurrentPrincipal, services: ServicesDep, page: PageDep,
    q: Annotated[str | None, Query(max_length=500, description="Words the prompt contains.")] = None,
    model: Annotated[str | None, Query(max_length=255)] = None,
    status: JobStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    starred: bool = False,
    board: Annotated[str | None, Query(max_length=32)] = None,
    scope: Literal["mine", "team"] = "mine",
    owner: Annotated[str | None, Query(max_length=64, description="A username (team scope).")] = None,
) -> ListPage[GalleryItemPublic]:
    """Your images (or the team's: `scope=team`, `gallery:all`) by prompt words, model, status, date, star, board."""
    query = GalleryQuery(team=scope == "team", owner=owner or None, text=q or None, model=model or None,
                         status=status, since=since, until=until, starred=starred, board_id=board or None)
    result = services.gallery.search(principal, query, page)
    return ListPage(items=[GalleryItemPublic.of(i) for i in result.items], next_cursor=result.next_cursor)


@router.get("/gallery/models", response_model=list[str])
def gallery_models(principal: CurrentPrincipal, services: ServicesDep,
                   scope: Literal["mine", "team"] = "mine") -> list[str]:
    """The models the searchable jobs used."""
    return services.gallery.models(principal, team=scope == "team")


@router.post("/gallery/download", responses={200: {"content": {"application/zip": {}}}})
async def download_zip(body: JobIdList, principal: CurrentPrincipal, services: ServicesDep) -> StreamingResponse:
    """Every output of these jobs as one zip, streamed (the PNGs keep their parameters)."""
    chunks = await run_in_threadpool(services.gallery.zip_outputs, principal, body.job_ids)
    return StreamingResponse(chunks, media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="sdfleet-images.zip"'})


@router.post("/gallery/delete")
def delete_many(body: JobIdList, principal: CurrentPrincipal, services: ServicesDep) -> dict[str, int]:
    """Delete these jobs of yours and their images (nothing is deleted when one is not yours)."""
    return {"deleted": services.gallery.delete_many(principal, body.job_ids)}


@router.get("/gallery/{job_id}", response_model=GalleryItemPublic)
def gallery_item(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> GalleryItemPublic:
    """One job of yours (or of the team, with `gallery:all`)."""
    return GalleryItemPublic.of(services.gallery.item(principal, job_id))


@router.get("/gallery/{job_id}/outputs/{index}", responses={200: {"content": {"image/png": {}}}})
def gallery_output(job_id: str, index: int, principal: CurrentPrincipal, services: ServicesDep) -> StreamingResponse:
    """An output PNG of a job you may browse (kept by the browser: outputs never change)."""
    output, chunks = services.gallery.open_output(principal, job_id, index)
    return StreamingResponse(chunks, media_type=output.content_type, headers={
        "Content-Length": str(output.size), "Cache-Control": IMMUTABLE,
        "Content-Disposition": f'inline; filename="{job_id}-{index}.png"'})


@router.put("/gallery/{job_id}/star", status_code=204)
def star(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Star a job (your stars are yours)."""
    services.gallery.star(principal, job_id, on=True)
    return Response(status_code=204)


@router.delete("/gallery/{job_id}/star", status_code=204)
def unstar(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Remove your star."""
    services.gallery.star(principal, job_id, on=False)
    return Response(status_code=204)


@router.get("/boards", response_model=ListPage[BoardPublic])
def list_boards(principal: CurrentPrincipal, services: ServicesDep) -> ListPage[BoardPublic]:
    """Your boards, by name, with how many jobs each holds."""
    return ListPage(items=[BoardPublic.of(b) for b in services.gallery.boards(principal)], next_cursor=None)


@router.post("/boards", response_model=BoardPublic, status_code=201)
def create_board(body: BoardName, principal: CurrentPrincipal, services: ServicesDep) -> BoardPublic:
    """A new board of yours."""
    return BoardPublic.of(services.gallery.create_board(principal, body.name))


@router.patch("/boards/{board_id}", response_model=BoardPublic)
def rename_board(board_id: str, body: BoardName, principal: CurrentPrincipal, services: ServicesDep) -> BoardPublic:
    """Rename one of your boards."""
    return BoardPublic.of(services.gallery.rename_board(principal, board_id, body.name))


@router.delete("/boards/{board_id}", status_code=204)
def delete_board(board_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """Delete one of your boards (its jobs stay in the gallery)."""
    services.gallery.delete_board(principal, board_id)
    return Response(status_code=204)


@router.post("/boards/{board_id}/items", response_model=BoardPublic)
def add_to_board(board_id: str, body: JobIdList, principal: CurrentPrincipal, services: ServicesDep) -> BoardPublic:
    """Put jobs you may browse on one of your boards."""
    return BoardPublic.of(services.gallery.add_to_board(principal, board_id, body.job_ids))


@router.delete("/boards/{board_id}/items/{job_id}", response_model=BoardPublic)
def remove_from_board(board_id: str, job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> BoardPublic:
    """Take a job off one of your boards."""
    return BoardPublic.of(services.gallery.remove_from_board(principal, board_id, [job_id]))


@router.get("/me/prompts", response_model=list[PromptPublic])
def prompt_history(principal: CurrentPrincipal, services: ServicesDep,
                   q: Annotated[str | None, Query(max_length=500)] = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[PromptPublic]:
    """Your prompt history: distinct prompt and negative prompt pairs, most recently used first."""
    return [PromptPublic(**p) for p in services.gallery.recent_prompts(principal, text=q, limit=limit)]


@router.get("/queue", response_model=QueuePublic)
def queue(principal: CurrentPrincipal, services: ServicesDep,
          scope: Literal["mine", "everyone"] = "mine") -> QueuePublic:
    """Queued and running jobs in claim order with their places in line: yours, or everyone's (`queue:all`)."""
    view = services.queue_view.view(principal, everyone=scope == "everyone")
    return QueuePublic(items=[QueueEntryPublic.of(e, principal) for e in view.entries], queued=view.queued,
                       running=view.running, everyone=view.everyone)


@router.post("/queue/{job_id}/cancel", response_model=InferencePublic)
def cancel_from_queue(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> InferencePublic:
    """Cancel a job of yours, or anyone's with `queue:all`."""
    return InferencePublic.of(services.queue_view.cancel(principal, job_id))
