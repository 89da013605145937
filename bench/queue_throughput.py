"""Queue throughput: no-op jobs claimed and completed per second by 1, 4 and 8 worker threads in this process
and by 8 worker processes (each its own engine and connection pool, as a fleet's workers are), on SQLite and
PostgreSQL, next to the database's raw single-row commit rate measured in the same run; for the processes,
where the time goes per job (statements and round trips, seconds waiting on the database, client CPU, and on
PostgreSQL the CPU of its server processes). Then the p50 of a submission and of a claim on a table with
100,000 finished jobs against one without, measured in interleaved rounds on two databases side by side so that
the load of a shared machine falls on both alike (issue 17 §3: unchanged within ±20 %).

Then the deterministic figures of issue 17 §3, beside their goals: commits per job of 8 and 30 steps
(through the worker protocol's services: token checks, claim, a heartbeat with progress and a preview per
step, an output, completion, the worker's report, the notification fan-out) and commits per second of an
idle server (uvicorn) with 1 and 10 long-polling workers (tests/fixtures/commit_counts.py).

`--parts throughput,latency,commits` picks what runs (all by default; the idle counts take 2 minutes)."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from sqlalchemy import event, insert, select, text

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
PROCESS_JOBS = 1600
PROCESSES = 8
GOAL_PER_JOB = 4
GOAL_IDLE_PER_SECOND = 1.0
GOAL_RATIO = 0.4
IDLE_SECONDS = 30
FINISHED = 100_000
ROUNDS, PER_ROUND = 10, 20
TICK = os.sysconf("SC_CLK_TCK")


def raw_commit_rate(db: Database, n: int = 400) -> float:
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_rows (id TEXT PRIMARY KEY, v INTEGER)"))
    t = time.perf_counter()
    for _ in range(n):
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_rows (id, v) VALUES (:i, 1)"), {"i": uuid.uuid4().hex})
    return n / (time.perf_counter() - t)


def new_job(i: int) -> NewJob:
    return NewJob(id=new_id(), user_id=f"u{i % 4}", endpoint="default", spec=GenerateSpec(graph={}),
                  summary=JobSummary(), max_attempts=3, idempotency_key=None, request_hash=None)


def drain(queue: SqlJobQueue, workers: int) -> float:
    for i in range(JOBS):
        queue.submit(new_job(i), now=utcnow())
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


def _process_worker(url: str, name: str, ready, start, results, finish) -> None:
    """One worker process: its own engine; drains the queue after `start` and reports what it spent."""
    db = Database(url)
    queue = SqlJobQueue(db)
    spent = {"statements": 0, "statement_s": 0.0, "transactions": 0, "commit_s": 0.0}

    @event.listens_for(db.engine, "before_cursor_execute")
    def _before(conn, *_):
        conn.info["t"] = time.perf_counter()

    @event.listens_for(db.engine, "after_cursor_execute")
    def _after(conn, *_):
        spent["statements"] += 1
        spent["statement_s"] += time.perf_counter() - conn.info["t"]

    committing = {}

    @event.listens_for(db.engine, "commit")
    def _commit(_conn):
        spent["transactions"] += 1
        committing["t"] = time.perf_counter()

    def _committed(_session):
        spent["commit_s"] += time.perf_counter() - committing.pop("t", time.perf_counter())

    db.on_session_event("after_commit", _committed)

    with db.engine.connect() as conn:  # one pooled connection ready; its server pid for the CPU count
        pid = conn.exec_driver_sql("SELECT 1" if db.is_sqlite else "SELECT pg_backend_pid()").scalar()
    ready.put(pid)
    start.wait()
    for key in spent:
        spent[key] = 0
    cpu, t, jobs = time.process_time(), time.perf_counter(), 0
    while (lease := queue.claim(worker_id=name, endpoints=["default"], now=utcnow(), lease_seconds=30)):
        queue.complete(lease.job.id, token=lease.fencing_token, outputs=[], now=utcnow())
        jobs += 1
    results.put({**spent, "jobs": jobs, "end": time.time(), "wall_s": time.perf_counter() - t,
                 "cpu_s": time.process_time() - cpu})
    finish.wait()  # the server's CPU is read while this connection's backend lives
    db.dispose()


def _ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def _postgres_pids() -> list[int]:
    """Every process on this machine whose name is postgres (the server, its backends and helpers)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def _machine_busy() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def drain_processes(queue: SqlJobQueue, db: Database, workers: int) -> dict:
    """PROCESS_JOBS no-op jobs drained by `workers` processes; the rate and where each job's time went."""
    for i in range(PROCESS_JOBS):
        queue.submit(new_job(i), now=utcnow())
    ctx = multiprocessing.get_context("spawn")
    ready, results, start, finish = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    procs = [ctx.Process(target=_process_worker, args=(db.url, f"p{i}", ready, start, results, finish))
             for i in range(workers)]
    for p in procs:
        p.start()
    backends = [ready.get(timeout=120) for _ in procs]
    pg = [] if db.is_sqlite else _postgres_pids()
    pg0, busy0 = _ticks(pg), _machine_busy()
    t0 = time.time()
    start.set()
    got = [results.get(timeout=300) for _ in procs]
    elapsed = max(r["end"] for r in got) - t0
    pg1, busy1 = _ticks(pg), _machine_busy()
    finish.set()
    for p in procs:
        p.join()
    jobs = sum(r["jobs"] for r in got)
    assert jobs == PROCESS_JOBS, jobs
    per = {k: sum(r[k] for r in got) / jobs for k in ("statements", "transactions", "statement_s", "commit_s",
                                                      "cpu_s", "wall_s")}
    per["rate"] = jobs / elapsed
    per["server_cpu_s"] = None if db.is_sqlite else (pg1 - pg0) / TICK / jobs
    per["machine_busy"] = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1])
    per["backends"] = backends
    return per


