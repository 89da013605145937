"""The login limiter: counts failed password checks only, in a table every API server shares.

Three rules, each over a sliding window (`window`, default 5 minutes):
1. one username from one client address: `per_client` failures, then that pair waits;
2. one client address, any usernames: `per_address` failures, then that address waits (password spraying);
3. one username from every address together: past `per_user` failures, each further try *from an address that
   has itself failed for that username* waits 2^(n - per_user) s after the latest failure (at most `window`).
A client that has not failed for a username is never held back by rules 1 and 3, so the owner with the
right password still signs in while others guess at their name; successful logins never count."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sdfleet.domain.accounts import LoginFailureCounts
from sdfleet.domain.errors import RateLimited


@dataclass(frozen=True)
class LoginLimits:
    """How many failures each rule allows within `window`."""

    per_client: int
    per_address: int
    per_user: int
    window: timedelta


class LoginFailureStore(Protocol):
    """Where failures are kept (`SqlLoginFailures`; `MemoryLoginFailures` in tests)."""

    def add(self, *, username: str, address: str, at: datetime, prune_before: datetime) -> None: ...

    def counts(self, *, username: str, address: str, since: datetime) -> LoginFailureCounts: ...

    def clear(self, *, username: str, address: str) -> None: ...


def _key(username: str, address: str | None) -> tuple[str, str]:
    return username.strip().lower()[:64], (address or "unknown")[:64]


class LoginLimiter:
    """Decides whether a password may be tried now, and remembers failures."""

    def __init__(self, *, store: LoginFailureStore, limits: LoginLimits, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._limits = limits
        self._clock = clock

    def check(self, *, username: str, address: str | None) -> None:
        """Raise RateLimited (with the seconds to wait) when a password check must not be tried now."""
        user, addr = _key(username, address)
        now = self._clock()
        window = self._limits.window
        counts = self._store.counts(username=user, address=addr, since=now - window)
        waits = []
        if counts.pair >= self._limits.per_client and counts.pair_oldest is not None:
            waits.append(counts.pair_oldest + window - now)
        if counts.address >= self._limits.per_address and counts.address_oldest is not None:
            waits.append(counts.address_oldest + window - now)
        if counts.pair > 0 and counts.user > self._limits.per_user and counts.user_latest is not None:
            backoff = timedelta(seconds=min(2.0 ** min(counts.user - self._limits.per_user, 30),
                                            window.total_seconds()))
            waits.append(counts.user_latest + backoff - now)
        wait = max(waits, default=timedelta(0))
        if wait > timedelta(0):
            seconds = max(1, math.ceil(wait.total_seconds()))
            raise RateLimited(f"too many failed login attempts; retry in {seconds} s", retry_after=seconds)

    def failed(self, *, username: str, address: str | None) -> None:
        """Count one failed password check."""
        user, addr = _key(username, address)
        now = self._clock()
        self._store.add(username=user, address=addr, at=now, prune_before=now - self._limits.window)

    def succeeded(self, *, username: str, address: str | None) -> None:
        """The owner signed in from this address: its earlier failures there no longer count."""
        user, addr = _key(username, address)
        self._store.clear(username=user, address=addr)
