"""Identifiers: time-ordered random ids, so newer rows sort after older ones."""

from __future__ import annotations

import os
import time


def new_id() -> str:
    """A 26-character, lexicographically time-ordered id (48-bit ms time + 80 random bits, base32)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(alphabet[rem])
    return "".join(reversed(chars))


def is_valid_id(value: str) -> bool:
    """Whether `value` has the shape of an id from `new_id` (lookups of anything else find nothing)."""
    return isinstance(value, str) and len(value) == 26 and all(c in "0123456789abcdefghjkmnpqrstvwxyz" for c in value)
