"""Authorization matrix entries of the A1111 API (/sdapi/v1).

txt2img/img2img wait for a worker, and the matrix has none: their owner request is one the service
refuses after the permission check (two invalid fields, so no single-field change of the bad-input
suite makes it valid and leaves a request waiting)."""

from __future__ import annotations

from tests.integration.a1111.a1111_client import png_b64
from tests.integration.api.authz_matrix import Case, Request

INFER = "inference:all"
NOT_RUNNABLE = {"prompt": "x", "steps": 0, "width": 7}


def _get(path: str) -> Case:
    return Case(None, lambda api, o: Request(path))


CASES = {
    ("POST", "/sdapi/v1/txt2img"): Case(INFER, lambda api, o: Request(
        "/sdapi/v1/txt2img", dict(NOT_RUNNABLE), ok=frozenset({422})), notes="no worker: refused after authz"),
    ("POST", "/sdapi/v1/img2img"): Case(INFER, lambda api, o: Request(
        "/sdapi/v1/img2img", {**NOT_RUNNABLE, "init_images": [png_b64()]}, ok=frozenset({422}))),
    ("GET", "/sdapi/v1/progress"): Case(INFER, lambda api, o: Request("/sdapi/v1/progress")),
    ("POST", "/sdapi/v1/interrupt"): Case(INFER, lambda api, o: Request("/sdapi/v1/interrupt")),
    ("POST", "/sdapi/v1/skip"): Case(INFER, lambda api, o: Request("/sdapi/v1/skip")),
    ("GET", "/sdapi/v1/options"): _get("/sdapi/v1/options"),
    ("POST", "/sdapi/v1/extra-single-image"): Case(INFER, lambda api, o: Request(
        "/sdapi/v1/extra-single-image", {"image": png_b64(), "upscaler_1": "no-such-upscaler"},
        ok=frozenset({422})), notes="no worker: refused after authz"),
    ("POST", "/sdapi/v1/extra-batch-images"): Case(INFER, lambda api, o: Request(
        "/sdapi/v1/extra-batch-images", {"imageList": [{"data": png_b64(), "name": "a.png"}],
                                         "upscaler_1": "no-such-upscaler"}, ok=frozenset({422}))),
    ("POST", "/sdapi/v1/options"): Case(None, lambda api, o: Request(
        "/sdapi/v1/options", {"CLIP_stop_at_last_layers": 2})),
    ("GET", "/sdapi/v1/sd-models"): _get("/sdapi/v1/sd-models"),
    ("GET", "/sdapi/v1/sd-vae"): _get("/sdapi/v1/sd-vae"),
    ("GET", "/sdapi/v1/loras"): _get("/sdapi/v1/loras"),
    ("GET", "/sdapi/v1/samplers"): _get("/sdapi/v1/samplers"),
    ("GET", "/sdapi/v1/schedulers"): _get("/sdapi/v1/schedulers"),
    ("GET", "/sdapi/v1/upscalers"): _get("/sdapi/v1/upscalers"),
    ("GET", "/sdapi/v1/latent-upscale-modes"): _get("/sdapi/v1/latent-upscale-modes"),
    ("GET", "/sdapi/v1/scripts"): _get("/sdapi/v1/scripts"),
    ("GET", "/sdapi/v1/script-info"): _get("/sdapi/v1/script-info"),
    ("GET", "/sdapi/v1/cmd-flags"): _get("/sdapi/v1/cmd-flags"),
    ("GET", "/sdapi/v1/face-restorers"): _get("/sdapi/v1/face-restorers"),
    ("GET", "/sdapi/v1/realesrgan-models"): _get("/sdapi/v1/realesrgan-models"),
    ("GET", "/sdapi/v1/hypernetworks"): _get("/sdapi/v1/hypernetworks"),
    ("GET", "/sdapi/v1/extensions"): _get("/sdapi/v1/extensions"),
    ("GET", "/controlnet/version"): _get("/controlnet/version"),
    ("GET", "/controlnet/model_list"): _get("/controlnet/model_list"),
    ("GET", "/controlnet/module_list"): _get("/controlnet/module_list"),
    ("GET", "/sdapi/v1/embeddings"): _get("/sdapi/v1/embeddings"),
    ("GET", "/sdapi/v1/memory"): _get("/sdapi/v1/memory"),
    ("POST", "/sdapi/v1/refresh-checkpoints"): Case(None, lambda api, o: Request("/sdapi/v1/refresh-checkpoints")),
    ("POST", "/sdapi/v1/png-info"): Case(None, lambda api, o: Request("/sdapi/v1/png-info", {"image": png_b64()})),
}
