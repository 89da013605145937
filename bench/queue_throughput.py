"""Queue throughput: no-op jobs claimed and completed per second by 1, 4 and 8 workers (threads calling the
queue directly), on SQLite and PostgreSQL, next to the database's raw single-row commit rate; and the p50 of a
claim on a table with no finished jobs against one with 100,000 (issue 17 §3: unchanged within ±20 %).

Then the deterministic figures of issue 17 §3, beside their goals: commits per job of 8 and 30 steps
(through the worker protocol's services: token checks, claim, a heartbeat with progress and a preview per
step, an output, completion, the worker's report, the notification fan-out) and commits per second of an
idle server (uvicorn) with 1 and 10 long-polling workers (tests/fixtures/commit_counts.py)."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdfleet.domain.accounts import User
from sdfleet.domain.ids import new_id
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.store import migrate
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.jobs import NewJob, SqlJobQueue
from sdfleet.store.tables import JobRow
from sdfleet.store.types import utcnow

JOBS = 400
GOAL_PER_JOB = 4
GOAL_IDLE_PER_SECOND = 1.0
IDLE_SECONDS = 30
FINISHED = 100_000
CLAIMS = 200


def raw_commit_rate(db: Database, n: int = 400) -> float:
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_rows (id TEXT PRIMARY KEY, v INTEGER)"))
    t = time.perf_counter()
    for _ in range(n):
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_rows (id, v) VALUES (:i, 1)"), {"i": uuid.uuid4().hex})
    return n / (time.perf_counter() - t)


def drain(queue: SqlJobQueue, workers: int) -> float:
    for i in range(JOBS):
        queue.submit(NewJob(id=new_id(), user_id=f"u{i % 4}", endpoint="default",
                            spec=GenerateSpec(graph={}), summary=JobSummary(), max_attempts=3, idempotency_key=None, request_hash=None),
                     now=utcnow())
    done = []

    def work(name: str) -> None:
        while (lease := queue.claim(worker_id=name, endpoints=["default"], now=utcnow(), lease_seconds=30)):
            queue.complete(lease.job.id, token=lease.fencing_token, outputs=[], now=utcnow())
            done.append(1)

    t = time.perf_counter()
    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(done) == JOBS
    return JOBS / (time.perf_counter() - t)


def bench(label: str, url: str) -> None:
    db = Database(url)
    migrate.upgrade(db)
    with db.session() as s:
        for i in range(4):
            AccountRepository(s).add_user(User(id=f"u{i}", username=f"u{i}", roles=()), password_hash="h",
                                          now=utcnow())
    raw = raw_commit_rate(db)
    queue = SqlJobQueue(db)
    rates = {n: drain(queue, n) for n in (1, 4, 8)}
    print(f"{label:10s} raw commits/s {raw:8.0f} | jobs/s " + " | ".join(
        f"{n} workers {rate:7.1f} ({rate / raw:.3f} of raw)" for n, rate in rates.items()))
    empty = claim_p50(queue)
    add_finished(db, FINISHED)
    full = claim_p50(queue)
    print(f"{label:10s} claim p50 {empty * 1000:6.2f} ms with no finished jobs, {full * 1000:6.2f} ms with "
          f"{FINISHED:,} ({full / empty:.2f}×; goal within 0.8–1.2×)")
    db.dispose()


def claim_p50(queue: SqlJobQueue) -> float:
    """Median seconds of one claim (of CLAIMS, each with one job queued), completion not timed."""
    times = []
    for i in range(CLAIMS):
        queue.submit(NewJob(id=new_id(), user_id=f"u{i % 4}", endpoint="default", spec=GenerateSpec(graph={}),
                            summary=JobSummary(), max_attempts=3, idempotency_key=None, request_hash=None), now=utcnow())
        t = time.perf_counter()
        lease = queue.claim(worker_id="w", endpoints=["default"], now=utcnow(), lease_seconds=30)
        times.append(time.perf_counter() - t)
        queue.complete(lease.job.id, token=lease.fencing_token, outputs=[], now=utcnow())
    return sorted(times)[len(times) // 2]


def add_finished(db: Database, n: int, batch: int = 5000) -> None:
    """`n` succeeded jobs, copied from one finished row in bulk inserts (as a busy fleet's history)."""
    with db.session() as s:
        template = s.execute(select(JobRow.__table__).where(JobRow.status == "succeeded").limit(1)).mappings().one()
    row = dict(template)
    for start in range(0, n, batch):
        with db.session() as s:
            s.execute(insert(JobRow.__table__), [{**row, "id": new_id(), "idempotency_key": None}
                                                 for _ in range(min(batch, n - start))])


def commit_counts(label: str, url: str | None) -> None:
    """Commits per job and per idle second, beside the goals."""
    from tests.fixtures.commit_counts import (
        CommitCounter,
        commits_per_job,
        idle_commits_per_second,
        worker_tokens,
    )
    from tests.fixtures.live import LiveServer
    from tests.fixtures.runtime import make_runtime

    runtime = make_runtime(Path(tempfile.mkdtemp()), database_url=url)
    counter = CommitCounter(runtime)
    with runtime.database.engine.connect() as conn:
        admin = conn.execute(text("SELECT id FROM users WHERE username = 'admin'")).scalar_one()
    for steps in (8, 30):
        c = commits_per_job(runtime, counter, user_id=admin, steps=steps)
        line = f"{label:10s} commits per {steps:2d}-step job {c.commits:3d} (writes {c.writes})"
        if c.xact_commit is not None:
            fanned = commits_per_job(runtime, counter, user_id=admin, steps=steps, fan_out=True)
            line += (f" | xact_commit {c.xact_commit}, with NOTIFY fan-out {fanned.xact_commit}"
                     f" (batched NOTIFY transactions, no WAL)")
        print(f"{line} | goal <= {GOAL_PER_JOB}: {'met' if c.commits <= GOAL_PER_JOB else 'MISSED'}")
    server = LiveServer(runtime).start()
    try:
        for n in (1, 10):
            rate = idle_commits_per_second(server.url, counter, worker_tokens(runtime, n), seconds=IDLE_SECONDS)
            line = f"{label:10s} idle commits/s, {n:2d} long-polling workers {rate.commits:5.2f} (writes {rate.writes})"
            if rate.xact_commit is not None:
                line += f" | xact_commit/s {rate.xact_commit:5.2f}"
            worst = max(rate.commits, rate.xact_commit or 0)
            print(f"{line} | goal <= {GOAL_IDLE_PER_SECOND}: {'met' if worst <= GOAL_IDLE_PER_SECOND else 'MISSED'}")
    finally:
        server.stop()
        runtime.database.dispose()


def main() -> None:
    bench("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    commit_counts("sqlite", None)
    try:
        from tests.fixtures.databases import create_pg_database, drop_pg_database
    except ImportError:
        return
    url = create_pg_database()
    try:
        bench("postgresql", url)
    finally:
        drop_pg_database(url)
    url = create_pg_database()
    try:
        commit_counts("postgresql", url)
    finally:
        drop_pg_database(url)


if __name__ == "__main__":
    main()
