"""Prompt weighting syntax in the two dialects the engine speaks: A1111's emphasis and ComfyUI's weights.

Both turn a prompt into (text, weight) segments; the segments are tokenized separately, so where a
dialect cuts the text matters as much as the weights. A1111's `BREAK` comes out as the segment
`("BREAK", -1.0)`, the marker A1111 itself uses (a `BREAK` inside brackets gets its weight multiplied
and is then plain text, as in A1111)."""

from __future__ import annotations

import math
import re

#: A1111's chunk-break marker segment.
BREAK = ("BREAK", -1.0)
ROUND_FACTOR = 1.1
SQUARE_FACTOR = 1 / 1.1

# One A1111 emphasis token: an escape, a bracket, an explicit weight closing a round bracket, a run of
# plain text, or a lone colon.
_A1111_TOKEN = re.compile(
    r"""
      (?P<escape>\\[()\[\]\\]?)
    | (?P<open>[(\[])
    | (?P<weight>:\s*(?P<number>[+-]?[.\d]+)\s*\))
    | (?P<close>[)\]])
    | (?P<text>[^\\()\[\]:]+)
    | (?P<colon>:)
    """,
    re.VERBOSE,
)
_BREAK_SPLIT = re.compile(r"\s*\bBREAK\b\s*", re.S)


class PromptSyntaxError(ValueError):
    """A prompt the dialect cannot read (an explicit weight that is not a number)."""


def _number(text: str, *, source: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PromptSyntaxError(f"prompt: {source!r} has a weight that is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise PromptSyntaxError(f"prompt: {source!r} has a weight that is not finite: {text!r}")
    return value


def parse_a1111_emphasis(prompt: str) -> list[tuple[str, float]]:
    """A1111's `(x)` ×1.1, `[x]` ÷1.1, `(x:w)` ×w, escapes and `BREAK`: (text, weight) segments.

    Brackets left open at the end still apply to everything after them; a closing bracket with no
    opening one is plain text; adjacent segments of equal weight are merged."""
    segments: list[list] = []
    round_starts: list[int] = []
    square_starts: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for segment in segments[start:]:
            segment[1] *= factor

    for match in _A1111_TOKEN.finditer(prompt):
        kind, token = match.lastgroup, match.group(0)
        if kind == "escape":
            segments.append([token[1:], 1.0])  # a lone backslash escapes nothing and disappears
        elif token == "(":
            round_starts.append(len(segments))
        elif token == "[":
            square_starts.append(len(segments))
        elif kind == "weight" and round_starts:
            scale_from(round_starts.pop(), _number(match.group("number"), source=token))
        elif token == ")" and round_starts:
            scale_from(round_starts.pop(), ROUND_FACTOR)
        elif token == "]" and square_starts:
            scale_from(square_starts.pop(), SQUARE_FACTOR)
        else:
            for i, part in enumerate(_BREAK_SPLIT.split(token)):
                if i:
                    segments.append(list(BREAK))
                segments.append([part, 1.0])
    for start in round_starts:
        scale_from(start, ROUND_FACTOR)
    for start in square_starts:
        scale_from(start, SQUARE_FACTOR)
    if not segments:
        return [("", 1.0)]
    merged: list[list] = [segments[0]]
    for text, weight in segments[1:]:
        if merged[-1][1] == weight:
            merged[-1][0] += text
        else:
            merged.append([text, weight])
    return [(text, weight) for text, weight in merged]


# ComfyUI marks `\(` and `\)` with control characters before splitting, then restores them.
_COMFY_ESCAPES = (("\\)", "\0\1"), ("\\(", "\0\2"))


def _top_level_groups(text: str) -> list[str]:
    """Split text into runs and top-level `( … )` groups, the way ComfyUI's parser nests parentheses."""
    parts: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0:
                if current:
                    parts.append(current)
                current = ""
            current += char
            depth += 1
        elif char == ")":
            depth -= 1
            current += char
            if depth == 0:
                parts.append(current)
                current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts


def _comfy_segments(text: str, weight: float) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for part in _top_level_groups(text):
        if len(part) < 2 or part[0] != "(" or part[-1] != ")":
            out.append((part, weight))
            continue
        inner = part[1:-1]
        # A group multiplies by 1.1 unless it names its own weight, which replaces the outer one.
        inner_weight = weight * ROUND_FACTOR
        colon = inner.rfind(":")
        if colon > 0:
            try:
                explicit = float(inner[colon + 1:])
            except ValueError:
                explicit = None
            if explicit is not None:
                if not math.isfinite(explicit):
                    raise PromptSyntaxError(f"prompt: {part!r} has a weight that is not finite")
                inner_weight, inner = explicit, inner[:colon]
        out.extend(_comfy_segments(inner, inner_weight))
    return out


def parse_comfy_weights(prompt: str) -> list[tuple[str, float]]:
    """ComfyUI's CLIPTextEncode weighting: `(x)` ×1.1 per level, `(x:w)` sets w, `\\(` `\\)` literal."""
    text = prompt
    for literal, marker in _COMFY_ESCAPES:
        text = text.replace(literal, marker)
    segments = _comfy_segments(text, 1.0)
    restored = []
    for segment, weight in segments:
        for literal, marker in _COMFY_ESCAPES:
            segment = segment.replace(marker, literal[1])
        restored.append((segment, weight))
    return restored
