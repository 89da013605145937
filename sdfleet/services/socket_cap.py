"""A per-user cap on open event sockets (ComfyUI's `/ws` on every listener): the oldest over the cap is closed.

Idle sockets are not free: each one polls for its user's events. Without a cap, one user's 300 open tabs
slow everyone down (issue 11). Both ComfyUI listeners run their own event loop in their own thread, so a
socket is closed through a callback the socket's own loop runs."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_SOCKETS_PER_USER = 16


@dataclass(frozen=True)
class SocketTicket:
    """One registered socket; `close` asks its loop to close it (called at most once, from any thread)."""

    user_id: str
    serial: int
    close: Callable[[], None] = field(compare=False, repr=False)


class SocketCap:
    """Keeps at most `per_user` sockets open per user, across every listener of this process."""

    def __init__(self, *, per_user: int = DEFAULT_SOCKETS_PER_USER) -> None:
        if per_user < 1:
            raise ValueError(f"per_user must be at least 1, got {per_user}")
        self.per_user = per_user
        self._open: dict[str, list[SocketTicket]] = {}
        self._serials = itertools.count()
        self._lock = threading.Lock()

    def admit(self, user_id: str, close: Callable[[], None]) -> SocketTicket:
        """Register a new socket; the user's oldest ones beyond the cap are closed (their `close` runs)."""
        ticket = SocketTicket(user_id=user_id, serial=next(self._serials), close=close)
        with self._lock:
            tickets = self._open.setdefault(user_id, [])
            tickets.append(ticket)
            evicted = tickets[: max(0, len(tickets) - self.per_user)]
            del tickets[: len(evicted)]
        for old in evicted:
            old.close()
        return ticket

    def release(self, ticket: SocketTicket) -> None:
        """Forget a socket that closed (a no-op for one already evicted)."""
        with self._lock:
            tickets = self._open.get(ticket.user_id, [])
            if ticket in tickets:
                tickets.remove(ticket)
            if not tickets:
                self._open.pop(ticket.user_id, None)

    def count(self, user_id: str) -> int:
        """Sockets open for a user now."""
        with self._lock:
            return len(self._open.get(user_id, []))
