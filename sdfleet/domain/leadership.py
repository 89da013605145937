"""A leader's term, which fences the writes of the one API server that may run the fleet manager."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeaderFence:
    """One holder's term of a leader lease: a fenced write commits only while the lease row still names this
    holder and term, checked in the write's own transaction."""

    name: str
    holder: str
    #: the lease row's version when this holder's tenure began (a renewal keeps it, a takeover raises it)
    term: int


class NotLeader(Exception):
    """A fenced write was refused: another server took the lease over since this term began."""
