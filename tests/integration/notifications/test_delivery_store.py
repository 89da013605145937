"""The outbox and delivery tables on SQLite and PostgreSQL: one event per state change, fan-out once,
leases with fencing, backoff, disabling after repeated failures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sdfleet.domain.ids import new_id
from sdfleet.domain.notifications import (
    Channel,
    DeliveryStatus,
    EventType,
    RetryPolicy,
    Scope,
    SendResult,
    Subscription,
    SubscriptionStatus,
    generate_secret,
)
from sdfleet.domain.pagination import PageRequest
from sdfleet.jobs.records import JobOutput
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.jobs import NewJob, SqlJobQueue
from sdfleet.store.notification_deliveries import SqlDeliveries
from sdfleet.store.notification_subscriptions import SqlSubscriptions
from sdfleet.store.outbox import watch_commits

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FAST = RetryPolicy(base_seconds=1, factor=2, max_delay_seconds=4, max_attempts=3, jitter=0)


def make_user(db: Database) -> str:
    from sdfleet.domain.accounts import User

    user = User(id=new_id(), username=f"u{new_id()[-8:]}", roles=())
    with db.session() as s:
        AccountRepository(s).add_user(user, password_hash="x", now=T0)
    return user.id


def webhook(user_id: str, *, scope: Scope = Scope.OWN, events=frozenset(), min_duration: float = 0.0,
            endpoint: str | None = None) -> Subscription:
    return Subscription(id=new_id(), user_id=user_id, channel=Channel.WEBHOOK, scope=scope, target="https://x.test/h",
                        status=SubscriptionStatus.ACTIVE, created_at=T0, updated_at=T0, events=events,
                        endpoint=endpoint, min_duration_seconds=min_duration, secret=generate_secret())


def finished_job(db: Database, user_id: str, *, fail: bool = False, webhook_url: str | None = None) -> str:
    queue = SqlJobQueue(db)
    summary = {"prompt": "a red cube", **({"webhook": webhook_url} if webhook_url else {})}
    job = queue.submit(NewJob(id=new_id(), user_id=user_id, endpoint="default", spec=GenerateSpec(graph={}),
                              summary=JobSummary(**summary), max_attempts=1, idempotency_key=None, request_hash=None), now=T0)
    lease = queue.claim(worker_id="w", endpoints=["default"], now=T0, lease_seconds=30)
    end = T0 + timedelta(seconds=12)
    if fail:
        queue.fail(job.id, token=lease.fencing_token, error={"code": "x", "message": "boom"}, now=end)
    else:
        queue.complete(job.id, token=lease.fencing_token, now=end,
                       outputs=[JobOutput(index=0, key=f"outputs/{job.id}/t1/0.png", node_id="9", width=64,
                                          height=64, size=10)])
    return job.id


def test_job_outcome_is_one_event_committed_with_it(db):
    user = make_user(db)
    woke = []
    watch_commits(db, lambda: woke.append(1))
    deliveries = SqlDeliveries(db)
    SqlSubscriptions(db).add(webhook(user))
    job_id = finished_job(db, user)
    assert woke, "the commit that wrote the event wakes the delivery worker"
    assert deliveries.pending_events() == 1
    assert deliveries.fan_out(now=T0) == 1
    assert deliveries.fan_out(now=T0) == 0  # each event once
    [claimed] = deliveries.claim(owner="a", now=T0 + timedelta(seconds=20), lease_seconds=60, limit=10)
    assert claimed.event.type is EventType.INFERENCE_SUCCEEDED
    assert claimed.event.duration_seconds == 12
    assert claimed.event.data["job_id"] == job_id and claimed.event.data["prompt"] == "a red cube"
    assert claimed.event.data["outputs"][0]["key"].endswith("/0.png")


def test_a_rolled_back_change_writes_no_event(db):
    user = make_user(db)
    queue = SqlJobQueue(db)
    job = queue.submit(NewJob(id=new_id(), user_id=user, endpoint="default", spec=GenerateSpec(graph={}),
                              summary=JobSummary(), max_attempts=1, idempotency_key=None, request_hash=None), now=T0)
    queue.claim(worker_id="w", endpoints=["default"], now=T0, lease_seconds=30)
    with pytest.raises(Exception):  # noqa: B017 - the stale token makes the transaction roll back
        queue.fail(job.id, token=999, error={"code": "x"}, now=T0)
    assert SqlDeliveries(db).pending_events() == 0


def test_routing_by_scope_events_and_duration(db):
    alice, bob = make_user(db), make_user(db)
    subs = SqlSubscriptions(db)
    own = subs.add(webhook(alice))
    failures_only = subs.add(webhook(alice, events=frozenset({EventType.INFERENCE_FAILED})))
    long_only = subs.add(webhook(alice, min_duration=60))
    admin_all = subs.add(webhook(bob, scope=Scope.ALL))
    other_endpoint = subs.add(webhook(bob, scope=Scope.ENDPOINT, endpoint="xl"))
    same_endpoint = subs.add(webhook(bob, scope=Scope.ENDPOINT, endpoint="default"))
    finished_job(db, alice)
    deliveries = SqlDeliveries(db)
    deliveries.fan_out(now=T0)
    got = {c.subscription.id for c in deliveries.claim(owner="a", now=T0 + timedelta(minutes=1), lease_seconds=60,
                                                          limit=50)}
    assert got == {own.id, admin_all.id, same_endpoint.id}
    assert not got & {failures_only.id, long_only.id, other_endpoint.id}


def test_one_off_job_webhook_is_signed_with_the_users_job_secret(db):
    alice = make_user(db)
    finished_job(db, alice, webhook_url="https://hooks.example/job")
    deliveries = SqlDeliveries(db)
    deliveries.fan_out(now=T0)
    [claimed] = deliveries.claim(owner="a", now=T0 + timedelta(minutes=1), lease_seconds=60, limit=10)
    assert claimed.delivery.target == "https://hooks.example/job"
    assert claimed.subscription.scope is Scope.JOB
    assert claimed.subscription.secret == SqlSubscriptions(db).job_subscription(alice, now=T0).secret


def one_fanned_out_delivery(db: Database) -> tuple[Subscription, SqlDeliveries]:
    """A user's webhook and one finished job's delivery to it, fanned out at T0."""
    alice = make_user(db)
    sub = SqlSubscriptions(db).add(webhook(alice))
    finished_job(db, alice)
    deliveries = SqlDeliveries(db)
    deliveries.fan_out(now=T0)
    return sub, deliveries


def test_leases_fence_and_backoff(db):
    sub, deliveries = one_fanned_out_delivery(db)
    now = T0 + timedelta(minutes=1)
    [first] = deliveries.claim(owner="a", now=now, lease_seconds=30, limit=10)
    assert deliveries.claim(owner="b", now=now, lease_seconds=30, limit=10) == []  # leased
    # The lease expires: another server takes it over; the first one's late result is dropped.
    [second] = deliveries.claim(owner="b", now=now + timedelta(seconds=31), lease_seconds=30, limit=10)
    late = deliveries.record(first, SendResult(ok=True, latency_ms=5, status_code=200), now=now, policy=FAST,
                             disable_after=2)
    assert late.stale
    failed = deliveries.record(second, SendResult(ok=False, latency_ms=5, status_code=500), now=now, policy=FAST,
                               disable_after=2)
    assert failed.status is DeliveryStatus.PENDING and failed.next_attempt_at == now + timedelta(seconds=1)
    assert deliveries.claim(owner="a", now=now, lease_seconds=30, limit=10) == []  # not due yet
    [third] = deliveries.claim(owner="a", now=now + timedelta(seconds=1), lease_seconds=30, limit=10)
    ok = deliveries.record(third, SendResult(ok=True, latency_ms=7, status_code=204), now=now, policy=FAST,
                           disable_after=2)
    assert ok.status is DeliveryStatus.SUCCEEDED
    log = deliveries.list_for_subscription(sub.id, PageRequest()).items
    detail = deliveries.get(log[0].id)
    assert [(a.ok, a.status_code) for a in detail.history] == [(False, 500), (True, 204)]


def test_next_due_is_what_claim_could_take(db):
    """The worker sleeps until `next_due`: a leased delivery counts from its lease's end and a disabled
    subscription's pending ones not at all (before, both read as due now and the worker spun)."""
    sub, deliveries = one_fanned_out_delivery(db)
    now = T0 + timedelta(minutes=1)
    assert deliveries.next_due(now=now) <= now  # pending and due
    deliveries.claim(owner="a", now=now, lease_seconds=30, limit=10)
    assert deliveries.next_due(now=now) == now + timedelta(seconds=30)  # in flight: due when its lease ends
    SqlSubscriptions(db).update(sub.id, now=now, status=SubscriptionStatus.DISABLED)
    assert deliveries.next_due(now=now + timedelta(seconds=31)) is None


