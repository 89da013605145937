"""A user holds at most `comfy_sockets_per_user` ComfyUI sockets across both listeners; the oldest is closed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from sdfleet.api.comfy.listener import start_comfy_listener
from tests.fixtures.live import LiveServer, free_port
from tests.fixtures.runtime import ADMIN_PASSWORD, make_runtime

CAP = 3


@pytest.fixture
def listeners(tmp_path) -> Iterator[tuple[str, str, object]]:
    """The main app (`/comfy/ws`) and ComfyUI's own port (`/ws`), one runtime, a cap of 3."""
    runtime = make_runtime(tmp_path, comfy_sockets_per_user=CAP)
    live = LiveServer(runtime).start()
    comfy = start_comfy_listener(runtime.services, host="127.0.0.1", port=free_port(), login_url=f"{live.url}/login")
    comfy_url = f"http://127.0.0.1:{comfy.config.port}"
    yield live.url, comfy_url, runtime
    comfy.should_exit = True
    live.stop()
    runtime.database.dispose()


def _login(url: str, username: str, password: str) -> dict[str, str]:
    r = httpx.post(f"{url}/api/v1/auth/login", json={"username": username, "password": password})
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _open(url: str, headers: dict[str, str], client_id: str):
    ws = connect(url.replace("http", "ws") + f"?clientId={client_id}", additional_headers=headers)
    assert json.loads(ws.recv(timeout=30))["type"] == "status"
    return ws


def _closed_code(ws) -> int | None:
    """The close code once the server closed this socket (waits generously), None if it stays open."""
    try:
        while True:
            ws.recv(timeout=30)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
    except TimeoutError:
        return None


def _open_now(ws) -> bool:
    try:
        ws.recv(timeout=0.5)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False
    return True


def test_the_oldest_socket_over_the_cap_is_closed_on_either_listener(listeners) -> None:
    main, comfy, runtime = listeners
    admin = _login(main, "admin", ADMIN_PASSWORD)
    r = httpx.post(f"{main}/api/v1/users", headers=admin,
                   json={"username": "other", "password": "other-password-1", "roles": ["admin"]})
    assert r.status_code == 201, r.text
    other = _login(main, "other", "other-password-1")

    others = _open(f"{comfy}/ws", other, "o1")
    first = _open(f"{main}/comfy/ws", admin, "a1")
    second = _open(f"{comfy}/ws", admin, "a2")
    third = _open(f"{main}/comfy/api/ws", admin, "a3")
    fourth = _open(f"{comfy}/api/ws", admin, "a4")  # one over the cap: `first` (the other listener) goes
    assert _closed_code(first) == 1008
    fifth = _open(f"{main}/comfy/ws", admin, "a5")  # and again: `second` goes
    assert _closed_code(second) == 1008
    assert all(_open_now(ws) for ws in (third, fourth, fifth, others)), "only the oldest sockets are closed"

    # A socket that closed frees its place: no one else is evicted.
    third.close()
    admin_id = runtime.services.users.get(None, "admin").id
    deadline = time.monotonic() + 30
    while runtime.services.socket_cap.count(admin_id) > 2:
        assert time.monotonic() < deadline, "the closed socket was never released"
        time.sleep(0.05)
    sixth = _open(f"{comfy}/ws", admin, "a6")
    assert all(_open_now(ws) for ws in (fourth, fifth, sixth, others))
    for ws in (fourth, fifth, sixth, others):
        ws.close()


def test_the_default_cap_is_16() -> None:
    from sdfleet.settings import Settings

    assert Settings.model_fields["comfy_sockets_per_user"].default == 16
