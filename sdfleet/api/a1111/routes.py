"""/sdapi/v1: A1111's routes, each a thin call into the A1111 service (per user, queued on the fleet)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.concurrency import run_in_threadpool

from sdfleet.api.a1111.schemas import (
    EmbeddingsResponse,
    ExtrasBase,
    ExtrasBatchImagesRequest,
    ExtrasBatchImagesResponse,
    ExtrasSingleImageRequest,
    ExtrasSingleImageResponse,
    GenerationResponse,
    Img2ImgRequest,
    LatentUpscaleModeItem,
    LoraItem,
    PngInfoRequest,
    PngInfoResponse,
    ProgressResponse,
    SamplerItem,
    SchedulerItem,
    SDModelItem,
    SDVaeItem,
    Txt2ImgRequest,
    UpscalerItem,
)
from sdfleet.api.deps import CurrentPrincipal, ServicesDep
from sdfleet.api.errors import error_response
from sdfleet.domain.checkpoints import ModelType
from sdfleet.engine.a1111_hires import LATENT_MODES, PIXEL_UPSCALERS
from sdfleet.engine.sampler_names import A1111_ALIASES, A1111_SAMPLERS, A1111_SCHEDULERS
from sdfleet.services.a1111 import GenerationFailed, GenerationTimedOut

router = APIRouter(prefix="/sdapi/v1", tags=["a1111"])
_FAILURE_STATUS = {GenerationFailed: 502, GenerationTimedOut: 504}


async def _generate(task: str, body: Txt2ImgRequest, request: Request, principal, services) -> Any:
    params = body.model_dump(exclude_unset=True)
    try:
        result = await services.a1111.generate(principal, task=task, params=params,
                                               disconnected=request.is_disconnected)
    except (GenerationFailed, GenerationTimedOut) as exc:
        return error_response(_FAILURE_STATUS[type(exc)], exc.code, exc.message, exc.details)
    echo = body.model_dump()
    if task == "img2img" and not echo.get("include_init_images"):
        echo.update(init_images=None, mask=None)
    return GenerationResponse(images=result.images, parameters=echo, info=json.dumps(result.info))


_GENERATION_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {"description": "The job failed on the fleet (`details.job_id`, `details.error`)."},
    504: {"description": "No worker finished the job in time; it was cancelled."},
    429: {"description": "A per-user quota (queued jobs) is reached."},
}


@router.post("/txt2img", response_model=GenerationResponse, responses=_GENERATION_ERRORS)
async def txt2img(body: Txt2ImgRequest, request: Request, principal: CurrentPrincipal,
                  services: ServicesDep) -> Any:
    """Queue a txt2img job and answer when it finishes (A1111's synchronous call, made on the fleet).

    Interrupted jobs answer 200 with the images made so far (possibly none) and `info.interrupted`."""
    return await _generate("txt2img", body, request, principal, services)


@router.post("/img2img", response_model=GenerationResponse, responses=_GENERATION_ERRORS)
async def img2img(body: Img2ImgRequest, request: Request, principal: CurrentPrincipal,
                  services: ServicesDep) -> Any:
    """Queue an img2img (or inpainting, with `mask`) job and answer when it finishes."""
    return await _generate("img2img", body, request, principal, services)


@router.get("/progress", response_model=ProgressResponse)
def progress(principal: CurrentPrincipal, services: ServicesDep,
             skip_current_image: Annotated[bool, Query()] = False) -> ProgressResponse:
    """Progress of your current job (newest running, else newest queued), with its latest preview."""
    report = services.a1111.progress(principal, include_image=not skip_current_image)
    return ProgressResponse(progress=report.progress, eta_relative=report.eta_relative, state=report.state,
                            current_image=report.current_image, textinfo=report.textinfo)


@router.post("/interrupt")
def interrupt(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Stop your current job (never anyone else's); `job_id` is null when you had none."""
    job = services.a1111.interrupt(principal)
    return {"job_id": job.id if job else None}


@router.post("/skip")
def skip(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Like interrupt, for a single-image job; a job making several images cannot skip one (409)."""
    job = services.a1111.skip(principal)
    return {"job_id": job.id if job else None}


@router.get("/options")
def get_options(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """Your options; `sd_model_checkpoint` is the title of your default model."""
    return services.a1111.options(principal)


@router.post("/options")
def set_options(principal: CurrentPrincipal, services: ServicesDep,
                body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Change your options only: `sd_model_checkpoint` (your default model), `sd_vae`, `CLIP_stop_at_last_layers`."""
    return services.a1111.set_options(principal, body)


@router.get("/sd-models", response_model=list[SDModelItem])
def sd_models(principal: CurrentPrincipal, services: ServicesDep) -> list[SDModelItem]:
    """Checkpoints you may use, titled `name.safetensors [shorthash]`."""
    return [SDModelItem(title=f"{m.name} [{m.short_hash}]", model_name=Path(m.name).stem, hash=m.short_hash,
                        sha256=m.sha256, filename=m.name)
            for m in services.a1111.models(principal, ModelType.CHECKPOINT)]


@router.get("/sd-vae", response_model=list[SDVaeItem])
def sd_vae(principal: CurrentPrincipal, services: ServicesDep) -> list[SDVaeItem]:
    """Standalone VAEs you may use."""
    return [SDVaeItem(model_name=m.name, filename=m.name) for m in services.a1111.models(principal, ModelType.VAE)]


@router.get("/loras", response_model=list[LoraItem])
def loras(principal: CurrentPrincipal, services: ServicesDep) -> list[LoraItem]:
    """LoRAs you may use in prompts as `<lora:name:weight>`."""
    return [LoraItem(name=Path(m.name).stem, alias=Path(m.name).stem, path=m.name, metadata=dict(m.metadata))
            for m in services.a1111.models(principal, ModelType.LORA)]


@router.get("/samplers", response_model=list[SamplerItem])
def samplers(principal: CurrentPrincipal) -> list[SamplerItem]:
    """Sampler names accepted in `sampler_name`."""
    aliases: dict[str, list[str]] = {}
    for alias, name in A1111_ALIASES.items():
        aliases.setdefault(name, []).append(alias)
    return [SamplerItem(name=name, aliases=aliases.get(name, []), options={"scheduler": s.automatic_scheduler})
            for name, s in A1111_SAMPLERS.items()]


@router.get("/schedulers", response_model=list[SchedulerItem])
def schedulers(principal: CurrentPrincipal) -> list[SchedulerItem]:
    """Schedule types accepted in `scheduler` ("Automatic" picks the sampler's usual one)."""
    labels = ["Automatic", *A1111_SCHEDULERS]
    return [SchedulerItem(name=label.lower().replace(" ", "_"), label=label, aliases=None, default_rho=-1,
                          need_inner_model=False) for label in labels]


@router.get("/upscalers", response_model=list[UpscalerItem])
def upscalers(principal: CurrentPrincipal, services: ServicesDep) -> list[UpscalerItem]:
    """Upscalers for `hr_upscaler` and the extras routes: A1111's built-in None, Lanczos and Nearest, then the
    upscaler models you may see (the latent modes are listed by `latent-upscale-modes`)."""
    models = services.a1111.models(principal, ModelType.UPSCALER)
    builtin = [UpscalerItem(name=name, model_name=None, model_path=None, model_url=None, scale=4)
               for name in PIXEL_UPSCALERS]
    return builtin + [
        UpscalerItem(name=Path(m.name).stem, model_name=m.name, model_path=m.name, model_url=None, scale=None)
        for m in models]


@router.get("/latent-upscale-modes", response_model=list[LatentUpscaleModeItem])
def latent_upscale_modes(principal: CurrentPrincipal) -> list[LatentUpscaleModeItem]:
    """A1111's latent upscale modes for `hr_upscaler` (no `hr_upscaler`: "Latent")."""
    return [LatentUpscaleModeItem(name=name) for name in LATENT_MODES]


@router.get("/embeddings", response_model=EmbeddingsResponse)
def embeddings(principal: CurrentPrincipal, services: ServicesDep) -> EmbeddingsResponse:
    """Textual-inversion embeddings you may see."""
    loaded = {Path(m.name).stem: {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": None,
                                  "vectors": None} for m in services.a1111.models(principal, ModelType.EMBEDDING)}
    return EmbeddingsResponse(loaded=loaded, skipped={})


@router.post("/refresh-checkpoints")
def refresh_checkpoints(principal: CurrentPrincipal) -> None:
    """Nothing to do: the registry is always current (kept for A1111 clients)."""
    return None


async def _extras(body: ExtrasBase, images: list[str], request: Request, principal, services) -> Any:
    params = body.model_dump(exclude={"image", "imageList"})
    if isinstance(body, ExtrasBatchImagesRequest):
        params["imageList"] = True
    try:
        return await services.a1111.extras(principal, images=images, params=params,
                                           disconnected=request.is_disconnected)
    except (GenerationFailed, GenerationTimedOut) as exc:
        return error_response(_FAILURE_STATUS[type(exc)], exc.code, exc.message, exc.details)


@router.post("/extra-single-image", response_model=ExtrasSingleImageResponse, responses=_GENERATION_ERRORS)
async def extra_single_image(body: ExtrasSingleImageRequest, request: Request, principal: CurrentPrincipal,
                             services: ServicesDep) -> Any:
    """Upscale one image with an upscaler (Lanczos, Nearest or an upscaler model), as a job on the fleet."""
    result = await _extras(body, [body.image], request, principal, services)
    if not isinstance(result, tuple):
        return result
    images, info = result
    return ExtrasSingleImageResponse(html_info=info, image=images[0] if body.show_extras_results is not False else None)


@router.post("/extra-batch-images", response_model=ExtrasBatchImagesResponse, responses=_GENERATION_ERRORS)
async def extra_batch_images(body: ExtrasBatchImagesRequest, request: Request, principal: CurrentPrincipal,
                             services: ServicesDep) -> Any:
    """Upscale several images (answered in the order sent), as one job on the fleet."""
    result = await _extras(body, [f.data for f in body.imageList], request, principal, services)
    if not isinstance(result, tuple):
        return result
    images, info = result
    return ExtrasBatchImagesResponse(html_info=info, images=images if body.show_extras_results is not False else [])


@router.post("/png-info", response_model=PngInfoResponse)
async def png_info_route(body: PngInfoRequest, principal: CurrentPrincipal,
                         services: ServicesDep) -> PngInfoResponse:
    """The generation parameters a PNG carries (A1111 infotext), raw and parsed; no pixel is decoded."""
    return PngInfoResponse(**await run_in_threadpool(services.a1111.png_info, principal, body.image))


@router.get("/memory")
def memory(principal: CurrentPrincipal, services: ServicesDep) -> dict[str, Any]:
    """A1111's memory report: this server's RAM; GPU figures are zeros; `workers` lists the fleet's devices."""
    return services.a1111.memory()


