"""Per-user option values (A1111's `/options`, kept per user instead of globally)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from sdfleet.store.database import Database
from sdfleet.store.tables import UserOptionRow


class SqlUserOptions:
    """The `user_options` table: one JSON value per (user, key)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def get_all(self, user_id: str) -> dict[str, Any]:
        """Every option the user has set."""
        with self._db.session() as s:
            rows = s.scalars(select(UserOptionRow).where(UserOptionRow.user_id == user_id))
            return {row.key: row.value for row in rows}

    def get(self, user_id: str, key: str) -> Any | None:
        """One option, or None when the user never set it."""
        with self._db.session() as s:
            row = s.get(UserOptionRow, (user_id, key))
            return None if row is None else row.value

    def put_many(self, user_id: str, values: Mapping[str, Any], *, now: datetime) -> None:
        """Set options in one transaction; a None value removes the key."""
        with self._db.session(write_lock=True) as s:
            for key, value in values.items():
                row = s.get(UserOptionRow, (user_id, key))
                if value is None:
                    if row is not None:
                        s.delete(row)
                elif row is None:
                    s.add(UserOptionRow(user_id=user_id, key=key, value=value, updated_at=now))
                else:
                    row.value = value
                    row.updated_at = now

    def delete_all(self, user_id: str) -> None:
        """Forget every option of a user."""
        with self._db.session(write_lock=True) as s:
            s.execute(delete(UserOptionRow).where(UserOptionRow.user_id == user_id))
