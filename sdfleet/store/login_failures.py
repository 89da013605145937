"""Failed logins in a table, so every API server behind a load balancer shares one login limiter."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select

from sdfleet.domain.accounts import LoginFailureCounts
from sdfleet.store.database import Database
from sdfleet.store.tables import LoginFailureRow


class SqlLoginFailures:
    """`login_failures` rows: appended on each failure, counted per window, pruned as they age out."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, *, username: str, address: str, at: datetime, prune_before: datetime) -> None:
        """Record one failure and drop those older than `prune_before` (no longer in any window)."""
        with self._db.session(write_lock=True) as s:
            s.add(LoginFailureRow(username=username[:64], address=address[:64], at=at))
            s.execute(delete(LoginFailureRow).where(LoginFailureRow.at < prune_before))

    def counts(self, *, username: str, address: str, since: datetime) -> LoginFailureCounts:
        """Failures since `since`: of this username from this address, from this address, of this username."""
        username, address = username[:64], address[:64]
        row = LoginFailureRow
        recent = row.at >= since
        with self._db.session(write_lock=False) as s:
            pair, pair_oldest = s.execute(
                select(func.count(), func.min(row.at)).where(recent, row.username == username, row.address == address)
            ).one()
            by_address, address_oldest = s.execute(
                select(func.count(), func.min(row.at)).where(recent, row.address == address)
            ).one()
            by_user, user_latest = s.execute(
                select(func.count(), func.max(row.at)).where(recent, row.username == username)
            ).one()
        return LoginFailureCounts(pair=pair, pair_oldest=pair_oldest, address=by_address,
                                  address_oldest=address_oldest, user=by_user, user_latest=user_latest)

    def clear(self, *, username: str, address: str) -> None:
        """Forget this username's failures from this address (its owner just signed in from there)."""
        with self._db.session(write_lock=True) as s:
            s.execute(delete(LoginFailureRow).where(LoginFailureRow.username == username[:64],
                                                    LoginFailureRow.address == address[:64]))


class MemoryLoginFailures:
    """The same contract in memory, for unit tests."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, datetime]] = []

    def add(self, *, username: str, address: str, at: datetime, prune_before: datetime) -> None:
        self.rows = [r for r in self.rows if r[2] >= prune_before] + [(username[:64], address[:64], at)]

    def counts(self, *, username: str, address: str, since: datetime) -> LoginFailureCounts:
        username, address = username[:64], address[:64]
        recent = [r for r in self.rows if r[2] >= since]
        pair = [r[2] for r in recent if r[0] == username and r[1] == address]
        by_address = [r[2] for r in recent if r[1] == address]
        by_user = [r[2] for r in recent if r[0] == username]
        return LoginFailureCounts(pair=len(pair), pair_oldest=min(pair, default=None), address=len(by_address),
                                  address_oldest=min(by_address, default=None), user=len(by_user),
                                  user_latest=max(by_user, default=None))

    def clear(self, *, username: str, address: str) -> None:
        self.rows = [r for r in self.rows if (r[0], r[1]) != (username[:64], address[:64])]
