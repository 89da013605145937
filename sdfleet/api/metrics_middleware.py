"""ASGI middleware timing every HTTP request under its route template, for `/metrics`."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

_PARAM = re.compile(r"\{([^}:]+)(:path)?\}")


def template_matcher(templates: Iterable[str]) -> Callable[[str], str]:
    """A function giving the OpenAPI path template (`/api/v1/inferences/{job_id}`) a request path falls under,
    or `other` (web pages, the ComfyUI mount, static files): label values stay bounded whatever clients send."""
    ordered = sorted(templates, key=lambda t: (t.count("{"), -len(t)))  # literal paths before parameters
    branches = []
    for index, template in enumerate(ordered):
        parts, last = [], 0
        for m in _PARAM.finditer(template):
            parts.append(re.escape(template[last:m.start()]))
            parts.append(".+" if m.group(2) else "[^/]+")
            last = m.end()
        parts.append(re.escape(template[last:]))
        branches.append(f"(?P<t{index}>{''.join(parts)})")
    # One alternation: a request costs one regex match (in C), not a Python loop over every route.
    pattern = re.compile("|".join(branches)) if branches else None

    def match(path: str) -> str:
        found = pattern.fullmatch(path) if pattern else None
        return ordered[int(found.lastgroup[1:])] if found else "other"

    return match


class HttpMetricsMiddleware:
    """Report (method, route template, status, seconds) of each answered request to `observe`.

    Templates are the app's documented route paths, read at lifespan startup (every route is known then, and no
    request waits: uvicorn listens only after startup) or, without a lifespan, on the first request; not
    `app.openapi()`, whose schema generation blocked the event loop for a second or more on a busy box. Reading the
    route table alone costs ~0.4 s of Python on the 2-core box: on a first request it stalled every other one."""

    def __init__(self, app, *, observe: Callable[[str, str, int, float], None],
                 templates: Callable[[], Iterable[str]]) -> None:
        self.app = app
        self.observe = observe
        self._templates = templates
        self._match: Callable[[str], str] | None = None

    def matcher(self) -> Callable[[str], str]:
        """The template matcher, built once."""
        if self._match is None:
            self._match = template_matcher(self._templates())
        return self._match

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            self.matcher()
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
            self.observe(scope.get("method", ""), self.matcher()(scope.get("path", "")), status["code"],
                         time.perf_counter() - started)
