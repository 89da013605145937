"""Checks on names and secrets that every entry point (API, CLI) shares."""

from __future__ import annotations

import re

from sdfleet.domain.errors import InvalidInput

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ROLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LABEL_MAX = 100


def check_username(value: str, *, field: str = "username") -> str:
    """Usernames: 1–64 ASCII letters, digits, `_ . -`, starting with a letter or digit."""
    if not isinstance(value, str) or not _USERNAME.fullmatch(value):
        raise InvalidInput(
            f"{field} must be 1-64 ASCII letters, digits, '_', '.' or '-', starting with a letter or digit",
            field=field,
        )
    return value


def check_role_name(value: str, *, field: str = "name") -> str:
    """Role names: 1–64 lowercase ASCII letters, digits, `_ -`."""
    if not isinstance(value, str) or not _ROLE_NAME.fullmatch(value):
        raise InvalidInput(
            f"{field} must be 1-64 lowercase ASCII letters, digits, '_' or '-', starting with a letter or digit",
            field=field,
        )
    return value


def check_password(value: str, *, field: str = "password") -> str:
    """Passwords: 8–256 characters, no control characters."""
    if not isinstance(value, str) or not 8 <= len(value) <= 256:
        raise InvalidInput(f"{field} must be 8-256 characters long", field=field)
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"{field} must not contain control characters", field=field)
    return value


def check_label(value: str, *, field: str, max_length: int = _LABEL_MAX) -> str:
    """Free-text labels (key names, descriptions): printable, trimmed, bounded."""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string", field=field)
    value = value.strip()
    if not value or len(value) > max_length:
        raise InvalidInput(f"{field} must be 1-{max_length} characters", field=field)
    if any(not c.isprintable() for c in value):
        raise InvalidInput(f"{field} must not contain control or invisible format characters", field=field)
    return value


def is_valid_username(value: str) -> bool:
    """Whether `value` could be a username (lookups of anything else find nothing)."""
    return isinstance(value, str) and _USERNAME.fullmatch(value) is not None


def is_valid_role_name(value: str) -> bool:
    """Whether `value` could be a role name."""
    return isinstance(value, str) and _ROLE_NAME.fullmatch(value) is not None


def is_storable(value: str) -> bool:
    """Strings with NUL or lone surrogates cannot be hashed or stored."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
