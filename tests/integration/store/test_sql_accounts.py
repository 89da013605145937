"""Contract tests of SqlAccounts, the services' account store: a change and its audit event commit together, and a
check that refuses inside the transaction leaves nothing written. SQLite and PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest

from sdfleet.domain.accounts import ApiKey, Role, User
from sdfleet.domain.audit import AuditAction, AuditEvent, AuditQuery, AuditTarget
from sdfleet.domain.errors import Conflict
from sdfleet.domain.pagination import PageRequest
from sdfleet.domain.permissions import Permission
from sdfleet.store.accounts import SqlAccounts, UserWrite
from sdfleet.store.audit import SqlAuditLog
from sdfleet.store.endpoints import SqlEndpointStore

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _event(action: AuditAction, name: str) -> AuditEvent:
    return AuditEvent(id=f"e-{name}-{action.value}", at=NOW, action=action, target=AuditTarget("user", name, name),
                      actor_id=None, actor_name=None, credential=None, address=None, changes={}, details={})


def _actions(db) -> list[str]:
    return sorted(e.action.value for e in SqlAuditLog(db).list(AuditQuery(), PageRequest.parse(cursor=None, limit=100)).items)


@pytest.fixture
def accounts(db):
    store = SqlAccounts(db)
    store.ensure_roles([Role(name="artist", permissions=frozenset({Permission.INFERENCE_ALL}), created_at=NOW)])
    return store


def _add_ann(accounts: SqlAccounts) -> User:
    return accounts.add_user(User(id="u1", username="ann", roles=("artist",)), password_hash="h", now=NOW,
                             check=lambda roles: None, audit=lambda u: _event(AuditAction.USER_CREATE, u.id))


def test_a_change_and_its_event_commit_together_and_a_taken_name_writes_neither(db, accounts):
    user = _add_ann(accounts)
    assert user.roles == ("artist",)
    assert accounts.add_user(User(id="u2", username="ann", roles=()), password_hash="h", now=NOW,
                             check=lambda roles: None, audit=lambda u: _event(AuditAction.USER_CREATE, "u2")) is None
    assert _actions(db) == ["user.create"]


def test_a_check_that_refuses_inside_the_transaction_writes_nothing(db, accounts):
    _add_ann(accounts)

    def refuse(current, reads):
        assert [r.name for r in reads.roles(list(current.roles))] == ["artist"]
        assert reads.active_users_with_role("artist") == 1
        raise Conflict("no")

    with pytest.raises(Conflict):
        accounts.update_user("u1", now=NOW, decide=refuse, audit=lambda *a: [_event(AuditAction.USER_UPDATE, "u1")])
    with pytest.raises(Conflict):
        accounts.delete_user("u1", check=refuse, audit=lambda *a: _event(AuditAction.USER_DELETE, "u1"))
    assert accounts.get_user_by_username("ann").roles == ("artist",)
    assert _actions(db) == ["user.create"]


def test_an_update_that_ends_access_reports_what_it_ended_to_its_audit(db, accounts):
    _add_ann(accounts)
    accounts.add_session(session_id="s1", token_hash="a" * 64, user_id="u1", now=NOW,
                         expires_at=NOW + timedelta(hours=1), client=None, event=_event(AuditAction.LOGIN, "u1"))
    accounts.add_api_key(ApiKey(id="k1", user_id="u1", name="k", prefix="sdk_x", created_at=NOW), key_hash="b" * 64,
                         event=_event(AuditAction.API_KEY_CREATE, "u1"))
    seen = []

    def audit(before, after, ended):
        seen.append((before.disabled, after.disabled, ended))
        return [_event(AuditAction.USER_UPDATE, "u1")]

    accounts.update_user("u1", now=NOW, decide=lambda current, reads: UserWrite(
        disabled=True, end_sessions=True, delete_api_keys=True), audit=audit)
    (before, after, ended), = seen
    assert (before, after, ended.sessions, ended.api_keys) == (False, True, 1, 1)
    assert accounts.list_api_keys("u1", PageRequest.parse(cursor=None, limit=10)).items == []
    assert _actions(db) == ["api_key.create", "auth.login", "user.create", "user.update"]


def test_an_api_key_is_marked_used_only_when_its_check_passes(db, accounts):
    _add_ann(accounts)
    accounts.add_api_key(ApiKey(id="k1", user_id="u1", name="k", prefix="sdk_x", created_at=NOW), key_hash="b" * 64,
                         event=_event(AuditAction.API_KEY_CREATE, "u1"))

    def refuse(key, holder):
        raise Conflict("no")

    with pytest.raises(Conflict):
        accounts.api_key_holder("b" * 64, now=NOW, check=refuse, touch_after=timedelta(minutes=1))
    assert accounts.list_api_keys("u1", PageRequest.parse(cursor=None, limit=10)).items[0].last_used_at is None
    key, holder = accounts.api_key_holder("b" * 64, now=NOW, check=lambda key, holder: None,
                                          touch_after=timedelta(minutes=1))
    assert holder.permissions == frozenset({Permission.INFERENCE_ALL}) and holder.user.username == "ann"
    assert accounts.list_api_keys("u1", PageRequest.parse(cursor=None, limit=10)).items[0].last_used_at == NOW


def test_an_endpoint_store_names_the_roles_and_preload_files_that_do_not_exist(db, accounts):
    store = SqlEndpointStore(db)
    assert store.unknown_references(roles=["ghost", "artist", "nobody"], preload=["f" * 64]) == (
        ["ghost", "nobody"], ["f" * 64])
    assert store.unknown_references(roles=[], preload=[]) == ([], [])
