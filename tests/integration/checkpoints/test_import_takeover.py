"""URL imports are leased: API servers sharing one database run each import once. A server that stops (`kill -9`,
or one whose heartbeats stop) is replaced by another once its lease expires; a server starting while another holds a
live lease leaves that import alone; the stopped server's late work is refused (fencing)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from sdfleet.bootstrap import Runtime, build_app
from sdfleet.domain.checkpoints import ImportJob, ImportStatus, ModelType
from sdfleet.domain.ids import new_id
from sdfleet.store.imports import ImportRepository
from sdfleet.store.tables import CheckpointRow
from sdfleet.store.types import utcnow
from tests.fixtures.live import free_port
from tests.fixtures.notifications import wait_until
from tests.fixtures.runtime import ADMIN_PASSWORD, Api, make_runtime
from tests.integration.checkpoints.model_bytes import lora_bytes

pytestmark = pytest.mark.timeout(300)


class Origin:
    """A model host whose first answer stalls after half the file until the test releases it."""

    def __init__(self) -> None:
        self.body = lora_bytes()
        self.requests = 0
        self.half_sent = threading.Event()
        self.release = threading.Event()
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                origin.requests += 1
                first = origin.requests == 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(origin.body)))
                self.end_headers()
                half = len(origin.body) // 2
                try:
                    self.wfile.write(origin.body[:half] if first else origin.body)
                    self.wfile.flush()
                    if first:
                        origin.half_sent.set()
                        origin.release.wait(timeout=120)
                        self.wfile.write(origin.body[half:])
                except OSError:  # the server that asked was killed
                    pass

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{self.host}/files/style.safetensors"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()


@pytest.fixture
def origin():
    host = Origin()
    yield host
    host.close()


@pytest.fixture
def pg_url(pg_available):
    from tests.fixtures.databases import create_pg_database, drop_pg_database

    url = create_pg_database()
    yield url
    drop_pg_database(url)


def lease_of(runtime: Runtime, import_id: str):
    with runtime.database.session() as s:
        return ImportRepository(s).lease_of(import_id)


def import_of(runtime: Runtime, import_id: str) -> ImportJob:
    with runtime.database.session() as s:
        return ImportRepository(s).get(import_id)


def finished_import(runtime: Runtime, import_id: str) -> ImportJob | None:
    job = import_of(runtime, import_id)
    return job if job.status in (ImportStatus.SUCCEEDED, ImportStatus.FAILED) else None


def checkpoints_with(runtime: Runtime, sha256: str) -> list[str]:
    with runtime.database.session() as s:
        return list(s.scalars(select(CheckpointRow.id).where(CheckpointRow.sha256 == sha256)))


def second_server(tmp_path: Path, database_url: str, origin: Origin, lease_seconds: float) -> Runtime:
    return make_runtime(tmp_path / "b", database_url=database_url, import_allowed_hosts=[origin.host],
                        lease_seconds=lease_seconds)


@pytest.mark.postgres
@pytest.mark.slow
def test_kill_minus_nine_mid_import_the_other_server_completes_it_once(tmp_path, pg_url, origin):
    # 1. Server A (a subprocess) starts the import; the download stalls after half the file.
    port = free_port()
    env = {**os.environ, "SDFLEET_DATA_DIR": str(tmp_path / "a"), "SDFLEET_DATABASE_URL": pg_url,
           "SDFLEET_ADMIN_PASSWORD": ADMIN_PASSWORD, "SDFLEET_SECRET_KEY": "test-secret-key-0123456789",
           "SDFLEET_LOCAL_WORKERS": "0", "SDFLEET_LEASE_SECONDS": "10",
           "SDFLEET_IMPORT_ALLOWED_HOSTS": json.dumps([origin.host]), "SDFLEET_LOGIN_ATTEMPTS_PER_ADDRESS": "1000"}
    with (tmp_path / "a.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sdfleet.cli", "serve", "--port", str(port), "--comfy-port",
                                 "0", "--no-demo"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    a_url = f"http://127.0.0.1:{port}"
    try:
        def a_up() -> bool:
            assert proc.poll() is None, (tmp_path / "a.log").read_text()[-3000:]
            try:
                return httpx.get(f"{a_url}/api/v1/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(a_up, timeout=120, what="server A to start")
        token = httpx.post(f"{a_url}/api/v1/auth/login",
                           json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
        r = httpx.post(f"{a_url}/api/v1/checkpoints/imports", headers={"Authorization": f"Bearer {token}"},
                       json={"url": origin.url, "type": "Lora"}, timeout=30)
        assert r.status_code == 202, r.text
        import_id = r.json()["id"]
        assert origin.half_sent.wait(timeout=60), "server A never started downloading"

        # 2. Server B starts on the same database while A's lease is live: it leaves the import alone.
        rt_b = second_server(tmp_path, pg_url, origin, lease_seconds=10)
        try:
            with TestClient(build_app(rt_b, local_workers=0)) as client:
                owner_a, first_expiry, token_a = lease_of(rt_b, import_id)
                # A's heartbeat pushes its expiry forward while its download stalls.
                wait_until(lambda: lease_of(rt_b, import_id)[1] > first_expiry, timeout=60, what="A to renew")
                rt_b.services.imports.tick()
                rt_b.services.imports.tick()
                job = import_of(rt_b, import_id)
                assert lease_of(rt_b, import_id)[::2] == (owner_a, token_a)
                assert job.status is ImportStatus.RUNNING and job.attempts == 1 and origin.requests == 1

                # 3. kill -9 A mid-download: B takes over once A's lease expires and completes the import once.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                api = Api(client=client, runtime=rt_b)
                admin = api.admin()

                def finished():
                    body = client.get(f"/api/v1/checkpoints/imports/{import_id}", headers=admin).json()
                    return body if body["status"] in ("succeeded", "failed") else None

                body = wait_until(finished, timeout=120, what="server B to finish the import")
                assert body["status"] == "succeeded", body
                assert body["bytes_done"] == body["bytes_total"] == len(origin.body)
                assert import_of(rt_b, import_id).attempts == 2 and origin.requests == 2
                assert checkpoints_with(rt_b, origin.sha256) == [body["checkpoint_id"]]
                ckpt = client.get(f"/api/v1/checkpoints/{body['checkpoint_id']}", headers=admin).json()
                assert ckpt["sha256"] == origin.sha256 and ckpt["source"] == "import"
        finally:
            rt_b.services.imports.close()
            rt_b.database.dispose()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def import_half_sent(client: TestClient, runtime, origin) -> str:
    """An admin's URL import of `origin` through `client`, once half of the file has been sent; its id."""
    admin = Api(client=client, runtime=runtime).admin()
    r = client.post("/api/v1/checkpoints/imports", headers=admin, json={"url": origin.url, "type": "Lora"})
    assert r.status_code == 202, r.text
    assert origin.half_sent.wait(timeout=60)
    return r.json()["id"]


