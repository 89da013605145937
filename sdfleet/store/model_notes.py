"""What artists need to use a model: trigger words, notes and a preview image's object key."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from sdfleet.store.database import Database
from sdfleet.store.records import record_of
from sdfleet.store.tables import CheckpointNoteRow


@dataclass(frozen=True)
class ModelNote:
    """The notes of one checkpoint."""

    checkpoint_id: str
    trigger_words: str
    notes: str
    preview_key: str | None
    updated_at: datetime


def _note(row: CheckpointNoteRow) -> ModelNote:
    return record_of(ModelNote, row)


class SqlModelNotes:
    """The `checkpoint_notes` table (rows go with their checkpoint)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, checkpoint_id: str) -> ModelNote | None:
        with self._db.session(write_lock=False) as s:
            row = s.get(CheckpointNoteRow, checkpoint_id)
            return None if row is None else _note(row)

    def for_checkpoints(self, checkpoint_ids: Iterable[str]) -> list[ModelNote]:
        ids = list(checkpoint_ids)
        with self._db.session(write_lock=False) as s:
            return [_note(r) for r in s.scalars(select(CheckpointNoteRow).where(CheckpointNoteRow.checkpoint_id.in_(ids)))]

    def put(self, checkpoint_id: str, *, now: datetime, updated_by: str, **changes) -> ModelNote:
        """Set trigger_words, notes and/or preview_key (the given ones)."""
        with self._db.session() as s:
            row = s.get(CheckpointNoteRow, checkpoint_id)
            if row is None:
                row = CheckpointNoteRow(checkpoint_id=checkpoint_id, trigger_words="", notes="", preview_key=None,
                                        updated_by=updated_by, updated_at=now)
                s.add(row)
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_by, row.updated_at = updated_by, now
            s.flush()
            return _note(row)