def test_failing_for_good_disables_after_n_and_tells_the_owner(db):
    alice = make_user(db)
    subs = SqlSubscriptions(db)
    hook = subs.add(webhook(alice))
    mail = subs.add(Subscription(id=new_id(), user_id=alice, channel=Channel.EMAIL, scope=Scope.OWN,
                                 target="alice@example.com", status=SubscriptionStatus.ACTIVE, created_at=T0,
                                 updated_at=T0, events=frozenset({EventType.UPLOAD_REGISTERED})))
    deliveries = SqlDeliveries(db)
    finished_job(db, alice)
    finished_job(db, alice)
    deliveries.fan_out(now=T0)
    now = T0 + timedelta(minutes=1)
    outcomes = []
    for _ in range(10):
        for claimed in deliveries.claim(owner="a", now=now, lease_seconds=30, limit=10):
            assert claimed.subscription.id == hook.id
            outcomes.append(deliveries.record(claimed, SendResult(ok=False, latency_ms=1, error="refused"), now=now,
                                              policy=FAST, disable_after=2))
        now += timedelta(seconds=10)
    assert [o.status for o in outcomes].count(DeliveryStatus.FAILED) == 2
    assert outcomes[-1].disabled
    disabled = subs.get(hook.id)
    assert disabled.status is SubscriptionStatus.DISABLED and "2 deliveries in a row failed" in disabled.disabled_reason
    # The notice goes to the owner's confirmed address even though it chose other events.
    deliveries.fan_out(now=now)
    [notice] = deliveries.claim(owner="a", now=now, lease_seconds=30, limit=10)
    assert notice.subscription.id == mail.id and notice.event.type is EventType.SUBSCRIPTION_DISABLED


