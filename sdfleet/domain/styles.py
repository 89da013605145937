"""Prompt styles (A1111's named prompt fragments) and generation presets (named form values)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: the `{prompt}` placeholder: a style containing it wraps the prompt instead of being appended to it
PLACEHOLDER = "{prompt}"


@dataclass(frozen=True)
class PromptStyle:
    """A style: a user's own (`team` False, `owner_id` set) or the team's, managed with `style:all`."""

    id: str
    name: str
    prompt: str
    negative_prompt: str
    team: bool
    owner_id: str | None
    updated_at: datetime


@dataclass(frozen=True)
class GenerationPreset:
    """A user's named set of generate-form values."""

    id: str
    name: str
    values: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


def merge_prompt(style_text: str, prompt: str) -> str:
    """A1111's rule: a style with `{prompt}` takes the prompt in its place; otherwise it is appended after ", "."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_text.strip()) if part)


def apply_styles(prompt: str, negative_prompt: str, styles: Iterable[PromptStyle]) -> tuple[str, str]:
    """The prompt and negative prompt after applying `styles` in order, as A1111 applies `styles`."""
    for style in styles:
        prompt = merge_prompt(style.prompt, prompt)
        negative_prompt = merge_prompt(style.negative_prompt, negative_prompt)
    return prompt, negative_prompt
