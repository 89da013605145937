"""/api/v1/model-notes and /api/v1/checkpoints/{id}/notes|preview: trigger words, notes, preview images."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field, StrictInt, StrictStr

from sdfleet.api.deps import CurrentPrincipal, ServicesDep
from sdfleet.api.routes.job_media import IMMUTABLE
from sdfleet.api.schemas.base import Strict
from sdfleet.services.model_notes import ModelNotes

router = APIRouter(tags=["checkpoints"])


class ModelNotesPublic(BaseModel):
    checkpoint_id: str
    trigger_words: str
    notes: str
    preview_url: str | None

    @classmethod
    def of(cls, notes: ModelNotes) -> ModelNotesPublic:
        url = (f"/api/v1/checkpoints/{notes.checkpoint_id}/preview?v={notes.preview_version}"
               if notes.preview_version else None)
        return cls(checkpoint_id=notes.checkpoint_id, trigger_words=notes.trigger_words, notes=notes.notes,
                   preview_url=url)


class ModelNotesUpdate(Strict):
    trigger_words: StrictStr | None = Field(default=None, max_length=1000)
    notes: StrictStr | None = Field(default=None, max_length=10_000)


class PreviewFromOutput(Strict):
    job_id: StrictStr = Field(max_length=32)
    index: StrictInt = Field(ge=0, le=1000)


@router.get("/model-notes", response_model=list[ModelNotesPublic])
def list_model_notes(principal: CurrentPrincipal, services: ServicesDep) -> list[ModelNotesPublic]:
    """Trigger words, notes and preview of every model you may see that has any."""
    return [ModelNotesPublic.of(n) for n in services.model_notes.list(principal)]


@router.get("/checkpoints/{checkpoint_id}/notes", response_model=ModelNotesPublic)
def get_model_notes(checkpoint_id: str, principal: CurrentPrincipal, services: ServicesDep) -> ModelNotesPublic:
    """A model's trigger words, notes and preview."""
    return ModelNotesPublic.of(services.model_notes.get(principal, checkpoint_id))


@router.put("/checkpoints/{checkpoint_id}/notes", response_model=ModelNotesPublic)
def update_model_notes(checkpoint_id: str, body: ModelNotesUpdate, principal: CurrentPrincipal,
                       services: ServicesDep) -> ModelNotesPublic:
    """Set a model's trigger words and/or notes (`checkpoint:all`)."""
    return ModelNotesPublic.of(services.model_notes.update(principal, checkpoint_id, trigger_words=body.trigger_words,
                                                           notes=body.notes))


@router.put("/checkpoints/{checkpoint_id}/preview", response_model=ModelNotesPublic)
def set_model_preview(checkpoint_id: str, body: PreviewFromOutput, principal: CurrentPrincipal,
                      services: ServicesDep) -> ModelNotesPublic:
    """Make a generated image (a job you may see, output `index`) the model's preview (`checkpoint:all`)."""
    return ModelNotesPublic.of(services.model_notes.set_preview(principal, checkpoint_id, job_id=body.job_id,
                                                                index=body.index))


@router.get("/checkpoints/{checkpoint_id}/preview", responses={200: {"content": {"image/webp": {}}}})
def get_model_preview(checkpoint_id: str, principal: CurrentPrincipal, services: ServicesDep) -> Response:
    """The model's preview image (its URL changes when the preview does)."""
    return Response(services.model_notes.preview(principal, checkpoint_id), media_type="image/webp",
                    headers={"Cache-Control": IMMUTABLE})