def _events(db: Database) -> list[tuple[str, str | None, str | None, dict]]:
    from sdfleet.store.tables import NotificationEventRow

    with db.session(write_lock=False) as s:
        return [(r.type, r.user_id, r.endpoint, r.data) for r in s.query(NotificationEventRow).order_by(
            NotificationEventRow.id)]


def test_imports_workflows_and_endpoints_write_their_events_with_the_change(db):
    from sdfleet.domain.checkpoints import ImportJob, ImportStatus, ModelType
    from sdfleet.domain.endpoints import EndpointConfig
    from sdfleet.domain.workflows import WorkflowVersion
    from sdfleet.store.endpoints import SqlEndpointStore
    from sdfleet.store.imports import ImportRepository
    from sdfleet.store.workflows import SqlWorkflowStore

    alice = make_user(db)
    # Model imports: one finishes, one fails once servers stopped running it too often.
    tokens = {}
    for import_id in ("imp-ok", "imp-lost"):
        with db.session() as s:
            tokens[import_id] = ImportRepository(s).add(ImportJob(
                id=import_id, user_id=alice, url="https://models.example/x.safetensors", model_type=ModelType.LORA,
                name=None, allowed_roles=(), status=ImportStatus.RUNNING, bytes_done=0, bytes_total=None,
                created_at=T0, updated_at=T0), owner="a", lease_until=T0).token
    with db.session() as s:
        ImportRepository(s).finish("imp-ok", token=tokens["imp-ok"], now=T0, status=ImportStatus.SUCCEEDED)
        ImportRepository(s).update("imp-lost", token=tokens["imp-lost"], now=T0, bytes_done=10)  # progress: no event
    with db.session() as s:
        assert ImportRepository(s).claim_expired(owner="b", now=T0 + timedelta(seconds=1), lease_seconds=30,
                                                 limit=5, max_attempts=1, exhausted_reason="stopped") == []
    # A workflow version.
    SqlWorkflowStore(db).publish(WorkflowVersion(
        name="portrait", version=0, description="v", graph={}, ui_graph=None, inputs=(), allowed_roles=(), models=(),
        published=True, created_by=alice, created_at=T0), now=T0)
    # An endpoint whose replica died, then failed to start one.
    endpoints = SqlEndpointStore(db)
    endpoints.add("xl", EndpointConfig(), now=T0)
    endpoints.record("xl", "replica_started", {"replica": "xl:0"}, now=T0)  # not a notification
    endpoints.record("xl", "replica_restarted", {"replica": "xl:0", "restarts": 1}, now=T0)
    endpoints.set_state("xl", now=T0, event=("failed", {"reason": "no such device"}))
    got = [(t, u, e, d.get("import_id") or d.get("workflow") or d.get("replica") or d.get("reason"))
           for t, u, e, d in _events(db)]
    assert sorted(got, key=str) == sorted([  # ids order events across milliseconds only
        ("model_import.finished", alice, None, "imp-ok"),
        ("model_import.failed", alice, None, "imp-lost"),
        ("workflow.version_published", alice, None, "portrait"),
        ("endpoint.replica_lost", None, "xl", "xl:0"),
        ("endpoint.failed_to_start", None, "xl", "no such device"),
    ], key=str)


def test_concurrent_final_failures_all_count(db):
    """Deliveries to one subscription failing for good at the same moment each count (no lost update)."""
    import threading

    alice = make_user(db)
    hook = SqlSubscriptions(db).add(webhook(alice))
    deliveries = SqlDeliveries(db)
    for _ in range(8):
        finished_job(db, alice)
    deliveries.fan_out(now=T0)
    last = RetryPolicy(base_seconds=1, max_attempts=1, jitter=0)  # the first failure is the last
    claimed = deliveries.claim(owner="a", now=T0 + timedelta(minutes=1), lease_seconds=60, limit=10)
    assert len(claimed) == 8
    start = threading.Barrier(len(claimed))

    def fail(item) -> None:
        start.wait()
        deliveries.record(item, SendResult(ok=False, latency_ms=1, status_code=500), now=T0, policy=last,
                          disable_after=8)

    threads = [threading.Thread(target=fail, args=(item,)) for item in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sub = SqlSubscriptions(db).get(hook.id)
    assert sub.consecutive_failures == 8 and sub.status is SubscriptionStatus.DISABLED
