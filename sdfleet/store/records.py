"""Rows → domain records: the fields a record shares with its row by name are copied; the others are given."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, TypeVar

R = TypeVar("R")


def record_of(record_type: type[R], row: object, **given: Any) -> R:
    """A `record_type` dataclass built from `row`: every field not in `given` is the row's attribute of that
    name (a field the row lacks raises AttributeError, so a renamed column cannot go unnoticed)."""
    copied = {name: getattr(row, name) for name in _field_names(record_type) if name not in given}
    return record_type(**copied, **given)


@functools.cache
def _field_names(record_type: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(record_type) if f.init)
