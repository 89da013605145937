"""A user's web UI preferences (theme, the generate form's last values), kept on the server with the
user's options so they follow the user from one machine to the next."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import InvalidInput
from sdfleet.store.user_options import SqlUserOptions

THEMES = ("system", "light", "dark")
#: option keys in `user_options`; A1111's own options never start with "web."
THEME_KEY = "web.theme"
GENERATE_KEY = "web.generate"
MAX_GENERATE_BYTES = 16 * 1024
MAX_TEXT = 4000


class PreferencesService:
    """Read and change the caller's own preferences (nobody else's)."""

    def __init__(self, *, store: SqlUserOptions, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def get(self, principal: Principal) -> dict[str, Any]:
        """`theme` (system, light or dark) and `generate` (the form's remembered values)."""
        stored = self._store.get_all(principal.user_id)
        theme = stored.get(THEME_KEY)
        generate = stored.get(GENERATE_KEY)
        return {"theme": theme if theme in THEMES else "system",
                "generate": generate if isinstance(generate, dict) else {}}

    def theme(self, principal: Principal) -> str:
        """The theme pages are rendered with."""
        value = self._store.get(principal.user_id, THEME_KEY)
        return value if value in THEMES else "system"

    def update(self, principal: Principal, values: Mapping[str, Any]) -> dict[str, Any]:
        """Change the given preferences; `generate` replaces the remembered form values as a whole."""
        changes: dict[str, Any] = {}
        if "theme" in values:
            theme = values["theme"]
            if theme not in THEMES:
                raise InvalidInput(f"theme must be one of {', '.join(THEMES)}, got {theme!r}", field="theme")
            changes[THEME_KEY] = None if theme == "system" else theme
        if "generate" in values:
            changes[GENERATE_KEY] = check_form_values(values["generate"], field="generate")
        if changes:
            self._store.put_many(principal.user_id, changes, now=self._clock())
        return self.get(principal)


def check_form_values(value: Any, *, field: str, allow_none: bool = True) -> dict[str, Any] | None:
    """A flat object of form field names and scalar values, bounded in size (remembered form, presets)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be an object of form field names and values", field=field)
    for key, item in value.items():
        if not (isinstance(key, str) and 0 < len(key) <= 64):
            raise InvalidInput(f"{field}: field names must be 1-64 characters", field=field)
        if isinstance(item, str):
            if len(item) > MAX_TEXT:
                raise InvalidInput(f"{field}.{key} must be at most {MAX_TEXT} characters", field=f"{field}.{key}")
        elif item is not None and not isinstance(item, (bool, int, float)):
            raise InvalidInput(f"{field}.{key} must be a string, number, boolean or null", field=f"{field}.{key}")
    if len(json.dumps(value)) > MAX_GENERATE_BYTES:
        raise InvalidInput(f"{field} must be at most {MAX_GENERATE_BYTES} bytes of JSON", field=field)
    return value