def test_a_server_whose_heartbeats_stop_is_fenced_off(tmp_path, database_url, origin):
    """Server A stops renewing (a frozen process, a partition from the database) mid-download; B takes the import
    over and completes it; when A's download then finishes, A registers nothing."""
    rt_a = make_runtime(tmp_path / "a", database_url=database_url, import_allowed_hosts=[origin.host],
                        lease_seconds=2)
    rt_a.services.imports.tick = lambda: None  # A's heartbeat is gone; its download thread runs on
    rt_b = None
    try:
        with TestClient(build_app(rt_a, local_workers=0)) as client_a:
            import_id = import_half_sent(client_a, rt_a, origin)
            rt_b = second_server(tmp_path, database_url, origin, lease_seconds=10)
            with TestClient(build_app(rt_b, local_workers=0)):
                done = wait_until(lambda: finished_import(rt_b, import_id), timeout=120,
                                  what="server B to take the import over and finish it")
                assert done.status is ImportStatus.SUCCEEDED and done.attempts == 2, done
                # A's stalled download resumes: its lease is gone, so it stops and adds nothing.
                origin.release.set()
                wait_until(lambda: rt_a.services.imports.running() == 0, timeout=60, what="A's attempt to stop")
                rt_a.services.imports.wait()
                assert checkpoints_with(rt_b, origin.sha256) == [done.checkpoint_id]
                assert import_of(rt_b, import_id) == done
                assert origin.requests == 2
                assert not list((tmp_path / "a" / "data" / "tmp").rglob("*.download"))
    finally:
        rt_a.services.imports.close()
        rt_a.database.dispose()
        if rt_b is not None:
            rt_b.services.imports.close()
            rt_b.database.dispose()


