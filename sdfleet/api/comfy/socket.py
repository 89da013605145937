"""ComfyUI's WebSocket `/ws?clientId=`: `status` on connect, then the caller's execution messages."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

from fastapi import WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from sdfleet.api.comfy.auth import socket_principal
from sdfleet.api.comfy.messages import ComfyEventSession
from sdfleet.domain.errors import DomainError
from sdfleet.services.comfy_events import ComfyPromptFeed

log = logging.getLogger("sdfleet.comfy")
RECHECK_SECONDS = 1.0  # other API servers' changes are seen within this


def _now() -> datetime:
    return datetime.now(UTC)


async def _read(websocket: WebSocket, session: ComfyEventSession) -> None:
    """Client messages: only `feature_flags` matters (it turns preview frames on)."""
    while True:
        text = await websocket.receive_text()
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("type") == "feature_flags":
            data = message.get("data") if isinstance(message.get("data"), dict) else {}
            session.supports_preview_metadata = bool(data.get("supports_preview_metadata"))


async def comfy_socket(websocket: WebSocket) -> None:
    """Authenticate, greet with `status`, then forward the caller's job events as ComfyUI messages."""
    services = websocket.app.state.services
    try:
        principal = await run_in_threadpool(socket_principal, websocket, services)
    except DomainError:
        await websocket.close(code=1008)
        return
    client_id = websocket.query_params.get("clientId") or services.comfy.new_client_id()
    if len(client_id) > 128:
        client_id = services.comfy.new_client_id()
    feed = ComfyPromptFeed(comfy=services.comfy, inference=services.inference, principal=principal,
                           client_id=client_id, connected_at=_now())
    session = ComfyEventSession(feed, clock=_now)
    await websocket.accept()
    reader = asyncio.create_task(_read(websocket, session))
    # Past the user's cap the oldest socket is closed, whichever listener's loop (thread) it runs in.
    evicted = asyncio.Event()
    loop = asyncio.get_running_loop()
    ticket = services.socket_cap.admit(principal.user_id, lambda: loop.call_soon_threadsafe(evicted.set))
    notifier = services.notifier
    try:
        await websocket.send_json(await run_in_threadpool(session.status))
        while not reader.done():
            if evicted.is_set():
                await websocket.close(code=1008, reason=f"more than {services.socket_cap.per_user} "
                                                        "sockets open for this user: the oldest is closed")
                break
            for message in await run_in_threadpool(session.poll):
                if isinstance(message, bytes):
                    await websocket.send_bytes(message)
                else:
                    await websocket.send_json(message)
            waits = [asyncio.create_task(notifier.wait(t, RECHECK_SECONDS)) for t in session.topics()]
            waits.append(asyncio.create_task(evicted.wait()))
            done, _ = await asyncio.wait([*waits, reader], return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
        services.socket_cap.release(ticket)
