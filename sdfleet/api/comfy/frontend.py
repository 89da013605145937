"""The official ComfyUI frontend (PyPI comfyui-frontend-package) behind sdfleet's login, plus sdfleet's extension."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from sdfleet.api.deps import principal_from_request
from sdfleet.domain.errors import DomainError

EXTENSION_DIR = Path(__file__).parent / "static"
_INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)


def frontend_dir() -> Path:
    """The static build shipped by comfyui-frontend-package."""
    import comfyui_frontend_package

    return Path(comfyui_frontend_package.__file__).parent / "static"


@lru_cache(maxsize=1)
def inline_script_hashes() -> tuple[str, ...]:
    """Base64 SHA-256 of each inline <script> of the frontend's index.html (for its Content Security Policy)."""
    html = (frontend_dir() / "index.html").read_text(encoding="utf-8")
    return tuple(base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
                 for body in _INLINE_SCRIPT.findall(html))


def frontend_router(*, base: str, login_url: str) -> APIRouter:
    """`{base}/` (login-gated index), sdfleet's extension and template index; `base` is "" or "/comfy"."""
    router = APIRouter(include_in_schema=False)
    index = frontend_dir() / "index.html"

    if base:
        @router.get(base)
        def bare() -> RedirectResponse:
            return RedirectResponse(f"{base}/")

    @router.get(f"{base}/")
    def page(request: Request) -> Response:
        try:
            principal_from_request(request, request.app.state.services)
        except DomainError:
            target = f"{base}/" if login_url.startswith("/") else str(request.url)
            return RedirectResponse(f"{login_url}?next={quote(target, safe='/:')}", status_code=303)
        return FileResponse(index, headers={"Cache-Control": "no-store"})

    @router.get(f"{base}/extensions/sdfleet/sdfleet.js")
    def extension() -> FileResponse:
        return FileResponse(EXTENSION_DIR / "sdfleet.js", media_type="text/javascript",
                            headers={"Cache-Control": "no-cache"})

    @router.get(f"{base}/user.css")
    def user_css() -> Response:
        """index.html links a server-wide `user.css`; sdfleet has none (per-user CSS is `api/userdata/user.css`)."""
        return Response(b"", media_type="text/css", headers={"Cache-Control": "no-cache"})

    @router.get(f"{base}/templates/index.json")
    def template_index() -> JSONResponse:
        """The built-in template browser stays empty: sdfleet's templates live in its own menu."""
        return JSONResponse([])

    return router


def static_files(*, subdirectory: str = "") -> StaticFiles:
    """The frontend's assets (public files of the package: no user data)."""
    return StaticFiles(directory=frontend_dir() / subdirectory)
