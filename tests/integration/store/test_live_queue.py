"""Live progress (issue 17 §3): heartbeats and progress cost no commit, readers see one event sequence, a
second API server sees progress and cancel requests, leases stay fenced, a crash loses only progress."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from sdfleet.domain.accounts import User
from sdfleet.domain.ids import new_id
from sdfleet.jobs.live import LiveJobQueue, LiveProgress
from sdfleet.jobs.queue import StaleLease
from sdfleet.jobs.records import EventType, JobOutput, JobProgress, JobStatus, NewJob, ProgressPhase
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.store import migrate
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.jobs import SqlJobQueue

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEASE = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Servers:
    """Two API servers on one database whose live progress is linked as NOTIFY links them."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.clock = Clock()
        self.commits = 0
        event.listen(database.engine, "commit", self._count)
        self.a = self.server()
        self.b = self.server()
        self.a.live.publish = self.b.live.receive
        self.b.live.publish = self.a.live.receive

    def _count(self, _conn) -> None:
        self.commits += 1

    def server(self) -> LiveJobQueue:
        live = LiveProgress()
        return LiveJobQueue(SqlJobQueue(self.database, unsaved_progress=live.unsaved), live, clock=self.clock)

    def submit(self):
        return self.a.submit(NewJob(id=new_id(), user_id="ann", endpoint="default", spec=GenerateSpec(graph={}),
                                    summary=JobSummary(), max_attempts=3, idempotency_key=None, request_hash=None),
                             now=self.clock.now)


@pytest.fixture
def servers(database_url):
    database = Database(database_url)
    migrate.upgrade(database)
    with database.session() as s:
        AccountRepository(s).add_user(User(id="ann", username="ann", roles=()), password_hash="h", now=T0)
    yield Servers(database)
    database.dispose()


def progress(value: int, maximum: int = 8) -> JobProgress:
    return JobProgress(value=value, max=maximum, node_id="3")


def test_progress_costs_no_commit_and_readers_see_one_sequence(servers):
    job = servers.submit()
    lease = servers.a.claim(worker_id="w1", endpoints=["default"], now=T0, lease_seconds=LEASE)
    before = servers.commits
    for step in range(1, 9):
        answer = servers.a.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=LEASE,
                                     progress=progress(step))
        assert answer.progress.value == step
    assert servers.commits == before  # eight steps, not one commit
    live = servers.a.events_after(job.id, 0)
    assert [e.type for e in live] == [EventType.QUEUED, EventType.STARTED] + [EventType.PROGRESS] * 8
    assert servers.a.get(job.id).progress.value == 8  # A1111's /progress and the job views read this
    # the other server (behind the same load balancer) streams the same events with the same ids
    assert [(e.seq, e.type, e.data) for e in servers.b.events_after(job.id, 0)] == \
        [(e.seq, e.type, e.data) for e in live]
    before = servers.commits
    done = servers.a.complete(job.id, token=lease.fencing_token, outputs=[
        JobOutput(index=0, key="k", node_id="9", width=64, height=64, size=1)], now=T0)
    assert servers.commits == before + 1  # the progress events are stored by the completion itself
    assert done.progress.value == 8
    stored = servers.server().events_after(job.id, 0)  # a fresh server: only what the database holds
    assert [(e.seq, e.type) for e in stored[:10]] == [(e.seq, e.type) for e in live]
    assert [e.type for e in stored[10:]] == [EventType.OUTPUT, EventType.SUCCEEDED]


def test_the_loading_model_phase_is_a_progress_event_before_the_steps_on_both_servers(servers):
    job = servers.submit()
    lease = servers.a.claim(worker_id="w1", endpoints=["default"], now=T0, lease_seconds=LEASE)
    loading = JobProgress(phase=ProgressPhase.LOADING_MODEL, model="demo-sd15.safetensors")
    for report in (loading, loading, progress(1)):  # a repeated phase makes no second event
        shown = servers.a.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=LEASE,
                                    progress=report)
        if report is loading:
            assert servers.b.get(job.id).progress.phase == "loading_model"  # the job views read this
    assert shown.progress.phase is None
    data = [e.data for e in servers.b.events_after(job.id, 0) if e.type is EventType.PROGRESS]
    assert data == [{"value": 0, "max": 0, "node_id": None, "phase": "loading_model",
                     "model": "demo-sd15.safetensors"}, {"value": 1, "max": 8, "node_id": "3"}]
    servers.a.complete(job.id, token=lease.fencing_token, outputs=[], now=T0)
    stored = servers.server().events_after(job.id, 0)
    assert [e.data for e in stored if e.type is EventType.PROGRESS] == data


