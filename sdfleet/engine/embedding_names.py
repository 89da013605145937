"""Which textual-inversion embeddings a prompt names (torch-free: the server pins them with the job).

The engine finds A1111 embeddings by their name's tokens and ComfyUI ones by `embedding:name`; here a
looser text match picks every file the engine could use, so a job pins (and a worker downloads) at
most a few unused ones and never misses one."""

from __future__ import annotations

import re
from collections.abc import Iterable

SUFFIXES = (".safetensors", ".pt", ".bin")
COMFY_PREFIX = "embedding:"


def embedding_name(file_name: str) -> str:
    """`EasyNegative.safetensors` → `EasyNegative`: the name prompts use."""
    for suffix in SUFFIXES:
        if file_name.lower().endswith(suffix):
            return file_name[: -len(suffix)]
    return file_name


def _folded(text: str) -> str:
    # CLIP's tokenizer lowercases and splits on whitespace, so case and spacing never matter to A1111.
    return re.sub(r"\s+", " ", text.lower())


def embeddings_named_in(texts: Iterable[str], file_names: Iterable[str], *, dialect: str) -> list[str]:
    """The embedding files (by file name) a prompt may use: A1111 by name anywhere, ComfyUI `embedding:name`."""
    texts = [t for t in texts if t]
    found = []
    for file_name in file_names:
        name = embedding_name(file_name)
        if not name:
            continue
        if dialect == "a1111":
            needle = _folded(name).strip()
            hit = bool(needle) and any(needle in _folded(t) for t in texts)
        else:
            hit = any(COMFY_PREFIX + name in t or COMFY_PREFIX + file_name in t for t in texts)
        if hit:
            found.append(file_name)
    return found
