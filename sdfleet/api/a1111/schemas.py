"""A1111 request and response bodies, with A1111's field names (translated in services/a1111.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, StrictBool, StrictStr

from sdfleet.api.schemas.base import Strict

Text = StrictStr | None


class Txt2ImgRequest(Strict):
    """A1111's txt2img payload. Fields left out take A1111's defaults; unsupported values are a 422 naming them."""

    prompt: Text = Field(default=None, max_length=20_000)
    negative_prompt: Text = Field(default=None, max_length=20_000)
    styles: list[StrictStr] | None = None
    seed: int | None = Field(default=None, description="-1 for a random seed.")
    subseed: int | None = None
    subseed_strength: float | None = None
    seed_resize_from_h: int | None = None
    seed_resize_from_w: int | None = None
    sampler_name: Text = Field(default=None, max_length=100, examples=["Euler a", "DPM++ 2M Karras"])
    sampler_index: Text = Field(default=None, max_length=100)
    scheduler: Text = Field(default=None, max_length=100, examples=["Automatic", "Karras"])
    batch_size: int | None = None
    n_iter: int | None = None
    steps: int | None = None
    cfg_scale: float | None = None
    width: int | None = None
    height: int | None = None
    restore_faces: StrictBool | None = None
    tiling: StrictBool | None = None
    do_not_save_samples: StrictBool | None = None
    do_not_save_grid: StrictBool | None = None
    eta: float | None = None
    denoising_strength: float | None = None
    s_min_uncond: float | None = None
    s_churn: float | None = None
    s_tmax: float | None = None
    s_tmin: float | None = None
    s_noise: float | None = None
    override_settings: dict[str, Any] | None = Field(
        default=None, description="sd_model_checkpoint, sd_vae, CLIP_stop_at_last_layers.")
    override_settings_restore_afterwards: StrictBool | None = None
    refiner_checkpoint: Text = None
    refiner_switch_at: float | None = None
    disable_extra_networks: StrictBool | None = None
    firstpass_image: Text = None
    comments: dict[str, Any] | None = None
    enable_hr: StrictBool | None = None
    firstphase_width: int | None = None
    firstphase_height: int | None = None
    hr_scale: float | None = None
    hr_upscaler: Text = None
    hr_second_pass_steps: int | None = None
    hr_resize_x: int | None = None
    hr_resize_y: int | None = None
    hr_checkpoint_name: Text = None
    hr_sampler_name: Text = None
    hr_scheduler: Text = None
    hr_prompt: Text = None
    hr_negative_prompt: Text = None
    force_task_id: Text = Field(default=None, max_length=200)
    script_name: Text = None
    script_args: list[Any] | None = None
    send_images: StrictBool | None = None
    save_images: StrictBool | None = None
    alwayson_scripts: dict[str, Any] | None = None
    infotext: Text = None


class Img2ImgRequest(Txt2ImgRequest):
    """A1111's img2img payload: txt2img's fields plus the input image, mask and inpainting fields."""

    init_images: list[StrictStr] | None = Field(default=None, description="Base64 images (exactly one).")
    resize_mode: int | None = None
    image_cfg_scale: float | None = None
    mask: Text = Field(default=None, description="A base64 mask image (white = repaint).")
    mask_blur_x: int | None = None
    mask_blur_y: int | None = None
    mask_blur: int | None = None
    mask_round: StrictBool | None = None
    inpainting_fill: int | None = Field(default=None, description="0 fill, 1 original.")
    inpaint_full_res: StrictBool | None = None
    inpaint_full_res_padding: int | None = None
    inpainting_mask_invert: int | None = None
    initial_noise_multiplier: float | None = None
    latent_mask: Text = None
    include_init_images: StrictBool | None = None


class GenerationResponse(BaseModel):
    images: list[str] = Field(description="Base64 PNGs carrying their infotext.")
    parameters: dict[str, Any] = Field(description="The request, echoed.")
    info: str = Field(description="JSON: seed, all_seeds, infotexts, sd_model_name, sd_model_hash, job_id …")


class ProgressResponse(BaseModel):
    progress: float
    eta_relative: float
    state: dict[str, Any]
    current_image: str | None
    textinfo: str | None


class SDModelItem(BaseModel):
    title: str
    model_name: str
    hash: str
    sha256: str
    filename: str
    config: str | None = None


class SDVaeItem(BaseModel):
    model_name: str
    filename: str


class LoraItem(BaseModel):
    name: str
    alias: str
    path: str
    metadata: dict[str, Any]


class SamplerItem(BaseModel):
    name: str
    aliases: list[str]
    options: dict[str, Any]


class SchedulerItem(BaseModel):
    name: str
    label: str
    aliases: list[str] | None
    default_rho: float
    need_inner_model: bool


class UpscalerItem(BaseModel):
    name: str
    model_name: str | None
    model_path: str | None
    model_url: str | None
    scale: float | None


class LatentUpscaleModeItem(BaseModel):
    name: str


class EmbeddingsResponse(BaseModel):
    loaded: dict[str, dict[str, Any]]
    skipped: dict[str, dict[str, Any]]


class PngInfoRequest(Strict):
    image: StrictStr = Field(description="A base64 PNG (a data: URL prefix is accepted).")


class PngInfoResponse(BaseModel):
    info: str
    items: dict[str, Any]
    parameters: dict[str, Any]


class ExtrasBase(Strict):
    """A1111's extras request: one upscaler, by a factor (resize_mode 0) or to a size (1)."""

    resize_mode: int | None = Field(default=0, description="0: by upscaling_resize; 1: to upscaling_resize_w × _h.")
    show_extras_results: StrictBool | None = True
    gfpgan_visibility: float | None = 0
    codeformer_visibility: float | None = 0
    codeformer_weight: float | None = 0
    upscaling_resize: float | None = 2
    upscaling_resize_w: int | None = 512
    upscaling_resize_h: int | None = 512
    upscaling_crop: StrictBool | None = True
    upscaler_1: Text = Field(default="None", max_length=300)
    upscaler_2: Text = Field(default="None", max_length=300)
    extras_upscaler_2_visibility: float | None = 0
    upscale_first: StrictBool | None = False


class ExtrasSingleImageRequest(ExtrasBase):
    image: StrictStr = Field(default="", description="A base64 image.")


class ExtrasFile(Strict):
    data: StrictStr
    name: StrictStr = Field(default="", max_length=300)


class ExtrasBatchImagesRequest(ExtrasBase):
    imageList: list[ExtrasFile] = Field(max_length=100)


class ExtrasSingleImageResponse(BaseModel):
    html_info: str
    image: str | None


class ExtrasBatchImagesResponse(BaseModel):
    html_info: str
    images: list[str]
