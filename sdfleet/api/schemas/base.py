"""Shared bases: strict request models and list pages."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

T = TypeVar("T")


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, strings are not coerced from numbers."""

    model_config = ConfigDict(extra="forbid", strict=False, str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unencodable_strings(cls, data):
        _check_strings(data, path="")
        return data


def _check_strings(value, *, path: str) -> None:
    """NUL and lone surrogates cannot be stored (PostgreSQL text, UTF-8): refuse them up front."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path or 'value'} must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{path or 'value'} must be valid Unicode (no lone surrogates)") from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, path=path or "key")
            _check_strings(item, path=f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_strings(item, path=f"{path}[{i}]")


class ListPage(BaseModel, Generic[T]):
    """A page of a list."""

    items: list[T]
    next_cursor: str | None
