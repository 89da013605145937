"""Secrets: argon2id password hashes and random bearer tokens stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError

SESSION_PREFIX = "sfs_"
API_KEY_PREFIX = "sfk_"
WORKER_TOKEN_PREFIX = "sfw_"
VISIBLE_PREFIX_LENGTH = 12


@dataclass(frozen=True)
class HashingCost:
    """argon2id parameters; tests lower them, production keeps the library defaults."""

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4


class PasswordHasher:
    """argon2id hashing and verification."""

    def __init__(self, cost: HashingCost | None = None) -> None:
        cost = cost or HashingCost()
        self._argon = _Argon2(
            time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism, type=Type.ID
        )
        # Verifying against this keeps the timing of "no such user" equal to "wrong password".
        self._dummy = self._argon.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._argon.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._argon.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def new_token(prefix: str) -> str:
    """A random bearer token with a recognisable prefix (256 bits of entropy)."""
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The stored form of a token: hex SHA-256 (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def visible_prefix(token: str) -> str:
    """The part of a key shown in listings so users can tell their keys apart."""
    return token[:VISIBLE_PREFIX_LENGTH]


def generate_password() -> str:
    """A strong password for the bootstrapped admin."""
    return secrets.token_urlsafe(18)
