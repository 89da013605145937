"""schemathesis over the whole OpenAPI document (/api/v1 and /sdapi/v1, 146 operations): no 5xx, every answer
matches its declared schema, status code, content type and headers; and every path answers other methods with
405 and an `Allow` header.

Bounded and repeatable: MAX_EXAMPLES generated cases per operation and mode (valid and invalid data), with
Hypothesis derandomized (a fixed seed per operation) and no shrinking. Measured: about 85 s of CPU for the whole
run (about 1.5 min wall on an idle 2-core box; 8 min on this one at load average 12).
SDFLEET_FUZZ_EXAMPLES=50 runs a deeper search by hand; SDFLEET_FUZZ_ONLY=<regex> limits it to some operations."""

from __future__ import annotations

import os
import re
import time

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sdfleet.bootstrap import build_app
from tests.fixtures.runtime import ADMIN_PASSWORD, make_runtime

MAX_EXAMPLES = int(os.environ.get("SDFLEET_FUZZ_EXAMPLES", "5"))
ONLY = re.compile(os.environ.get("SDFLEET_FUZZ_ONLY", ""))  #: e.g. "sdapi" to fuzz some operations by hand
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance,
          response_headers_conformance]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    runtime = make_runtime(tmp_path_factory.mktemp("fuzz"))
    app = build_app(runtime, local_workers=0)
    client = TestClient(app)
    token = client.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
    key = client.post("/api/v1/api-keys", headers={"Authorization": f"Bearer {token}"},
                      json={"name": "fuzz"}).json()["key"]
    yield app, {"Authorization": f"Bearer {key}"}
    runtime.database.dispose()


@pytest.mark.timeout(1800)  # ~85 s of CPU; a box loaded by parallel work stretches the wall time
def test_whole_api(fuzz_app):
    app, auth = fuzz_app
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    failures = []
    started = time.monotonic()
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if not ONLY.search(operation.label):
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                      suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(headers=auth)
                case.validate_response(response, checks=CHECKS, headers=auth)

            count += 1
            try:
                run()
            except Unsatisfiable:
                pass  # negative mode on an operation with nothing to make invalid (no parameters, no body)
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:600]}")
    print(f"{count} operation × mode runs of up to {MAX_EXAMPLES} cases in {time.monotonic() - started:.0f} s")
    assert not failures, "\n\n".join(failures)


def test_every_path_answers_405_with_allow_for_other_methods(fuzz_app):
    app, auth = fuzz_app
    client = TestClient(app)
    spec = client.get("/api/v1/openapi.json").json()
    methods = {path: {m.upper() for m in ops if m in ("get", "put", "post", "patch", "delete")}
               for path, ops in spec["paths"].items()}
    patterns = {path: re.compile("^" + re.sub(r"\{[^}/]+(:path)?\}", lambda m: ".+" if m.group(1) else "[^/]+", path)
                                 + "$") for path in methods}
    wrong = []
    for path, own in methods.items():
        method = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET") if m not in own)
        concrete = path.replace("{", "").replace("}", "").replace(":path", "")  # /users/{username} → /users/username
        # Every route whose template also matches the concrete path answers there (GET /gallery/{id} at
        # /gallery/download): those methods are allowed too.
        declared = set().union(*(ms for p, ms in methods.items() if patterns[p].match(concrete)))
        r = client.request(method, concrete, headers=auth)
        allow = set(r.headers.get("allow", "").replace(" ", "").split(","))
        if r.status_code != 405 or not declared <= allow <= declared | {"HEAD", "OPTIONS"}:
            wrong.append(f"{method} {path}: {r.status_code} Allow={r.headers.get('allow')} declared={declared}")
        elif set(r.json()) != {"error"} or r.json()["error"]["code"] != "method_not_allowed":
            wrong.append(f"{method} {path}: not the error envelope: {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