def test_the_lease_is_written_only_when_less_than_half_is_left(servers):
    job = servers.submit()
    lease = servers.a.claim(worker_id="w1", endpoints=["default"], now=T0, lease_seconds=LEASE)
    before = servers.commits
    for seconds in (5, 10, 14):  # more than half of 30 s left: memory only
        servers.clock.now = T0 + timedelta(seconds=seconds)
        servers.a.heartbeat(job.id, token=lease.fencing_token, now=servers.clock.now, lease_seconds=LEASE,
                            progress=None)
    assert servers.commits == before
    servers.clock.now = T0 + timedelta(seconds=16)
    extended = servers.a.heartbeat(job.id, token=lease.fencing_token, now=servers.clock.now, lease_seconds=LEASE,
                                   progress=None)
    assert servers.commits == before + 1
    assert extended.lease_expires_at == servers.clock.now + timedelta(seconds=LEASE)
    # the stored lease moved: the reaper, on any server, leaves the job alone
    assert servers.b.reap(now=T0 + timedelta(seconds=40)).requeued == []


def test_a_cancel_on_one_server_reaches_the_heartbeat_on_the_other(servers):
    job = servers.submit()
    lease = servers.a.claim(worker_id="w1", endpoints=["default"], now=T0, lease_seconds=LEASE)
    servers.b.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=LEASE, progress=progress(1))
    servers.b.cancel(job.id, now=T0)
    answer = servers.a.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=LEASE,
                                 progress=progress(2))
    assert answer.cancel_requested
    ended = servers.a.acknowledge_cancel(job.id, token=lease.fencing_token, now=T0)
    assert ended.status is JobStatus.CANCELLED
    assert ended.progress.value == 2  # the last progress is stored with the end


def test_a_lost_lease_is_refused_and_a_crash_keeps_the_job_with_older_progress(servers):
    job = servers.submit()
    lease = servers.a.claim(worker_id="w1", endpoints=["default"], now=T0, lease_seconds=LEASE)
    servers.a.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=LEASE, progress=progress(5))
    # server A is killed (-9): its memory is gone, its lease runs out, server B's reaper requeues the job
    servers.a = servers.server()
    servers.b.live.forget(job.id, tell_others=False)  # B never heard of it (one server, or NOTIFY lost)
    result = servers.b.reap(now=T0 + timedelta(seconds=LEASE + 1))
    assert result.requeued == [job.id]
    requeued = servers.b.get(job.id)
    assert requeued.status is JobStatus.QUEUED and requeued.progress.value == 0  # older: never stored
    with pytest.raises(StaleLease):  # the first worker's late heartbeat is refused (fencing)
        servers.a.heartbeat(job.id, token=lease.fencing_token, now=T0 + timedelta(seconds=LEASE + 2),
                            lease_seconds=LEASE, progress=progress(6))
    again = servers.b.claim(worker_id="w2", endpoints=["default"], now=T0 + timedelta(seconds=LEASE + 3),
                            lease_seconds=LEASE)
    assert again.job.id == job.id and again.fencing_token == lease.fencing_token + 1


def test_progress_is_stored_with_a_requeue_when_this_server_holds_it(servers):
    job = servers.submit()
    lease = servers.a.claim(worker_id="w1", endpoints=["default"], now=T0, lease_seconds=LEASE)
    servers.a.heartbeat(job.id, token=lease.fencing_token, now=T0, lease_seconds=LEASE, progress=progress(3))
    servers.a.reap(now=T0 + timedelta(seconds=LEASE + 1))
    stored = servers.server().events_after(job.id, 0)
    assert [e.type for e in stored] == [EventType.QUEUED, EventType.STARTED, EventType.PROGRESS,
                                        EventType.REQUEUED]
    assert [e.seq for e in stored] == [1, 2, 3, 4]
