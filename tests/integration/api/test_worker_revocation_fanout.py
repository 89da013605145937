"""Two API servers on one PostgreSQL database: a worker token revoked on one server is refused by the other at
once (its `revoked:` topic reaches it by NOTIFY), not at that server's next presence flush."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.databases import create_pg_database, drop_pg_database
from tests.fixtures.live import LiveServer
from tests.fixtures.runtime import make_runtime
from tests.integration.endpoints.test_autoscaling_e2e import until

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


def test_a_token_revoked_on_one_server_is_refused_by_the_other(tmp_path, pg_available):
    url = create_pg_database()
    servers: list[LiveServer] = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            servers.append(LiveServer(make_runtime(tmp_path / name, database_url=url)).start())
        a, b = servers
        # b's presence never flushes during the test: only the NOTIFY of the revocation can make b refuse the token
        b.runtime.services.workers.presence.flush_seconds = 600.0
        issued = a.runtime.services.workers.register(name="w", endpoint="default")
        headers = {"Authorization": f"Bearer {issued.token}"}

        def answer(server: LiveServer) -> int:
            return httpx.get(f"{server.url}/api/v1/worker/assignment", headers=headers, timeout=30).status_code

        assert answer(b) == 200  # b now holds the token in its presence cache
        a.runtime.services.workers.revoke(issued.worker.id)
        assert answer(a) == 401  # the revoking server: at once
        until(lambda: answer(b) == 401, timeout=60, what="server b to refuse the token revoked on server a")
    finally:
        for server in servers:
            server.stop()
            server.runtime.database.dispose()
        drop_pg_database(url)
