"""Per-user ComfyUI settings and user data files (saved workflows survive restarts)."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from sdfleet.domain.workflows import UserFile
from sdfleet.services.comfy_apps import APP_DIR, ComfyApps, is_app_path
from sdfleet.store.comfy import SqlComfyUserData

# What a fresh user gets: no tutorial modal, no update nags (the frontend otherwise blocks Run on first open).
DEFAULT_SETTINGS: dict[str, Any] = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Notification.ShowVersionUpdates": False,
}
# Files the frontend reads on every open (index.html links `api/userdata/user.css`; the node templates
# dialog loads `comfy.templates.json`): a fresh user gets upstream's empty meaning instead of a 404,
# which the browser would report as a console error.
DEFAULT_FILES: dict[str, bytes] = {"user.css": b"", "comfy.templates.json": b"[]",
                                   "workflows/.index.json": b'{"favorites": []}'}  # the sidebars' bookmarks
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_SETTINGS_BYTES = 1024 * 1024


def clean_path(path: Any, *, field: str = "file") -> str:
    """A relative user data path without `..`, absolute parts or odd characters."""
    if not isinstance(path, str) or not 0 < len(path) <= 500:
        raise InvalidInput(f"{field} must be a path of 1-500 characters", field=field)
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal.startswith(("/", "..")) or normal == "." or any(c < " " or c == "\x7f" for c in normal):
        raise InvalidInput(f"{field} must be a relative path inside your user data, got {path!r}", field=field)
    return normal


class ComfyUserDataService:
    """GET/POST /settings and /userdata for the caller only."""

    def __init__(self, *, store: SqlComfyUserData, clock: Callable[[], datetime], apps: ComfyApps | None = None) -> None:
        self._store = store
        self._clock = clock
        self._apps = apps

    @staticmethod
    def _writable(path: str, *, field: str = "file") -> str:
        normal = clean_path(path, field=field)
        if is_app_path(normal):
            raise Forbidden(f"{APP_DIR}/ holds the published apps you may run and is read-only; "
                            "save a copy elsewhere (Save As)")
        return normal

    def settings(self, principal: Principal) -> dict[str, Any]:
        """Every setting of the caller, over sdfleet's defaults."""
        return {**DEFAULT_SETTINGS, **self._store.settings(principal.user_id)}

    def setting(self, principal: Principal, setting_id: str) -> Any:
        return self.settings(principal).get(setting_id)

    def update_settings(self, principal: Principal, values: Any) -> None:
        """Merge settings; the body must be an object."""
        if not isinstance(values, Mapping):
            raise InvalidInput("settings must be a JSON object of setting ids to values", field="body")
        if len(json.dumps(values)) > MAX_SETTINGS_BYTES:
            raise InvalidInput("settings are larger than 1 MiB", field="body")
        self._store.update_settings(principal.user_id, dict(values), now=self._clock())

    def update_setting(self, principal: Principal, setting_id: str, value: Any) -> None:
        if not 0 < len(setting_id) <= 200:
            raise InvalidInput("setting id must be 1-200 characters", field="id")
        self.update_settings(principal, {setting_id: value})

    def list_files(self, principal: Principal, *, directory: str, recurse: bool) -> list[UserFile]:
        """Files under `directory` (one level unless `recurse`), paths relative to it."""
        base = clean_path(directory, field="dir")
        prefix = base + "/"
        found = []
        stored = [item for item in self._store.list_files(principal.user_id, prefix=prefix)
                  if not is_app_path(item.path)]  # written before the folder was the apps'
        listed = self._apps is not None and (base == APP_DIR or APP_DIR.startswith(prefix))
        apps = self._apps.files(principal) if listed else []
        for item in [*stored, *apps]:
            relative = item.path[len(prefix):]
            if not recurse and "/" in relative:
                continue
            found.append(UserFile(path=relative, size=item.size, modified_at=item.modified_at))
        return found

    def read(self, principal: Principal, path: str) -> UserFile:
        """The caller's file, or its default for the few files every user has; 404 otherwise."""
        normal = clean_path(path)
        if self._apps is not None and is_app_path(normal):
            return self._apps.read(principal, normal)
        found = self._store.get_file(principal.user_id, normal)
        if found is None and normal in DEFAULT_FILES:
            content = DEFAULT_FILES[normal]
            return UserFile(path=normal, size=len(content), modified_at=datetime.fromtimestamp(0, UTC),
                            content=content)
        if found is None:
            raise NotFound(f"file {path!r} not found")
        return found

    def write(self, principal: Principal, path: str, content: bytes, *, overwrite: bool) -> UserFile:
        """Create or replace a file; 409 when it exists and `overwrite` is false."""
        if len(content) > MAX_FILE_BYTES:
            raise InvalidInput("user data files are limited to 16 MiB", field="body")
        written = self._store.put_file(principal.user_id, self._writable(path), content, now=self._clock(),
                                       overwrite=overwrite)
        if written is None:
            raise Conflict(f"file {path!r} already exists")
        return written

    def delete(self, principal: Principal, path: str) -> None:
        if not self._store.delete_file(principal.user_id, self._writable(path)):
            raise NotFound(f"file {path!r} not found")

    def move(self, principal: Principal, source: str, dest: str, *, overwrite: bool) -> UserFile:
        """Rename a file; 404 for a missing source, 409 for an existing destination."""
        source, dest = self._writable(source), self._writable(dest, field="dest")
        if self._store.get_file(principal.user_id, source) is None:
            raise NotFound(f"file {source!r} not found")
        moved = self._store.move_file(principal.user_id, source, dest, now=self._clock(), overwrite=overwrite)
        if moved is None:
            raise Conflict(f"file {dest!r} already exists")
        return moved
