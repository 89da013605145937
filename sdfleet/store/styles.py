"""Prompt styles (a user's own and the team's) and generation presets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from sdfleet.domain.errors import Conflict
from sdfleet.domain.ids import new_id
from sdfleet.domain.styles import GenerationPreset, PromptStyle
from sdfleet.store.database import Database
from sdfleet.store.tables import GenerationPresetRow, PromptStyleRow

TEAM_KEY = "team"


def _style(row: PromptStyleRow) -> PromptStyle:
    return PromptStyle(id=row.id, name=row.name, prompt=row.prompt, negative_prompt=row.negative_prompt,
                       team=row.owner_key == TEAM_KEY, owner_id=row.user_id, updated_at=row.updated_at)


def _taken(kind: str, name: str) -> Conflict:
    return Conflict(f"a {kind} named {name!r} already exists", details={"field": "name"})


class SqlStyleStore:
    """The `prompt_styles` table: `owner_key` is the user's id, or "team" for the team's styles."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def visible_to(self, user_id: str) -> list[PromptStyle]:
        """The user's own styles and the team's, by name (the team's first where both have one)."""
        with self._db.session(write_lock=False) as s:
            rows = s.scalars(select(PromptStyleRow).where(PromptStyleRow.owner_key.in_((user_id, TEAM_KEY))))
            return sorted((_style(r) for r in rows), key=lambda st: (st.name.lower(), st.name, not st.team))

    def get(self, style_id: str) -> PromptStyle | None:
        with self._db.session(write_lock=False) as s:
            row = s.get(PromptStyleRow, style_id)
            return None if row is None else _style(row)

    def count(self, *, user_id: str | None) -> int:
        """How many styles an owner has (None: the team)."""
        with self._db.session(write_lock=False) as s:
            return s.scalar(select(func.count()).select_from(PromptStyleRow)
                            .where(PromptStyleRow.owner_key == (user_id or TEAM_KEY))) or 0

    def add(self, *, user_id: str | None, name: str, prompt: str, negative_prompt: str, created_by: str,
            now: datetime) -> PromptStyle:
        """A new style of a user (or of the team when `user_id` is None); 409 when the name is taken."""
        row = PromptStyleRow(id=new_id(), owner_key=user_id or TEAM_KEY, user_id=user_id, name=name, prompt=prompt,
                             negative_prompt=negative_prompt, created_by=created_by, created_at=now, updated_at=now)
        try:
            with self._db.session() as s:
                s.add(row)
                s.flush()
                return _style(row)
        except IntegrityError:
            raise _taken("style", name) from None

    def update(self, style_id: str, *, now: datetime, **changes: Any) -> PromptStyle:
        """Change name, prompt or negative_prompt (the given ones)."""
        try:
            with self._db.session() as s:
                row = s.get(PromptStyleRow, style_id)
                for key, value in changes.items():
                    setattr(row, key, value)
                row.updated_at = now
                s.flush()
                return _style(row)
        except IntegrityError:
            raise _taken("style", changes.get("name", "")) from None

    def delete(self, style_id: str) -> None:
        with self._db.session() as s:
            row = s.get(PromptStyleRow, style_id)
            if row is not None:
                s.delete(row)


class SqlPresetStore:
    """The `generation_presets` table: one user's named form values, unique by name."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def list(self, user_id: str) -> list[GenerationPreset]:
        with self._db.session(write_lock=False) as s:
            rows = s.scalars(select(GenerationPresetRow).where(GenerationPresetRow.user_id == user_id)
                             .order_by(GenerationPresetRow.name))
            return [GenerationPreset(id=r.id, name=r.name, values=r.values, updated_at=r.updated_at) for r in rows]

    def count(self, user_id: str) -> int:
        with self._db.session(write_lock=False) as s:
            return s.scalar(select(func.count()).select_from(GenerationPresetRow)
                            .where(GenerationPresetRow.user_id == user_id)) or 0

    def save(self, user_id: str, *, name: str, values: dict[str, Any], now: datetime) -> GenerationPreset:
        """Create the preset, or replace the values of the user's preset of that name."""
        with self._db.session() as s:
            row = s.scalar(select(GenerationPresetRow).where(GenerationPresetRow.user_id == user_id,
                                                             GenerationPresetRow.name == name))
            if row is None:
                row = GenerationPresetRow(id=new_id(), user_id=user_id, name=name, values=values, created_at=now,
                                          updated_at=now)
                s.add(row)
            else:
                row.values, row.updated_at = values, now
            s.flush()
            return GenerationPreset(id=row.id, name=row.name, values=row.values, updated_at=row.updated_at)

    def delete(self, user_id: str, preset_id: str) -> bool:
        """Delete one of the user's presets; False when they have none with that id."""
        with self._db.session() as s:
            row = s.scalar(select(GenerationPresetRow).where(GenerationPresetRow.id == preset_id,
                                                             GenerationPresetRow.user_id == user_id))
            if row is None:
                return False
            s.delete(row)
            return True
