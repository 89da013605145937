"""Per-user ComfyUI settings and user data files, in the database."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from sdfleet.domain.workflows import UserFile
from sdfleet.store.database import Database
from sdfleet.store.tables import ComfySettingsRow, ComfyUserFileRow


class SqlComfyUserData:
    """Settings (one JSON object per user) and user data files keyed by (user, path)."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def settings(self, user_id: str) -> dict:
        """The user's stored settings ({} when none)."""
        with self._db.session() as s:
            row = s.get(ComfySettingsRow, user_id)
            return dict(row.values) if row else {}

    def update_settings(self, user_id: str, values: dict, *, now: datetime) -> dict:
        """Merge `values` into the user's settings and return the result."""
        with self._db.session(write_lock=True) as s:
            row = s.get(ComfySettingsRow, user_id)
            if row is None:
                row = ComfySettingsRow(user_id=user_id, values={}, updated_at=now)
                s.add(row)
            row.values = {**row.values, **values}
            row.updated_at = now
            return dict(row.values)

    def list_files(self, user_id: str, *, prefix: str) -> list[UserFile]:
        """Files whose path starts with `prefix`, without contents."""
        with self._db.session() as s:
            stmt = (select(ComfyUserFileRow.path, ComfyUserFileRow.size, ComfyUserFileRow.modified_at)
                    .where(ComfyUserFileRow.user_id == user_id).order_by(ComfyUserFileRow.path))
            rows = s.execute(stmt).all()
        return [UserFile(path=p, size=size, modified_at=m) for p, size, m in rows if p.startswith(prefix)]

    def get_file(self, user_id: str, path: str) -> UserFile | None:
        with self._db.session() as s:
            row = s.get(ComfyUserFileRow, (user_id, path))
            if row is None:
                return None
            return UserFile(path=row.path, size=row.size, modified_at=row.modified_at, content=row.content)

    def put_file(self, user_id: str, path: str, content: bytes, *, now: datetime, overwrite: bool) -> UserFile | None:
        """Write a file; None when it exists and `overwrite` is false."""
        with self._db.session(write_lock=True) as s:
            row = s.get(ComfyUserFileRow, (user_id, path))
            if row is not None and not overwrite:
                return None
            if row is None:
                row = ComfyUserFileRow(user_id=user_id, path=path, content=content, size=len(content), modified_at=now)
                s.add(row)
            else:
                row.content, row.size, row.modified_at = content, len(content), now
            return UserFile(path=path, size=len(content), modified_at=now)

    def delete_file(self, user_id: str, path: str) -> bool:
        with self._db.session(write_lock=True) as s:
            result = s.execute(delete(ComfyUserFileRow).where(ComfyUserFileRow.user_id == user_id,
                                                              ComfyUserFileRow.path == path))
            return result.rowcount > 0

    def move_file(self, user_id: str, source: str, dest: str, *, now: datetime, overwrite: bool) -> UserFile | None:
        """Rename a file; None when the source is missing or the destination exists without `overwrite`."""
        with self._db.session(write_lock=True) as s:
            row = s.get(ComfyUserFileRow, (user_id, source))
            if row is None:
                return None
            target = s.get(ComfyUserFileRow, (user_id, dest))
            if target is not None:
                if not overwrite:
                    return None
                s.delete(target)
                s.flush()
            content = row.content
            s.delete(row)
            s.flush()
            s.add(ComfyUserFileRow(user_id=user_id, path=dest, content=content, size=len(content), modified_at=now))
            return UserFile(path=dest, size=len(content), modified_at=now)
