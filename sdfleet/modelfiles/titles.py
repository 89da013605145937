"""A1111's model titles: `name.safetensors [shorthash]`, a name, its stem, or a (short) sha256 — one parser,
and one matcher that checks the hash when a title carries one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

_HASH_SUFFIX = re.compile(r"\s*\[([0-9a-fA-F]{8,64})\]$")
_BARE_HASH = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class ModelTitle:
    """A title taken apart: the name (or stem) it gives and the hash prefix in its brackets, if any."""

    name: str
    hash_prefix: str | None = None


def parse_title(text: str) -> ModelTitle:
    """`name.safetensors [0123abcd]` → (`name.safetensors`, `0123abcd`); `name` → (`name`, None)."""
    text = text.strip()
    hashed = _HASH_SUFFIX.search(text)
    return ModelTitle(name=_HASH_SUFFIX.sub("", text).strip(), hash_prefix=hashed.group(1).lower() if hashed else None)


def title_of(name: str, sha256: str) -> str:
    """A1111's title of a model: `name [shorthash]` (the short hash: the sha256's first 10 digits)."""
    return f"{name} [{sha256[:10]}]"


class Named(Protocol):
    name: str
    sha256: str


M = TypeVar("M", bound=Named)


def match_title(models: Iterable[M], text: str) -> M | None:
    """The model a title, name, stem or (short) sha256 designates, as A1111 matches them; a title whose
    bracketed hash is not the named model's designates nothing."""
    models = list(models)
    title = parse_title(text)
    for model in models:
        if model.name == title.name or model.name.rsplit(".", 1)[0] == title.name:
            if title.hash_prefix is None or model.sha256.startswith(title.hash_prefix):
                return model
    lowered = text.strip().lower()
    if _BARE_HASH.fullmatch(lowered):
        return next((m for m in models if m.sha256.startswith(lowered)), None)
    return None
