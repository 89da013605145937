"""LISTEN/NOTIFY fan-out: a notification on one API server wakes waiters on another."""

import asyncio
import concurrent.futures

import pytest

from sdfleet.services.notifier import Notifier
from sdfleet.store.pg_notify import PgNotifyBridge
from tests.fixtures.databases import create_pg_database, drop_pg_database


@pytest.mark.postgres
def test_notification_reaches_another_servers_waiters(pg_available):
    url = create_pg_database()
    server_a, server_b = Notifier(), Notifier()
    bridges = [PgNotifyBridge(url, deliver=n.wake) for n in (server_a, server_b)]
    for notifier, bridge in zip((server_a, server_b), bridges, strict=True):
        notifier.publish = bridge.publish
        bridge.start()
    try:
        async def scenario() -> tuple[bool, bool]:
            waiting = asyncio.create_task(server_b.wait("job:42", timeout=10))
            await asyncio.sleep(0.2)
            server_a.notify("job:42")
            woke = await waiting
            unrelated = await server_b.wait("job:43", timeout=0.5)
            return woke, unrelated

        # Its own thread and event loop: the browser tests' Playwright keeps a loop in the main thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            woke, unrelated = pool.submit(asyncio.run, scenario()).result(timeout=30)
        assert woke is True
        assert unrelated is False
    finally:
        for bridge in bridges:
            bridge.stop()
        drop_pg_database(url)
