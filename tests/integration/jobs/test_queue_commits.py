"""Issue 17 §3: a job costs at most 4 commits whatever its step count; an idle server at most 1 a second
whatever the number of long-polling workers. Commits are counted (SQLAlchemy's commit events and, on
PostgreSQL, `pg_stat_database.xact_commit`), not timed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.fixtures.commit_counts import CommitCounter, commits_per_job, idle_commits_per_second, worker_tokens
from tests.fixtures.live import LiveServer
from tests.fixtures.runtime import make_runtime


@pytest.fixture
def counted(tmp_path, database_url):
    runtime = make_runtime(tmp_path, database_url=database_url)
    yield runtime, CommitCounter(runtime)
    runtime.database.dispose()


def _admin_id(runtime) -> str:
    with runtime.database.engine.connect() as conn:
        return conn.execute(text("SELECT id FROM users WHERE username = 'admin'")).scalar_one()


@pytest.mark.parametrize("steps", [8, 30])
def test_a_job_costs_four_commits_whatever_its_steps(counted, steps):
    runtime, counter = counted
    counts = commits_per_job(runtime, counter, user_id=_admin_id(runtime), steps=steps)
    # submission, claim, completion, and the notification fan-out the completion causes; progress,
    # previews, heartbeats, token checks and the worker's unchanged report after the job write nothing
    assert counts.commits == 4, counts
    assert counts.writes == 4, counts


def test_progress_of_a_job_reaches_its_events_without_commits(counted):
    runtime, counter = counted
    commits_per_job(runtime, counter, user_id=_admin_id(runtime), steps=8)
    queue = runtime.services.workers.queue
    with runtime.database.engine.connect() as conn:
        job_id = conn.execute(text("SELECT id FROM jobs ORDER BY queued_at DESC, id DESC LIMIT 1")).scalar_one()
    events = queue.events_after(job_id, 0)
    progress = [e.data.get("phase") or e.data["value"] for e in events if e.type.value == "progress"]
    # stored with the completion: the `loading_model` phase, then every step the worker reported, in order,
    # before the outputs
    assert progress == ["loading_model", *range(1, 9)]
    assert [e.type.value for e in events][-2:] == ["output", "succeeded"]
    assert [e.seq for e in events] == sorted({e.seq for e in events})


def test_an_idle_server_commits_under_once_a_second_with_ten_long_polling_workers(counted):
    runtime, counter = counted
    server = LiveServer(runtime).start()
    try:
        rate = idle_commits_per_second(server.url, counter, worker_tokens(runtime, 10), seconds=30)
    finally:
        server.stop()
    assert rate.commits <= 1.0, rate
    # PostgreSQL's own xact_commit is printed by bench/queue_throughput.py, not asserted: it reads above the
    # server's transactions by an amount not explained yet (docs/status.md)
