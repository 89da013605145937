"""Security headers on every answer: nosniff and a referrer policy everywhere; on HTML pages a Content Security
Policy (strict for sdfleet's own pages, one the official ComfyUI frontend works under for its pages) and a
refusal to be framed by another site."""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: sdfleet's own pages: every script and style is a file of /static, nothing inline, nothing from elsewhere.
SDFLEET_PAGES = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
                 "font-src 'self'; connect-src 'self'; media-src 'self' blob:; worker-src 'self'; "
                 "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: The official ComfyUI frontend (unmodified): its index.html's inline splash script (allowed by hash), inline
#: <style> and the styles its components inject, images and workers from blob: URLs, fonts as data: URLs;
#: scripts otherwise only from this origin.
COMFY_FRONTEND = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; "
                  "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
                  "connect-src 'self'; media-src 'self' data: blob:; worker-src 'self' blob:; object-src 'none'; "
                  "base-uri 'self'; form-action 'self'; frame-ancestors 'self'")
#: FastAPI's Swagger UI at /docs loads its bundle from jsDelivr and starts it with an inline script.
API_DOCS = ("default-src 'self'; script-src 'self' https://cdn.jsdelivr.net 'unsafe-inline'; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
#: A file a user stored (ComfyUI user data): never a document of this origin.
USER_FILE = "default-src 'none'; sandbox; frame-ancestors 'none'"

_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


def comfy_frontend_policy(inline_script_hashes: Iterable[str]) -> str:
    """The frontend's policy, allowing exactly the inline scripts of the index.html shipped with it."""
    return COMFY_FRONTEND.format(hashes="".join(f" 'sha256-{h}'" for h in inline_script_hashes))


def main_app_policy(comfy_policy: str) -> Callable[[str], str]:
    """The page policy of the main app: the ComfyUI frontend under /comfy, Swagger UI at /docs, else strict."""

    def policy(path: str) -> str:
        if path == "/comfy" or path.startswith("/comfy/"):
            return comfy_policy
        if path == "/docs" or path.startswith("/docs/"):
            return API_DOCS
        return SDFLEET_PAGES

    return policy


class SecurityHeadersMiddleware:
    """Adds the headers to every HTTP answer (a route's own CSP, e.g. user data's, is kept)."""

    def __init__(self, app, *, page_policy: Callable[[str], str]) -> None:
        self.app = app
        self.page_policy = page_policy

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = self.page_policy(scope.get("path", ""))

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = [h for h in _ALWAYS if h[0] not in names]
                content_type = dict(headers).get(b"content-type", b"").lower()
                if content_type.startswith(b"text/html"):
                    if b"content-security-policy" not in names:
                        extra.append((b"content-security-policy", policy.encode()))
                    if b"x-frame-options" not in names:
                        extra.append((b"x-frame-options", b"SAMEORIGIN" if "frame-ancestors 'self'" in policy
                                      else b"DENY"))
                message = {**message, "headers": headers + extra}
            await send(message)

        await self.app(scope, receive, send_with_headers)
