"""Two API servers on one PostgreSQL database: only the holder of the fleet-manager lease launches replicas,
and when it stops, the other server takes the lease over and launches them itself."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.databases import create_pg_database, drop_pg_database
from tests.fixtures.live import Fleet, LiveServer
from tests.fixtures.runtime import make_runtime
from tests.integration.endpoints.test_autoscaling_e2e import until, worker_pids

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(420)]


def test_only_the_leader_runs_the_fleet_and_another_server_takes_over(tmp_path, pg_available):
    url = create_pg_database()
    servers: list[LiveServer] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(LiveServer(make_runtime(tmp_path / name, database_url=url, lease_seconds=4.0)).start())
        a, b = servers
        headers = Fleet(server=b, tmp=tmp_path).login()
        r = httpx.post(f"{b.url}/api/v1/endpoints", headers=headers, timeout=30, json={
            "name": "team", "devices": ["cpu"], "min_replicas": 1, "max_replicas": 1, "idle_seconds": 60})
        assert r.status_code == 201, r.text

        def ready() -> bool:
            got = httpx.get(f"{b.url}/api/v1/endpoints/team", headers=headers, timeout=30).json()
            return got["status"] == "ready"

        until(ready, timeout=180, what="the endpoint's replica (launched by the leader, server a)")
        assert len(worker_pids(a.url)) == 1 and worker_pids(b.url) == [], "server b must not launch replicas"
        replicas = httpx.get(f"{b.url}/api/v1/endpoints/team/replicas", headers=headers, timeout=30).json()
        assert len(replicas) == 1, replicas  # one identity registered: b never launched one of its own

        a.stop()  # a clean stop: a's replica drains and a's lease is released
        until(lambda: worker_pids(a.url) == [], timeout=120, what="server a's replica to stop")
        until(lambda: len(worker_pids(b.url)) == 1, timeout=180, what="server b to lead and launch the replica")
        until(ready, timeout=180, what="the endpoint to be ready again under server b")
    finally:
        for server in servers:
            server.stop()
            server.runtime.database.dispose()
        drop_pg_database(url)
