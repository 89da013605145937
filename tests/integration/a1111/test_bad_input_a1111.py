"""Bad input on the A1111 routes (`/sdapi/v1`), as tests/integration/api/test_bad_input.py does for /api/v1 and
test_bad_input_comfy.py for both ComfyUI listeners: every answer is defined (a 4xx with the error envelope and
the request id, never a 500) and a refused call leaves no job behind.

No worker runs: a payload the server accepts is queued and, after `a1111_wait_seconds`, answered 504 and
cancelled — a defined answer too."""

from __future__ import annotations

import base64
import json
import math

import pytest
from fastapi.testclient import TestClient

from sdfleet.bootstrap import build_app
from tests.fixtures.images import png_image
from tests.fixtures.live import register_demo
from tests.fixtures.runtime import Api, make_runtime

BASE = {"prompt": "a red cube", "steps": 2, "width": 64, "height": 64, "seed": 1, "sampler_name": "Euler"}
ODD_STRINGS = ["x" * 100_000, "\u0000nul", "\ud800", "a\u202eb", "", "../../etc/passwd", "名前", "%00", "-1"]
WRONG_TYPES = [{}, [], "12", True, None]
ODD_NUMBERS = [-1, 0, -(2**63), 2**64 + 1, 1e308, 0.5, 1e-320]
WRONG_BODIES = ['{"a":', "not json", "[1,2", "\x00", "[]", '"string"', "7", "null", "true", "[" * 1000 + "]" * 1000,
                '{"a":' * 1000 + "1" + "}" * 1000, '{"prompt": NaN}', '{"steps": Infinity}']
POST_ROUTES = ["/sdapi/v1/txt2img", "/sdapi/v1/img2img", "/sdapi/v1/options", "/sdapi/v1/png-info",
               "/sdapi/v1/extra-single-image", "/sdapi/v1/extra-batch-images",
               "/sdapi/v1/interrupt", "/sdapi/v1/skip", "/sdapi/v1/refresh-checkpoints"]
