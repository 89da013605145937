"""Model notes: trigger words, notes and a preview image per model (set from a generated image), so the
model picker shows what a model is for. Anyone who may see a model reads them; `checkpoint:all` edits them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.checkpoints import Checkpoint
from sdfleet.domain.errors import InvalidInput, NotFound
from sdfleet.domain.pagination import MAX_LIMIT, PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.jobs.records import Job
from sdfleet.services.authorization import authorize
from sdfleet.services.checkpoints import CheckpointQuery
from sdfleet.services.job_media import make_thumbnail
from sdfleet.store.model_notes import ModelNote, SqlModelNotes

MAX_TRIGGER_WORDS = 1000
MAX_NOTES = 10_000
PREVIEW_SIZE = 256


@dataclass(frozen=True)
class ModelNotes:
    """A model's notes as a reader sees them; `preview_version` changes when the preview does."""

    checkpoint_id: str
    trigger_words: str
    notes: str
    preview_version: str | None


def _public(note: ModelNote) -> ModelNotes:
    version = note.preview_key.rsplit("/", 1)[-1].removesuffix(".webp") if note.preview_key else None
    return ModelNotes(checkpoint_id=note.checkpoint_id, trigger_words=note.trigger_words, notes=note.notes,
                      preview_version=version)


class ModelNotesService:
    """Read and edit model notes and previews."""

    def __init__(self, *, store: SqlModelNotes, checkpoints: Any, objects: Any,
                 find_job: Callable[[Principal, str], Job], clock: Callable[[], datetime]) -> None:
        self._store = store
        self._checkpoints = checkpoints
        self._objects = objects
        self._find_job = find_job
        self._clock = clock

    def _visible(self, principal: Principal) -> list[Checkpoint]:
        found: list[Checkpoint] = []
        page = PageRequest(limit=MAX_LIMIT)
        while True:
            result = self._checkpoints.list(principal, CheckpointQuery(), page)
            found.extend(result.items)
            if result.next_cursor is None:
                return found
            page = PageRequest.parse(cursor=result.next_cursor, limit=MAX_LIMIT)

    def list(self, principal: Principal) -> list[ModelNotes]:
        """The notes of every model the caller may see (models without notes are left out)."""
        ids = [c.id for c in self._visible(principal)]
        return [_public(n) for n in self._store.for_checkpoints(ids)]

    def get(self, principal: Principal, checkpoint_id: str) -> ModelNotes:
        self._checkpoints.get(principal, checkpoint_id)
        note = self._store.get(checkpoint_id)
        return _public(note) if note else ModelNotes(checkpoint_id, "", "", None)

    def update(self, principal: Principal, checkpoint_id: str, *, trigger_words: Any = None,
               notes: Any = None) -> ModelNotes:
        """Change trigger words and/or notes (`checkpoint:all`)."""
        authorize(principal, Permission.CHECKPOINT_ALL)
        self._checkpoints.get(principal, checkpoint_id)
        changes: dict[str, str] = {}
        for field, value, limit in (("trigger_words", trigger_words, MAX_TRIGGER_WORDS), ("notes", notes, MAX_NOTES)):
            if value is None:
                continue
            if not isinstance(value, str) or len(value) > limit or "\x00" in value:
                raise InvalidInput(f"{field} must be text of at most {limit} characters", field=field)
            changes[field] = value.strip()
        return _public(self._store.put(checkpoint_id, now=self._clock(), updated_by=principal.user_id, **changes))

    def set_preview(self, principal: Principal, checkpoint_id: str, *, job_id: str, index: int) -> ModelNotes:
        """Make output `index` of a job the caller may see the model's preview (`checkpoint:all`)."""
        authorize(principal, Permission.CHECKPOINT_ALL)
        self._checkpoints.get(principal, checkpoint_id)
        job = self._find_job(principal, job_id)
        output = next((o for o in job.outputs if o.index == index), None)
        if output is None:
            raise NotFound(f"inference {job_id!r} has no output {index}", details={"field": "index"})
        key = f"previews/checkpoints/{checkpoint_id}/{job.id}-{index}.webp"
        self._objects.put(key, make_thumbnail(self._objects.read_bytes(output.key), size=PREVIEW_SIZE),
                          content_type="image/webp")
        old = self._store.get(checkpoint_id)
        note = self._store.put(checkpoint_id, now=self._clock(), updated_by=principal.user_id, preview_key=key)
        if old and old.preview_key and old.preview_key != key:
            self._objects.delete(old.preview_key)
        return _public(note)

    def preview(self, principal: Principal, checkpoint_id: str) -> bytes:
        """The model's preview image (WebP)."""
        self._checkpoints.get(principal, checkpoint_id)
        note = self._store.get(checkpoint_id)
        if note is None or not note.preview_key:
            raise NotFound(f"model {checkpoint_id!r} has no preview")
        try:
            return self._objects.read_bytes(note.preview_key)
        except KeyError:
            raise NotFound(f"the preview of model {checkpoint_id!r} is no longer stored") from None