def bench(label: str, url: str) -> None:
    db = Database(url)
    migrate.upgrade(db)
    add_users(db)
    raw = raw_commit_rate(db)
    queue = SqlJobQueue(db)
    rates = {n: drain(queue, n) for n in (1, 4, 8)}
    print(f"{label:10s} raw commits/s {raw:8.0f} | jobs/s, threads in one process: " + " | ".join(
        f"{n} {rate:7.1f} ({rate / raw:.3f} of raw)" for n, rate in rates.items()))
    p = drain_processes(queue, db, PROCESSES)
    ratio = p["rate"] / raw
    print(f"{label:10s} jobs/s, {PROCESSES} worker processes {p['rate']:7.1f} ({ratio:.3f} of raw; goal >= {GOAL_RATIO}: "
          f"{'met' if ratio >= GOAL_RATIO else 'MISSED'}); machine CPU busy {p['machine_busy']:.0%}")
    # psycopg sends BEGIN before a transaction's first statement and COMMIT at its end: two more round trips
    trips = p["statements"] + (0 if db.is_sqlite else 2 * p["transactions"])
    line = (f"{label:10s}   per job: {p['statements']:.1f} statements in {p['transactions']:.1f} transactions "
            f"({trips:.1f} round trips), "
            f"worker wall {p['wall_s'] * 1000:.2f} ms of which waiting on statements {p['statement_s'] * 1000:.2f} ms "
            f"and commits {p['commit_s'] * 1000:.2f} ms; worker CPU {p['cpu_s'] * 1000:.2f} ms")
    if p["server_cpu_s"] is not None:
        line += f"; PostgreSQL CPU {p['server_cpu_s'] * 1000:.2f} ms"
    print(line)
    db.dispose()


def add_users(db: Database) -> None:
    with db.session() as s:
        for i in range(4):
            AccountRepository(s).add_user(User(id=f"u{i}", username=f"u{i}", roles=()), password_hash="h",
                                          now=utcnow())


def latency(label: str, urls: tuple[str, str]) -> None:
    """Submission and claim p50 on a database without finished jobs and one with FINISHED, interleaved."""
    sides = []
    for url in urls:
        db = Database(url)
        migrate.upgrade(db)
        add_users(db)
        queue = SqlJobQueue(db)
        for _ in range(400):
            one_job(queue)
        sides.append((db, queue, [], []))
    add_finished(sides[1][0], FINISHED)
    for _ in range(ROUNDS):
        for _db, queue, submits, claims in sides:
            for _ in range(PER_ROUND):
                s, c = one_job(queue)
                submits.append(s)
                claims.append(c)
    (_, _, s0, c0), (_, _, s1, c1) = sides
    for what, empty, full in (("submission", s0, s1), ("claim", c0, c1)):
        e, f = statistics.median(empty), statistics.median(full)
        ratio = f / e
        print(f"{label:10s} {what} p50 {e * 1000:6.2f} ms with no finished jobs, {f * 1000:6.2f} ms with "
              f"{FINISHED:,} ({ratio:.2f}×; goal within 0.8–1.2×: {'met' if 0.8 <= ratio <= 1.2 else 'MISSED'})")
    for db, *_ in sides:
        db.dispose()


def one_job(queue: SqlJobQueue) -> tuple[float, float]:
    """Seconds of one submission and of one claim (with that job the only one queued); completion not timed."""
    t = time.perf_counter()
    queue.submit(new_job(1), now=utcnow())
    submitted = time.perf_counter()
    lease = queue.claim(worker_id="w", endpoints=["default"], now=utcnow(), lease_seconds=30)
    claimed = time.perf_counter()
    queue.complete(lease.job.id, token=lease.fencing_token, outputs=[], now=utcnow())
    return submitted - t, claimed - submitted


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
    parser = argparse.ArgumentParser()
    parser.add_argument("--parts", default="throughput,latency,commits")
    parts = set(parser.parse_args().parts.split(","))
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    if "throughput" in parts:
        bench("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    if "latency" in parts:
        latency("sqlite", (f"sqlite:///{tempfile.mkdtemp()}/empty.db", f"sqlite:///{tempfile.mkdtemp()}/full.db"))
    if "commits" in parts:
        commit_counts("sqlite", None)
    try:
        from tests.fixtures.databases import create_pg_database, drop_pg_database
    except ImportError:
        return
    for part, run in (("throughput", lambda urls: bench("postgresql", urls[0])),
                      ("latency", lambda urls: latency("postgresql", urls)),
                      ("commits", lambda urls: commit_counts("postgresql", urls[0]))):
        if part not in parts:
            continue
        urls = (create_pg_database(), create_pg_database())  # fresh databases of the bench's own
        try:
            run(urls)
        finally:
            for url in urls:
                drop_pg_database(url)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