GET_ROUTES = ["/sdapi/v1/progress", "/sdapi/v1/options", "/sdapi/v1/sd-models", "/sdapi/v1/sd-vae", "/sdapi/v1/loras",
              "/sdapi/v1/samplers", "/sdapi/v1/schedulers", "/sdapi/v1/upscalers", "/sdapi/v1/embeddings",
              "/sdapi/v1/memory", "/sdapi/v1/prompt-styles"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_IMAGES = ["", "not base64!", "data:image/png;base64,", "data:text/plain;base64,aGk=", _b64(b"plain text"),
              _b64(png_image(64, 64)[:40]), "data:image/png;base64," + _b64(b"GIF89a") + "====", "\u0000",
              "\ud800", "x" * 200_000, _b64(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)]


@pytest.fixture(scope="module")
def a1111(tmp_path_factory, demo_files):
    runtime = make_runtime(tmp_path_factory.mktemp("a1111-bad-input"), a1111_wait_seconds=0.05)
    register_demo(runtime, demo_files)
    with TestClient(build_app(runtime, local_workers=0), raise_server_exceptions=False) as client:
        api = Api(client=client, runtime=runtime)
        user = api.make_user(roles=["artist"])
        key = client.post("/api/v1/api-keys", headers=user["headers"], json={"name": "a1111"}).json()["key"]
        yield api, {"Authorization": f"Bearer {key}"}, user
    runtime.database.dispose()


def assert_envelope(r, context) -> None:
    assert 400 <= r.status_code < 500, (context, r.status_code, r.text[:300])
    assert r.headers.get("x-request-id"), context
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"], (context, body)


def assert_defined(r, context) -> None:
    """Accepted (2xx), refused (4xx envelope), or queued and timed out without a worker (504 `timeout`)."""
    if r.status_code < 400:
        return
    if r.status_code == 504:
        assert r.json()["error"]["code"] == "timeout", (context, r.text[:300])
        return
    assert_envelope(r, context)


def _send(client, path, body, headers):
    # json.dumps writes lone surrogates as \\ud800 and NaN/inf as bare words, as a hostile client would.
    return client.post(path, content=json.dumps(body), headers={**headers, "content-type": "application/json"})


def _jobs(api, user) -> int:
    return len(api.client.get("/api/v1/inferences", headers=user["headers"], params={"limit": 200}).json()["items"])


def test_malformed_bodies_on_every_post_route(a1111):
    api, headers, user = a1111
    before = _jobs(api, user)
    for path in POST_ROUTES:
        for raw in WRONG_BODIES:
            r = api.client.post(path, content=raw, headers={**headers, "content-type": "application/json"})
            if r.status_code < 400:  # routes without a body (interrupt, skip, refresh) may ignore it
                assert path in ("/sdapi/v1/interrupt", "/sdapi/v1/skip", "/sdapi/v1/refresh-checkpoints"), (
                    path, raw[:20], r.text[:200])
                continue
            assert_envelope(r, (path, raw[:20]))
    assert _jobs(api, user) == before, "a refused call left a job behind"


@pytest.mark.timeout(1800)  # about 700 requests: slow only on a box loaded by parallel work
def test_every_generation_field_with_wrong_types_and_odd_values(a1111):
    api, headers, _user = a1111
    spec = api.client.get("/api/v1/openapi.json").json()
    answers: dict[int, int] = {}
    shared = set(spec["components"]["schemas"]["Txt2ImgRequest"]["properties"])
    for path, model in (("/sdapi/v1/txt2img", "Txt2ImgRequest"), ("/sdapi/v1/img2img", "Img2ImgRequest")):
        base = {**BASE, "init_images": [_b64(png_image(64, 64))]} if model == "Img2ImgRequest" else BASE
        properties = spec["components"]["schemas"][model]["properties"]
        assert len(properties) > 10, properties.keys()
        for field, prop in properties.items():
            if model == "Img2ImgRequest" and field in shared:
                continue  # img2img validates txt2img's fields with the same model: its own fields suffice
            types = {prop.get("type")} | {alt.get("type") for alt in prop.get("anyOf", [])}
            values = list(WRONG_TYPES)
            if "string" in types:
                values += ODD_STRINGS
            if types & {"integer", "number"}:
                values += ODD_NUMBERS + [math.nan, math.inf, -math.inf]
            for value in values:
                r = _send(api.client, path, {**base, field: value}, headers)
                assert_defined(r, (path, field, repr(value)[:40]))
                answers[r.status_code] = answers.get(r.status_code, 0) + 1
    print("answers by status:", dict(sorted(answers.items())))
    assert answers.get(422, 0) > 300 and set(answers) <= {200, 400, 401, 404, 409, 413, 422, 504}, answers


def test_bad_images_name_their_field(a1111):
    api, headers, user = a1111
    before = _jobs(api, user)
    good = _b64(png_image(64, 64))
    cases = [("init_images", {"init_images": [bad]}) for bad in BAD_IMAGES]
    cases += [("mask", {"init_images": [good], "mask": bad}) for bad in BAD_IMAGES if bad]
    cases += [("init_images", {"init_images": []}), ("init_images", {"init_images": [good] * 2}),
              ("init_images", {"init_images": None})]
    for field, fields in cases:
        r = _send(api.client, "/sdapi/v1/img2img", {**BASE, **fields}, headers)
        assert_envelope(r, (field, str(fields)[:60]))
        assert field in json.dumps(r.json()["error"]), (field, r.text[:300])
    for bad in BAD_IMAGES:
        r = _send(api.client, "/sdapi/v1/png-info", {"image": bad}, headers)
        assert_defined(r, ("png-info", bad[:20]))
        for path, body in (("/sdapi/v1/extra-single-image", {"image": bad}),
                           ("/sdapi/v1/extra-batch-images", {"imageList": [{"data": bad, "name": "b.png"}]})):
            r = _send(api.client, path, body, headers)
            assert_envelope(r, (path, bad[:20]))
    assert _jobs(api, user) == before, "a refused img2img left a job behind"


def test_unsupported_a1111_features_are_refused_by_name(a1111):
    api, headers, user = a1111
    before = _jobs(api, user)
    for field, value in [("script_name", "x/y/z plot"),
                         ("sampler_name", "no such sampler"), ("scheduler", "no such schedule"),
                         ("override_settings", {"sd_model_checkpoint": "no-such-model"}), ("steps", 10**9),
                         ("width", 10**6), ("batch_size", 10**6), ("n_iter", -5), ("cfg_scale", math.nan)]:
        r = _send(api.client, "/sdapi/v1/txt2img", {**BASE, field: value}, headers)
        assert_envelope(r, (field, value))
        assert r.status_code != 504, (field, "was queued")
    assert _jobs(api, user) == before, "a refused txt2img left a job behind"


@pytest.mark.parametrize("query", ["?skip_current_image=maybe", "?skip_current_image=%00", "?x=%ED%A0%80",
                                   "?" + "a=1&" * 500, "?limit=-1"])
def test_odd_queries_on_get_routes(a1111, query):
    api, headers, _user = a1111
    for path in GET_ROUTES:
        r = api.client.get(path + query, headers=headers)
        assert_defined(r, path + query[:30])


def test_odd_credentials_are_401(a1111):
    api, _headers, user = a1111
    token = user["headers"]["Authorization"].removeprefix("Bearer ")
    odd = ["Basic !!!", "Basic " + _b64(b"nocolon"), "Basic " + _b64(b"\xff\xfe:\xff"), "Basic ",
           "Basic " + _b64(f"{user['username']}:{token}".encode()),  # a session token is not an API key
           "Basic " + _b64(b"\x00:\x00"), "Bearer ", "Bearer \ud800".encode("utf-8", "surrogatepass").decode("latin-1"),
           "Digest abc", "Basic " + "A" * 10_000, "Basic " + _b64("é:é".encode())]
    for value in odd:
        for path in ("/sdapi/v1/sd-models", "/sdapi/v1/txt2img"):
            r = api.client.request("GET" if path.endswith("models") else "POST", path,
                                   headers={"Authorization": value.encode("latin-1")}, json=BASE)
            assert r.status_code == 401, (value[:30], path, r.status_code, r.text[:200])
            assert_envelope(r, (value[:30], path))
