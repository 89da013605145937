"""The JobQueue contract: the same cases on the in-memory fake, SQLite and PostgreSQL."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sqlalchemy_event

from sdfleet.domain.accounts import User
from sdfleet.domain.ids import new_id
from sdfleet.domain.pagination import PageRequest
from sdfleet.jobs.live import LiveJobQueue, LiveProgress
from sdfleet.jobs.memory import MemoryJobQueue
from sdfleet.jobs.queue import DuplicateSubmission, JobQueue, StaleLease
from sdfleet.jobs.records import EventType, JobKind, JobOutput, JobProgress, JobStatus, NewJob
from sdfleet.jobs.spec import GenerateSpec, JobSummary, ModelPin
from sdfleet.store import migrate
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.jobs import SqlJobQueue
from sdfleet.store.types import utcnow
from tests.fixtures.databases import create_pg_database, drop_pg_database

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "live-sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def queue(request, tmp_path):
    if request.param == "memory":
        yield MemoryJobQueue()
        return
    if request.param in ("sqlite", "live-sqlite"):
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        request.getfixturevalue("pg_available")
        url = create_pg_database()
    database = Database(url)
    try:
        migrate.upgrade(database)
        with database.session() as s:
            for name in ("ann", "bob", "cid"):
                AccountRepository(s).add_user(User(id=name, username=name, roles=()), password_hash="h", now=T0)
        if request.param == "live-sqlite":  # what the server runs: progress in memory, stored at the end
            live = LiveProgress()
            yield LiveJobQueue(SqlJobQueue(database, unsaved_progress=live.unsaved), live, clock=utcnow)
        else:
            yield SqlJobQueue(database)
    finally:
        database.dispose()
        if request.param == "postgres":
            drop_pg_database(url)


def submit(queue: JobQueue, user="ann", *, key=None, endpoint="default", max_attempts=3, at=T0, models=()):
    return queue.submit(NewJob(id=new_id(), user_id=user, endpoint=endpoint,
                               spec=GenerateSpec(graph={}, models=models), summary=JobSummary(prompt="p", seed=7),
                               max_attempts=max_attempts,
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
    assert queue.get(job.id) == done  # what was returned is what was stored
    with pytest.raises(StaleLease):
        queue.complete(job.id, token=second.fencing_token, outputs=[], now=T0)
    assert [e.type for e in queue.events_after(job.id, 0)][-2:] == [EventType.OUTPUT, EventType.SUCCEEDED]


@pytest.mark.parametrize("queue", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_completion_is_a_few_core_statements_without_a_read_back(queue):
    """Claim: one UPDATE … RETURNING and its event; completion: one fenced UPDATE … RETURNING, the outputs, the
    events, the outbox row (issue 17 §3: CPU per job). The SQL queue only: statements are what is counted."""
    statements = []
    sqlalchemy_event.listen(queue._db.engine, "before_cursor_execute",
                            lambda conn, cursor, sql, *a: statements.append(sql.split()[0].upper()))
    job = submit(queue)
    statements.clear()
    lease = claim(queue)
    assert statements.count("SELECT") == 0 and statements.count("UPDATE") == 1
    statements.clear()
    queue.complete(job.id, token=lease.fencing_token, now=T0, outputs=[
        JobOutput(index=0, key="k", node_id="9", width=8, height=8, size=1)])
    assert [s for s in statements if s not in ("BEGIN",)] == ["UPDATE", "INSERT", "INSERT", "INSERT"]


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
    page = queue.list_for_user("ann", PageRequest(limit=2))
    assert [j.id for j in page.items] == sorted(a, reverse=True)[:2] and page.next_cursor  # ids sort by time


def test_max_running_per_user_skips_busy_users(queue):
    submit(queue, "ann")
    submit(queue, "ann")
    submit(queue, "bob", at=T0 + timedelta(seconds=5))
    take = lambda w: queue.claim(worker_id=w, endpoints=["default"], now=T0, lease_seconds=30,  # noqa: E731
                                 max_running_per_user=1)
    assert take("w1").job.user_id == "ann"
    assert take("w2").job.user_id == "bob"
    assert take("w3") is None  # ann's second job waits for her first


def test_spec_and_summary_round_trip(queue):
    pin = ModelPin(folder="checkpoints", name="a.safetensors", sha256="ab" * 32, size=12)
    job = submit(queue, models=(pin,))
    got = queue.get(job.id)
    assert got.kind is JobKind.GENERATE and got.spec.models == (pin,)
    assert got.summary == JobSummary(prompt="p", seed=7)
    lease = claim(queue)
    done = queue.complete(job.id, token=lease.fencing_token, outputs=[], now=T0, info={"seconds": 1.5})
    assert done.summary.info == {"seconds": 1.5} and done.summary.prompt == "p"


def test_holds_model_only_while_running(queue):
    pin = ModelPin(folder="loras", name="l.safetensors", sha256="cd" * 32, size=3)
    job = submit(queue, models=(pin,))
    assert not queue.holds_model("w1", pin.sha256)
    lease = claim(queue)
    assert queue.holds_model("w1", pin.sha256) and not queue.holds_model("w2", pin.sha256)
    assert not queue.holds_model("w1", "ef" * 32)
    assert [j.id for j in queue.running_for_worker("w1")] == [job.id]
    queue.fail(job.id, token=lease.fencing_token, error={"code": "x", "message": "m"}, now=T0)
    assert not queue.holds_model("w1", pin.sha256)


def test_reap_reports_cancelled_jobs_as_cancelled(queue):
    asked, lost = submit(queue), submit(queue, max_attempts=1)
    claim(queue, "w1", lease=1)
    claim(queue, "w2", lease=1)
    queue.cancel(asked.id, now=T0)
    result = queue.reap(now=T0 + timedelta(seconds=2))
    assert result.cancelled == [asked.id] and result.failed == [lost.id] and result.requeued == []
    assert queue.get(asked.id).status is JobStatus.CANCELLED
    assert [e.type for e in queue.events_after(asked.id, 0)][-1] is EventType.CANCELLED


def test_cancel_of_a_deleted_job_is_none(queue):
    job = submit(queue)
    queue.delete(job.id)
    assert queue.get(job.id) is None and queue.cancel(job.id, now=T0) is None
    assert queue.events_after(job.id, 0) == []


def test_count_and_filters(queue):
    a = submit(queue, "ann")
    submit(queue, "ann", endpoint="other")
    submit(queue, "bob", at=T0 + timedelta(seconds=1))
    claim(queue)
    assert queue.count(statuses=(JobStatus.QUEUED,)) == 2
    assert queue.count(user_id="ann", statuses=(JobStatus.QUEUED, JobStatus.RUNNING)) == 2
    assert queue.count(statuses=(JobStatus.QUEUED,), endpoint="other") == 1
    running = queue.list_for_user("ann", PageRequest(limit=10), status=JobStatus.RUNNING, kind=JobKind.GENERATE)
    assert [j.id for j in running.items] == [a.id]
    assert queue.list_for_user("ann", PageRequest(limit=10), kind=JobKind.TRAIN).items == []


def test_events_resume_after_a_sequence_number(queue):
    job = submit(queue)
    lease = claim(queue)
    queue.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=5,
                    progress=JobProgress(value=1, max=4, node_id="3"))
    queue.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=5,
                    progress=JobProgress(value=1, max=4, node_id="3"))  # unchanged: no event
    queue.complete(job.id, token=lease.fencing_token, now=T0, outputs=[
        JobOutput(index=0, key="outputs/x/0.png", node_id="9", width=8, height=8, size=10)])
    events = queue.events_after(job.id, 0)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.type for e in events] == [EventType.QUEUED, EventType.STARTED, EventType.PROGRESS, EventType.OUTPUT,
                                        EventType.SUCCEEDED]
    assert [e.seq for e in queue.events_after(job.id, 3)] == [4, 5]


def test_progress_metrics_travel_in_events_and_unfinished_by_kind(queue):
    job = submit(queue)
    lease = claim(queue)
    assert queue.last_event(job.id, EventType.PROGRESS) is None
    queue.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=5,
                    progress=JobProgress(value=2, max=10, node_id=None, metrics={"loss": 0.5}))
    event = queue.last_event(job.id, EventType.PROGRESS)
    assert event.data["metrics"] == {"loss": 0.5} and queue.get(job.id).progress.value == 2
    assert [j.id for j in queue.unfinished(kind=JobKind.GENERATE)] == [job.id]
    assert queue.unfinished(kind=JobKind.TRAIN) == []


def test_find_for_user_pages_past_any_cap(queue):
    ids = [submit(queue, "ann", at=T0 + timedelta(milliseconds=i)).id for i in range(250)]
    submit(queue, "bob", endpoint="other")  # not claimed here; not ann's
    for _ in range(100):  # the 100 oldest run and finish
        lease = claim(queue)
        queue.complete(lease.job.id, token=lease.fencing_token, outputs=[], now=T0)
    newest = sorted(ids, reverse=True)
    pages = [queue.find_for_user("ann", kind=JobKind.GENERATE, offset=o, limit=100) for o in (0, 100, 200)]
    assert [len(p) for p in pages] == [100, 100, 50]
    assert [j.id for p in pages for j in p] == newest
    done = queue.find_for_user("ann", statuses=(JobStatus.SUCCEEDED,), offset=0, limit=500, oldest_first=True)
    assert len(done) == 100 and [j.id for j in done] == sorted(j.id for j in done)
    assert queue.count(user_id="ann", statuses=(JobStatus.SUCCEEDED,), kind=JobKind.GENERATE) == 100
    assert queue.count(user_id="ann", statuses=(JobStatus.QUEUED,), kind=JobKind.TRAIN) == 0
