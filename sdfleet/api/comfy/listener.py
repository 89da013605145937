"""ComfyUI's own port (default 8188), served by a second uvicorn server in the `serve` process."""

from __future__ import annotations

import threading
import time

import uvicorn

from sdfleet.api.comfy.mount import create_comfy_app
from sdfleet.services.container import Services


def start_comfy_listener(services: Services, *, host: str, port: int, login_url: str,
                         timeout: float = 20.0) -> uvicorn.Server:
    """Serve the ComfyUI API and frontend at the root of `host:port` from a daemon thread; returns when up."""
    config = uvicorn.Config(create_comfy_app(services, login_url=login_url), host=host, port=port,
                            log_config=None, access_log=False, lifespan="off",
                            proxy_headers=False)  # X-Forwarded-For: only from SDFLEET_TRUSTED_PROXIES
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="comfy-listener", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the ComfyUI listener could not start on {host}:{port}")
        time.sleep(0.05)
    return server
