"""The API process never imports torch, diffusers or transformers: a fresh interpreter starts the app, calls
every GET route as the admin (the ComfyUI and A1111 listeners included), and finds none of them loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import json, re, sys, tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient

    from sdfleet.bootstrap import build_app
    from tests.fixtures.runtime import ADMIN_PASSWORD, make_runtime

    runtime = make_runtime(Path(tempfile.mkdtemp()))
    app = build_app(runtime, local_workers=0)
    statuses = {}
    with TestClient(app) as client:
        token = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        headers = {"Authorization": "Bearer " + token.json()["token"]}
        paths = set()
        def collect(routes, prefix=""):
            for route in routes:
                path = getattr(route, "path_format", None)
                if "GET" in (getattr(route, "methods", None) or ()) and path:
                    paths.add(prefix + path)
                inner = getattr(route, "original_router", None)  # FastAPI's included router (lazy)
                if inner is not None:
                    collect(inner.routes, prefix + route.include_context.prefix)
                elif getattr(route, "routes", None):  # a Mount (the ComfyUI listener under /comfy)
                    collect(route.routes, prefix + getattr(route, "path", ""))
        collect(app.routes)
        for path in sorted(paths):
            # every path parameter gets a plausible value; a 404 still runs the route's imports
            url = re.sub(r"\\{[^}]+\\}", "x", path)
            statuses[path] = client.get(url, headers=headers).status_code
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers"))
    print(json.dumps({"routes": statuses, "loaded": loaded}))
''')


def test_get_routes_leave_torch_unloaded():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600,
                          cwd=str(Path(__file__).parents[3]))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    routes = result["routes"]
    assert len(routes) > 100 and "/comfy/api/system_stats" in routes and "/sdapi/v1/sd-models" in routes, routes
    assert routes["/comfy/api/system_stats"] == 200 and routes["/sdapi/v1/memory"] == 200
    assert not [p for p, status in routes.items() if status >= 500 and status != 501], routes  # 501: custom nodes
    assert result["loaded"] == [], f"the API process imported {result['loaded'][:10]}"
