"""A1111 prompt editing `[from:to:when]` and alternation `[a|b]`: one plain prompt per stretch of steps.

The syntax follows A1111's grammar: `[to:when]`, `[from:to:when]` and `[from::when]` switch text at a
step (`when` with a decimal point is a fraction of the steps, else a step number); `[a|b|…]` cycles
through its options step by step; round and square brackets around them are kept for the emphasis
parser. Brackets that do not form one of these are plain text, and a prompt the grammar cannot read at
all (a `|` outside brackets, a trailing backslash) is used unchanged for every step, as A1111 does."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_PLAIN = re.compile(r"(?:[^\\\[\]():|]|\\.)+", re.S)
_WHEN = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\]")
_STRAY = "[]():"
#: Deeper bracket nesting is read as plain text (the parser recurses once per level).
MAX_BRACKET_DEPTH = 200


@dataclass(frozen=True)
class ScheduledText:
    """The plain prompt to use up to and including step `until_step` (A1111's `end_at_step`)."""

    until_step: int
    text: str


@dataclass
class _Edit:
    before: list | None
    after: list
    when_text: str
    when: int = 0


@dataclass
class _Alternation:
    options: list[list] = field(default_factory=list)


class _Parser:
    """Recursive descent over A1111's schedule grammar, memoized by position (linear in the prompt)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._prompts: dict[int, tuple[list, int]] = {}
        self._constructs: dict[int, tuple[object, int] | None] = {}

    def start(self) -> list | None:
        """The whole prompt's parts, or None where the grammar cannot read it."""
        text, parts, i = self.text, [], 0
        while i < len(text):
            found, i = self.prompt(i)
            parts.extend(found)
            if i < len(text):
                if text[i] not in _STRAY:  # `|` or a trailing backslash
                    return None
                parts.append(text[i])  # a bracket or colon that opens nothing: plain text
                i += 1
        return parts

    def prompt(self, i: int) -> tuple[list, int]:
        """Parse plain text, whitespace and bracket constructs from i; stop at anything else."""
        if i in self._prompts:
            return self._prompts[i]
        start, text, parts = i, self.text, []
        while i < len(text):
            char = text[i]
            if char in "[(":
                construct = self.construct(i)
                if construct is None:
                    break
                node, i = construct
                if isinstance(node, list):
                    parts.extend(node)
                else:
                    parts.append(node)
                continue
            match = _PLAIN.match(text, i)
            if match is None:
                break
            parts.append(match.group(0))
            i = match.end()
        self._prompts[start] = (parts, i)
        return parts, i

    def construct(self, i: int) -> tuple[object, int] | None:
        """An emphasis, edit or alternation starting at the bracket at i, or None."""
        if i not in self._constructs:
            self._constructs[i] = self._round(i) if self.text[i] == "(" else self._square(i)
        return self._constructs[i]

    def _at(self, i: int) -> str:
        return self.text[i] if i < len(self.text) else ""

    def _round(self, i: int) -> tuple[list, int] | None:
        first, j = self.prompt(i + 1)
        if self._at(j) == ")":
            return ["(", *first, ")"], j + 1
        if self._at(j) == ":":
            second, k = self.prompt(j + 1)
            if self._at(k) == ")":
                return ["(", *first, ":", *second, ")"], k + 1
        return None

    def _when(self, i: int) -> tuple[str, int] | None:
        match = _WHEN.match(self.text, i)
        return (match.group(1), match.end()) if match else None

    def _square(self, i: int) -> tuple[object, int] | None:
        first, j = self.prompt(i + 1)
        char = self._at(j)
        if char == "]":
            return ["[", *first, "]"], j + 1
        if char == "|":
            alternation = _Alternation([first])
            while self._at(j) == "|":
                option, j = self.prompt(j + 1)
                alternation.options.append(option)
            return (alternation, j + 1) if self._at(j) == "]" else None
        if char != ":":
            return None
        when = self._when(j + 1)
        if when is not None:
            return _Edit(None, first, when[0]), when[1]
        second, k = self.prompt(j + 1)
        if self._at(k) == ":" and (when := self._when(k + 1)) is not None:
            return _Edit(first, second, when[0]), when[1]
        return None


def _bracket_depth(text: str) -> int:
    """An upper bound on the nesting the parser can meet from any position."""
    depth = deepest = 0
    for char in text:
        if char in "[(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "])":
            depth = max(0, depth - 1)
    return deepest


def _walk(parts: list):
    for part in parts:
        if isinstance(part, _Edit):
            yield part
            yield from _walk(part.before or [])
            yield from _walk(part.after)
        elif isinstance(part, _Alternation):
            yield part
            for option in part.options:
                yield from _walk(option)


def _text_at(parts: list, step: int) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, _Edit):
            out.append(_text_at(part.before or [], step) if step <= part.when else _text_at(part.after, step))
        else:
            out.append(_text_at(part.options[(step - 1) % len(part.options)], step))
    return "".join(out)


def prompt_schedule(prompt: str, steps: int, *, hires_steps: int | None = None) -> list[ScheduledText]:
    """The prompt's plain texts and the step each lasts until, for a `steps`-step sampling.

    With `hires_steps` (the hires-fix pass), integer steps count from the end of the first pass and
    fractions from 1.0, as A1111 schedules its second pass."""
    if hires_steps is None:
        total, int_offset, fraction_offset = steps, 0, 0.0
    else:
        total, int_offset, fraction_offset = hires_steps, steps, 1.0
    parts = _Parser(prompt).start() if _bracket_depth(prompt) <= MAX_BRACKET_DEPTH else None
    if parts is None:
        return [ScheduledText(total, prompt)]
    boundaries = {total}
    for node in _walk(parts):
        if isinstance(node, _Alternation):
            boundaries.update(range(1, total + 1))
            continue
        value = float(node.when_text)
        value = (value - fraction_offset) * total if "." in node.when_text else value - int_offset
        node.when = min(total, int(value))
        if node.when >= 1:
            boundaries.add(node.when)
    return [ScheduledText(step, _text_at(parts, step)) for step in sorted(boundaries)]
