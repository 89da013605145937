"""Walk every route of the OpenAPI document: 401 without credentials, 403 without the permission,
404 for another user's object, 2xx for the right user. A route missing from the matrix fails."""

import pytest

from tests.integration.api.authz_audit import EVERY_PERMISSION
from tests.integration.api.authz_matrix import Actor, all_cases

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def _routes(api) -> list[tuple[str, str]]:
    spec = api.client.get("/api/v1/openapi.json").json()
    return sorted((m.upper(), p) for p, ops in spec["paths"].items() for m in ops if m in HTTP_METHODS)


def _actor(api, roles):
    user = api.make_user(roles=roles)
    return Actor(username=user["username"], headers=user["headers"])


def _role_for(api, permission):
    if permission in (None, "public"):
        return []
    if permission == EVERY_PERMISSION:
        return ["admin"]
    return [api.make_role(permissions=[permission])]


def test_every_route_has_a_matrix_entry(api):
    cases = all_cases()
    missing = [r for r in _routes(api) if r not in cases]
    assert not missing, f"routes without an authorization matrix entry: {missing}"
    stale = [r for r in cases if r not in set(_routes(api))]
    assert not stale, f"matrix entries for routes that do not exist: {stale}"


@pytest.mark.parametrize("route", sorted(all_cases()), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_authorization(api, route):
    method, _template = route
    case = all_cases()[route]
    roles = _role_for(api, case.permission)
    owner = _actor(api, roles)

    def call(headers, request):
        if request.files is not None:
            return api.client.request(method, request.path, files=request.files, headers=headers)
        if request.content is not None:
            return api.client.request(method, request.path, content=request.content, headers=headers)
        return api.client.request(method, request.path, json=request.json, headers=headers)

    if case.worker:
        request = case.build(api, owner)
        assert call({}, request).status_code == 401, route
        assert call(owner.headers, request).status_code == 401, route  # a user's token is not a worker token
        if request.other_headers is not None:
            r = call(request.other_headers, request)
            assert r.status_code in (404, 409), (route, r.status_code, r.text)
        r = call(request.headers, request)
        assert r.status_code in request.ok, (route, r.status_code, r.text)
        return

    if case.permission != "public":
        r = call({}, case.build(api, owner))
        assert r.status_code == 401, (route, r.status_code, r.text)
        assert r.json()["error"]["code"] == "unauthenticated"
    if case.permission not in (None, "public"):
        lacking = _actor(api, [])
        r = call(lacking.headers, case.build(api, owner))
        assert r.status_code == 403, (route, r.status_code, r.text)
    if case.owned:
        other = _actor(api, roles)
        r = call(other.headers, case.build(api, owner))
        assert r.status_code == 404, (route, r.status_code, r.text)
    request = case.build(api, owner)
    r = call(owner.headers, request)
    assert r.status_code in request.ok, (route, r.status_code, r.text)
