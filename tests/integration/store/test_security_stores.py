"""Contract tests of the audit log and the login-failure store: the same cases in memory, on SQLite and on
PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from sdfleet.domain.audit import AuditAction, AuditEvent, AuditQuery, AuditTarget
from sdfleet.domain.ids import new_id
from sdfleet.domain.pagination import PageRequest
from sdfleet.store import migrate
from sdfleet.store.audit import MemoryAuditLog, SqlAuditLog
from sdfleet.store.database import Database
from sdfleet.store.login_failures import MemoryLoginFailures, SqlLoginFailures

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    """None for the in-memory fake, else a migrated database (SQLite, then PostgreSQL)."""
    if request.param == "memory":
        yield None
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        from tests.fixtures.databases import create_pg_database, drop_pg_database

        request.getfixturevalue("pg_available")
        url = create_pg_database()
        request.addfinalizer(lambda: drop_pg_database(url))
    database = Database(url)
    migrate.upgrade(database)
    yield database
    database.dispose()


@pytest.fixture
def audit_store(backend):
    return MemoryAuditLog() if backend is None else SqlAuditLog(backend)


@pytest.fixture
def failures(backend):
    return MemoryLoginFailures() if backend is None else SqlLoginFailures(backend)


def _event(action, *, minutes, actor="ann", target=("user", "u1", "bob"), changes=None) -> AuditEvent:
    return AuditEvent(id=new_id(), at=T0 + timedelta(minutes=minutes), action=action,
                      target=AuditTarget(*target), actor_id=f"id-{actor}", actor_name=actor, credential="session",
                      address="192.0.2.1", changes=changes or {}, details={"n": minutes})


def test_audit_events_round_trip_newest_first_with_cursor(audit_store):
    for i in range(5):
        audit_store.append(_event(AuditAction.USER_UPDATE, minutes=i,
                                  changes={"email": {"before": None, "after": f"{i}@example.com"}}))
    first = audit_store.list(AuditQuery(), PageRequest(limit=2))
    assert [e.details["n"] for e in first.items] == [4, 3] and first.next_cursor
    from sdfleet.domain.pagination import decode_cursor

    rest = audit_store.list(AuditQuery(), PageRequest(after=decode_cursor(first.next_cursor), limit=10))
    assert [e.details["n"] for e in rest.items] == [2, 1, 0] and rest.next_cursor is None
    event = rest.items[-1]
    assert event.at == T0 and event.at.tzinfo is not None
    assert event.changes == {"email": {"before": None, "after": "0@example.com"}}
    assert (event.actor_name, event.credential, event.address, event.target) == (
        "ann", "session", "192.0.2.1", AuditTarget("user", "u1", "bob"))


def test_audit_filters(audit_store):
    audit_store.append(_event(AuditAction.LOGIN, minutes=0, actor="ann"))
    audit_store.append(_event(AuditAction.USER_CREATE, minutes=1, actor="ann", target=("user", "u2", "cy")))
    audit_store.append(_event(AuditAction.ROLE_DELETE, minutes=2, actor="bob", target=("role", "r1", "r1")))
    audit_store.append(_event(AuditAction.MODEL_RENAME, minutes=3, actor="bob", target=("model", "m1", "x.ckpt")))

    def actions(**query):
        return [e.action.value for e in audit_store.list(AuditQuery(**query), PageRequest()).items]

    assert actions(actor="bob") == ["model.rename", "role.delete"]
    assert actions(action="user.") == ["user.create"]
    assert actions(action="auth.login") == ["auth.login"]
    assert actions(action="auth.") == ["auth.login"]
    assert actions(action="user%") == [] and actions(action="%.") == []  # LIKE wildcards are literal
    assert actions(target_kind="role") == ["role.delete"]
    assert actions(target="cy") == ["user.create"] and actions(target="m1") == ["model.rename"]
    assert actions(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)) == ["role.delete",
                                                                                         "user.create"]


def test_audit_events_cannot_be_changed_or_deleted(db):
    """Append-only in the database: triggers refuse UPDATE and DELETE on both backends."""
    SqlAuditLog(db).append(_event(AuditAction.LOGIN, minutes=0))
    for statement in ("UPDATE audit_events SET actor_name = 'mallory'", "DELETE FROM audit_events"):
        with pytest.raises(DatabaseError, match="append-only"), db.session() as s:
            s.execute(text(statement))
    with db.session() as s:
        assert s.execute(text("SELECT actor_name FROM audit_events")).scalars().all() == ["ann"]


def test_login_failures_count_per_pair_address_and_user(failures):
    window_start = T0 - timedelta(minutes=5)
    for i, (user, address) in enumerate([("ann", "a1"), ("ann", "a1"), ("ann", "a2"), ("bob", "a1")]):
        failures.add(username=user, address=address, at=T0 + timedelta(seconds=i), prune_before=window_start)
    counts = failures.counts(username="ann", address="a1", since=window_start)
    assert (counts.pair, counts.address, counts.user) == (2, 3, 3)
    assert counts.pair_oldest == T0 and counts.address_oldest == T0
    assert counts.user_latest == T0 + timedelta(seconds=2)
    later = failures.counts(username="ann", address="a1", since=T0 + timedelta(seconds=1))
    assert (later.pair, later.address, later.user) == (1, 2, 2)
    none = failures.counts(username="cy", address="a9", since=window_start)
    assert (none.pair, none.address, none.user, none.pair_oldest, none.user_latest) == (0, 0, 0, None, None)


def test_login_failures_clear_and_prune(failures):
    failures.add(username="ann", address="a1", at=T0, prune_before=T0 - timedelta(minutes=5))
    failures.add(username="ann", address="a2", at=T0, prune_before=T0 - timedelta(minutes=5))
    failures.clear(username="ann", address="a1")
    counts = failures.counts(username="ann", address="a1", since=T0 - timedelta(minutes=5))
    assert (counts.pair, counts.user) == (0, 1)
    # A failure much later prunes rows that have left every window.
    failures.add(username="bob", address="a3", at=T0 + timedelta(hours=1), prune_before=T0 + timedelta(minutes=55))
    assert failures.counts(username="ann", address="a2", since=T0 - timedelta(days=1)).user == 0
