"""Weighted prompt segments → CLIP-sized token chunks, as A1111 and ComfyUI each cut long prompts.

A chunk is 77 tokens: BOS, 75 prompt tokens (padded), EOS. A1111 fills chunks token by token, starts a
new one at `BREAK`, moves the text after the last comma into the next chunk when a chunk fills within
`comma_backtrack` tokens of it, and never splits a textual-inversion embedding. ComfyUI keeps each
weighted segment (and each embedding) whole in one chunk unless it is 8 tokens or longer."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

#: Prompt tokens per chunk; with BOS and EOS a chunk is CLIP's 77.
CHUNK_TOKENS = 75
#: A1111's default `comma_padding_backtrack` setting.
COMMA_BACKTRACK = 20
#: ComfyUI moves a segment shorter than this to the next chunk instead of splitting it.
COMFY_WORD_TOKENS = 8
#: The token id standing in for an embedding vector until the encoder replaces it.
PLACEHOLDER = 0
EMBEDDING_PREFIX = "embedding:"


class Embedding(Protocol):
    """A textual-inversion embedding as the chunker sees it: a name and a number of vectors."""

    name: str

    @property
    def length(self) -> int:
        """How many token positions the embedding fills."""
        ...


@dataclass(frozen=True)
class Insert:
    """Vectors `first` … `first + count - 1` of an embedding, replacing the chunk's tokens from `start`."""

    start: int
    embedding: Any
    first: int
    count: int


@dataclass
class Chunk:
    """77 token ids with a weight each, and the embeddings placed in it."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    inserts: list[Insert] = field(default_factory=list)


@dataclass(frozen=True)
class SpecialTokens:
    """The ids that frame and pad a chunk."""

    bos: int
    eos: int
    pad: int
    comma: int | None = None

    @classmethod
    def of(cls, tokenizer: Any) -> SpecialTokens:
        """The special tokens of a CLIP tokenizer (pad is EOS for CLIP-L, `!` for OpenCLIP)."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return cls(tokenizer.bos_token_id, tokenizer.eos_token_id, pad, tokenizer.get_vocab().get(",</w>"))


