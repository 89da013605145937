"""A leader lease in the database: one holder per name at a time, taken over only once it has expired."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from sdfleet.store.database import Database
from sdfleet.store.tables import LeaderLeaseRow


class SqlLeaderLease:
    """`hold` takes or renews the lease `name` for `holder`; `release` hands it over at once.

    Every call is one short transaction: a conditional UPDATE (the holder renewing, or anyone once it expired)
    and, for a name never held, an INSERT whose primary key lets only one server win."""

    def __init__(self, database: Database, *, name: str, holder: str, clock: Callable[[], datetime]) -> None:
        self._db = database
        self.name = name
        self.holder = holder
        self._clock = clock

    def hold(self, seconds: float) -> tuple[bool, datetime]:
        """(whether `holder` has the lease now, until when the lease runs: its own or another's expiry)."""
        now = self._clock()
        until = now + timedelta(seconds=seconds)
        with self._db.session() as s:
            row = s.execute(select(LeaderLeaseRow).where(LeaderLeaseRow.name == self.name)).scalar_one_or_none()
            if row is None:
                try:
                    with s.begin_nested():
                        s.add(LeaderLeaseRow(name=self.name, holder=self.holder, expires_at=until, version=1))
                    return True, until
                except IntegrityError:  # another server inserted it first
                    row = s.execute(select(LeaderLeaseRow).where(LeaderLeaseRow.name == self.name)).scalar_one()
            if row.holder != self.holder and row.expires_at > now:
                return False, row.expires_at
            # Renewing our own, or taking over an expired one, only if nobody wrote since we read: of a renewal
            # and a takeover racing (PostgreSQL re-checks the WHERE on the committed row), one wins.
            changed = s.execute(
                update(LeaderLeaseRow)
                .where(LeaderLeaseRow.name == self.name, LeaderLeaseRow.version == row.version)
                .values(holder=self.holder, expires_at=until, version=row.version + 1)
            ).rowcount
            return (changed == 1), (until if changed == 1 else row.expires_at)

    def release(self) -> None:
        """Let another server take the lease at its next look (a clean stop)."""
        with self._db.session() as s:
            s.execute(update(LeaderLeaseRow)
                      .where(LeaderLeaseRow.name == self.name, LeaderLeaseRow.holder == self.holder)
                      .values(expires_at=self._clock()))
