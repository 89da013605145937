"""Shared bases: strict request models and list pages."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, model_validator

from sdfleet.jobs.wire import refuse_unstorable_strings

T = TypeVar("T")


class Strict(BaseModel):
    """Request bodies: unknown fields are refused, strings are not coerced from numbers."""

    model_config = ConfigDict(extra="forbid", strict=False, str_strip_whitespace=False)

    @model_validator(mode="before")
    @classmethod
    def _refuse_unencodable_strings(cls, data):
        refuse_unstorable_strings(data, path="")
        return data


class ListPage(BaseModel, Generic[T]):
    """A page of a list."""

    items: list[T]
    next_cursor: str | None