def tokenize(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no BOS/EOS, no truncation."""
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]


def _frame(chunk: Chunk, special: SpecialTokens) -> Chunk:
    """Pad to 75 tokens, then wrap in BOS/EOS; positions after the first EOS hold the pad token."""
    missing = CHUNK_TOKENS - len(chunk.tokens)
    tokens = [special.bos, *chunk.tokens, *[special.eos] * missing, special.eos]
    weights = [1.0, *chunk.weights, *[1.0] * missing, 1.0]
    if special.pad != special.eos:
        first_eos = tokens.index(special.eos, 1)
        tokens[first_eos + 1:] = [special.pad] * (len(tokens) - first_eos - 1)
    return Chunk(tokens, weights, [_shifted(i, 1) for i in chunk.inserts])


def _shifted(insert: Insert, by: int) -> Insert:
    return Insert(insert.start + by, insert.embedding, insert.first, insert.count)


def empty_chunk(special: SpecialTokens) -> Chunk:
    """The chunk of an empty prompt (A1111 pads a batch's shorter prompts with it)."""
    return _frame(Chunk(), special)


def _embedding_at(tokens: Sequence[int], position: int,
                  by_first_token: dict[int, list[tuple[list[int], Any]]]) -> tuple[Any, int] | None:
    for ids, embedding in by_first_token.get(tokens[position], ()):
        if list(tokens[position:position + len(ids)]) == ids:
            return embedding, len(ids)
    return None


def a1111_chunks(segments: Sequence[tuple[str, float]], *, tokenizer: Any,
                 embeddings: Sequence[Any] = (), comma_backtrack: int = COMMA_BACKTRACK) -> list[Chunk]:
    """A1111's chunks for emphasis segments (`BREAK` is the segment ("BREAK", -1.0))."""
    special = SpecialTokens.of(tokenizer)
    by_first_token: dict[int, list[tuple[list[int], Any]]] = {}
    for embedding, ids in zip(embeddings, tokenize(tokenizer, [e.name for e in embeddings]), strict=True):
        if ids:
            by_first_token.setdefault(ids[0], []).append((ids, embedding))
    for candidates in by_first_token.values():
        candidates.sort(key=lambda pair: -len(pair[0]))

    chunks: list[Chunk] = []
    current = Chunk()
    last_comma = -1

    def close() -> None:
        nonlocal current, last_comma
        chunks.append(_frame(current, special))
        current, last_comma = Chunk(), -1

    for (text, weight), tokens in zip(segments, tokenize(tokenizer, [t for t, _ in segments]), strict=True):
        if text == "BREAK" and weight == -1:
            close()
            continue
        position = 0
        while position < len(tokens):
            token = tokens[position]
            if token == special.comma:
                last_comma = len(current.tokens)
            elif (comma_backtrack and len(current.tokens) == CHUNK_TOKENS and last_comma != -1
                  and len(current.tokens) - last_comma <= comma_backtrack):
                # The chunk is full: the words after its last comma move on to the next chunk.
                cut = last_comma + 1
                moved = Chunk(current.tokens[cut:], current.weights[cut:],
                              [_shifted(i, -cut) for i in current.inserts if i.start >= cut])
                current.inserts = [i for i in current.inserts if i.start < cut]
                del current.tokens[cut:], current.weights[cut:]
                close()
                current = moved
            if len(current.tokens) == CHUNK_TOKENS:
                close()
            found = _embedding_at(tokens, position, by_first_token)
            if found is None:
                current.tokens.append(token)
                current.weights.append(weight)
                position += 1
                continue
            embedding, name_tokens = found
            if len(current.tokens) + embedding.length > CHUNK_TOKENS:
                close()
            current.inserts.append(Insert(len(current.tokens), embedding, 0, embedding.length))
            current.tokens.extend([PLACEHOLDER] * embedding.length)
            current.weights.extend([weight] * embedding.length)
            position += name_tokens
    if current.tokens or not chunks:
        close()
    return chunks


def _comfy_embedding_name(word: str) -> tuple[str, str]:
    """Split `embedding:name rest` into the name and the text after it (ComfyUI's rules)."""
    name, _, rest = word[len(EMBEDDING_PREFIX):].strip("\n").partition(" ")
    rest = " ".join(rest.split())
    cut = re.search(r"[<\[]", name)
    if cut is not None:
        rest = name[cut.start():] + (" " + rest if rest else "")
        name = name[:cut.start()]
    return name, rest


def comfy_chunks(segments: Sequence[tuple[str, float]], *, tokenizer: Any,
                 find_embedding: Callable[[str], Any | None] | None = None) -> list[Chunk]:
    """ComfyUI's chunks for weighted segments; `embedding:name` words are looked up with `find_embedding`."""
    special = SpecialTokens.of(tokenizer)
    # 1. Token groups: each segment's text, with `embedding:` words as groups of their own
    # (tokens, (embedding, vector index) or None per token, weight)
    groups: list[tuple[list[int], list[tuple[Any, int] | None], float]] = []
    for text, weight in segments:
        words = re.split(r"(?<=\s)" + re.escape(EMBEDDING_PREFIX), text)
        words = [words[0], *(EMBEDDING_PREFIX + w for w in words[1:])]
        for word in (w for w in words if w):
            if word.startswith(EMBEDDING_PREFIX) and find_embedding is not None:
                name, rest = _comfy_embedding_name(word)
                embedding = find_embedding(name)
                if embedding is None and name.strip(",") != name:
                    rest = f"{name[len(name.strip(',')):]} {rest}"
                    embedding = find_embedding(name.strip(","))
                if embedding is not None:
                    owners = [(embedding, k) for k in range(embedding.length)]
                    groups.append(([PLACEHOLDER] * embedding.length, owners, weight))
                if not rest:
                    continue
                word = rest
            ids = tokenize(tokenizer, [word])[0]
            groups.append((ids, [None] * len(ids), weight))

    # 2. Chunks: a group that does not fit moves on whole, unless it is long enough to split
    chunks: list[Chunk] = []
    current = Chunk()

    def close() -> None:
        nonlocal current
        chunks.append(_frame_comfy(current, special))
        current = Chunk()

    for tokens, owners, weight in groups:
        splittable = len(tokens) >= COMFY_WORD_TOKENS
        while tokens:
            room = CHUNK_TOKENS - len(current.tokens)
            if len(tokens) <= room:
                _append(current, tokens, owners, weight)
                break
            if splittable:
                _append(current, tokens[:room], owners[:room], weight)
                tokens, owners = tokens[room:], owners[room:]
            close()
    close()
    return chunks


def _append(chunk: Chunk, tokens: list[int], owners: list[tuple[Any, int] | None], weight: float) -> None:
    """Add a group's tokens; each run of one embedding's vectors becomes an Insert."""
    offset = 0
    while offset < len(owners):
        owner = owners[offset]
        if owner is None:
            offset += 1
            continue
        end = offset
        while end < len(owners) and owners[end] is not None and owners[end][0] is owner[0]:
            end += 1
        chunk.inserts.append(Insert(len(chunk.tokens) + offset, owner[0], owner[1], end - offset))
        offset = end
    chunk.tokens.extend(tokens)
    chunk.weights.extend([weight] * len(tokens))


def _frame_comfy(chunk: Chunk, special: SpecialTokens) -> Chunk:
    """BOS, tokens, EOS, then the pad token up to 77."""
    missing = CHUNK_TOKENS - len(chunk.tokens)
    tokens = [special.bos, *chunk.tokens, special.eos, *[special.pad] * missing]
    weights = [1.0, *chunk.weights, 1.0, *[1.0] * missing]
    return Chunk(tokens, weights, [_shifted(i, 1) for i in chunk.inserts])
