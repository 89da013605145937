"""Queue contract tests: the same cases on SQLite and PostgreSQL."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from sdfleet.domain.accounts import User
from sdfleet.domain.ids import new_id
from sdfleet.jobs.records import EventType, JobOutput, JobProgress, JobStatus
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.store import migrate
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.jobs import DuplicateSubmission, NewJob, SqlJobQueue, StaleLease

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    migrate.upgrade(database)
    with database.session() as s:
        for name in ("ann", "bob", "cid"):
            AccountRepository(s).add_user(User(id=name, username=name, roles=()), password_hash="h", now=T0)
    yield database
    database.dispose()


@pytest.fixture
def queue(db):
    return SqlJobQueue(db)


def submit(queue, user="ann", *, key=None, endpoint="default", max_attempts=3, at=T0):
    return queue.submit(NewJob(id=new_id(), user_id=user, endpoint=endpoint,
                               spec=GenerateSpec(graph={}), summary=JobSummary(), max_attempts=max_attempts,
                               idempotency_key=key, request_hash="h" if key else None), now=at)


def claim(queue, worker="w1", *, at=T0, lease=30):
    return queue.claim(worker_id=worker, endpoints=["default"], now=at, lease_seconds=lease)


def test_claim_grants_fenced_lease_and_events(queue):
    job = submit(queue)
    lease = claim(queue)
    assert lease.job.id == job.id and lease.job.status is JobStatus.RUNNING
    assert lease.fencing_token == 1 and lease.job.attempts == 1
    assert claim(queue) is None
    types = [e.type for e in queue.events_after(job.id, 0)]
    assert types == [EventType.QUEUED, EventType.STARTED]


def test_claim_only_from_own_endpoints(queue):
    submit(queue, endpoint="gpu-pool")
    assert claim(queue) is None
    assert queue.claim(worker_id="w", endpoints=["gpu-pool"], now=T0, lease_seconds=5) is not None


def test_stale_token_is_refused_everywhere(queue):
    job = submit(queue)
    lease = claim(queue, at=T0, lease=5)
    assert queue.reap(now=T0 + timedelta(seconds=6)).requeued == [job.id]
    second = claim(queue, "w2", at=T0 + timedelta(seconds=7))
    assert second.fencing_token == 2 and second.job.attempts == 2
    with pytest.raises(StaleLease):
        queue.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=5, progress=None)
    with pytest.raises(StaleLease):
        queue.complete(job.id, token=lease.fencing_token, outputs=[], now=T0)
    with pytest.raises(StaleLease):
        queue.fail(job.id, token=lease.fencing_token, error={"code": "x", "message": "x"}, now=T0)
    done = queue.complete(job.id, token=second.fencing_token, now=T0, outputs=[
        JobOutput(index=0, key="outputs/x/0.png", node_id="9", width=8, height=8, size=10)])
    assert done.status is JobStatus.SUCCEEDED and len(done.outputs) == 1
    with pytest.raises(StaleLease):
        queue.complete(job.id, token=second.fencing_token, outputs=[], now=T0)


def test_attempts_exhausted_fail_with_reason(queue):
    job = submit(queue, max_attempts=2)
    for i in range(2):
        at = T0 + timedelta(seconds=10 * i)
        assert claim(queue, at=at, lease=1) is not None
        queue.reap(now=at + timedelta(seconds=2))
    failed = queue.get(job.id)
    assert failed.status is JobStatus.FAILED and failed.error["code"] == "lease_expired"


def test_heartbeat_extends_lease_and_reports_cancel(queue):
    job = submit(queue)
    lease = claim(queue, lease=5)
    queue.heartbeat(job.id, token=lease.fencing_token, now=T0 + timedelta(seconds=4), lease_seconds=5,
                    progress=JobProgress(value=3, max=10, node_id="3"))
    assert queue.reap(now=T0 + timedelta(seconds=8)).requeued == []
    queue.cancel(job.id, now=T0)
    hb = queue.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=5, progress=None)
    assert hb.cancel_requested and hb.progress.value == 3
    done = queue.acknowledge_cancel(job.id, token=lease.fencing_token, now=T0)
    assert done.status is JobStatus.CANCELLED


def test_cancel_queued_is_immediate(queue):
    job = submit(queue)
    assert queue.cancel(job.id, now=T0).status is JobStatus.CANCELLED
    assert claim(queue) is None


def test_release_requeues_without_counting_attempt(queue):
    job = submit(queue)
    lease = claim(queue)
    assert queue.release(job.id, token=lease.fencing_token, now=T0, reason="shutdown").status is JobStatus.QUEUED
    again = claim(queue)
    assert again.job.attempts == 1 and again.fencing_token == 2


def test_fairness_newcomer_waits_at_most_one_job_per_worker(queue):
    for i in range(30):
        submit(queue, "ann", at=T0 + timedelta(milliseconds=i))
    first = claim(queue)  # one worker busy with ann's first job
    assert first.job.user_id == "ann"
    submit(queue, "bob", at=T0 + timedelta(seconds=1))
    queue.complete(first.job.id, token=first.fencing_token, outputs=[], now=T0)
    order = []
    for _ in range(3):
        lease = claim(queue)
        order.append(lease.job.user_id)
        queue.complete(lease.job.id, token=lease.fencing_token, outputs=[], now=T0)
    assert "bob" in order[:2], order


def test_fairness_interleaves_two_backlogs(queue):
    for i in range(5):
        submit(queue, "ann", at=T0 + timedelta(milliseconds=i))
    for i in range(5):
        submit(queue, "bob", at=T0 + timedelta(milliseconds=100 + i))
    order = []
    while (lease := claim(queue)) is not None:
        order.append(lease.job.user_id)
        queue.complete(lease.job.id, token=lease.fencing_token, outputs=[], now=T0)
    assert order[:4].count("bob") >= 1 and order[:6].count("bob") >= 2, order


def test_idempotency_key_returns_same_job(queue):
    job = submit(queue, key="k1")
    with pytest.raises(DuplicateSubmission) as dup:
        submit(queue, key="k1")
    assert dup.value.job.id == job.id
    assert submit(queue, "bob", key="k1").id != job.id  # keys are per user


def test_concurrent_claims_take_each_job_once(queue):
    jobs = {submit(queue).id for _ in range(20)}
    taken, lock = [], threading.Lock()

    def work(worker):
        while (lease := queue.claim(worker_id=worker, endpoints=["default"], now=T0, lease_seconds=30)) is not None:
            with lock:
                taken.append(lease.job.id)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(taken) == sorted(jobs)


def test_concurrent_idempotent_submissions_make_one_job(queue):
    key = uuid.uuid4().hex
    ids, errors, lock = set(), [], threading.Lock()

    def go():
        try:
            job = submit(queue, key=key)
        except DuplicateSubmission as dup:
            job = dup.job
        except Exception as exc:  # collected for the assertion
            errors.append(exc)
            return
        with lock:
            ids.add(job.id)

    threads = [threading.Thread(target=go) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(ids) == 1


def test_listing_is_per_user_newest_first(queue):
    a = [submit(queue, "ann").id for _ in range(3)]
    submit(queue, "bob")
    page = queue.list_for_user("ann", __import__("sdfleet.domain.pagination", fromlist=["PageRequest"]).PageRequest(limit=2))
    assert [j.id for j in page.items] == a[::-1][:2] and page.next_cursor


def test_max_running_per_user_skips_busy_users(queue):
    submit(queue, "ann")
    submit(queue, "ann")
    submit(queue, "bob", at=T0 + timedelta(seconds=5))
    take = lambda w: queue.claim(worker_id=w, endpoints=["default"], now=T0, lease_seconds=30,  # noqa: E731
                                 max_running_per_user=1)
    assert take("w1").job.user_id == "ann"
    assert take("w2").job.user_id == "bob"
    assert take("w3") is None  # ann's second job waits for her first
