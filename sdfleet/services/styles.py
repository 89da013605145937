"""Prompt styles and generation presets: a user's own, plus the team's styles that `style:all` manages.

Styles are A1111's (`/sdapi/v1/prompt-styles`: `{name, prompt, negative_prompt}`); `resolve` and
`apply_styles` let an A1111 payload's `styles` be applied by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sdfleet.domain.accounts import Principal
from sdfleet.domain.errors import Forbidden, InvalidInput, NotFound, QuotaExceeded
from sdfleet.domain.ids import is_valid_id
from sdfleet.domain.permissions import Permission
from sdfleet.domain.styles import GenerationPreset, PromptStyle, apply_styles
from sdfleet.services.preferences import check_form_values
from sdfleet.store.styles import SqlPresetStore, SqlStyleStore

MAX_NAME = 100
MAX_PROMPT = 10_000
MAX_STYLES = 500  #: per user, and for the team
MAX_PRESETS = 200  #: per user

__all__ = ["PresetService", "StyleService", "apply_styles"]


def check_name(value: Any, *, what: str) -> str:
    """A display name: 1-100 printable characters, no surrounding spaces."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{what} name must not be empty", field="name")
    if len(value) > MAX_NAME or value != value.strip() or not value.isprintable():
        raise InvalidInput(f"{what} name must be 1-{MAX_NAME} printable characters with no surrounding spaces, "
                           f"got {value[:120]!r}", field="name")
    return value


def _check_text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    if len(value) > MAX_PROMPT or "\x00" in value:
        raise InvalidInput(f"{field} must be at most {MAX_PROMPT} characters with no NUL", field=field)
    return value


class StyleService:
    """Who may do what with styles: everyone reads their own and the team's; `style:all` edits the team's."""

    def __init__(self, *, store: SqlStyleStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def list(self, principal: Principal) -> list[PromptStyle]:
        """The caller's own styles and the team's."""
        return self._store.visible_to(principal.user_id)

    def a1111_styles(self, principal: Principal) -> list[dict[str, str]]:
        """`/sdapi/v1/prompt-styles`: one entry per name, the caller's own style shadowing a team style."""
        by_name: dict[str, PromptStyle] = {}
        for style in self.list(principal):
            if style.name not in by_name or not style.team:
                by_name[style.name] = style
        return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt}
                for s in sorted(by_name.values(), key=lambda s: s.name.lower())]

    def resolve(self, principal: Principal, names: Sequence[str], *, field: str = "styles") -> list[PromptStyle]:
        """The styles an A1111 payload's `styles` names, in its order (own before team); unknown names refused."""
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise InvalidInput(f"{field} must be a list of style names", field=field)
        visible: dict[str, PromptStyle] = {}
        for style in self.list(principal):
            if style.name not in visible or not style.team:
                visible[style.name] = style
        unknown = [n for n in names if n not in visible]
        if unknown:
            raise InvalidInput(f"unknown style(s) in {field}: {', '.join(map(repr, unknown[:10]))}; "
                               f"available: {', '.join(sorted(visible)) or 'none'}", field=field,
                               details={"unknown": unknown[:10]})
        return [visible[n] for n in names]

    def create(self, principal: Principal, *, name: Any, prompt: Any = "", negative_prompt: Any = "",
               team: bool = False) -> PromptStyle:
        """A new style of the caller's, or of the team's (`style:all`)."""
        if team and not principal.can(Permission.STYLE_ALL):
            raise Forbidden("team styles need the style:all permission", details={"field": "scope"})
        owner = None if team else principal.user_id
        if self._store.count(user_id=owner) >= MAX_STYLES:
            raise QuotaExceeded(f"{'the team has' if team else 'you have'} {MAX_STYLES} styles; the limit is {MAX_STYLES}")
        return self._store.add(user_id=owner, name=check_name(name, what="style"),
                               prompt=_check_text(prompt, "prompt"),
                               negative_prompt=_check_text(negative_prompt, "negative_prompt"),
                               created_by=principal.user_id, now=self._clock())

    def update(self, principal: Principal, style_id: str, changes: dict[str, Any]) -> PromptStyle:
        """Change a style the caller owns (a team style: `style:all`)."""
        self._editable(principal, style_id)
        checked: dict[str, Any] = {}
        if changes.get("name") is not None:
            checked["name"] = check_name(changes["name"], what="style")
        for key in ("prompt", "negative_prompt"):
            if changes.get(key) is not None:
                checked[key] = _check_text(changes[key], key)
        return self._store.update(style_id, now=self._clock(), **checked)

    def delete(self, principal: Principal, style_id: str) -> None:
        """Delete a style the caller owns (a team style: `style:all`)."""
        self._editable(principal, style_id)
        self._store.delete(style_id)

    def _editable(self, principal: Principal, style_id: str) -> PromptStyle:
        style = self._store.get(style_id) if is_valid_id(style_id) else None
        if style is None or (not style.team and style.owner_id != principal.user_id):
            raise NotFound(f"style {style_id!r} not found")
        if style.team and not principal.can(Permission.STYLE_ALL):
            raise Forbidden("team styles are managed by holders of style:all")
        return style


class PresetService:
    """A user's saved generate-form values, by name."""

    def __init__(self, *, store: SqlPresetStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    def list(self, principal: Principal) -> list[GenerationPreset]:
        return self._store.list(principal.user_id)

    def save(self, principal: Principal, *, name: Any, values: Any) -> GenerationPreset:
        """Save the values under `name`, replacing a preset of the same name."""
        name = check_name(name, what="preset")
        values = check_form_values(values, field="values", allow_none=False)
        existing = {p.name for p in self._store.list(principal.user_id)}
        if name not in existing and len(existing) >= MAX_PRESETS:
            raise QuotaExceeded(f"you have {MAX_PRESETS} presets; the limit is {MAX_PRESETS}")
        return self._store.save(principal.user_id, name=name, values=values, now=self._clock())

    def delete(self, principal: Principal, preset_id: str) -> None:
        if not is_valid_id(preset_id) or not self._store.delete(principal.user_id, preset_id):
            raise NotFound(f"preset {preset_id!r} not found")
