"""ASGI middleware timing every HTTP request under its route template, for `/metrics`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

_PARAM = re.compile(r"\{([^}:]+)(:path)?\}")


def template_matcher(templates: Iterable[str]) -> Callable[[str], str]:
    """A function giving the OpenAPI path template (`/api/v1/inferences/{job_id}`) a request path falls under,
    or `other` (web pages, the ComfyUI mount, static files): label values stay bounded whatever clients send."""
    compiled = []
    for template in sorted(templates, key=lambda t: (t.count("{"), -len(t))):  # literal paths before parameters
        parts, last = [], 0
        for m in _PARAM.finditer(template):
            parts.append(re.escape(template[last:m.start()]))
            parts.append(".+" if m.group(2) else "[^/]+")
            last = m.end()
        parts.append(re.escape(template[last:]))
        compiled.append((re.compile("".join(parts)), template))

    def match(path: str) -> str:
        return next((template for pattern, template in compiled if pattern.fullmatch(path)), "other")

    return match


class HttpMetricsMiddleware:
    """Report (method, route template, status, seconds) of each answered request to `observe`.

    Templates come from the app's OpenAPI document, read on the first request (every route is known then)."""

    def __init__(self, app, *, observe: Callable[[str, str, int, float], None],
                 templates: Callable[[], Iterable[str]]) -> None:
        self.app = app
        self.observe = observe
        self._templates = templates
        self._match: Callable[[str], str] | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def recording_send(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if self._match is None:
                self._match = template_matcher(self._templates())
            self.observe(scope.get("method", ""), self._match(scope.get("path", "")), status["code"],
                         time.perf_counter() - started)
