"""Contract tests of the account repository: the same cases on SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from sdfleet.domain.accounts import ApiKey, Role, User
from sdfleet.domain.pagination import PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.store import migrate
from sdfleet.store.accounts import AccountRepository

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _seed_role(db, name="artist", perms=frozenset({Permission.INFERENCE_ALL})):
    with db.session() as s:
        AccountRepository(s).add_role(Role(name=name, permissions=perms, created_at=NOW))


def test_migrations_reach_head_and_are_idempotent(db):
    assert migrate.current_revision(db) == migrate.head_revision()
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()


def test_user_round_trip_keeps_roles_and_aware_times(db):
    _seed_role(db)
    with db.session() as s:
        AccountRepository(s).add_user(User(id="u1", username="ann", roles=("artist",)), password_hash="h", now=NOW)
    with db.session() as s:
        repo = AccountRepository(s)
        user = repo.get_user_by_username("ann")
        creds = repo.get_credentials("ann")
    assert user.roles == ("artist",)
    assert user.created_at == NOW and user.created_at.tzinfo is not None
    assert creds.password_hash == "h"


def test_duplicate_username_is_refused_by_the_database(db):
    with db.session() as s:
        AccountRepository(s).add_user(User(id="u1", username="ann", roles=()), password_hash="h", now=NOW)
    with pytest.raises(IntegrityError), db.session() as s:
        AccountRepository(s).add_user(User(id="u2", username="ann", roles=()), password_hash="h", now=NOW)


def test_unknown_role_is_refused_by_foreign_key(db):
    with pytest.raises(IntegrityError), db.session() as s:
        AccountRepository(s).add_user(User(id="u1", username="ann", roles=("ghost",)), password_hash="h", now=NOW)


def test_deleting_role_strips_it_from_users(db):
    _seed_role(db, "a")
    _seed_role(db, "b")
    with db.session() as s:
        AccountRepository(s).add_user(User(id="u1", username="ann", roles=("a", "b")), password_hash="h", now=NOW)
    with db.session() as s:
        AccountRepository(s).delete_role("a")
    with db.session() as s:
        assert AccountRepository(s).get_user("u1").roles == ("b",)


def test_deleting_user_cascades_sessions_and_keys(db):
    with db.session() as s:
        repo = AccountRepository(s)
        repo.add_user(User(id="u1", username="ann", roles=()), password_hash="h", now=NOW)
        repo.add_session(session_id="s1", token_hash="t" * 64, user_id="u1", now=NOW,
                         expires_at=NOW + timedelta(hours=1), client=None)
        repo.add_api_key(ApiKey(id="k1", user_id="u1", name="k", prefix="sfk_x", created_at=NOW), key_hash="k" * 64)
    with db.session() as s:
        AccountRepository(s).delete_user("u1")
    with db.session() as s:
        repo = AccountRepository(s)
        assert repo.find_session("t" * 64) is None
        assert repo.find_api_key("k" * 64) is None


def test_user_pages_are_ordered_and_complete(db):
    with db.session() as s:
        repo = AccountRepository(s)
        for i in range(7):
            repo.add_user(User(id=f"u{i}", username=f"user{6 - i}", roles=()), password_hash="h", now=NOW)
    seen, cursor = [], None
    while True:
        with db.session() as s:
            page = AccountRepository(s).list_users(PageRequest.parse(cursor=cursor, limit=3))
        seen += [u.username for u in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(f"user{i}" for i in range(7))


def test_session_revocation(db):
    with db.session() as s:
        repo = AccountRepository(s)
        repo.add_user(User(id="u1", username="ann", roles=()), password_hash="h", now=NOW)
        repo.add_session(session_id="s1", token_hash="a" * 64, user_id="u1", now=NOW,
                         expires_at=NOW + timedelta(hours=1), client="1.2.3.4")
    with db.session() as s:
        AccountRepository(s).revoke_session("s1", now=NOW)
    with db.session() as s:
        assert AccountRepository(s).find_session("a" * 64).revoked_at == NOW


def test_rollback_leaves_nothing_half_written(db):
    with pytest.raises(RuntimeError), db.session() as s:
        AccountRepository(s).add_user(User(id="u1", username="ann", roles=()), password_hash="h", now=NOW)
        raise RuntimeError("boom")
    with db.session() as s:
        assert AccountRepository(s).count_users() == 0
