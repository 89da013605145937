"""A leader lease in the database: one holder per name at a time, taken over only once it has expired; and the
fence that refuses the writes of a holder whose term is over."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sdfleet.domain.leadership import LeaderFence, NotLeader
from sdfleet.store.database import Database
from sdfleet.store.tables import LeaderLeaseRow


class SqlLeaderLease:
    """`hold` takes or renews the lease `name` for `holder`; `release` hands it over at once.

    Every call is one short transaction: a conditional UPDATE (the holder renewing, or anyone once it expired)
    and, for a name never held, an INSERT whose primary key lets only one server win. The row's version is the
    term: a takeover raises it, a renewal keeps it; `fence` is the term this lease last held (None when it
    does not hold it)."""

    def __init__(self, database: Database, *, name: str, holder: str, clock: Callable[[], datetime]) -> None:
        self._db = database
        self.name = name
        self.holder = holder
        self._clock = clock
        self.fence: LeaderFence | None = None

    def hold(self, seconds: float) -> tuple[bool, datetime]:
        """(whether `holder` has the lease now, until when the lease runs: its own or another's expiry)."""
        now = self._clock()
        until = now + timedelta(seconds=seconds)
        self.fence = None
        with self._db.session() as s:
            row = s.execute(select(LeaderLeaseRow).where(LeaderLeaseRow.name == self.name)).scalar_one_or_none()
            if row is None:
                try:
                    with s.begin_nested():
                        s.add(LeaderLeaseRow(name=self.name, holder=self.holder, expires_at=until, version=1))
                    self.fence = LeaderFence(name=self.name, holder=self.holder, term=1)
                    return True, until
                except IntegrityError:  # another server inserted it first
                    row = s.execute(select(LeaderLeaseRow).where(LeaderLeaseRow.name == self.name)).scalar_one()
            if row.holder != self.holder and row.expires_at > now:
                return False, row.expires_at
            # Each UPDATE re-checks what it relies on (PostgreSQL re-evaluates the WHERE on the committed row), so
            # of a renewal and a takeover racing, one wins: a renewal needs the row still ours in the same term,
            # a takeover needs it still in the term we read and still expired.
            stmt = update(LeaderLeaseRow).where(LeaderLeaseRow.name == self.name,
                                                LeaderLeaseRow.version == row.version)
            if row.holder == self.holder:  # renewing (or taking back our own expired lease: nobody held it since)
                term = row.version
                stmt = stmt.where(LeaderLeaseRow.holder == self.holder).values(expires_at=until)
            else:
                term = row.version + 1
                stmt = stmt.where(LeaderLeaseRow.expires_at <= now).values(holder=self.holder, expires_at=until,
                                                                           version=term)
            if s.execute(stmt).rowcount != 1:
                return False, row.expires_at
            self.fence = LeaderFence(name=self.name, holder=self.holder, term=term)
            return True, until

    def release(self) -> None:
        """Let another server take the lease at its next look (a clean stop)."""
        self.fence = None
        with self._db.session() as s:
            s.execute(update(LeaderLeaseRow)
                      .where(LeaderLeaseRow.name == self.name, LeaderLeaseRow.holder == self.holder)
                      .values(expires_at=self._clock()))


def check_fence(s: Session, fence: LeaderFence | None, *, is_sqlite: bool) -> None:
    """Refuse (NotLeader) a write made under `fence` unless the lease row is still in that holder's term.

    Called first in the write's own transaction. On PostgreSQL the lease row is share-locked until the write
    commits, so a takeover (an UPDATE of that row) waits for it: every fenced write commits either before the
    takeover, while its term held, or sees the new term and is refused. SQLite serializes writers. An expired
    lease nobody took over is no conflict (no other server acts), so expiry alone refuses nothing: no clock is
    compared, only the row's holder and term."""
    if fence is None:
        return
    stmt = select(LeaderLeaseRow.version).where(LeaderLeaseRow.name == fence.name,
                                                LeaderLeaseRow.holder == fence.holder,
                                                LeaderLeaseRow.version == fence.term)
    if not is_sqlite:
        stmt = stmt.with_for_update(read=True)
    if s.execute(stmt).first() is None:
        raise NotLeader(f"{fence.holder}'s term {fence.term} of the {fence.name} lease is over (another server "
                        "took it over): its write is refused")
