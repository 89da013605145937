"""Bad input on every write route of the OpenAPI document → a 4xx with the error envelope, never a 500,
and nothing half-written."""

import json

import pytest

from tests.integration.api.authz_matrix import Actor, all_cases

ODD_STRINGS = [
    "x" * 100_000,  # over-long
    "\u0000nul",  # NUL (PostgreSQL refuses it in text)
    "\ud800",  # lone surrogate
    "a\u202eb",  # right-to-left override
    "\u200b",  # zero-width space only
    "",  # empty
    "../../etc/passwd",
    "名前",
]
WRONG_TYPES = [{}, [], 12, 1.5, True, None]


def _write_routes(api):
    spec = api.client.get("/api/v1/openapi.json").json()
    routes = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method in ("post", "put", "patch") and "requestBody" in op:
                content = op["requestBody"]["content"]
                if "application/json" in content:
                    routes.append((method.upper(), path, _resolve(spec, content["application/json"]["schema"])))
    return sorted(routes, key=lambda r: (r[1], r[0]))


def _resolve(spec, schema):
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return spec["components"]["schemas"][name]
    return schema


def _string_fields(schema):
    fields = []
    for name, prop in schema.get("properties", {}).items():
        types = {prop.get("type")} | {alt.get("type") for alt in prop.get("anyOf", [])}
        if "string" in types:
            fields.append(name)
    return fields


def _send(api, method, path, body, headers):
    # json.dumps escapes lone surrogates as \\ud800, as a hostile client would send them.
    return api.client.request(method, path, content=json.dumps(body),
                              headers={**headers, "content-type": "application/json"})


def _fits(value, types) -> bool:
    """Whether a JSON value has one of the schema types (so a server may accept it)."""
    checks = {
        "array": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict),
        "boolean": lambda v: isinstance(v, bool), "integer": lambda v: type(v) is int,
        "number": lambda v: type(v) in (int, float), "string": lambda v: isinstance(v, str),
    }
    return any(checks[t](value) for t in types if t in checks)


def _assert_envelope(r, context):
    assert 400 <= r.status_code < 500, (context, r.status_code, r.text[:300])
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], (context, body)


def _concrete(api, method, template):
    case = all_cases()[(method, template)]
    perms = [] if case.permission in (None, "public") else [case.permission]
    roles = [api.make_role(permissions=perms)] if perms else []
    user = api.make_user(roles=roles)
    owner = Actor(user["username"], user["headers"])
    request = case.build(api, owner)
    return request, request.headers or owner.headers


def test_every_write_route_refuses_bad_input(api):
    routes = _write_routes(api)
    assert routes, "no write routes found"
    for method, template, schema in routes:
        request, headers = _concrete(api, method, template)
        send = {**headers, "content-type": "application/json"}
        ctx = (method, template)
        # Malformed JSON, non-objects, unknown fields.
        for raw in ['{"a":', "not json", "[1,2", "\x00"]:
            _assert_envelope(api.client.request(method, request.path, content=raw, headers=send), ctx + (raw,))
        for body in ([], "string", 7, None):
            _assert_envelope(_send(api, method, request.path, body, headers), ctx + (body,))
        _assert_envelope(
            _send(api, method, request.path, {**(request.json or {}), "zz_unknown": 1}, headers),
            ctx + ("unknown field",),
        )
        # Wrong types, field by field.
        for field in schema.get("properties", {}):
            for wrong in WRONG_TYPES:
                prop = schema["properties"][field]
                if wrong is None and ("anyOf" in prop or field not in schema.get("required", [])):
                    continue
                body = {**(request.json or {}), field: wrong}
                r = _send(api, method, request.path, body, headers)
                if r.status_code < 400:  # only a value of the declared type may pass ([] for a list …)
                    types = {prop.get("type")} | {alt.get("type") for alt in prop.get("anyOf", [])}
                    assert _fits(wrong, types), (ctx, field, wrong, r.text)
                    continue
                _assert_envelope(r, ctx + (field, wrong))
        # Odd strings in every string field.
        for field in _string_fields(schema):
            for odd in ODD_STRINGS:
                body = {**(request.json or {}), field: odd}
                r = _send(api, method, request.path, body, headers)
                assert r.status_code < 500, (ctx, field, repr(odd)[:40], r.text[:300])
                if r.status_code >= 400:
                    _assert_envelope(r, ctx + (field,))


def test_huge_body_is_413(api):
    headers = {**api.admin(), "content-type": "application/json"}
    body = json.dumps({"name": "x" * (9 * 1024 * 1024)})
    r = api.client.post("/api/v1/roles", content=body, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("path", [
    "/api/v1/users/%00", "/api/v1/users/%ED%A0%80", "/api/v1/roles/%00x", "/api/v1/users/" + "a" * 300,
    "/api/v1/users?limit=0", "/api/v1/users?limit=abc", "/api/v1/users?cursor=%00", "/api/v1/roles?cursor=zzzz",
    "/api/v1/endpoints?limit=0", "/api/v1/endpoints?cursor=zzzz", "/api/v1/endpoints?cursor=WyJcdTAwMDAiXQ",
])
def test_odd_paths_and_queries_are_4xx(api, path):
    r = api.client.get(path, headers=api.admin())
    _assert_envelope(r, path)


def test_odd_login_values_are_401_not_500(api):
    for username, password in [("\u0000", "x"), ("admin", "\ud800"), ("\ud800", "password"), ("a" * 64, "p" * 256)]:
        r = _send(api, "POST", "/api/v1/auth/login", {"username": username, "password": password}, {})
        assert r.status_code in (401, 422), (username[:5], r.text)
        _assert_envelope(r, username[:5])


def test_failed_create_leaves_nothing(api):
    admin = api.admin()
    r = api.client.post("/api/v1/users", headers=admin,
                        json={"username": "ghosty", "password": "password-123", "roles": ["artist", "nope"]})
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "roles"
    assert api.client.get("/api/v1/users/ghosty", headers=admin).status_code == 404
