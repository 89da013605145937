"""Cursor pagination: opaque cursors carrying the last sort key seen."""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Generic, TypeVar

from sdfleet.domain.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next one (None at the end)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    """Where a page starts (`after`, decoded from the cursor) and how long it is."""

    after: list | None = None
    limit: int = DEFAULT_LIMIT

    @classmethod
    def parse(cls, *, cursor: str | None, limit: int | None) -> PageRequest:
        """Validate `limit` and decode `cursor`, naming the field that is wrong."""
        if limit is None:
            limit = DEFAULT_LIMIT
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}", field="limit")
        return cls(after=decode_cursor(cursor) if cursor else None, limit=limit)


def encode_cursor(key: list) -> str:
    """Encode a sort key as an opaque, URL-safe cursor."""
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list:
    """Decode a cursor made by `encode_cursor`; anything else is an InvalidInput on `cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise InvalidInput("cursor is not a cursor this server issued", field="cursor") from exc
    if not isinstance(value, list) or not all(_sort_key_part(v) for v in value):
        raise InvalidInput("cursor is not a cursor this server issued", field="cursor")
    return value


def _sort_key_part(value: object) -> bool:
    """A value an issued cursor can hold: no NUL (PostgreSQL refuses it in text: a 500, not a 422) and no
    NaN or infinity (JSON's extensions that `json.loads` accepts)."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int)


def page_from_rows(rows: list[T], *, limit: int, key) -> Page[T]:
    """Build a page from `limit + 1` fetched rows; `key(row)` gives the sort key of the cursor."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(items=rows, next_cursor=encode_cursor(key(rows[-1])))
    return Page(items=rows, next_cursor=None)