def test_a_restarting_server_takes_over_expired_imports_only(tmp_path, database_url, origin):
    """A server starts and finds two unfinished imports: one whose server died (lease expired) it completes;
    one that another server holds a live lease on it leaves alone (it used to fail both)."""
    origin.release.set()  # no stall here
    rt = make_runtime(tmp_path, database_url=database_url, import_allowed_hosts=[origin.host], lease_seconds=10)
    try:
        now = utcnow()
        with rt.database.session() as s:
            user_id = s.execute(text("SELECT id FROM users LIMIT 1")).scalar_one()
        jobs = {}
        for name, expiry in (("dead", now - timedelta(seconds=1)), ("live", now + timedelta(hours=1))):
            job = ImportJob(id=new_id(), user_id=user_id, url=origin.url, model_type=ModelType.LORA,
                            name=f"{name}.safetensors", allowed_roles=(), status=ImportStatus.RUNNING,
                            bytes_done=10, bytes_total=len(origin.body), created_at=now, updated_at=now)
            with rt.database.session() as s:
                ImportRepository(s).add(job, owner=f"server-{name}", lease_until=expiry)
            jobs[name] = job.id
        with TestClient(build_app(rt, local_workers=0)):
            done = wait_until(lambda: finished_import(rt, jobs["dead"]), timeout=120,
                              what="the expired import to be taken over and finished")
            assert done.status is ImportStatus.SUCCEEDED and done.attempts == 2, done
            rt.services.imports.tick()
            live = import_of(rt, jobs["live"])
            assert (live.status, live.attempts, live.error) == (ImportStatus.RUNNING, 1, None)
            assert lease_of(rt, jobs["live"])[::2] == ("server-live", 1)
    finally:
        rt.services.imports.close()
        rt.database.dispose()


def test_a_server_stopping_cleanly_hands_its_imports_back(tmp_path, database_url, origin):
    """A server that stops (SIGTERM, not kill -9) expires its imports' leases on the way out: another server takes
    them over at once, not a whole lease later, and the stopped server's try is not counted."""
    rt_a = make_runtime(tmp_path / "a", database_url=database_url, import_allowed_hosts=[origin.host],
                        lease_seconds=600)
    rt_b = second_server(tmp_path, database_url, origin, lease_seconds=600)
    try:
        with TestClient(build_app(rt_a, local_workers=0)) as client_a:
            import_id = import_half_sent(client_a, rt_a, origin)
        # A's app stopped: the import is free at once (its 600 s lease would otherwise hold it).
        owner, _, token = lease_of(rt_b, import_id)
        assert (owner, token, import_of(rt_b, import_id).status) == (None, 2, ImportStatus.QUEUED)
        origin.release.set()
        rt_a.services.imports.wait()  # A's download stops: its writes are refused
        assert rt_b.services.imports.tick() == 1
        done = wait_until(lambda: finished_import(rt_b, import_id), timeout=120, what="server B to finish it")
        assert done.status is ImportStatus.SUCCEEDED and done.attempts == 1, done
        assert checkpoints_with(rt_b, origin.sha256) == [done.checkpoint_id] and origin.requests == 2
    finally:
        for rt in (rt_a, rt_b):
            rt.services.imports.close()
            rt.database.dispose()
