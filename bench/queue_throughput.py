"""Queue throughput: no-op jobs claimed and completed per second by 1 and 4 workers (threads calling the
queue directly), on SQLite and PostgreSQL, next to the database's raw single-row commit rate."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sdfleet.domain.accounts import User
from sdfleet.domain.ids import new_id
from sdfleet.jobs.spec import GenerateSpec, JobSummary
from sdfleet.store import migrate
from sdfleet.store.accounts import AccountRepository
from sdfleet.store.database import Database
from sdfleet.store.jobs import NewJob, SqlJobQueue
from sdfleet.store.types import utcnow

JOBS = 400


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
    one = drain(queue, 1)
    four = drain(queue, 4)
    print(f"{label:10s} raw commits/s {raw:8.0f} | jobs/s 1 worker {one:7.1f} ({one / raw:.3f} of raw)"
          f" | 4 workers {four:7.1f} ({four / raw:.3f} of raw)")
    db.dispose()


def main() -> None:
    bench("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    try:
        from tests.fixtures.databases import create_pg_database, drop_pg_database
    except ImportError:
        return
    url = create_pg_database()
    try:
        bench("postgresql", url)
    finally:
        drop_pg_database(url)


if __name__ == "__main__":
    main()
