"""URL imports' leases on SQLite and PostgreSQL: a live lease is never taken over, an expired one is (with a new
fencing token), the old holder's writes are refused, and a takeover happens once however many servers race."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from sdfleet.domain.accounts import User
from sdfleet.domain.checkpoints import ImportJob, ImportStatus, ModelType
from sdfleet.domain.ids import new_id
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.imports import ImportLeaseLost, ImportRepository

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = 30.0


def add_import(db: Database, *, owner: str = "server-a") -> tuple[str, int]:
    user = User(id=new_id(), username=f"u{new_id()[-8:]}", roles=())
    job = ImportJob(id=new_id(), user_id=user.id, url="https://models.example/x.safetensors",
                    model_type=ModelType.LORA, name=None, allowed_roles=(), status=ImportStatus.QUEUED, bytes_done=0,
                    bytes_total=None, created_at=T0, updated_at=T0)
    with db.session() as s:
        AccountRepository(s).add_user(user, password_hash="x", now=T0)
        lease = ImportRepository(s).add(job, owner=owner, lease_until=T0 + timedelta(seconds=LEASE))
    return job.id, lease.token


def claim(db: Database, owner: str, now: datetime, *, max_attempts: int = 3):
    with db.session() as s:
        return ImportRepository(s).claim_expired(owner=owner, now=now, lease_seconds=LEASE, limit=10,
                                                 max_attempts=max_attempts, exhausted_reason="stopped too often")


def test_a_live_lease_is_not_taken_over_and_renewing_keeps_it(db):
    import_id, token = add_import(db)
    assert claim(db, "server-b", T0 + timedelta(seconds=LEASE - 1)) == []
    with db.session() as s:
        ImportRepository(s).renew(import_id, token=token, now=T0 + timedelta(seconds=LEASE - 1), lease_seconds=LEASE)
    assert claim(db, "server-b", T0 + timedelta(seconds=LEASE + 5)) == []
    with db.session() as s:
        owner, expires, current = ImportRepository(s).lease_of(import_id)
    assert (owner, expires, current) == ("server-a", T0 + timedelta(seconds=2 * LEASE - 1), token)


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_off(db):
    import_id, old = add_import(db)
    with db.session() as s:
        ImportRepository(s).update(import_id, token=old, now=T0, status=ImportStatus.RUNNING, bytes_done=100)
    [lease] = claim(db, "server-b", T0 + timedelta(seconds=LEASE + 1))
    assert lease.job.id == import_id and lease.token == old + 1
    assert lease.job.attempts == 2 and lease.job.bytes_done == 0 and lease.job.status is ImportStatus.QUEUED
    # The stopped server comes back: every write it tries is refused.
    for write in (
        lambda r: r.renew(import_id, token=old, now=T0, lease_seconds=LEASE),
        lambda r: r.update(import_id, token=old, now=T0, bytes_done=200),
        lambda r: r.finish(import_id, token=old, now=T0, status=ImportStatus.SUCCEEDED, checkpoint_id="c1"),
    ):
        with pytest.raises(ImportLeaseLost), db.session() as s:
            write(ImportRepository(s))
    with db.session() as s:
        ImportRepository(s).finish(import_id, token=lease.token, now=T0, status=ImportStatus.SUCCEEDED,
                                   checkpoint_id="c2")
        job = ImportRepository(s).get(import_id)
    assert (job.status, job.checkpoint_id) == (ImportStatus.SUCCEEDED, "c2")
    # Finished: nobody takes it, and the new holder cannot finish it twice.
    assert claim(db, "server-c", T0 + timedelta(days=1)) == []
    with pytest.raises(ImportLeaseLost), db.session() as s:
        ImportRepository(s).finish(import_id, token=lease.token, now=T0, status=ImportStatus.FAILED, error="x")


def test_an_import_whose_servers_keep_stopping_fails(db):
    import_id, _ = add_import(db)
    now = T0
    for attempt in (2, 3):
        now += timedelta(seconds=LEASE + 1)
        [lease] = claim(db, f"server-{attempt}", now)
        assert lease.job.attempts == attempt
    assert claim(db, "server-4", now + timedelta(seconds=LEASE + 1)) == []
    with db.session() as s:
        job = ImportRepository(s).get(import_id)
    assert job.status is ImportStatus.FAILED and job.error == "stopped too often"


def test_rows_of_an_older_server_without_a_lease_are_taken_over(db):
    import_id, _ = add_import(db)
    from sdfleet.store.tables import ImportRow

    with db.session() as s:
        row = s.get(ImportRow, import_id)
        row.status, row.lease_expires_at, row.owner = ImportStatus.RUNNING.value, None, None
    [lease] = claim(db, "server-b", T0)
    assert lease.job.id == import_id


def test_racing_servers_take_an_expired_import_over_once(db):
    ids = [add_import(db)[0] for _ in range(4)]
    won: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def server(name: str) -> None:
        barrier.wait()
        won[name] = [lease.job.id for lease in claim(db, name, T0 + timedelta(seconds=LEASE + 1))]

    threads = [threading.Thread(target=server, args=(f"server-{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    taken = [i for got in won.values() for i in got]
    assert sorted(taken) == sorted(ids), won


def test_a_released_import_is_free_at_once_and_its_try_not_counted(db):
    import_id, token = add_import(db)
    with db.session() as s:
        ImportRepository(s).release(import_id, token=token, now=T0)
    with pytest.raises(ImportLeaseLost), db.session() as s:
        ImportRepository(s).update(import_id, token=token, now=T0, bytes_done=1)
    [lease] = claim(db, "server-b", T0 + timedelta(seconds=1))  # long before the 30 s lease would have run out
    assert lease.token == token + 2 and lease.job.attempts == 1
